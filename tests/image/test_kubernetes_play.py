"""The Kubernetes manifests, played for real with ``podman kube play`` (issue 23, item 4).

Each variant of deploy/kubernetes is rendered with ``kubectl kustomize``, its images swapped for the
image under test and a stand-in app (deploy/compose/app.py in an image of its own, serving the
manifests' probe paths), and played: the app container starts only after migrate-init exited 0; a
migration refused with exit 8 keeps it from ever starting, and the termination message says why;
the Job variant's ``wait`` initContainer holds the app until the Job (played as a Pod) has migrated.
What podman does differently from a kubelet, and how these tests make up for it, is in
tests/image/kubeplay.py and docs/kubernetes.md. The pods are played one at a time, each wait bounded.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.image.kubeplay import (
    KUBERNETES_DIR,
    Podman,
    app_url_as_value,
    create_secret,
    job_as_pod,
    kube_play,
    played,
    pod_spec,
    podman,
    render,
    termination_log,
    wait_for,
    with_images,
    write_play,
)
from tests.image.test_image import docker, docker_env, engine, image
from tests.support import REPO
from tests.support.chains import TARGET, Chain

__all__ = ["docker_env", "engine", "image", "podman"]  # fixtures, imported for their use here

APP_IMAGE = "migrate-init-demo-app:test"
#: The Secret the PostgreSQL variants read the URL from (deploy/kubernetes/README.md).
SECRET = "your-app-database"
REFUSING_IMAGE = "migrate-init-refusing:test"
#: The stand-in app: the compose demo's app.py, serving /healthz and /readyz on port 8080.
APP_DOCKERFILE = """\
ARG MIGRATE_INIT_IMAGE
FROM ${MIGRATE_INIT_IMAGE}
COPY app.py /demo/app.py
ENTRYPOINT ["python", "/demo/app.py"]
CMD ["serve"]
"""
#: A derived image, as the README builds one, whose second revision drops a table that holds a row.
DERIVED_DOCKERFILE = """\
ARG MIGRATE_INIT_IMAGE
FROM ${MIGRATE_INIT_IMAGE}
ENV MIGRATIONS_DIR=/app/my-migrations MODELS=models:Base
COPY --chown=10001:0 migrations/ /app/my-migrations/
RUN python /app/migrate.py manifest
"""
#: A SQLite query run in the image under test, on a played volume.
READ_SQLITE = (
    "import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(json.dumps("
    "[[r[0] for r in c.execute('SELECT version_num FROM alembic_version')], "
    "sorted(r[0] for r in c.execute(\"SELECT name FROM sqlite_master WHERE type='table'\"))]))"
)


def _build(tag: str, dockerfile: str, context: Path, base: str) -> None:
    (context / "Dockerfile").write_text(dockerfile)
    built = docker("build", "--build-arg", f"MIGRATE_INIT_IMAGE={base}", "--tag", tag, str(context), timeout=600)
    assert built.code == 0, built.out


@pytest.fixture(scope="module")
def images(image, podman: Podman, docker_env, tmp_path_factory) -> Iterator[dict[str, str]]:
    """The image under test, the stand-in app, a derived image that is refused, and PostgreSQL,
    in podman's store; by the repository name the manifests give each."""
    app = tmp_path_factory.mktemp("app-image")
    (app / "app.py").write_text((REPO / "deploy" / "compose" / "app.py").read_text())
    _build(APP_IMAGE, APP_DOCKERFILE, app, image.tag)
    derived = tmp_path_factory.mktemp("derived-image")
    chain = Chain(derived / "migrations")
    chain.add(
        "k8s0000001",
        """
        ops.create_table_if_missing("scratch", sa.Column("id", sa.Integer, primary_key=True))
        op.execute("INSERT INTO scratch (id) VALUES (1)")
    """,
        name="add_scratch",
    )
    chain.add("k8s0000002", 'op.execute("DROP TABLE scratch")', name="drop_scratch")
    for path in [chain.path, *chain.path.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    _build(REFUSING_IMAGE, DERIVED_DOCKERFILE, derived, image.tag)
    postgres = docker_env.get("POSTGRES_IMAGE") or "postgres:16"
    names = podman.load(image.tag, APP_IMAGE, REFUSING_IMAGE, postgres)
    try:
        yield {
            "migrate-init": names[image.tag],
            "your-app": names[APP_IMAGE],
            "refusing": names[REFUSING_IMAGE],
            "postgres": names[postgres],
        }
    finally:
        podman("rmi", "--force", *names.values())
        docker("rmi", APP_IMAGE, REFUSING_IMAGE)


def _app_says(podman: Podman, container: str, text: str) -> str:
    """The app container's log, once it holds ``text`` (bounded)."""
    wait_for(f"{container} to log {text!r}", lambda: text in podman.logs(container), 90, lambda: podman.logs(container))
    return podman.logs(container)


def _probe(podman: Podman, container: str, path: str) -> int:
    """The HTTP status of the app's probe path, asked from inside its pod (kube play's healthchecks
    need systemd, which a container has not: the tests ask the paths themselves)."""
    asked = podman(
        "exec",
        container,
        "python",
        "-c",
        "import sys, urllib.request, urllib.error\n"
        "try: print(urllib.request.urlopen('http://127.0.0.1:8080' + sys.argv[1], timeout=5).status)\n"
        "except urllib.error.HTTPError as exc: print(exc.code)",
        path,
    )
    assert asked.code == 0, asked.out
    return int(asked.out.split()[-1])


def _sqlite_state(podman: Podman, images: dict[str, str], volume: str) -> list:
    read = podman(
        "run",
        "--rm",
        "--volume",
        f"{volume}:/data",
        "--entrypoint",
        "python",
        images["migrate-init"],
        "-c",
        READ_SQLITE,
        "/data/webui.db",
    )
    assert read.code == 0, read.out
    return json.loads(read.out.splitlines()[-1])


# --- sqlite-initcontainer --------------------------------------------------------------------


def test_sqlite_variant_starts_the_app_only_after_migrate_init_exited_0(podman, images, tmp_path):
    docs = with_images(render(KUBERNETES_DIR / "sqlite-initcontainer"), images)
    play = write_play(podman, tmp_path / "sqlite.yaml", docs, restart_policy="OnFailure")
    with played(play, volumes=("your-app-data",)):
        result = kube_play(play)
        assert result.code == 0, result.out
        # the init container is gone once it succeeded; the app found what it left
        logs = _app_says(podman, "your-app-pod-0-app", "serving /healthz")
        assert f"database sqlite:////app/backend/data/webui.db is at revision {TARGET}" in logs, logs
        assert podman.state("your-app-pod-0-app")["Status"] == "running"
        assert (_probe(podman, "your-app-pod-0-app", "/healthz"), _probe(podman, "your-app-pod-0-app", "/readyz")) == (
            200,
            200,
        )
        assert _sqlite_state(podman, images, "your-app-data")[0] == [TARGET]


def test_sqlite_variant_refused_migration_exits_8_never_starts_the_app_and_says_why(podman, images, tmp_path):
    docs = with_images(render(KUBERNETES_DIR / "sqlite-initcontainer"), {**images, "migrate-init": images["refusing"]})
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment"]
    message = tmp_path / "termination-log"
    termination_log(pod_spec(deployment), "migrate", message)
    play = write_play(podman, tmp_path / "sqlite-refused.yaml", docs, restart_policy="Never")
    with played(play, volumes=("your-app-data",)):
        result = kube_play(play)

        assert result.code == 125, result.out
        assert "init container" in result.out and "exited with code 8" in result.out, result.out
        assert podman.state("your-app-pod-0-migrate")["ExitCode"] == 8
        app = podman.state("your-app-pod-0-app")
        assert app["Status"] == "created" and app["StartedAt"].startswith("0001-01-01"), app
        # what `kubectl describe pod` shows as the init container's Message
        summary = json.loads(message.read_text())
        assert (summary["outcome"], summary["exit_code"]) == ("destructive_refused", 8), summary
        assert "k8s0000002" in summary["message"] and "table scratch" in summary["message"], summary
        assert "ALLOW_DESTRUCTIVE" in summary["message"], summary
        # the refused migration was rolled back; the one before it stays
        versions, tables = _sqlite_state(podman, images, "your-app-data")
        assert versions == ["k8s0000001"] and "scratch" in tables, (versions, tables)


# --- the PostgreSQL variants ---------------------------------------------------------------


@dataclass(frozen=True)
class Postgres:
    container: str
    url: str
    database: str

    def psql(self, podman: Podman, query: str) -> str:
        asked = podman("exec", self.container, "psql", "-U", "webui", "-d", self.database, "-tAc", query, timeout=30)
        assert asked.code == 0, asked.out
        return asked.out.strip()

    def versions(self, podman: Podman) -> list[str] | None:
        """The version rows, read with psql inside the server's pod; None while there is no table."""
        if self.psql(podman, "SELECT to_regclass('alembic_version') IS NULL") == "t":
            return None
        return sorted(self.psql(podman, "SELECT version_num FROM alembic_version").split())


@pytest.fixture(scope="module")
def postgres_server(podman: Podman, images, tmp_path_factory) -> Iterator[Postgres]:
    """A PostgreSQL pod on kube play's network, shared by the module's tests."""
    name = f"pg-{uuid.uuid4().hex[:8]}"
    password = f"pw{uuid.uuid4().hex[:12]}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "postgres",
                    "image": images["postgres"],
                    "imagePullPolicy": "Never",
                    "env": [
                        {"name": "POSTGRES_USER", "value": "webui"},
                        {"name": "POSTGRES_PASSWORD", "value": password},
                        {"name": "POSTGRES_DB", "value": "webui"},
                    ],
                }
            ],
        },
    }
    play = write_play(podman, tmp_path_factory.mktemp("postgres") / "postgres.yaml", [pod])
    with played(play):
        started = kube_play(play)
        assert started.code == 0, started.out
        container = f"{name}-postgres"
        wait_for(
            "PostgreSQL to accept connections over TCP",
            lambda: (
                podman(
                    "exec", container, "pg_isready", "-h", "127.0.0.1", "-U", "webui", "-d", "webui", timeout=30
                ).code
                == 0
            ),
            120,
            lambda: podman.logs(container),
        )
        address = podman(
            "inspect",
            "--type",
            "container",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            container,
        ).out.strip()
        assert address, podman("inspect", container).out
        yield Postgres(container, f"postgresql://webui:{password}@{address}:5432/webui", "webui")


@pytest.fixture
def postgres(podman: Podman, postgres_server: Postgres) -> Postgres:
    """A new, empty database of its own on the shared server."""
    database = f"db_{uuid.uuid4().hex[:10]}"
    postgres_server.psql(podman, f"CREATE DATABASE {database}")
    return Postgres(postgres_server.container, postgres_server.url.rsplit("/", 1)[0] + f"/{database}", database)


def _server_docs(podman: Podman, folder: Path, variant: str, images: dict[str, str], url: str) -> list[dict]:
    """A variant rendered for the PostgreSQL pod: its images and the app's URL; and the Secret the
    user creates, with the URL in a file that ends with a newline, as an editor leaves it."""
    docs = with_images(render(KUBERNETES_DIR / variant), images)
    for doc in docs:
        if doc["kind"] == "Deployment":
            app_url_as_value(doc, url)
    create_secret(podman, folder, SECRET, "database-url", url + "\n")
    return docs


def test_postgres_initcontainer_variant_migrates_from_the_secret_file_then_starts_the_app(
    podman, images, postgres, tmp_path
):
    docs = _server_docs(podman, tmp_path, "postgres-initcontainer", images, postgres.url)
    play = write_play(
        podman, tmp_path / "postgres-initcontainer.yaml", docs, restart_policy="OnFailure", secrets=(SECRET,)
    )
    with played(play):
        result = kube_play(play)
        assert result.code == 0, result.out + podman.logs("your-app-pod-0-migrate")
        logs = _app_says(podman, "your-app-pod-0-app", "serving /healthz")
        assert f"postgresql+psycopg2://webui:***@{postgres.url.split('@')[1]} is at revision {TARGET}" in logs, logs
        assert _probe(podman, "your-app-pod-0-app", "/readyz") == 200
    assert postgres.versions(podman) == [TARGET]


def test_postgres_job_variant_wait_holds_the_app_until_the_job_pod_has_migrated(podman, images, postgres, tmp_path):
    docs = _server_docs(podman, tmp_path, "postgres-job", images, postgres.url)
    (job,) = [doc for doc in docs if doc["kind"] == "Job"]
    app_docs = [doc for doc in docs if doc["kind"] != "Job"]
    app_play = write_play(
        podman, tmp_path / "postgres-job-app.yaml", app_docs, restart_policy="OnFailure", secrets=(SECRET,)
    )
    job_play = write_play(podman, tmp_path / "postgres-job-migrate.yaml", [job_as_pod(job)])
    waiter = "your-app-pod-0-wait-for-migration"
    with played(app_play), played(job_play):
        # kube play runs the init containers before it returns: the app's play waits with them
        app_started = subprocess.Popen(
            ["podman", "kube", "play", str(app_play.path)],
            env=podman.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(
                "the wait initContainer to wait for the Job",
                lambda: podman.exists(waiter) and "Waiting for another migrator" in podman.logs(waiter),
                90,
                lambda: podman.logs(waiter) if podman.exists(waiter) else "(not created)",
            )
            assert not podman.exists("your-app-pod-0-app") or podman.state("your-app-pod-0-app")[
                "StartedAt"
            ].startswith("0001-01-01")
            assert postgres.versions(podman) is None  # the database is untouched

            migrated = kube_play(job_play)
            assert migrated.code == 0, migrated.out
            wait_for(
                "the Job's pod to finish",
                lambda: podman.state("your-app-migrate-migrate")["Status"] == "exited",
                120,
                lambda: podman.logs("your-app-migrate-migrate"),
            )
            job_state = podman.state("your-app-migrate-migrate")
            assert job_state["ExitCode"] == 0, podman.logs("your-app-migrate-migrate")
            out, _ = app_started.communicate(timeout=180)
        finally:
            if app_started.poll() is None:
                app_started.kill()
                app_started.wait()
        assert app_started.returncode == 0, out.decode(errors="replace")
        logs = _app_says(podman, "your-app-pod-0-app", "serving /healthz")
        assert f"is at revision {TARGET}" in logs, logs
        app = podman.state("your-app-pod-0-app")
        assert job_state["FinishedAt"] <= app["StartedAt"], (job_state, app)
        job_logs = podman.logs("your-app-migrate-migrate")
        assert f"OK (exit 0): Upgraded base (empty) -> {TARGET}" in job_logs, job_logs
    assert postgres.versions(podman) == [TARGET]
