"""The image, end to end, on a real Docker engine (issue 3).

Never skipped: without a Docker engine these tests fail and say how to get one
(`bash tests/run.sh` runs tests/image/setup.sh, which installs and starts it,
and writes build/docker.env with the BASE_IMAGE and POSTGRES_IMAGE to use).
The image is built once per session; every docker run uses it. The MariaDB tests use
MARIADB_IMAGE (mariadb:11, or setup.sh's stand-in built from Debian's mariadb-server), the
PgBouncer tests PGBOUNCER_IMAGE (the compose file's build, or setup.sh's stand-in).
MIGRATE_INIT_TEST_IMAGE=<tag> tests an image built beforehand instead (built on BASE_IMAGE).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from packaging.utils import canonicalize_name

from migrate_init import __version__
from tests.support import FIXTURES, REPO
from tests.support.chains import TARGET, Chain
from tests.support.dbstate import integrity, sqlite_url, tables, versions
from tests.support.process import Result
from tests.support.wheelhouse import build_wheel, snapshot

DATA = "/app/backend/data"
IMAGE_TAG = "migrate-init:test"


def docker(*args: str, env: dict[str, str] | None = None, timeout: float = 300, check: bool = False) -> Result:
    """Run the docker CLI (or docker-compose when args[0] is that); stdout+stderr together."""
    command = list(args) if args[0] == "docker-compose" else ["docker", *args]
    try:
        proc = subprocess.run(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{' '.join(command)} did not finish within {timeout}s:\n{exc.output}") from None
    result = Result(proc.returncode, proc.stdout)
    if check:
        assert result.code == 0, f"{' '.join(command)} exited {result.code}:\n{result.out}"
    return result


# --- session: the engine and the image --------------------------------------------------


@pytest.fixture(scope="session")
def docker_env() -> dict[str, str]:
    """The environment for docker and compose: ours, plus build/docker.env when the
    suite was not started by tests/run.sh (which already exported it)."""
    env = dict(os.environ)
    env_file = REPO / "build" / "docker.env"
    if "BASE_IMAGE" not in env and env_file.is_file():
        for line in env_file.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and not key.startswith("#"):
                env.setdefault(key.strip(), value.strip())
    return env


@pytest.fixture(scope="session")
def engine(docker_env):
    if shutil.which("docker") is None or shutil.which("docker-compose") is None:
        pytest.fail(
            "docker and docker-compose are required and these tests are never skipped; "
            "run 'bash tests/run.sh' (tests/image/setup.sh installs them)."
        )
    info = docker("info", "--format", "{{.ServerVersion}}", env=docker_env, timeout=60)
    if info.code != 0:
        pytest.fail(
            "The Docker engine is not reachable and these tests are never skipped; run "
            "'bash tests/image/setup.sh' (or 'bash tests/run.sh') to start it.\n" + info.out
        )
    return info.out.strip()


@dataclass(frozen=True)
class Image:
    tag: str
    base: str
    size: int
    base_size: int

    @property
    def added(self) -> int:
        return self.size - self.base_size


def _image_size(name: str, env) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", name, env=env, check=True).out.strip())


def release_build_values() -> dict[str, str]:
    """The build arguments of a release (docs/image.md): VERSION from the one place the version
    lives, REVISION from git when the tree is a git checkout."""
    values = {"VERSION": __version__}
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        values["REVISION"] = head.stdout.strip()
    return values


def release_build_args() -> list[str]:
    return [arg for key, value in release_build_values().items() for arg in ("--build-arg", f"{key}={value}")]


@pytest.fixture(scope="session")
def image(engine, docker_env) -> Image:
    base = docker_env.get("BASE_IMAGE") or "python:3.12-slim"
    tag = docker_env.get("MIGRATE_INIT_TEST_IMAGE")
    started = time.monotonic()
    if not tag:
        tag = IMAGE_TAG
        build = docker(
            "build",
            "--build-arg",
            f"BASE_IMAGE={base}",
            *release_build_args(),
            "--tag",
            tag,
            str(REPO),
            env=docker_env,
            timeout=900,
        )
        assert build.code == 0, f"docker build failed (BASE_IMAGE={base}):\n{build.out}"
    built = Image(tag, base, _image_size(tag, docker_env), _image_size(base, docker_env))
    print(
        f"\nbuilt {tag} on {base} in {time.monotonic() - started:.1f}s: "
        f"{built.size / 1e6:.1f} MB, {built.added / 1e6:.1f} MB above the base"
    )
    return built


def run_image(
    image: Image,
    *args: str,
    env: dict[str, str] | None = None,
    mounts: tuple[str, ...] = (),
    options: tuple[str, ...] = (),
    timeout: float = 180,
) -> Result:
    """``docker run --rm`` the image with ``-e`` for env, ``-v`` for mounts, then args."""
    command = ["run", "--rm", *options]
    for key, value in (env or {}).items():
        command += ["--env", f"{key}={value}"]
    for mount in mounts:
        command += ["--volume", mount]
    return docker(*command, image.tag, *args, timeout=timeout)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A host folder mounted as the data volume, writable by the image's UID."""
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(0o777)
    return folder


def revisions(path: Path) -> list[str]:
    """The alembic_version rows of a SQLite file the container wrote."""
    return versions(sqlite_url(path))


def table_names(path: Path) -> set[str]:
    return tables(sqlite_url(path))


# --- the image itself ----------------------------------------------------------------------


def test_image_builds_and_reports_its_size(image, capsys):
    with capsys.disabled():
        print(
            f"\nimage size: {image.size} bytes ({image.size / 1e6:.1f} MB); "
            f"added above {image.base}: {image.added} bytes ({image.added / 1e6:.1f} MB)"
        )
    assert 0 < image.added < 100_000_000, image


def test_image_runs_as_fixed_non_root_uid_with_gid_0(image):
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", image.tag, check=True).out)
    assert config["User"] == "10001:0"
    assert config["Entrypoint"] == ["docker-entrypoint.sh"]
    assert not config.get("Cmd")
    assert DATA in config["Volumes"]
    assert config["WorkingDir"] == "/app"
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"]

    ids = docker("run", "--rm", "--entrypoint", "id", image.tag, check=True)
    assert ids.out.startswith("uid=10001(migrate) gid=0(root)"), ids.out
    perms = docker("run", "--rm", "--entrypoint", "stat", image.tag, "-c", "%u:%g %a", DATA, check=True)
    assert perms.out.strip() == "10001:0 775"


def test_init_container_mode_migrates_to_head_and_exits_0(image, data_dir):
    result = run_image(image, mounts=(f"{data_dir}:{DATA}",))

    assert result.code == 0, result.out
    assert revisions(data_dir / "webui.db") == [TARGET]
    assert {"user", "chat", "tool", "config"} <= table_names(data_dir / "webui.db")
    # a second start finds nothing to do
    again = run_image(image, mounts=(f"{data_dir}:{DATA}",))
    assert again.code == 0, again.out
    assert "nothing to do" in again.out


def test_read_only_root_arbitrary_uid_with_gid_0_on_a_fresh_volume(image):
    volume = f"migrate-init-test-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", volume, check=True)
    try:
        hardened = (
            "--user",
            "4242:0",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
        )
        result = run_image(image, mounts=(f"{volume}:{DATA}",), options=hardened)
        assert result.code == 0, result.out

        status = run_image(image, "status", mounts=(f"{volume}:{DATA}",), options=hardened)
        assert status.code == 0, status.out
        owner = docker(
            "run",
            "--rm",
            "--volume",
            f"{volume}:{DATA}",
            "--entrypoint",
            "stat",
            image.tag,
            "-c",
            "%u:%g",
            f"{DATA}/webui.db",
            check=True,
        )
        assert owner.out.strip() == "4242:0"
    finally:
        docker("volume", "rm", "-f", volume)


def test_database_url_file_is_honoured(image, data_dir, tmp_path):
    secret = tmp_path / "database_url"
    secret.write_text(f"sqlite:///{DATA}/from-file.db\n")
    secret.chmod(0o644)

    result = run_image(
        image,
        env={"DATABASE_URL_FILE": "/run/secrets/database_url"},
        mounts=(f"{data_dir}:{DATA}", f"{secret}:/run/secrets/database_url:ro"),
    )

    assert result.code == 0, result.out
    assert revisions(data_dir / "from-file.db") == [TARGET]
    assert not (data_dir / "webui.db").exists()


# --- the entrypoint's three modes ---------------------------------------------------------


def test_migrate_commands_run_migrate_py(image, data_dir):
    mounts = (f"{data_dir}:{DATA}",)

    heads = run_image(image, "heads", mounts=mounts)
    assert heads.code == 0 and TARGET in heads.out, heads.out
    upgrade = run_image(image, "upgrade", "ef6fab585ac1", mounts=mounts)
    assert upgrade.code == 0, upgrade.out
    assert revisions(data_dir / "webui.db") == ["ef6fab585ac1"]
    pending = run_image(image, "status", mounts=mounts)
    assert pending.code == 1, pending.out
    helped = run_image(image, "--help", mounts=mounts)
    assert helped.code == 0 and "usage: migrate.py" in helped.out, helped.out


def test_wrapper_mode_execs_the_command_after_the_init_sequence(image, data_dir):
    result = run_image(
        image, "run", "--", "sh", "-c", 'echo "wrapped: pid=$$ uid=$(id -u)"', mounts=(f"{data_dir}:{DATA}",)
    )

    assert result.code == 0, result.out
    # exec'd: the command replaced the entrypoint as PID 1, after the migration finished
    assert "wrapped: pid=1 uid=10001" in result.out
    assert result.out.index("OK (exit 0)") < result.out.index("wrapped:")
    assert revisions(data_dir / "webui.db") == [TARGET]


@pytest.mark.parametrize("command", [["sh", "-c", "ls -A /app/backend/data; echo SHELL-RAN"], ["stauts"]])
def test_an_unknown_command_is_execd_as_it_is_without_migrating(image, data_dir, command):
    """`docker run IMAGE sh` is a shell, never a migration of whatever DATABASE_URL names (issue 12)."""
    result = run_image(image, *command, mounts=(f"{data_dir}:{DATA}",))

    assert not (data_dir / "webui.db").exists(), result.out
    assert "Applying" not in result.out and "OK (exit 0)" not in result.out, result.out
    if command[0] == "sh":
        assert result.code == 0 and "SHELL-RAN" in result.out, result.out
    else:
        assert result.code == 127, result.out  # exec of an unknown program, as docker-library images do


def test_help_and_version_answer_without_a_database(image):
    helped = run_image(image, "help")
    version = run_image(image, "--version")

    assert helped.code == 0 and "usage: migrate.py" in helped.out, helped.out
    assert version.code == 0 and re.fullmatch(r"migrate-init \d+\.\d+\.\d+\s*", version.out), version.out


def test_wrapper_mode_keeps_the_command_exit_code(image, data_dir):
    result = run_image(image, "run", "--", "sh", "-c", "exit 7", mounts=(f"{data_dir}:{DATA}",))

    assert result.code == 7, result.out


def test_wrapper_mode_does_not_start_the_command_when_the_migration_fails(image, data_dir):
    result = run_image(
        image,
        "run",
        "--",
        "sh",
        "-c",
        "echo SHOULD-NOT-RUN",
        env={"MIGRATIONS_DIR": "/fixtures/migrations", "ENABLE_FALLBACK_CREATE": "false"},
        mounts=(f"{data_dir}:{DATA}", f"{FIXTURES / 'docker_broken'}:/fixtures/migrations:ro"),
    )

    assert result.code == 1, result.out
    assert "SHOULD-NOT-RUN" not in result.out
    assert "'sh' was not started" in result.out
    assert revisions(data_dir / "webui.db") == ["b1"]
    assert "half_done" not in table_names(data_dir / "webui.db")


def test_custom_migrations_dir_and_models(image, data_dir):
    """The README's one-off example: a mounted migrations folder and its models."""
    env = {"MIGRATIONS_DIR": "/migrations", "MODELS": "models:Base"}
    mounts = (f"{data_dir}:{DATA}", f"{FIXTURES / 'docker_custom'}:/migrations:ro")

    result = run_image(image, env=env, mounts=mounts)

    assert result.code == 0, result.out
    assert revisions(data_dir / "webui.db") == ["c2"]
    assert "Verified 1 tables" in result.out
    status = run_image(image, "status", env=env, mounts=mounts)
    assert status.code == 0, status.out


# --- SIGTERM ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["init", "wrapper"])
def test_sigterm_during_a_slow_migration_exits_143_and_rolls_it_back(image, data_dir, mode):
    name = f"migrate-init-test-{uuid.uuid4().hex[:8]}"
    command = ["run", "--", "sh", "-c", "echo SHOULD-NOT-RUN"] if mode == "wrapper" else []
    docker(
        "run",
        "--detach",
        "--name",
        name,
        "--env",
        "MIGRATIONS_DIR=/fixtures/migrations",
        "--env",
        "ENABLE_FALLBACK_CREATE=false",
        "--env",
        "MIGRATION_TIMEOUT=300",
        "--volume",
        f"{data_dir}:{DATA}",
        "--volume",
        f"{FIXTURES / 'docker_slow'}:/fixtures/migrations:ro",
        image.tag,
        *command,
        check=True,
    )
    try:
        deadline = time.monotonic() + 60
        while "SLOW MIGRATION STARTED" not in docker("logs", name).out:
            assert time.monotonic() < deadline, docker("logs", name).out
            time.sleep(0.2)

        docker("kill", "--signal", "TERM", name, check=True)
        code = docker("wait", name, timeout=60, check=True).out.strip()
        logs = docker("logs", name).out
    finally:
        docker("rm", "-f", name)

    assert code == "143", logs
    assert "SHOULD-NOT-RUN" not in logs
    db = data_dir / "webui.db"
    # s1 committed before the signal; s2 (a table and a row) left nothing behind
    assert revisions(db) == ["s1"]
    assert "first" in table_names(db)
    assert "second" not in table_names(db)


# --- missing dependencies ------------------------------------------------------------------


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    house = tmp_path / "wheelhouse"
    build_wheel(house, "tinydep", "1.0")
    for path in [house, *house.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return house


HARDENED = ("--user", "4242:0", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL")


def test_dependency_is_installed_from_a_local_wheelhouse_with_no_index(image, data_dir, wheelhouse):
    env = {"EXTRA_PIP_PACKAGES": "tinydep==1.0", "PIP_FIND_LINKS": "/wheels", "PIP_NO_INDEX": "true"}
    mounts = (f"{data_dir}:{DATA}", f"{wheelhouse}:/wheels:ro")
    deps = data_dir / "python-deps"

    first = run_image(image, env=env, mounts=mounts, options=HARDENED)
    assert first.code == 0, first.out
    assert (deps / "tinydep.py").is_file()
    assert revisions(data_dir / "webui.db") == [TARGET]

    before = snapshot(deps)
    second = run_image(image, env=env, mounts=mounts, options=HARDENED)
    assert second.code == 0, second.out
    assert "nothing to install" in second.out
    assert snapshot(deps) == before

    # wrapper mode: the wrapped command finds the package through PYTHONPATH
    wrapped = run_image(
        image,
        "run",
        "--",
        "python",
        "-c",
        "import tinydep; print('tinydep', tinydep.VERSION)",
        env=env,
        mounts=mounts,
        options=HARDENED,
    )
    assert wrapped.code == 0, wrapped.out
    assert "tinydep 1.0" in wrapped.out


def test_failing_dependency_install_exits_9_before_the_database_is_touched(image, data_dir, wheelhouse):
    env = {
        "EXTRA_PIP_PACKAGES": "tinydep==1.0 no-such-package==9.9",
        "PIP_FIND_LINKS": "/wheels",
        "PIP_NO_INDEX": "true",
    }

    result = run_image(image, env=env, mounts=(f"{data_dir}:{DATA}", f"{wheelhouse}:/wheels:ro"), options=HARDENED)

    assert result.code == 9, result.out
    assert "No matching distribution found for no-such-package==9.9" in result.out
    assert not (data_dir / "webui.db").exists()


# --- docker-compose ------------------------------------------------------------------------


class Compose:
    """docker-compose (1.29) with a throw-away project name; ``down -v`` at the end.

    The files are layered on docker-compose.yaml, as the PostgreSQL variant is, unless
    ``alone`` (docker-compose.mariadb.yaml is complete by itself)."""

    def __init__(self, env: dict[str, str], *files: Path, alone: bool = False):
        self.project = f"mi{uuid.uuid4().hex[:10]}"
        self.env = env
        self.files = [*([] if alone else [str(REPO / "docker-compose.yaml")]), *map(str, files)]

    def __call__(self, *args: str, timeout: float = 600) -> Result:
        command = ["docker-compose", "--ansi", "never", "-p", self.project]
        for file in self.files:
            command += ["-f", file]
        return docker(*command, *args, env=self.env, timeout=timeout)

    def container(self, service: str) -> str | None:
        # only the id lines: compose may print warnings on the same stream
        ids = [
            w
            for w in self("ps", "-a", "-q", service).out.split()
            if len(w) == 64 and all(c in "0123456789abcdef" for c in w)
        ]
        return ids[0] if ids else None

    def state(self, service: str) -> dict:
        cid = self.container(service)
        assert cid, f"no container for {service}"
        return json.loads(docker("inspect", "--format", "{{json .State}}", cid, check=True).out)

    def down(self) -> None:
        self("down", "--volumes", "--remove-orphans", timeout=120)


@pytest.fixture
def compose_env(docker_env, image) -> dict[str, str]:
    return {**docker_env, "MIGRATE_INIT_IMAGE": image.tag, "BASE_IMAGE": image.base}


def _instant(stamp: str) -> tuple[str, int]:
    """Docker's RFC 3339 time with up to 9 fractional digits (trailing zeros trimmed),
    as something that compares correctly."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return whole, int(fraction.ljust(9, "0") or 0)


def _up_until_the_app_exits_0(compose: Compose) -> str:
    """``up --detach``, wait for ``app`` to exit 0, check it ran after migrate; its logs."""
    up = compose("up", "--detach")
    assert up.code == 0, up.out
    assert docker("wait", compose.container("app"), timeout=120).out.strip() == "0", compose("logs", "--no-color").out
    return _assert_app_ran_after_migrate(compose)


def _assert_app_ran_after_migrate(compose: Compose) -> str:
    migrate, app = compose.state("migrate"), compose.state("app")
    logs = compose("logs", "--no-color", "app", "migrate").out
    assert migrate["ExitCode"] == 0, logs
    assert app["ExitCode"] == 0, logs
    assert _instant(migrate["FinishedAt"]) <= _instant(app["StartedAt"]), (migrate, app)
    return compose("logs", "--no-color", "app").out


def test_compose_files_are_valid_for_compose_1_29(compose_env):
    for files in ([], [REPO / "docker-compose.postgres.yaml"]):
        compose = Compose(compose_env, *files)
        assert compose("config", "--quiet").code == 0, compose("config").out
    config = Compose(compose_env, REPO / "docker-compose.postgres.yaml")("config").out
    assert "service_completed_successfully" in config
    assert "service_healthy" in config
    assert "pg_isready" in config


def test_compose_sqlite_builds_migrates_then_starts_app_on_the_head_schema(compose_env):
    # compose builds the image itself here (BASE_IMAGE from the environment): a fresh tag
    tag = f"migrate-init:compose-{uuid.uuid4().hex[:8]}"
    compose = Compose({**compose_env, "MIGRATE_INIT_IMAGE": tag})
    try:
        app_logs = _up_until_the_app_exits_0(compose)
        assert f"is at revision {TARGET}; user rows: 0, chat rows: 0" in app_logs
    finally:
        compose.down()
        docker("rmi", tag)


def test_compose_postgres_waits_for_health_then_migrates_then_starts_app(compose_env):
    compose = Compose(compose_env, REPO / "docker-compose.postgres.yaml")
    try:
        app_logs = _up_until_the_app_exits_0(compose)
        assert f"postgresql+psycopg2://webui:***@postgres:5432/webui is at revision {TARGET}" in app_logs
        postgres = compose.state("postgres")
        assert postgres["Health"]["Status"] == "healthy"
        assert _instant(postgres["StartedAt"]) <= _instant(compose.state("migrate")["StartedAt"])
    finally:
        compose.down()


PGBOUNCER_COMPOSE = REPO / "docker-compose.pgbouncer.yaml"


@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
def test_compose_pgbouncer_migrates_through_pgbouncer_then_starts_app(compose_env, pool_mode):
    # PGBOUNCER_IMAGE (build/docker.env) is setup.sh's stand-in where the compose file's build
    # cannot run; `up` without --build uses it as it is
    compose = Compose(
        {**compose_env, "PGBOUNCER_POOL_MODE": pool_mode}, REPO / "docker-compose.postgres.yaml", PGBOUNCER_COMPOSE
    )
    try:
        app_logs = _up_until_the_app_exits_0(compose)
        assert f"postgresql+psycopg2://webui:***@pgbouncer:6432/webui is at revision {TARGET}" in app_logs
        pgbouncer = compose.state("pgbouncer")
        assert pgbouncer["Health"]["Status"] == "healthy"
        assert _instant(pgbouncer["StartedAt"]) <= _instant(compose.state("migrate")["StartedAt"])
        config = docker(
            "exec", compose.container("pgbouncer"), "cat", "/tmp/pgbouncer/pgbouncer.ini", check=True, timeout=30
        ).out
        assert f"pool_mode = {pool_mode}" in config, config
        # the database itself, read on the server and not through PgBouncer
        version = docker(
            "exec",
            compose.container("postgres"),
            "psql",
            "-U",
            "webui",
            "-d",
            "webui",
            "-tAc",
            "SELECT version_num FROM alembic_version",
            check=True,
            timeout=30,
        )
        assert version.out.split() == [TARGET], version.out
    finally:
        compose.down()


def test_compose_failing_migration_never_starts_app(compose_env, tmp_path):
    override = tmp_path / "broken.yaml"
    override.write_text(
        "services:\n"
        "  migrate:\n"
        "    environment:\n"
        "      MIGRATIONS_DIR: /fixtures/migrations\n"
        "      ENABLE_FALLBACK_CREATE: 'false'\n"
        "    volumes:\n"
        f"      - {FIXTURES / 'docker_broken'}:/fixtures/migrations:ro\n"
    )
    compose = Compose(compose_env, override)
    try:
        up = compose("up", "--detach")
        assert up.code != 0, up.out
        assert compose.state("migrate")["ExitCode"] == 1
        assert compose.container("app") is None, "app must never be created"
        # the failed migration was rolled back: b1 stays, b2's table is gone
        check = docker(
            "run",
            "--rm",
            "--volume",
            f"{compose.project}_data:{DATA}",
            "--entrypoint",
            "python",
            compose_env["MIGRATE_INIT_IMAGE"],
            "-c",
            "import sqlite3; c = sqlite3.connect('/app/backend/data/webui.db');"
            "print(c.execute('select version_num from alembic_version').fetchall(),"
            " sorted(r[0] for r in c.execute(\"select name from sqlite_master where type='table'"
            " and name not like 'sqlite_%'\")))",
            check=True,
        )
        # the ledger (migrate_init_history) is migrate-init's own; no table of b2 is left
        assert check.out.strip() == "[('b1',)] ['alembic_version', 'migrate_init_history', 'note']"
    finally:
        compose.down()


# --- MySQL and MariaDB (issue 15) ----------------------------------------------------------

MARIADB_COMPOSE = REPO / "docker-compose.mariadb.yaml"


def _compose_config(compose: Compose) -> dict:
    """``docker-compose config`` as a dict (any warning before the YAML left out)."""
    result = compose("config")
    assert result.code == 0, result.out
    return yaml.safe_load(result.out[result.out.index("services:") :])


def test_compose_mariadb_file_stands_alone_with_the_settings_of_docker_compose_yaml(compose_env):
    # docker-compose.mariadb.yaml repeats migrate and app of docker-compose.yaml: they must not drift.
    alone = Compose(compose_env, MARIADB_COMPOSE, alone=True)
    assert alone("config", "--quiet").code == 0, alone("config").out
    mariadb = _compose_config(alone)["services"]
    base = _compose_config(Compose(compose_env))["services"]

    for service in ("migrate", "app"):
        for key in ("build", "image", "entrypoint", "read_only", "tmpfs", "cap_drop", "security_opt", "volumes"):
            assert mariadb[service].get(key) == base[service].get(key), (service, key)
        assert base[service].get("environment", {}).items() <= mariadb[service]["environment"].items(), service
        assert mariadb[service]["environment"]["DATABASE_URL"].startswith("mysql://webui:"), service
    assert mariadb["app"]["depends_on"] == base["app"]["depends_on"]
    assert mariadb["migrate"]["depends_on"] == {"mariadb": {"condition": "service_healthy"}}
    assert "mariadb-admin ping --protocol=tcp" in " ".join(mariadb["mariadb"]["healthcheck"]["test"])


def test_compose_mariadb_waits_for_health_migrates_starts_app_and_a_second_up_does_nothing(compose_env):
    password = f"pw{uuid.uuid4().hex[:12]}"
    compose = Compose({**compose_env, "MARIADB_PASSWORD": password, "LOG_LEVEL": "DEBUG"}, MARIADB_COMPOSE, alone=True)
    try:
        app_logs = _up_until_the_app_exits_0(compose)
        assert f"mysql+pymysql://webui:***@mariadb:3306/webui is at revision {TARGET}" in app_logs
        mariadb = compose.state("mariadb")
        assert mariadb["Health"]["Status"] == "healthy"
        assert _instant(mariadb["StartedAt"]) <= _instant(compose.state("migrate")["StartedAt"])
        first = compose("logs", "--no-color", "migrate").out
        assert "Acquired the MySQL lock" in first and "10 migration(s) applied" in first, first

        # the same containers start again, on the same volumes: the fast path, nothing applied
        _up_until_the_app_exits_0(compose)
        logs = compose("logs", "--no-color", "migrate").out
        assert logs.count("OK (exit 0)") == 2, logs
        second = logs.split("OK (exit 0)", 1)[1]
        assert "Fast path: the database is at" in second, second
        assert f"Database is at its target {TARGET}; nothing to do." in second, second
        assert "Running upgrade" not in second, second
        assert password not in compose("logs", "--no-color", "migrate", "app").out
    finally:
        compose.down()


def test_image_ships_pymysql_and_sqlglot_at_their_pins(image):
    pins = _pins((REPO / "requirements.txt").read_text())
    result = docker(
        "run",
        "--rm",
        "--entrypoint",
        "python",
        image.tag,
        "-c",
        "import importlib.metadata as m, pymysql, sqlglot; "
        "print(m.version('PyMySQL'), m.version('sqlglot'), pymysql.__file__)",
    )

    assert result.code == 0, result.out
    pymysql_version, sqlglot_version, path = result.out.split()
    assert (pymysql_version, sqlglot_version) == (pins["pymysql"], pins["sqlglot"])
    assert path.startswith("/opt/venv/") and path.endswith("/site-packages/pymysql/__init__.py"), path


#: What the MySQL/MariaDB destructive guard reads (migrate_init/statements.py): every kind of
#: ALTER TABLE subcommand, DROP, CREATE and RENAME it judges, and statements it lets pass.
GUARD_STATEMENTS = (
    "ALTER TABLE `user` ADD COLUMN x INT NOT NULL DEFAULT 0, DROP COLUMN y, MODIFY COLUMN z VARCHAR(10) NULL",
    "ALTER TABLE t CHANGE a b TEXT NOT NULL, RENAME COLUMN c TO d, ALTER COLUMN e SET DEFAULT 1, "
    "ALTER COLUMN f DROP DEFAULT",
    "ALTER TABLE t RENAME TO u",
    "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES b (id), ADD INDEX ix (c), DROP PRIMARY KEY",
    "ALTER TABLE t MODIFY n BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, ADD COLUMN g INT AS (n + 1) STORED",
    "DROP TABLE IF EXISTS a, `b`",
    "DROP DATABASE webui",
    "DROP INDEX ix ON t",
    "CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, n VARCHAR(20) NOT NULL DEFAULT 'x', "
    "c DATETIME DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE IF NOT EXISTS t (id BIGINT)",
    "CREATE OR REPLACE TABLE t (id INT)",
    "CREATE INDEX ix ON t (a)",
    "RENAME TABLE a TO b, `c` TO `d`",
    "CREATE TABLE t (a INT); INSERT INTO t VALUES (1); UPDATE t SET a = CONVERT(a, SIGNED) WHERE a > 0",
)

#: Parses GUARD_STATEMENTS (JSON in argv[1]) with sqlglot's MySQL dialect, as statements.py does,
#: and prints each tree and the SQL it prints back: run on the host and in the image.
_SQLGLOT_READ = """
import json, logging, sys
import sqlglot
logging.disable(logging.WARNING)
read = []
for statement in json.loads(sys.argv[1]):
    try:
        read.append([[repr(tree), tree.sql(dialect="mysql")] for tree in sqlglot.parse(statement, read="mysql")
                     if tree is not None])
    except sqlglot.errors.SqlglotError as exc:
        read.append(["error", type(exc).__name__, str(exc)])
print(json.dumps([sqlglot.__version__, read]))
"""


def test_the_trimmed_sqlglot_reads_mysql_ddl_exactly_as_the_whole_package_does(image):
    # The Dockerfile deletes most of sqlglot (docs/image.md); the host's .venv has all of it.
    argument = json.dumps(GUARD_STATEMENTS)
    host = subprocess.run([sys.executable, "-c", _SQLGLOT_READ, argument], capture_output=True, text=True, check=True)
    inside = docker("run", "--rm", "--entrypoint", "python", image.tag, "-c", _SQLGLOT_READ, argument)
    assert inside.code == 0, inside.out

    version, whole = json.loads(host.stdout)
    assert version == _pins((REPO / "requirements.txt").read_text())["sqlglot"], "the host's sqlglot is another"
    assert [len(trees) for trees in whole if trees and trees[0] != "error"] == [1] * 13 + [3], whole
    assert json.loads(inside.out) == [version, whole]


#: Prints every import statement of the installed sqlglot (inside functions too, not those under
#: TYPE_CHECKING) that no longer resolves, then the modules left in sqlglot/dialects.
_SQLGLOT_DANGLING_IMPORTS = """
import ast, importlib, json, pathlib
import sqlglot

root = pathlib.Path(sqlglot.__file__).parent


def resolves(module, name):
    try:
        imported = importlib.import_module(module)
        if name is not None and not hasattr(imported, name):
            importlib.import_module(module + "." + name)
    except ImportError:
        return False
    return True


class Imports(ast.NodeVisitor):
    def __init__(self, package):
        self.package, self.found = package, []

    def visit_If(self, node):
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node):
        self.found += [(node.lineno, alias.name, None) for alias in node.names
                       if alias.name.split(".")[0] == "sqlglot"]

    def visit_ImportFrom(self, node):
        module = node.module or ""
        if node.level:
            base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            module = ".".join([*base, module] if module else base)
        if module.split(".")[0] == "sqlglot":
            self.found += [(node.lineno, module, None if alias.name == "*" else alias.name) for alias in node.names]


dangling = []
for path in sorted(root.rglob("*.py")):
    parts = path.relative_to(root.parent).with_suffix("").parts
    module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    imports = Imports(module if path.name == "__init__.py" else module.rpartition(".")[0])
    imports.visit(ast.parse(path.read_text(encoding="utf-8")))
    dangling += [f"{path.relative_to(root.parent)}:{line}: {target} {name or ''}"
                 for line, target, name in imports.found if not resolves(target, name)]
print(json.dumps([dangling, sorted(p.name for p in (root / "dialects").glob("*.py"))]))
"""


def test_no_module_left_in_the_trimmed_sqlglot_imports_a_deleted_one(image):
    # The import statements inside functions are the ones a build-time import of every module
    # cannot see: each must still resolve, or some rarer statement would fail at run time.
    result = docker("run", "--rm", "--entrypoint", "python", image.tag, "-c", _SQLGLOT_DANGLING_IMPORTS)
    assert result.code == 0, result.out

    dangling, dialects = json.loads(result.out)
    assert dangling == [], "\n".join(dangling)
    assert dialects == ["__init__.py", "dialect.py", "mysql.py", "tsql.py"], "the trim did not happen"


@dataclass(frozen=True)
class MariaDB:
    """A MariaDB server in a container, on a network of its own, under the alias ``mariadb``."""

    container: str
    network: str
    secrets: Path  # root-password and password, mounted at /run/secrets
    root_password: str
    password: str  # of the user ``app``

    def sql(self, statement: str, database: str = "") -> Result:
        return docker(
            "exec",
            "--env",
            f"MYSQL_PWD={self.root_password}",
            self.container,
            "mariadb",
            "--user=root",
            "--batch",
            "--skip-column-names",
            "--execute",
            statement,
            *([database] if database else []),
        )


@pytest.fixture(scope="module")
def mariadb(engine, docker_env, tmp_path_factory) -> Iterator[MariaDB]:
    """MARIADB_IMAGE with its passwords in *_FILE secrets, as a Docker secret hands them over."""
    suffix = uuid.uuid4().hex[:8]
    server = MariaDB(
        f"migrate-init-mariadb-{suffix}",
        f"migrate-init-net-{suffix}",
        tmp_path_factory.mktemp("mariadb-secrets"),
        f"root{uuid.uuid4().hex[:12]}",
        f"app{uuid.uuid4().hex[:12]}",
    )
    server.secrets.chmod(0o755)
    for name, value in (("root-password", server.root_password), ("password", server.password)):
        (server.secrets / name).write_text(value + "\n")  # a secret file ends with a newline
        (server.secrets / name).chmod(0o644)
    docker("network", "create", server.network, check=True)
    try:
        docker(
            "run",
            "--detach",
            "--name",
            server.container,
            "--network",
            server.network,
            "--network-alias",
            "mariadb",
            "--volume",
            f"{server.secrets}:/run/secrets:ro",
            "--env",
            "MARIADB_ROOT_PASSWORD_FILE=/run/secrets/root-password",
            "--env",
            "MARIADB_USER=app",
            "--env",
            "MARIADB_PASSWORD_FILE=/run/secrets/password",
            "--env",
            "MARIADB_DATABASE=app",
            docker_env.get("MARIADB_IMAGE") or "mariadb:11",
            check=True,
        )
        deadline = time.monotonic() + 120
        # the user's own login over TCP: the first start's socket-only server does not count
        while (
            docker(
                "exec",
                "--env",
                f"MYSQL_PWD={server.password}",
                server.container,
                "mariadb",
                "--protocol=tcp",
                "--host=127.0.0.1",
                "--user=app",
                "--execute=SELECT 1",
                "app",
            ).code
            != 0
        ):
            assert time.monotonic() < deadline, docker("logs", server.container).out
            time.sleep(0.5)
        yield server
    finally:
        docker("rm", "--force", "--volumes", server.container)
        docker("network", "rm", server.network)


@pytest.fixture
def mariadb_database(mariadb) -> str:
    """A new, empty database on the server, all of whose privileges ``app`` has."""
    name = f"db_{uuid.uuid4().hex[:10]}"
    created = mariadb.sql(f"CREATE DATABASE `{name}`; GRANT ALL ON `{name}`.* TO 'app'@'%'")
    assert created.code == 0, created.out
    return name


def _run_on_mariadb(
    image: Image,
    server: MariaDB,
    database: str,
    *args: str,
    env: dict[str, str] | None = None,
    mounts: tuple[str, ...] = (),
) -> Result:
    """The image under the manifests' constraints: a mysql:// URL with no password in it, the
    password in DATABASE_PASSWORD_FILE (a mounted secret)."""
    return run_image(
        image,
        *args,
        env={
            "DATABASE_URL": f"mysql://app@mariadb:3306/{database}",
            "DATABASE_PASSWORD_FILE": "/run/secrets/migrate-init/password",
            **(env or {}),
        },
        mounts=(f"{server.secrets / 'password'}:/run/secrets/migrate-init/password:ro", *mounts),
        options=(*MANIFEST_CONSTRAINTS, "--network", server.network),
    )


def test_docker_run_migrates_mariadb_then_finds_nothing_to_do(image, mariadb, mariadb_database):
    first = _run_on_mariadb(image, mariadb, mariadb_database)
    assert first.code == 0, first.out
    assert "Acquired the MySQL lock" in first.out and "10 migration(s) applied" in first.out, first.out
    assert mariadb.sql("SELECT version_num FROM alembic_version", mariadb_database).out.split() == [TARGET]

    again = _run_on_mariadb(image, mariadb, mariadb_database, env={"LOG_LEVEL": "DEBUG"})
    assert again.code == 0, again.out
    assert "Fast path: the database is at" in again.out and "nothing to do" in again.out, again.out
    assert "Running upgrade" not in again.out
    status = _run_on_mariadb(image, mariadb, mariadb_database, "status")
    assert status.code == 0, status.out
    assert mariadb.password not in first.out + again.out + status.out


def test_docker_run_refuses_a_column_drop_on_mariadb_before_it_runs(image, mariadb, mariadb_database, tmp_path):
    # MySQL commits DDL at once: the guard reads the statement with the image's trimmed sqlglot first.
    chain = Chain(tmp_path / "migrations")
    chain.add("d1", 'op.drop_column("user", "phone")', name="drop_phone")
    for path in [chain.path, *chain.path.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    # The guard refuses a drop of values (issue 22): a phone number the drop would lose.
    assert _run_on_mariadb(image, mariadb, mariadb_database).code == 0
    mariadb.sql(
        "INSERT INTO `user` (id, name, email, role, phone) VALUES ('u1', 'u1', 'u1@example.com', 'user', '555')",
        mariadb_database,
    )

    result = _run_on_mariadb(
        image,
        mariadb,
        mariadb_database,
        env={"MIGRATIONS_DIR": "/migrations", "MODELS": "models:Base"},
        mounts=(f"{chain.path}:/migrations:ro",),
    )

    assert result.code == 8, result.out
    assert "would lose data: column user.phone" in result.out and "refused before it ran" in result.out
    assert mariadb.sql("SHOW COLUMNS FROM `user` LIKE 'phone'", mariadb_database).out.split()[:1] == ["phone"]
    assert mariadb.sql("SELECT version_num FROM alembic_version", mariadb_database).out.split() == [TARGET]


# --- replicas and the Job pattern, under the manifests' constraints (issues 4 and 6) -------

# The pod securityContext of deploy/kubernetes: UID 10001, GID 0, read-only root,
# no capabilities, no privilege escalation, an emptyDir at /tmp.
MANIFEST_CONSTRAINTS = (
    "--user",
    "10001:0",
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
)


def _volume_path(volume: str) -> Path:
    return Path(docker("volume", "inspect", "--format", "{{.Mountpoint}}", volume, check=True).out.strip())


def test_eight_containers_at_once_on_one_named_volume_apply_each_revision_once(image):
    volume = f"migrate-init-fleet-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", volume, check=True)
    names = [f"{volume}-{index}" for index in range(8)]
    try:
        for name in names:
            docker(
                "run",
                "--detach",
                "--name",
                name,
                *MANIFEST_CONSTRAINTS,
                "--volume",
                f"{volume}:{DATA}",
                image.tag,
                check=True,
            )
        codes = {name: docker("wait", name, timeout=180, check=True).out.strip() for name in names}
        logs = "\n".join(docker("logs", name).out for name in names)
        db = _volume_path(volume) / "webui.db"
        assert set(codes.values()) == {"0"}, (codes, logs)
        applied = [line.split("Running upgrade", 1)[1] for line in logs.splitlines() if "Running upgrade" in line]
        assert len(applied) == 10, logs  # the ten shipped revisions, across all eight logs
        assert len(set(applied)) == len(applied), logs
        assert revisions(db) == [TARGET]
        assert integrity(sqlite_url(db)) == [("ok",)]
        assert {"user", "chat", "tool", "config", "flux_task", "payment"} <= table_names(db)
    finally:
        docker("rm", "-f", *names)
        docker("volume", "rm", "-f", volume)


@pytest.fixture
def pausing_migrations(tmp_path: Path) -> Path:
    """The shipped migrations plus one after merge_heads_final that takes a few seconds."""
    chain = Chain(tmp_path / "migrations")
    chain.add("p1", "time.sleep(6)", name="pause")
    folder = chain.path
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


def test_wait_returns_once_another_container_has_migrated(image, pausing_migrations, tmp_path):
    """The Job pattern: `wait` never migrates, and exits 0 when the Job's container is done."""
    volume = f"migrate-init-job-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", volume, check=True)
    secret = tmp_path / "database-url"
    secret.write_text(f"sqlite:///{DATA}/webui.db\n")  # a Secret mounted as a file, with its newline
    secret.chmod(0o644)
    common = (
        *MANIFEST_CONSTRAINTS,
        "--volume",
        f"{volume}:{DATA}",
        "--volume",
        f"{pausing_migrations}:/fixtures/migrations:ro",
        "--volume",
        f"{secret}:/run/secrets/migrate-init/database-url:ro",
        "--env",
        "DATABASE_URL_FILE=/run/secrets/migrate-init/database-url",
        "--env",
        "MIGRATIONS_DIR=/fixtures/migrations",
        "--env",
        "MODELS=models:Base",
    )
    job, waiter = f"{volume}-job", f"{volume}-wait"
    try:
        docker("run", "--detach", "--name", job, *common, image.tag, check=True)
        deadline = time.monotonic() + 60
        while "Running upgrade merge_heads_final -> p1" not in docker("logs", job).out:
            assert time.monotonic() < deadline, docker("logs", job).out
            time.sleep(0.2)
        docker("run", "--detach", "--name", waiter, *common, image.tag, "wait", check=True)
        waiter_code = docker("wait", waiter, timeout=120, check=True).out.strip()
        job_code = docker("wait", job, timeout=120, check=True).out.strip()
        waiter_logs, job_logs = docker("logs", waiter).out, docker("logs", job).out
        db = _volume_path(volume) / "webui.db"
        assert (job_code, waiter_code) == ("0", "0"), (job_logs, waiter_logs)
        assert "Waiting for another migrator" in waiter_logs, waiter_logs
        assert "Running upgrade" not in waiter_logs, waiter_logs  # wait never migrates
        assert revisions(db) == ["p1"]
    finally:
        docker("rm", "-f", job, waiter)
        docker("volume", "rm", "-f", volume)


def test_another_uid_of_group_0_can_migrate_a_volume_that_uid_10001_created(image, pausing_migrations):
    """OpenShift: the next pod may run as another UID in group 0 on the same volume."""
    volume = f"migrate-init-uid-{uuid.uuid4().hex[:8]}"
    docker("volume", "create", volume, check=True)
    hardened = ("--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL")
    try:
        first = run_image(image, mounts=(f"{volume}:{DATA}",), options=("--user", "10001:0", *hardened))
        assert first.code == 0, first.out
        # A new revision to apply, so the second UID must write the database, its
        # journal, the lock file and a backup.
        second = run_image(
            image,
            env={"MIGRATIONS_DIR": "/fixtures/migrations", "MODELS": "models:Base"},
            mounts=(f"{volume}:{DATA}", f"{pausing_migrations}:/fixtures/migrations:ro"),
            options=("--user", "1000650000:0", *hardened),
        )
        assert second.code == 0, second.out
        assert revisions(_volume_path(volume) / "webui.db") == ["p1"]
    finally:
        docker("volume", "rm", "-f", volume)


# --- the release it is (issue 16) ------------------------------------------------------------


def test_the_dockerfile_defaults_to_the_package_version():
    # `docker build .` with no arguments (Compose, a user) labels the image with this default.
    match = re.search(r"^ARG VERSION=(\S+)$", (REPO / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert match, "the Dockerfile must declare ARG VERSION=<version> before its first FROM"
    assert match.group(1) == __version__, "update ARG VERSION in the Dockerfile to migrate_init.__version__"


def test_image_labels_carry_the_release_version_revision_source_and_licence(image):
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", image.tag, check=True).out)

    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.title"] == "migrate-init"
    assert labels["org.opencontainers.image.description"]
    assert "org.opencontainers.image.source" in labels
    assert "org.opencontainers.image.revision" in labels
    revision = release_build_values().get("REVISION")
    if image.tag == IMAGE_TAG and revision:  # built by the fixture, as a release is
        assert labels["org.opencontainers.image.revision"] == revision


def test_version_is_the_package_version(image):
    result = run_image(image, "--version")

    assert result.code == 0, result.out
    assert result.out.strip() == f"migrate-init {__version__}"


def test_the_licence_ships_in_the_image(image):
    shipped = docker("run", "--rm", "--entrypoint", "cat", image.tag, "/usr/share/doc/migrate-init/LICENSE", check=True)

    assert shipped.out == (REPO / "LICENSE").read_text()


def test_a_build_whose_version_differs_from_the_package_fails_and_says_what_to_do(image, docker_env):
    tag = f"migrate-init-test-version-{uuid.uuid4().hex[:8]}"
    try:
        build = docker(
            "build",
            "--build-arg",
            f"BASE_IMAGE={image.base}",
            "--build-arg",
            "VERSION=0.0.0-not-it",
            "--tag",
            tag,
            str(REPO),
            env=docker_env,
            timeout=900,
        )

        assert build.code != 0, build.out
        assert f"VERSION=0.0.0-not-it differs from __version__ = {__version__}" in build.out, build.out
    finally:
        docker("rmi", "-f", tag)


def test_a_read_only_container_with_no_mount_still_migrates(image):
    # What VOLUME /app/backend/data buys (docs/image.md): an anonymous volume, removed by --rm.
    result = run_image(image, options=("--read-only", "--tmpfs", "/tmp"))

    assert result.code == 0, result.out
    assert "OK (exit 0)" in result.out


def _pins(text: str) -> dict[str, str]:
    """name -> version of the ``name==version`` lines of a requirements file."""
    pins = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_the_image_lock_pins_what_requirements_txt_pins_and_hashes_everything():
    # The Dockerfile installs requirements.lock with --require-hashes (CONTRIBUTING.md regenerates it).
    lock = (REPO / "requirements.lock").read_text()
    wanted, locked = _pins((REPO / "requirements.txt").read_text()), _pins(lock)
    assert wanted, "requirements.txt pins nothing"
    for name, version in wanted.items():
        assert locked.get(name) == version, (
            f"requirements.lock has {name}=={locked.get(name)}, requirements.txt {version}"
        )
    entries = re.split(r"\n(?=\S)", lock)
    for entry in entries:
        if "==" in entry.split("\n", 1)[0] and not entry.startswith("#"):
            assert "--hash=sha256:" in entry, f"no hash for {entry.splitlines()[0]}"
