"""Real, unmodified open-source Alembic projects from PyPI, for test_third_party.py.

Each project is installed from the package index (pip, configured by the
machine) into a venv of its own next to migrate-init's runtime requirements,
and its migrations folder is used where pip put it, inside site-packages:
nothing in it is edited.  The venvs are cached under build/thirdparty-venv/,
one folder per project keyed by the Python version and the exact pins, so a
second session installs nothing.

The reference for every comparison is the project run by the plain ``alembic``
CLI with the ini file the project's own code would write.

How the two projects' env.py files get their URL and engine (what migrate-init
has to cope with without editing them):

- optuna 5.0.0, ``optuna/storages/_rdb/alembic/env.py``: calls
  ``fileConfig(config.config_file_name)`` when the root logger has no handler,
  and always builds its own engine with ``engine_from_config`` from the ini's
  ``[alembic]`` section (``sqlalchemy.url``), NullPool.  It never reads
  ``config.attributes``.  ``context.configure(connection=..., target_metadata=
  BaseModel.metadata, render_as_batch=True)``; no transaction_per_migration.
  The package's own ``alembic.ini`` (one level up from env.py) says
  ``script_location = alembic`` and ``sqlalchemy.url = sqlite:///alembic.db``
  (relative to the working directory); optuna's code overrides both.
- meltano 4.4.1, ``meltano/migrations/env.py``: no fileConfig; uses
  ``config.attributes["connection"]`` when set, else ``engine_from_config`` on
  the ini's ``[alembic]`` section.  ``context.configure(connection=...)`` with
  no metadata.  No ini ships with it (meltano builds a Config() in code).
  It needs SQLAlchemy < 2.1, so its venv has SQLAlchemy 2.0.

Why these two: each has >= 10 revisions whose chain builds an empty database
on SQLite and PostgreSQL with plain Alembic.  Projects that build an empty
database otherwise are compared with their own Python API instead (``Shipped``,
below, issue 22): jupyterhub and optuna (create_all + stamp: EMPTY_DATABASE=
models), mlflow (an initial metadata, then the chain: EMPTY_DATABASE=initial:),
open-webui (installed --no-deps: its declared dependencies are several GB) and
the stock ``alembic init -t async`` project.  Not used: trulens' revisions need
a ``trulens.table_prefix`` ini option its own ini lacks; conda-store-server's
models import ``conda``, which pip cannot install; grader-service's SQLite
listener needs Python 3.12; prefect's env.py cannot run (docs/how-it-works.md).
"""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from tests.support import FIXTURES, MIGRATE, REPO
from tests.support.dbstate import connect, is_sqlite, query, sqlite_path
from tests.support.pgserver import newest_bin_dir
from tests.support.process import Result, child_env

VENV_ROOT = REPO / "build" / "thirdparty-venv"
RUNTIME_REQUIREMENTS = REPO / "requirements.txt"
INSTALL_TIMEOUT = 900
RUN_TIMEOUT = 180


# --- the projects -------------------------------------------------------------


@dataclass(frozen=True)
class Project:
    """One PyPI project whose wheel ships an Alembic folder (env.py + versions/)."""

    name: str
    #: The exact pin of the project; the venv also gets requirements.txt.
    requirement: str
    #: The Alembic folder, relative to site-packages.
    migrations: str
    head: str
    #: MODELS for deploy runs (None: verification checks the revision only).
    models: str | None
    #: MODELS for `check`, which compares the database with the models.
    check_models: str
    #: An old revision for the update deploy, and the rows written there.
    old_revision: str
    seed: Callable[[str], None]
    #: Asserts that the seeded rows survived the upgrade to head.
    assert_kept: Callable[[str], None]
    #: Pending revisions between old_revision and head, in order.
    pending: tuple[str, ...]
    #: A revision whose script `lint` must name (a destructive operation upstream).
    lint_finding: str
    #: Writes the ini file the project's own code builds for Alembic.
    write_ini: Callable[[Venv, str, Path], None]
    #: requirements.txt lines this project's own metadata forbids, replaced by these pins.
    overrides: Mapping[str, str] = field(default_factory=dict)
    #: Columns stamped with the time of the migration: not compared between runs.
    volatile: frozenset[tuple[str, str]] = frozenset()
    #: Revisions of the update the guard refuses, by engine: exit 8 naming each, then allowed by name.
    destroys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def venv(self) -> Venv:
        return Venv.ensure(self)


def _optuna_ini(venv: Venv, url: str, dest: Path) -> None:
    # optuna.storages._rdb.storage._create_alembic_config: the shipped
    # alembic.ini with script_location and sqlalchemy.url set.
    package = venv.site_packages / "optuna" / "storages" / "_rdb"
    rewrite_ini(
        package / "alembic.ini",
        dest,
        {
            "script_location": str(package / "alembic"),
            "sqlalchemy.url": url,
        },
    )


def _meltano_ini(venv: Venv, url: str, dest: Path) -> None:
    # meltano.core.migration_service builds Config() with script_location only
    # and hands over a connection; the CLI needs the URL in the ini instead.
    rewrite_ini(
        None,
        dest,
        {
            "script_location": str(venv.site_packages / "meltano" / "migrations"),
            "sqlalchemy.url": url,
        },
    )


def rewrite_ini(source: Path | None, dest: Path, main: Mapping[str, str]) -> None:
    parser = configparser.ConfigParser(interpolation=None)
    if source is not None:
        parser.read(source, encoding="utf-8")
    if not parser.has_section("alembic"):
        parser.add_section("alembic")
    for key, value in main.items():
        # Alembic reads the ini with %-interpolation.
        parser.set("alembic", key, value.replace("%", "%%"))
    with dest.open("w", encoding="utf-8") as handle:
        parser.write(handle)


_DISTRIBUTION = '{"name": "UniformDistribution", "attributes": {"low": 0.0, "high": 1.0}}'


def _optuna_seed(url: str) -> None:
    """Rows an optuna 1.2 study left at v1.2.0.a (no ids: the sequences assign them)."""
    statements = [
        ("INSERT INTO studies (study_name, direction) VALUES ('kept-study', 'MINIMIZE')", {}),
        ("INSERT INTO version_info (version_info_id, schema_version, library_version) VALUES (1, 12, '1.2.0')", {}),
        ("INSERT INTO study_user_attributes (study_id, key, value_json) VALUES (1, 'owner', '\"ops\"')", {}),
    ]
    for value, start in ((0.25, "2020-01-01 00:00:00"), (1.5, "2020-01-02 00:00:00")):
        statements.append(
            (
                "INSERT INTO trials (study_id, state, value, datetime_start, datetime_complete) "
                "VALUES (1, 'COMPLETE', :value, :start, :start)",
                {"value": value, "start": start},
            )
        )
    for trial, number, param in ((1, 0, 0.5), (2, 1, 0.75)):
        statements.append(
            (
                "INSERT INTO trial_system_attributes (trial_id, key, value_json) VALUES (:trial, '_number', :number)",
                {"trial": trial, "number": str(number)},
            )
        )
        statements.append(
            (
                "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
                "VALUES (:trial, 'x', :param, :dist)",
                {"trial": trial, "param": param, "dist": _DISTRIBUTION},
            )
        )
    # Before v2.4.0.a, trial_values held the intermediate values.
    statements.append(("INSERT INTO trial_values (trial_id, step, value) VALUES (1, 0, 0.3)", {}))
    for sql, params in statements:
        query(url, sql, params)


def _optuna_kept(url: str) -> None:
    assert query(url, "SELECT study_id, study_name FROM studies") == [(1, "kept-study")]
    assert query(url, "SELECT study_id, direction, objective FROM study_directions") == [(1, "MINIMIZE", 0)]
    assert query(url, "SELECT trial_id, number, state FROM trials ORDER BY trial_id") == [
        (1, 0, "COMPLETE"),
        (2, 1, "COMPLETE"),
    ]
    assert query(url, "SELECT trial_id, objective, value FROM trial_values ORDER BY trial_id") == [
        (1, 0, 0.25),
        (2, 0, 1.5),
    ]
    assert query(url, "SELECT trial_id, step, intermediate_value FROM trial_intermediate_values") == [(1, 0, 0.3)]
    params = query(url, "SELECT trial_id, param_value, distribution_json FROM trial_params ORDER BY trial_id")
    assert [(t, v) for t, v, _ in params] == [(1, 0.5), (2, 0.75)]
    assert all("FloatDistribution" in d for _, _, d in params), params
    assert query(url, "SELECT key, value_json FROM study_user_attributes") == [("owner", '"ops"')]
    assert query(url, "SELECT library_version FROM version_info") == [("1.2.0",)]


_MELTANO_JOB = "dev:tap-users-to-target-jsonl"
_MELTANO_STATE = {"singer_state": {"bookmarks": {"users": {"id": 42}}}}


def _meltano_seed(url: str) -> None:
    """Two runs of one pipeline, as meltano 2.x wrote them at d135f52a6f49."""
    rows = [
        (
            "SUCCESS",
            "2024-01-01 00:00:00",
            "2024-01-01 00:05:00",
            _MELTANO_STATE,
            1,
            "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        ),
        ("FAIL", "2024-01-02 00:00:00", "2024-01-02 00:01:00", {}, 0, "1f1e2d3c4b5a69788796a5b4c3d2e1f0"),
    ]
    for state, started, ended, payload, flags, run_id in rows:
        query(
            url,
            "INSERT INTO job (job_id, state, started_at, ended_at, payload, payload_flags, "
            'run_id, "trigger") VALUES (:job, :state, :started, :ended, :payload, :flags, '
            ":run_id, 'cli')",
            {
                "job": _MELTANO_JOB,
                "state": state,
                "started": started,
                "ended": ended,
                "payload": json.dumps(payload),
                "flags": flags,
                "run_id": run_id,
            },
        )
    query(
        url,
        "INSERT INTO plugin_settings (name, namespace, enabled) VALUES ('tap-users.start_date', 'tap-users', :on)",
        {"on": True},
    )


def _meltano_kept(url: str) -> None:
    runs = query(url, 'SELECT id, job_name, state, payload_flags, "trigger" FROM runs ORDER BY id')
    assert runs == [(1, _MELTANO_JOB, "SUCCESS", 1, "cli"), (2, _MELTANO_JOB, "FAIL", 0, "cli")]
    payload = query(url, "SELECT payload FROM runs WHERE id = 1")[0][0]
    assert json.loads(payload) == _MELTANO_STATE
    # 6828cc5b1a4f builds the state table from the job history; meltano's
    # JobState.from_job_history files the last successful run's state as partial.
    states = query(url, "SELECT state_id, partial_state FROM state")
    assert [s for s, _ in states] == [_MELTANO_JOB], states
    assert json.loads(states[0][1]) == _MELTANO_STATE, states
    assert query(url, "SELECT name, namespace FROM plugin_settings") == [("tap-users.start_date", "tap-users")]


OPTUNA = Project(
    name="optuna",
    requirement="optuna==5.0.0",
    migrations="optuna/storages/_rdb/alembic",
    head="v3.2.0.a",
    # optuna's BaseModel also defines trial_heartbeats, which no migration
    # creates: optuna's RDBStorage makes it with create_all when it starts.
    # With MODELS=BaseModel a correct deploy could never verify, so the
    # deploy runs check the revision only, as the README says.
    models=None,
    check_models="optuna.storages._rdb.models:BaseModel",
    old_revision="v1.2.0.a",
    seed=_optuna_seed,
    assert_kept=_optuna_kept,
    pending=("v1.3.0.a", "v2.4.0.a", "v2.6.0.a", "v3.0.0.a", "v3.0.0.b", "v3.0.0.c", "v3.0.0.d", "v3.2.0.a"),
    # v2.4.0.a drops studies.direction, trial_values.step and trials.value.
    lint_finding="v2.4.0.a",
    # ... after copying them into study_directions and the new trial_values: the guard sees
    # values that exist nowhere under their old name, and says so (PostgreSQL: see below).
    destroys={"sqlite": ("v2.4.0.a",)},
    write_ini=_optuna_ini,
)

MELTANO = Project(
    name="meltano",
    requirement="meltano==4.4.1",
    migrations="meltano/migrations",
    head="c0efb3c314eb",
    # Importing state_service loads every model (runs, state, plugin_settings);
    # its Job class carries their shared MetaData.
    models="meltano.core.state_service:Job",
    check_models="meltano.core.state_service:Job",
    old_revision="d135f52a6f49",
    seed=_meltano_seed,
    assert_kept=_meltano_kept,
    pending=("13e8639c6d2b", "5b43800443d1", "f4c225a9492f", "6828cc5b1a4f", "c0efb3c314eb"),
    # 5b43800443d1 renames job to runs and job_id to job_name.
    lint_finding="5b43800443d1",
    # It also renames job_id to job_name: SQLite rebuilds the table and cannot tell that from
    # a drop and an add (PostgreSQL can, by attnum): refused there, then allowed by name.
    destroys={"sqlite": ("5b43800443d1",)},
    overrides={"sqlalchemy": "sqlalchemy==2.0.58"},
    volatile=frozenset({("state", "updated_at")}),
    write_ini=_meltano_ini,
)

PROJECTS = (OPTUNA, MELTANO)


# --- the venvs ------------------------------------------------------------------


def _requirement_name(line: str) -> str:
    name = line.split(";")[0]
    for stop in "=<>!~[ ":
        name = name.split(stop)[0]
    return name.strip().lower().replace("_", "-")


def requirements_for(project: Project) -> list[str]:
    """requirements.txt (less what the project forbids) plus the project's pin."""
    return [*_runtime_requirements(**project.overrides), project.requirement]


def _runtime_requirements(**overrides: str) -> list[str]:
    """requirements.txt, with the lines a project's own metadata forbids replaced by its pins."""
    lines = []
    for raw in RUNTIME_REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = raw.split("#")[0].strip()
        if line:
            lines.append(overrides.get(_requirement_name(line), line))
    return lines


@dataclass(frozen=True)
class Venv:
    path: Path
    site_packages: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @classmethod
    def ensure(cls, project: Project) -> Venv:
        """The project's cached venv, built on first use (under a file lock)."""
        return cls.cached(project.name, requirements_for(project))

    @classmethod
    def cached(cls, name: str, requirements: list[str], without_deps: tuple[str, ...] = ()) -> Venv:
        """A venv with ``requirements`` (and ``without_deps`` installed with --no-deps), cached."""
        key = hashlib.sha256("\n".join([sys.version, *requirements, "--no-deps", *without_deps]).encode()).hexdigest()[
            :12
        ]
        path = VENV_ROOT / f"{name}-{key}"
        VENV_ROOT.mkdir(parents=True, exist_ok=True)
        with open(VENV_ROOT / f"{name}-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (path / ".complete").is_file():
                _build_venv(path, requirements, without_deps)
        purelib = subprocess.run(
            [str(path / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            env=child_env(),
        ).stdout.strip()
        return cls(path, Path(purelib))

    def migrations(self, project: Project) -> Path:
        folder = self.site_packages / project.migrations
        assert (folder / "env.py").is_file(), f"{project.requirement} has no {folder}/env.py"
        return folder


def _build_venv(path: Path, requirements: list[str], without_deps: tuple[str, ...]) -> None:
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True, text=True)
    for args in (requirements, ["--no-deps", *without_deps] if without_deps else []):
        if not args:
            continue
        # pip reads the index from the machine's own configuration, so it keeps
        # the caller's environment (PIP_* variables, proxies).
        result = subprocess.run(
            [
                str(path / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )
        if result.returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            raise RuntimeError(
                f"pip install {' '.join(args)} failed (exit {result.returncode}):\n{result.stdout[-4000:]}"
            )
    (path / ".complete").write_text("\n".join([*requirements, *without_deps]) + "\n", encoding="utf-8")


# --- running things in a project's venv ------------------------------------------


def run_in(
    venv: Venv, *args: object, env: Mapping[str, str | None] | None = None, cwd: Path, timeout: float = RUN_TIMEOUT
) -> Result:
    """Run ``venv``'s python with ``args`` in the minimal environment of helpers.child_env."""
    proc = subprocess.Popen(
        [str(venv.python), *map(str, args)],
        env=child_env(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"{args} did not finish within {timeout}s:\n{out}") from None
    return Result(proc.returncode, out)


def driver_url(url: str) -> str:
    """The URL with psycopg2 named: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def plain_alembic(project: Project, venv: Venv, url: str, revision: str, workdir: Path) -> Result:
    """``alembic -c <the project's ini> upgrade <revision>``, the reference."""
    workdir.mkdir(parents=True, exist_ok=True)
    ini = workdir / f"{project.name}-alembic.ini"
    project.write_ini(venv, driver_url(url), ini)
    if is_sqlite(url):
        sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
    result = run_in(venv, "-m", "alembic", "-c", ini, "upgrade", revision, cwd=workdir)
    assert result.code == 0, f"plain alembic upgrade {revision} failed:\n{result.out}"
    return result


def migrate(venv: Venv, *args: str, env: Mapping[str, str | None], cwd: Path) -> Result:
    """migrate.py in the project's venv (so that the project imports)."""
    return run_in(venv, MIGRATE, *args, env=env, cwd=cwd)


# --- what a database holds ----------------------------------------------------------


def _type(value, dialect) -> str:
    try:
        return value.compile(dialect=dialect)
    except Exception:
        return repr(value)


def schema_dump(url: str) -> dict:
    """Tables, columns (type, nullability, default), keys, indexes and constraints."""
    with connect(url) as connection:
        inspector = sa.inspect(connection)
        dialect = connection.dialect
        dump: dict = {}
        # migrate-init's own bookkeeping (migrate_init_history, _seed, _progress) is not the project's schema.
        for table in sorted(t for t in inspector.get_table_names() if not t.startswith("migrate_init_")):
            columns = [
                {
                    "name": c["name"],
                    "type": _type(c["type"], dialect),
                    "nullable": c["nullable"],
                    "default": c.get("default"),
                }
                for c in inspector.get_columns(table)
            ]
            pk = inspector.get_pk_constraint(table)
            dump[table] = {
                "columns": columns,
                "primary_key": [pk.get("name"), pk.get("constrained_columns")],
                "foreign_keys": sorted(
                    json.dumps(
                        [
                            fk.get("name"),
                            fk["constrained_columns"],
                            fk["referred_table"],
                            fk["referred_columns"],
                            fk.get("options", {}),
                        ],
                        sort_keys=True,
                    )
                    for fk in inspector.get_foreign_keys(table)
                ),
                "indexes": sorted(
                    json.dumps([ix.get("name"), ix["column_names"], bool(ix.get("unique"))])
                    for ix in inspector.get_indexes(table)
                ),
                "unique": sorted(
                    json.dumps([uq.get("name"), uq["column_names"]]) for uq in inspector.get_unique_constraints(table)
                ),
                "checks": sorted(" ".join(str(ck["sqltext"]).split()) for ck in inspector.get_check_constraints(table)),
            }
        if dialect.name == "postgresql":
            dump["<enums>"] = sorted(json.dumps([e["name"], e["labels"]]) for e in inspector.get_enums())
        return dump


def data_dump(url: str, volatile: frozenset[tuple[str, str]] = frozenset()) -> dict:
    """Every row of every table, as sorted lists of strings (volatile columns left out)."""
    with connect(url) as connection:
        dump = {}
        for name in sorted(t for t in sa.inspect(connection).get_table_names() if not t.startswith("migrate_init_")):
            table = sa.Table(name, sa.MetaData(), autoload_with=connection)
            columns = [c for c in table.columns if (name, c.name) not in volatile]
            rows = connection.execute(sa.select(*columns)).all()
            dump[name] = sorted(json.dumps([None if v is None else str(v) for v in row]) for row in rows)
        return dump


def versions_in(url: str) -> list[str]:
    with connect(url) as connection:
        if "alembic_version" not in sa.inspect(connection).get_table_names():
            return []
        return sorted(r[0] for r in connection.execute(sa.text("SELECT version_num FROM alembic_version")))


def fingerprint(url: str) -> str:
    """What the database holds, byte for byte: the SQLite file, or pg_dump's output."""
    if is_sqlite(url):
        return hashlib.sha256(sqlite_path(url).read_bytes()).hexdigest()
    dumps = []
    for part in ("--schema-only", "--data-only"):
        result = subprocess.run(
            [str(newest_bin_dir() / "pg_dump"), part, "--no-owner", "--no-privileges", "--dbname", url],
            capture_output=True,
            text=True,
            env={**child_env(), "PGCONNECT_TIMEOUT": "10"},
        )
        assert result.returncode == 0, result.stderr
        # pg_dump >= 15.14 brackets its output with a random \restrict key.
        dumps.append(
            "\n".join(
                line for line in result.stdout.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))
            )
        )
    return "\n".join(dumps)


_DRIFT_SCRIPT = """
import importlib, json, sys
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

url, spec = sys.argv[1:3]
module, _, attribute = spec.partition(":")
target = importlib.import_module(module)
for part in attribute.split("."):
    target = getattr(target, part)
metadata = target if isinstance(target, sa.MetaData) else target.metadata
engine = sa.create_engine(url)
with engine.connect() as connection:
    diffs = compare_metadata(MigrationContext.configure(connection), metadata)
print(json.dumps([repr(d) for d in diffs]))
"""


def alembic_drift(project: Project, venv: Venv, url: str, cwd: Path) -> list[str]:
    """Alembic's own compare_metadata between the database and check_models, in the venv."""
    result = run_in(venv, "-c", _DRIFT_SCRIPT, driver_url(url), project.check_models, cwd=cwd)
    assert result.code == 0, result.out
    return json.loads(result.out.strip().splitlines()[-1])


# --- each project as shipped, with migrate-init's defaults (issue 22) ----------------------
#
# The projects above are compared with the plain alembic CLI.  These are compared with
# each project's own way of building and updating its database (its own Python API, run
# in its venv), with migrate-init's safety on: no ALLOW_DESTRUCTIVE=true anywhere.


def own_path(venv: Venv, code: str, url: str, cwd: Path, env: Mapping[str, str | None] | None = None) -> None:
    """Run ``code`` (with ``URL`` bound to the database) in the project's venv; it must succeed."""
    cwd.mkdir(parents=True, exist_ok=True)
    if is_sqlite(url):
        sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
    # The venv's bin/ first, as an activated venv has it: jupyterhub's dbutil.upgrade runs `alembic`.
    path = f"{venv.path / 'bin'}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    result = run_in(venv, "-c", f"URL = {driver_url(url)!r}\n{code}", cwd=cwd, env={"PATH": path, **(env or {})})
    assert result.code == 0, f"the project's own path failed:\n{code}\n{result.out}"


@dataclass(frozen=True)
class Shipped:
    """A project run as shipped: its env.py untouched, its own path as the reference."""

    name: str
    venv: Callable[[], Venv]
    #: The Alembic folder, given the venv.
    folder: Callable[[Venv], Path]
    head: str
    #: What a deployment sets for migrate-init (EMPTY_DATABASE, MODELS, the app's own variables).
    settings: Mapping[str, str]
    #: The project's own way to build an empty database: (venv, url, cwd).
    fresh: Callable[[Venv, str, Path], None]
    #: The project's own way to an older revision (an older release, or its chain stopped early).
    old: Callable[[Venv, str, Path], None]
    old_revision: str
    seed: Callable[[str], None]
    #: The project's own upgrade of an existing database to its head.
    upgrade: Callable[[Venv, str, Path], None]
    assert_kept: Callable[[str], None]
    #: Revisions that really destroy the seeded rows: exit 8 naming the first, then allowed by name.
    destroys: tuple[str, ...] = ()
    #: The URL migrate-init and the app get, given the test's URL (the async template's driver).
    app_url: Callable[[str], str] = driver_url
    volatile: frozenset[tuple[str, str]] = frozenset()
    #: The app's own variables, for its own path too.
    app_env: Mapping[str, str] = field(default_factory=dict)
    #: Tables whose rows the app writes when it starts, not when it builds its schema.
    started: frozenset[str] = frozenset()
    #: Engines whose update the project's own chain can make (see _upstream_breaks_the_update).
    update_engines: tuple[str, ...] = ("sqlite", "postgresql")
    #: Why the update cannot pass yet (a strict xfail: it fails loudly once that is fixed).
    update_missing: str | None = None


# mlflow: mlflow.store.db.utils._initialize_tables makes the initial tables from
# initial_models with create_all, then runs the chain with command.upgrade on a shared
# connection; its env.py opens connection.engine.connect().  An older database: the
# initial tables, then the chain stopped at 2b4d017a5e9b (MLflow 1.x), then rows.

MLFLOW_VENV_REQUIREMENTS = ("mlflow-skinny==3.17.2",)


def _mlflow_venv() -> Venv:
    return Venv.cached("mlflow", [*_runtime_requirements(), *MLFLOW_VENV_REQUIREMENTS])


_MLFLOW_FRESH = """
import sqlalchemy as sa
from mlflow.store.db.utils import _initialize_tables
_initialize_tables(sa.create_engine(URL))
"""

_MLFLOW_OLD = """
import sqlalchemy as sa
from alembic import command
from mlflow.store.db.utils import _get_alembic_config
from mlflow.store.tracking.dbmodels.initial_models import Base
engine = sa.create_engine(URL)
Base.metadata.create_all(engine)
config = _get_alembic_config(URL)
with engine.begin() as connection:
    config.attributes["connection"] = connection
    command.upgrade(config, "2b4d017a5e9b")
"""

_MLFLOW_UPGRADE = """
import sqlalchemy as sa
from mlflow.store.db.utils import _upgrade_db
_upgrade_db(sa.create_engine(URL))
"""


def _mlflow_seed(url: str) -> None:
    """An experiment with two finished runs, their metrics, params and tags (MLflow 1.x rows)."""
    query(
        url,
        "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage) "
        "VALUES (1, 'kept', '/artifacts/1', 'active')",
    )
    for run, status in (("r1", "FINISHED"), ("r2", "FAILED")):
        query(
            url,
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
            "status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, "
            "experiment_id) VALUES (:run, :run, 'LOCAL', 'train.py', 'main', 'ops', :status, "
            "1000, 2000, 'abc', 'active', '/artifacts/1/' || :run, 1)",
            {"run": run, "status": status},
        )
        query(
            url,
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "VALUES ('loss', 0.5, 1500, :run, 3, :no)",
            {"run": run, "no": False},
        )
        query(url, "INSERT INTO params (key, value, run_uuid) VALUES ('lr', '0.01', :run)", {"run": run})
        query(url, "INSERT INTO tags (key, value, run_uuid) VALUES ('team', 'ml', :run)", {"run": run})


def _mlflow_kept(url: str) -> None:
    assert query(url, "SELECT run_uuid, status FROM runs ORDER BY run_uuid") == [("r1", "FINISHED"), ("r2", "FAILED")]
    assert query(url, "SELECT run_uuid, key, value, step FROM metrics ORDER BY run_uuid") == [
        ("r1", "loss", 0.5, 3),
        ("r2", "loss", 0.5, 3),
    ]
    assert query(url, "SELECT run_uuid, key, value FROM params ORDER BY run_uuid") == [
        ("r1", "lr", "0.01"),
        ("r2", "lr", "0.01"),
    ]
    assert query(url, "SELECT name FROM experiments") == [("kept",)]


MLFLOW_SHIPPED = Shipped(
    name="mlflow",
    venv=_mlflow_venv,
    folder=lambda venv: venv.site_packages / "mlflow" / "store" / "db_migrations",
    head="dc11669786a5",
    settings={
        "EMPTY_DATABASE": "initial:mlflow.store.tracking.dbmodels.initial_models:Base",
        # Importing db.utils registers every model on Base (its own comment says so).
        "MODELS": "mlflow.store.db.utils:Base",
    },
    fresh=lambda venv, url, cwd: own_path(venv, _MLFLOW_FRESH, url, cwd),
    old=lambda venv, url, cwd: own_path(venv, _MLFLOW_OLD, url, cwd),
    old_revision="2b4d017a5e9b",
    seed=_mlflow_seed,
    upgrade=lambda venv, url, cwd: own_path(venv, _MLFLOW_UPGRADE, url, cwd),
    assert_kept=_mlflow_kept,
)


# jupyterhub: orm.new_session_factory stamps an empty database at the head and runs
# create_all; `jupyterhub upgrade-db` is dbutil.upgrade (alembic upgrade head).  Its chain
# cannot start from an empty database.  An older database is one JupyterHub 1.5.1 made
# (its own venv: SQLAlchemy 1.4), at 4dc2d5a8c53c, with a user and an API token.  The
# RBAC revision 833da8570507 drops api_tokens whatever it holds (JupyterHub 2.0's release
# notes: tokens must be issued again): a real loss.

JUPYTERHUB_OLD_REQUIREMENTS = ("jupyterhub==1.5.1", "sqlalchemy==1.4.54", "psycopg2-binary==2.9.13")


def _jupyterhub_venv() -> Venv:
    return Venv.cached("jupyterhub", [*_runtime_requirements(), "jupyterhub==6.1.1"])


def _jupyterhub_old_venv() -> Venv:
    return Venv.cached("jupyterhub-old", list(JUPYTERHUB_OLD_REQUIREMENTS))


_JUPYTERHUB_FRESH = """
from jupyterhub.orm import new_session_factory
new_session_factory(URL)
"""

# What the hub does: `jupyterhub upgrade-db`, then at start-up orm.new_session_factory, whose
# create_all makes the tables no migration makes (api_tokens, roles, shares and their maps).
_JUPYTERHUB_UPGRADE = """
import sqlalchemy
from jupyterhub import dbutil, orm
dbutil.upgrade(URL)
engine = sqlalchemy.create_engine(URL)
orm.Base.metadata.create_all(engine)
engine.dispose()
"""


def _jupyterhub_seed(url: str) -> None:
    query(
        url,
        "INSERT INTO users (id, name, admin, created, last_activity, cookie_id) "
        "VALUES (1, 'ann', :yes, '2021-01-01 00:00:00', '2021-01-02 00:00:00', 'c00k1e')",
        {"yes": True},
    )
    query(
        url,
        "INSERT INTO api_tokens (id, user_id, hashed, prefix, created, note) "
        "VALUES (1, 1, 'sha512:1:abc:def', 'abcd', '2021-01-01 00:00:00', 'ci token')",
    )


def _jupyterhub_kept(url: str) -> None:
    assert query(url, "SELECT id, name, cookie_id FROM users") == [(1, "ann", "c00k1e")]


JUPYTERHUB_SHIPPED = Shipped(
    name="jupyterhub",
    venv=_jupyterhub_venv,
    folder=lambda venv: venv.site_packages / "jupyterhub" / "alembic",
    head="f460b0348206",
    settings={"EMPTY_DATABASE": "models", "MODELS": "jupyterhub.orm:Base"},
    fresh=lambda venv, url, cwd: own_path(venv, _JUPYTERHUB_FRESH, url, cwd),
    old=lambda venv, url, cwd: own_path(_jupyterhub_old_venv(), _JUPYTERHUB_FRESH, url, cwd),
    old_revision="4dc2d5a8c53c",
    seed=_jupyterhub_seed,
    upgrade=lambda venv, url, cwd: own_path(venv, _JUPYTERHUB_UPGRADE, url, cwd),
    assert_kept=_jupyterhub_kept,
    destroys=("833da8570507",),
)


# open-webui: open_webui.config.run_migrations is `alembic upgrade head` with the package's
# alembic.ini and script_location set; its env.py takes the URL from open_webui.env
# (DATABASE_URL) and builds its own engine.  The package's declared dependencies (torch,
# chromadb, transformers, ... several GB) are not installed: open-webui goes in with
# --no-deps, and the venv gets only what env.py, the models it imports and the migrations
# import, at open-webui's own pins (SQLAlchemy 2.0.50 among them).

OPEN_WEBUI_EXTRAS = (
    "aiohttp==3.14.5",
    "aiosqlite==0.22.1",
    "bcrypt==5.0.0",
    "beautifulsoup4==4.14.3",
    "cryptography==48.0.1",
    "greenlet==3.5.6",
    "markdown==3.10.2",
    "orjson==3.11.9",
    "pillow==13.0.0",
    "psycopg[binary]==3.3.4",
    "python-mimeparse==2.0.0",
    "python-socketio==5.16.2",
    "typer==0.29.2",
    "uvicorn==0.54.0",
)


def _open_webui_venv() -> Venv:
    return Venv.cached(
        "open-webui",
        [*_runtime_requirements(sqlalchemy="sqlalchemy==2.0.50"), *OPEN_WEBUI_EXTRAS],
        ("open-webui==0.12.4",),
    )


def _open_webui_alembic(revision: str) -> Callable[[Venv, str, Path], None]:
    def upgrade(venv: Venv, url: str, cwd: Path) -> None:
        package = venv.site_packages / "open_webui"
        cwd.mkdir(parents=True, exist_ok=True)
        if is_sqlite(url):
            sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
        ini = cwd / "open-webui-alembic.ini"
        rewrite_ini(package / "alembic.ini", ini, {"script_location": str(package / "migrations")})
        result = run_in(
            venv,
            "-m",
            "alembic",
            "-c",
            ini,
            "upgrade",
            revision,
            cwd=cwd,
            env={**OPEN_WEBUI_ENV, "DATABASE_URL": driver_url(url), "DATA_DIR": str(cwd / "data")},
        )
        assert result.code == 0, f"open-webui's alembic upgrade {revision} failed:\n{result.out}"

    return upgrade


#: What open-webui refuses to import without (its start scripts set it).
OPEN_WEBUI_ENV = {"WEBUI_SECRET_KEY": "test-secret-key"}


def _open_webui_seed(url: str) -> None:
    """A user and two chats with history, as open-webui 0.6 wrote them at c440947495f3."""
    query(
        url,
        'INSERT INTO "user" (id, name, email, role, profile_image_url, created_at, updated_at, '
        "last_active_at) VALUES ('u1', 'Ann', 'ann@example.com', 'admin', '/user.png', 1, 1, 1)",
    )
    query(
        url, "INSERT INTO auth (id, email, password, active) VALUES ('u1', 'ann@example.com', 'x', :yes)", {"yes": True}
    )
    for chat in ("c1", "c2"):
        query(
            url,
            "INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, archived, pinned, meta) "
            "VALUES (:id, 'u1', :id, :body, 1, 1, :no, :no, '{}')",
            {
                "id": chat,
                "no": False,
                "body": json.dumps(
                    {
                        "history": {
                            "messages": {
                                "m1": {
                                    # 8452d01d26d7 copies history into chat_message; without a timestamp
                                    # it stamps the time of the copy, which two runs cannot share.
                                    "role": "user",
                                    "content": "hi",
                                    "timestamp": 1700000000,
                                }
                            }
                        }
                    }
                ),
            },
        )


def _open_webui_kept(url: str) -> None:
    assert query(url, 'SELECT id, email FROM "user"') == [("u1", "ann@example.com")]
    assert [r[0] for r in query(url, "SELECT id FROM chat ORDER BY id")] == ["c1", "c2"]


OPEN_WEBUI_SHIPPED = Shipped(
    name="open-webui",
    venv=_open_webui_venv,
    folder=lambda venv: venv.site_packages / "open_webui" / "migrations",
    head="0bd252b206fb",
    settings={},
    fresh=_open_webui_alembic("head"),
    old=_open_webui_alembic("c440947495f3"),
    old_revision="c440947495f3",
    seed=_open_webui_seed,
    upgrade=_open_webui_alembic("head"),
    assert_kept=_open_webui_kept,
    app_env=OPEN_WEBUI_ENV,
)


# The stock `alembic init -t async` project: env.py as the async template writes it,
# the app's own async URL, and the generic fixture's three revisions (the third drops
# note.body: no loss on a fresh database, a real loss once notes have bodies).

ASYNC_REQUIREMENTS = ("aiosqlite==0.22.1", "asyncpg==0.32.0", "greenlet==3.5.6")


def _async_venv() -> Venv:
    venv = Venv.cached("async", [*_runtime_requirements(), *ASYNC_REQUIREMENTS])
    async_project(venv, FIXTURES / "generic_env", async_root(venv))
    return venv


def async_root(venv: Venv) -> Path:
    """Where the async project is written: beside the venv's packages, cached with them."""
    return venv.path / "project"


def async_url(url: str) -> str:
    if is_sqlite(url):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


def async_project(venv: Venv, generic: Path, root: Path) -> Path:
    """`alembic init -t async` in ``root``, with the generic fixture's revisions: the Alembic folder."""
    folder = root / "alembic"
    if not (folder / "env.py").is_file():
        root.mkdir(parents=True, exist_ok=True)
        result = run_in(venv, "-m", "alembic", "init", "-t", "async", "alembic", cwd=root)
        assert result.code == 0, result.out
        for script in sorted((generic / "alembic" / "versions").glob("*.py")):
            shutil.copy(script, folder / "versions" / script.name)
    return folder


def _async_alembic(revision: str) -> Callable[[Venv, str, Path], None]:
    def upgrade(venv: Venv, url: str, cwd: Path) -> None:
        folder = async_root(venv) / "alembic"
        ini = cwd / "async-alembic.ini"
        cwd.mkdir(parents=True, exist_ok=True)
        if is_sqlite(url):
            sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
        rewrite_ini(
            async_root(venv) / "alembic.ini", ini, {"script_location": str(folder), "sqlalchemy.url": async_url(url)}
        )
        result = run_in(venv, "-m", "alembic", "-c", ini, "upgrade", revision, cwd=cwd)
        assert result.code == 0, f"alembic upgrade {revision} (async template) failed:\n{result.out}"

    return upgrade


def _async_seed(url: str) -> None:
    query(url, "INSERT INTO note (body, title) VALUES ('keep me', 'first'), ('and me', NULL)")


def _async_kept(url: str) -> None:
    assert query(url, "SELECT id, title FROM note ORDER BY id") == [(1, "first"), (2, None)]


ASYNC_SHIPPED = Shipped(
    name="async-template",
    venv=_async_venv,
    folder=lambda venv: async_root(venv) / "alembic",
    head="a1c0de000003",
    settings={},
    fresh=_async_alembic("head"),
    old=_async_alembic("a1c0de000002"),
    old_revision="a1c0de000002",
    seed=_async_seed,
    upgrade=_async_alembic("head"),
    assert_kept=_async_kept,
    destroys=("a1c0de000003",),
    app_url=async_url,
)

# optuna: RDBStorage runs create_all on a new database, stamps the head and writes its
# version_info row; `optuna storage upgrade` is alembic upgrade head.  Its chain cannot
# update from v1.2.0.a on PostgreSQL (test_a_chain_that_fails_under_plain_alembic_fails_honestly).

_OPTUNA_FRESH = """
import optuna
optuna.storages.RDBStorage(URL)
"""

_OPTUNA_START = """
import sqlalchemy
from optuna.storages._rdb.models import BaseModel
engine = sqlalchemy.create_engine(URL)
BaseModel.metadata.create_all(engine)
engine.dispose()
"""

OPTUNA_SHIPPED = Shipped(
    name="optuna",
    venv=OPTUNA.venv,
    folder=lambda venv: venv.migrations(OPTUNA),
    head=OPTUNA.head,
    # Its BaseModel holds trial_heartbeats too, which only create_all makes.
    settings={"EMPTY_DATABASE": "models", "MODELS": OPTUNA.check_models},
    fresh=lambda venv, url, cwd: own_path(venv, _OPTUNA_FRESH, url, cwd),
    old=lambda venv, url, cwd: plain_alembic(OPTUNA, venv, url, OPTUNA.old_revision, cwd),
    old_revision=OPTUNA.old_revision,
    seed=OPTUNA.seed,
    # `optuna storage upgrade`, then RDBStorage's start-up create_all (trial_heartbeats).
    upgrade=lambda venv, url, cwd: (
        plain_alembic(OPTUNA, venv, url, "head", cwd),
        own_path(venv, _OPTUNA_START, url, cwd),
    ),
    assert_kept=OPTUNA.assert_kept,
    # v2.4.0.a copies studies.direction, trials.value and trial_values.step into new tables, then drops them.
    destroys=("v2.4.0.a",),
    started=frozenset({"version_info"}),
    update_engines=("sqlite",),
)

SHIPPED = (OPTUNA_SHIPPED, MLFLOW_SHIPPED, JUPYTERHUB_SHIPPED, OPEN_WEBUI_SHIPPED, ASYNC_SHIPPED)
