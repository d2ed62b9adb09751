"""The documents' commands that need Docker or a database, run exactly as written (issue 16).

tests/unit/test_docs_commands.py extracts every command of the sh, bash and console blocks of
README.md, CONTRIBUTING.md, deploy/kubernetes/README.md and docs/*.md, and fails on one that is
neither run by a test nor marked ``# example: REASON``. The commands run here are named once,
below, with ``documented(...)``: RUN is what that module checks against the documents, and every
run checks again that its text is still a documented command, so an edited command fails at once.

Each command runs through ``bash -c``, in the folder the document implies (the repository root for
Compose and ``docker build``; a scratch folder for a ``$PWD`` mount) and in the environment it
describes: build/docker.env's variables, as the README says to source them. What the tests add,
and take away again:

- ``migrate-init:0.3.0`` is built by docs/image.md's own build command (the layer cache of the image
  tests' build makes that seconds) and also tagged ``migrate-init:local``, the one name the README
  and docs run it by (the tag Compose builds). Tags that existed before are put back afterwards.
- Compose runs under a throw-away COMPOSE_PROJECT_NAME and MIGRATE_INIT_IMAGE (the README names that
  variable), and ``down --volumes`` ends each project. An ``up`` that keeps a database service
  running is ended once ``app`` has exited.
- docs/commands.md's named volume ``open-webui_data`` (and the README's ``my-app-data``) is created
  by the tests with a label before the commands use it, and removed afterwards with any container
  still using it. One that already exists without the label is refused (it may hold a real Open
  WebUI database); one with it is a leftover of an interrupted run and is replaced.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrate_init import __version__
from tests.support import REPO
from tests.support.wheelhouse import build_wheel
from tests.unit.test_docs_commands import runnable, transcript

#: Every documented command these tests run, exactly as the documents show it.
RUN: list[str] = []


def documented(command: str) -> str:
    """Name ``command`` as one these tests run as written; tests/unit/test_docs_commands.py checks
    that a document shows exactly this text, unmarked."""
    RUN.append(command)
    return command


VERSION_TAG = f"migrate-init:{__version__}"
#: The one name the README and docs run the image by: the tag Compose builds.
LOCAL_TAG = "migrate-init:local"
TARGET = "merge_heads_final"
VOLUME = "open-webui_data"
#: The README's named volume for "your own migrations".
OWN_VOLUME = "my-app-data"

# README.md
DEMO = documented("docker-compose up --build")
POSTGRES_DEMO = documented(
    "POSTGRES_PASSWORD=change-me docker-compose -f docker-compose.yaml -f docker-compose.postgres.yaml up --build"
)
PGBOUNCER_DEMO = documented(
    "POSTGRES_PASSWORD=change-me docker-compose -f docker-compose.yaml -f docker-compose.postgres.yaml "
    "-f docker-compose.pgbouncer.yaml up"
)
OWN_MIGRATIONS = documented(
    'docker run --rm -e DATABASE_URL_FILE=/run/secrets/db_url -v "$PWD/db_url:/run/secrets/db_url:ro" \\\n'
    '  -e MIGRATIONS_DIR=/migrations -e MODELS=models:Base -v "$PWD/migrations:/migrations:ro" \\\n'
    f"  -v {OWN_VOLUME}:/app/backend/data {LOCAL_TAG}"
)
# docs/image.md
SOURCE_DOCKER_ENV = documented("set -a; . build/docker.env; set +a")
RELEASE_BUILD = documented(
    'docker build --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg REVISION="$(git rev-parse HEAD)" '
    f"--build-arg SOURCE=REPOSITORY-URL -t {VERSION_TAG} ."
)
VERSION = documented(f"docker run --rm {VERSION_TAG} --version")
LABELS = documented(f"docker image inspect --format '{{{{json .Config.Labels}}}}' {VERSION_TAG}")
MARIADB_DEMO = documented("MARIADB_PASSWORD=change-me docker-compose -f docker-compose.mariadb.yaml up --build")
# docs/commands.md: the console transcript, and the entrypoint's examples on a named volume
TRANSCRIPT = [documented("python migrate.py status"), documented("echo $?"), documented("python migrate.py current")]
STATUS = documented(f"docker run --rm -v {VOLUME}:/app/backend/data {LOCAL_TAG} status")
UPGRADE = documented(f"docker run --rm -v {VOLUME}:/app/backend/data {LOCAL_TAG} upgrade ef6fab585ac1")
HARDENED = documented(
    "docker run --rm --user 1000650000:0 --read-only --tmpfs /tmp --cap-drop ALL \\\n"
    f"  -v {VOLUME}:/app/backend/data {LOCAL_TAG}"
)
WRAPPER = documented(f"docker run --rm -v {VOLUME}:/app/backend/data {LOCAL_TAG} run -- python -m myapp")
# docs/air-gapped.md
OFFLINE_PACKAGE = documented(
    'docker run --rm -e EXTRA_PIP_PACKAGES="cos-python-sdk-v5==1.9.30" \\\n'
    '  -e PIP_FIND_LINKS=/wheels -e PIP_NO_INDEX=true -v "$PWD/wheels:/wheels:ro" \\\n'
    f"  -v {VOLUME}:/app/backend/data {LOCAL_TAG}"
)
# docs/troubleshooting.md (and each example's README)
LOGS = documented("docker-compose logs migrate")
# examples/*/README.md: each example from the repository's root, on migrate-init:local
EXAMPLE_UP = documented("docker-compose up --build --detach")
EXAMPLE_DOWN = documented("docker-compose down --volumes")
EXAMPLES = {
    name: (
        documented(f"cd examples/{name}"),
        documented(f"curl --retry 30 --retry-all-errors --retry-delay 1 -fsS http://localhost:{port}/notes"),
    )
    for name, port in (("fastapi", 8000), ("flask", 5000))
}
EXIT_CODE = documented("docker inspect --format '{{.State.ExitCode}}' \"$(docker-compose ps -a -q migrate)\"")


@dataclass(frozen=True)
class Result:
    code: int
    out: str  # stdout and stderr together, unless asked apart
    err: str = ""

    def __str__(self) -> str:
        return f"exit {self.code}\n{self.out[-6000:]}{self.err[-3000:]}"


def sh(
    *commands: str,
    cwd: Path,
    env: dict[str, str],
    timeout: float = 300,
    errexit: bool = True,
    separate_stderr: bool = False,
) -> Result:
    """Run documented commands, one per line of one bash script, as a reader pastes them."""
    for command in commands:
        assert runnable(command), f"no document shows this command as written (or it is marked):\n{command}"
    script = "\n".join(commands)
    try:
        proc = subprocess.run(
            ["bash", *(["-e"] if errexit else []), "-c", script],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if separate_stderr else subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{script}\ndid not finish within {timeout}s:\n{exc.output}") from None
    return Result(proc.returncode, proc.stdout, proc.stderr or "")


def docker(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
    """The docker CLI for the tests' own set-up and checks (not a documented command)."""
    proc = subprocess.run(
        ["docker", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout)


# --- the engine, the image and the volume --------------------------------------------------


@pytest.fixture(scope="module")
def docker_env() -> dict[str, str]:
    """Our environment plus build/docker.env, as the README says to source it before Compose."""
    env = dict(os.environ)
    env_file = REPO / "build" / "docker.env"
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and not key.startswith("#"):
                env.setdefault(key.strip(), value.strip())
    if shutil.which("docker") is None or shutil.which("docker-compose") is None:
        pytest.fail(
            "docker and docker-compose are required and these tests are never skipped; "
            "run 'bash tests/run.sh' (tests/image/setup.sh installs them)."
        )
    info = docker("info", "--format", "{{.ServerVersion}}", env=env, timeout=60)
    if info.code != 0:
        pytest.fail(
            "The Docker engine is not reachable and these tests are never skipped; run "
            "'bash tests/image/setup.sh' (or 'bash tests/run.sh') to start it.\n" + info.out
        )
    if "BASE_IMAGE" not in env:
        pytest.fail("build/docker.env is missing: run 'bash tests/image/setup.sh' (docs/image.md's build sources it).")
    return env


def _image_id(tag: str) -> str | None:
    found = docker("image", "inspect", "--format", "{{.Id}}", tag)
    return found.out.strip() if found.code == 0 else None


@pytest.fixture(scope="module")
def release_image(docker_env) -> Iterator[str]:
    """docs/image.md's release build, run as written from the repository root; also tagged
    ``migrate-init:local``, the name the README and docs run it by (Compose builds it)."""
    saved = {tag: _image_id(tag) for tag in (VERSION_TAG, LOCAL_TAG)}
    try:
        started = time.monotonic()
        build = sh(SOURCE_DOCKER_ENV, RELEASE_BUILD, cwd=REPO, env=docker_env, timeout=900)
        assert build.code == 0, f"{RELEASE_BUILD}\n{build}"
        print(f"\n{RELEASE_BUILD}: {time.monotonic() - started:.1f}s")
        assert docker("tag", VERSION_TAG, LOCAL_TAG).code == 0
        yield VERSION_TAG
    finally:
        for tag, previous in saved.items():
            if previous:
                docker("tag", previous, tag)
            else:
                docker("rmi", tag)


#: The label these tests put on a named volume they create before the documented commands use it:
#: a volume with it is a leftover of an interrupted run of these tests, one without it someone's data.
VOLUME_LABEL = "io.migrate-init.tests=docs-commands"


@contextmanager
def labelled_volume(name: str, what: str) -> Iterator[str]:
    """Create the documented named volume ``name``, labelled as these tests', and remove it afterwards
    with every container still using it. An unlabelled volume of that name is refused (it may hold
    real data the documented command would migrate); a labelled one is a leftover of an interrupted
    run and is removed first."""
    found = docker("volume", "inspect", "--format", "{{json .Labels}}", name)
    if found.code == 0:
        if "io.migrate-init.tests" not in found.out:
            pytest.fail(
                f"A Docker volume named {name} already exists, maybe {what}: the documented commands "
                f"would migrate it. Remove it ('docker volume rm {name}') or run these tests on another "
                "engine."
            )
        _remove_volume(name)
    created = docker("volume", "create", "--label", VOLUME_LABEL, name)
    assert created.code == 0, created
    try:
        yield name
    finally:
        _remove_volume(name)


def _remove_volume(name: str) -> None:
    users = docker("ps", "--all", "--quiet", "--filter", f"volume={name}").out.split()
    if users:
        docker("rm", "--force", "--volumes", *users)
    removed = docker("volume", "rm", name)
    assert removed.code == 0 or docker("volume", "inspect", name).code != 0, (
        f"could not remove the tests' volume {name}: {removed.out}"
    )


@pytest.fixture
def open_webui_data(docker_env) -> Iterator[str]:
    """docs/commands.md's volume, made by these tests for the commands; never someone else's."""
    with labelled_volume(VOLUME, "an Open WebUI's real data") as name:
        yield name


# --- Compose ------------------------------------------------------------------------------


class Compose:
    """A documented ``docker-compose ... up`` under a throw-away project name and image tag."""

    def __init__(self, env: dict[str, str], *files: str, image: str):
        self.project = f"midocs{uuid.uuid4().hex[:10]}"
        self.env = {**env, "COMPOSE_PROJECT_NAME": self.project, "MIGRATE_INIT_IMAGE": image}
        self.files = files or ("docker-compose.yaml",)
        self.up_process: subprocess.Popen[bytes] | None = None

    def __call__(self, *args: str, timeout: float = 180) -> Result:
        """docker-compose with the project's files: the tests' own checks and the clean-up."""
        command = ["docker-compose", "--ansi", "never"]
        for file in self.files:
            command += ["-f", file]
        proc = subprocess.run(
            [*command, *args],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout)

    def container(self, service: str) -> str | None:
        ids = docker(
            "ps",
            "--all",
            "--quiet",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ).out.split()
        return ids[0] if ids else None

    def state(self, service: str) -> dict:
        container = self.container(service)
        assert container, f"no container for {service}"
        return json.loads(docker("inspect", "--format", "{{json .State}}", container).out)

    def up(self, command: str, log: Path, timeout: float = 300, ends: bool = False) -> Result:
        """Run the documented ``up`` until it ends by itself (``ends``: every service exits) or else
        until ``app`` has exited (or ``migrate`` failed): with a database service running, an
        attached ``up`` would go on; ``down`` ends it."""
        for line in command.split("\n"):  # the README's lines, one after the other
            assert runnable(line), f"no document shows this command as written:\n{line}"
        with log.open("w") as out:
            self.up_process = subprocess.Popen(
                ["bash", "-c", command],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while self.up_process.poll() is None:
            app, migrate = self.container("app"), self.container("migrate")
            if app and self.state("app")["Status"] == "exited" and not ends:
                break
            if migrate and self.state("migrate")["Status"] == "exited" and self.state("migrate")["ExitCode"]:
                break
            assert time.monotonic() < deadline, f"{command}: app did not exit within {timeout}s\n{log.read_text()}"
            time.sleep(1)
        code = self.up_process.poll()
        return Result(-1 if code is None else code, log.read_text(errors="replace"))

    def down(self) -> None:
        self("down", "--volumes", "--remove-orphans", timeout=180)
        if self.up_process is not None:
            try:
                self.up_process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.up_process.pid, signal.SIGKILL)
                self.up_process.wait()


@pytest.fixture(scope="module")
def compose_image(release_image) -> Iterator[str]:
    """The tag MIGRATE_INIT_IMAGE gives the image the documented ``up --build`` builds (on the layers
    the release build cached); removed at the end."""
    tag = f"migrate-init:docs-{uuid.uuid4().hex[:8]}"
    try:
        yield tag
    finally:
        docker("rmi", tag)


@contextmanager
def compose_project(docker_env: dict[str, str], *files: str, image: str) -> Iterator[Compose]:
    compose = Compose(docker_env, *files, image=image)
    try:
        yield compose
    finally:
        compose.down()


def _assert_app_ran_after_migrate(compose: Compose) -> str:
    """Both exited 0 and app started after migrate finished; the logs of both."""
    logs = compose("logs", "--no-color", "migrate", "app").out
    migrate, app = compose.state("migrate"), compose.state("app")
    assert (migrate["ExitCode"], app["ExitCode"]) == (0, 0), logs
    assert migrate["FinishedAt"][:19] <= app["StartedAt"][:19], (migrate, app)
    return logs


def test_readme_demo_and_troubleshooting_commands(docker_env, compose_image, tmp_path):
    with compose_project(docker_env, image=compose_image) as compose:
        # the README's first lines, as a machine with no registry needs them
        first = compose.up(f"{SOURCE_DOCKER_ENV}\n{DEMO}", tmp_path / "up.log", ends=True)
        assert first.code == 0, f"{DEMO}\n{first}"
        logs = _assert_app_ran_after_migrate(compose)
        assert f"OK (exit 0): Upgraded base (empty) -> {TARGET}: 10 migration(s) applied" in logs, logs
        assert f"is at revision {TARGET}; user rows: 0, chat rows: 0" in logs, logs

        # docs/troubleshooting.md: the log and the exit code of migrate, from the repository root
        log = sh(LOGS, cwd=REPO, env=compose.env)
        assert log.code == 0 and f"OK (exit 0): Upgraded base (empty) -> {TARGET}" in log.out, log
        code = sh(EXIT_CODE, cwd=REPO, env=compose.env)
        assert code.code == 0 and code.out.strip().splitlines()[-1] == "0", code

        # the README: "The second `up` prints `OK (exit 0): Database is at its target ...; nothing to do.`"
        second = compose.up(DEMO, tmp_path / "up-again.log", ends=True)
        assert second.code == 0, f"{DEMO}\n{second}"
        assert f"OK (exit 0): Database is at its target {TARGET}; nothing to do." in second.out, second


def _server_demo(docker_env, compose_image, tmp_path, files, command, server, url):
    """A documented compose demo with a database server: migrated, the app after it, no password shown."""
    with compose_project(docker_env, *files, image=compose_image) as compose:
        up = compose.up(command, tmp_path / "up.log")
        assert up.code in (-1, 0), f"{command}\n{up}"
        logs = _assert_app_ran_after_migrate(compose)
        assert f"{url} is at revision {TARGET}" in logs, logs
        assert compose.state(server)["Health"]["Status"] == "healthy"
        assert "change-me" not in logs


def test_readme_postgres_demo(docker_env, compose_image, tmp_path):
    _server_demo(
        docker_env,
        compose_image,
        tmp_path,
        ("docker-compose.yaml", "docker-compose.postgres.yaml"),
        POSTGRES_DEMO,
        "postgres",
        "postgresql+psycopg2://webui:***@postgres:5432/webui",
    )


def test_readme_pgbouncer_demo(docker_env, compose_image, tmp_path):
    # no --build: PGBOUNCER_IMAGE (build/docker.env) is used as it is, the migrate image is built
    _server_demo(
        docker_env,
        compose_image,
        tmp_path,
        ("docker-compose.yaml", "docker-compose.postgres.yaml", "docker-compose.pgbouncer.yaml"),
        PGBOUNCER_DEMO,
        "pgbouncer",
        "postgresql+psycopg2://webui:***@pgbouncer:6432/webui",
    )


def test_image_md_mariadb_demo(docker_env, compose_image, tmp_path):
    _server_demo(
        docker_env,
        compose_image,
        tmp_path,
        ("docker-compose.mariadb.yaml",),
        MARIADB_DEMO,
        "mariadb",
        "mysql+pymysql://webui:***@mariadb:3306/webui",
    )


# --- docker build and docker run ------------------------------------------------------------


def test_image_md_release_build_says_what_it_is(release_image, docker_env):
    version = sh(VERSION, cwd=REPO, env=docker_env)
    assert version.code == 0 and version.out.strip() == f"migrate-init {__version__}", version
    labels = sh(LABELS, cwd=REPO, env=docker_env)
    assert labels.code == 0, labels
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert head.returncode == 0, head.stderr
    values = json.loads(labels.out)
    assert {
        key.rsplit(".", 1)[1]: values[key]
        for key in values
        if key.startswith("org.opencontainers.image.")
        and key.rsplit(".", 1)[1] in ("version", "revision", "source", "licenses")
    } == {"version": __version__, "revision": head.stdout.strip(), "source": "REPOSITORY-URL", "licenses": "Apache-2.0"}


def _readable_copy(source: Path, target: Path) -> Path:
    """``source`` copied for a bind mount: readable by the image's UID, no caches."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".manifest.marshal"))
    for folder, _dirs, files in os.walk(target):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return target


@pytest.fixture
def my_app_data(docker_env) -> Iterator[str]:
    """The README's named volume for your own migrations, made by these tests; never someone else's."""
    with labelled_volume(OWN_VOLUME, "your own application's data") as name:
        yield name


def test_readme_own_migrations_from_a_url_file_into_a_named_volume(release_image, docker_env, my_app_data, tmp_path):
    # "$PWD/db_url" and "$PWD/migrations": the reader's folder; db_url holds the README's example URL
    _readable_copy(REPO / "migrations", tmp_path / "migrations")
    (tmp_path / "db_url").write_text("sqlite:////app/backend/data/app.db\n")
    (tmp_path / "db_url").chmod(0o644)
    result = sh(OWN_MIGRATIONS, cwd=tmp_path, env=docker_env)
    assert result.code == 0, result
    assert f"OK (exit 0): Upgraded base (empty) -> {TARGET}" in result.out, result
    assert "Verified 11 tables and their columns against MODELS." in result.out, result
    # the database outlived the --rm container, in the named volume the app mounts too
    kept = docker(
        "run",
        "--rm",
        "-v",
        f"{my_app_data}:/data",
        "--entrypoint",
        "python",
        LOCAL_TAG,
        "-c",
        "import sqlite3; print(sqlite3.connect('file:/data/app.db?mode=ro', uri=True)"
        ".execute('SELECT version_num FROM alembic_version').fetchall())",
    )
    assert kept.code == 0 and kept.out.strip() == f"[('{TARGET}',)]", kept


def test_commands_md_entrypoint_examples_on_a_named_volume(release_image, docker_env, open_webui_data, tmp_path):
    # in the order a reader meets them on a new volume: upgrade part-way, look, finish hardened, wrap an app
    upgrade = sh(UPGRADE, cwd=tmp_path, env=docker_env)
    assert upgrade.code == 0 and "OK (exit 0): Upgraded to ef6fab585ac1:" in upgrade.out, upgrade
    status = sh(STATUS, cwd=tmp_path, env=docker_env, errexit=False)
    assert status.code == 1, status  # docs/commands.md: 1 pending
    assert "current:  ef6fab585ac1" in status.out and "pending:  3" in status.out, status

    hardened = sh(HARDENED, cwd=tmp_path, env=docker_env)
    assert hardened.code == 0 and f"Upgraded ef6fab585ac1 -> {TARGET}" in hardened.out, hardened
    status = sh(STATUS, cwd=tmp_path, env=docker_env)
    assert status.code == 0 and "pending:  none (at target)" in status.out, status

    # `python -m myapp`: the application's module, here one in DEPS_TARGET, which the wrapper puts on PYTHONPATH
    app = "import os\nprint('myapp: running with PYTHONPATH=' + os.environ['PYTHONPATH'])\n"
    put = docker(
        "run",
        "--rm",
        "-v",
        f"{VOLUME}:/app/backend/data",
        "--entrypoint",
        "python",
        VERSION_TAG,
        "-c",
        f"import os; os.makedirs('/app/backend/data/python-deps', exist_ok=True); "
        f"open('/app/backend/data/python-deps/myapp.py', 'w').write({app!r})",
    )
    assert put.code == 0, put
    wrapped = sh(WRAPPER, cwd=tmp_path, env=docker_env)
    assert wrapped.code == 0, wrapped
    assert f"OK (exit 0): Database is at its target {TARGET}; nothing to do." in wrapped.out, wrapped
    assert "myapp: running with PYTHONPATH=/app/backend/data/python-deps" in wrapped.out, wrapped


def test_air_gapped_package_from_a_mounted_wheelhouse(release_image, docker_env, open_webui_data, tmp_path):
    # "$PWD/wheels": the reader's wheelhouse; here a stand-in wheel of the package the command names
    build_wheel(tmp_path / "wheels", "cos-python-sdk-v5", "1.9.30")
    _readable_copy(tmp_path / "wheels", tmp_path / "mounted" / "wheels")
    first = sh(OFFLINE_PACKAGE, cwd=tmp_path / "mounted", env=docker_env)
    assert first.code == 0, first
    assert "Installed cos-python-sdk-v5==1.9.30 into /app/backend/data/python-deps." in first.out, first
    assert f"OK (exit 0): Upgraded base (empty) -> {TARGET}" in first.out, first
    # docs/air-gapped.md: "A second run finds the package in DEPS_TARGET ... and installs nothing."
    second = sh(OFFLINE_PACKAGE, cwd=tmp_path / "mounted", env=docker_env)
    assert second.code == 0 and "nothing to install" in second.out, second


# --- migrate.py in the repository ------------------------------------------------------------


def test_commands_md_status_transcript(tmp_path):
    # `python migrate.py` "in the repository": a copy of it, with the tests' venv first on PATH
    # (as tests/run.sh puts .venv/bin), so that `python` is the interpreter with the requirements
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("migrate.py", "alembic.ini"):
        shutil.copy(REPO / name, repo / name)
    for name in ("migrate_init", "migrations"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", ".manifest.marshal"))
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "python").exists(), f"run the tests with a venv's python (.venv/bin/python), not {sys.executable}"
    url = f"sqlite:///{tmp_path}/db/webui.db"
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "DATABASE_URL": url,
    }
    setup = subprocess.run(
        [sys.executable, "migrate.py", "upgrade", "70c7b727736e"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert setup.returncode == 0, setup.stderr

    steps = transcript("docs/commands.md", TRANSCRIPT[0])
    assert [command for command, _ in steps] == TRANSCRIPT
    shown = "\n".join(line for _, output in steps for line in output)
    shown = re.sub(r"^database: .*$", f"database: {url}", shown, flags=re.MULTILINE)
    result = sh(*TRANSCRIPT, cwd=repo, env=env, errexit=False, separate_stderr=True)
    assert result.out.rstrip("\n") == shown, f"{result.out}\n--- the document shows:\n{shown}\n{result.err}"


# --- the examples ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs_as_its_readme_says(release_image, docker_env, name):
    # release_image tagged migrate-init:local, the image the example's README says to build first
    cd, curl = EXAMPLES[name]
    env = {**docker_env, "COMPOSE_PROJECT_NAME": f"midocs{uuid.uuid4().hex[:10]}"}
    folder = REPO / "examples" / name
    try:
        started = time.monotonic()
        result = sh(cd, EXAMPLE_UP, curl, LOGS, cwd=REPO, env=env, timeout=900)
        print(f"\nexamples/{name}: {time.monotonic() - started:.1f}s")
        assert result.code == 0, result
        assert '[{"id":1,"title":"written by the first migration"}]' in result.out, result
        assert (
            "OK (exit 0): Upgraded base (empty) -> 0001: 1 migration(s) applied (every head); verification passed."
        ) in result.out, result
        states = {}
        for service in ("migrate", "app"):
            ids = docker(
                "ps",
                "--all",
                "--quiet",
                "--filter",
                f"label=com.docker.compose.project={env['COMPOSE_PROJECT_NAME']}",
                "--filter",
                f"label=com.docker.compose.service={service}",
            ).out.split()
            assert len(ids) == 1, (service, ids)
            states[service] = json.loads(docker("inspect", "--format", "{{json .State}}", ids[0]).out)
        assert states["migrate"]["ExitCode"] == 0 and states["app"]["Running"], states
        assert states["migrate"]["FinishedAt"][:19] <= states["app"]["StartedAt"][:19], states
        down = sh(cd, EXAMPLE_DOWN, cwd=REPO, env=env)
        assert down.code == 0, down
        assert docker("volume", "inspect", f"{env['COMPOSE_PROJECT_NAME']}_data").code != 0, (
            "down --volumes left the data"
        )
    finally:
        subprocess.run(
            ["docker-compose", "down", "--volumes", "--remove-orphans"],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=180,
        )
        docker("rmi", f"{name}-example:local", f"{name}-example-migrate:local")
