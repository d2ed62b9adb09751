"""migrate-init on real, unmodified Alembic projects from PyPI, on SQLite and PostgreSQL.

Two projects whose wheels ship an Alembic folder (env.py + versions/) are
installed from the package index into cached venvs (third_party.py), and
migrate.py runs in those venvs with MIGRATIONS_DIR pointing into
site-packages: their env.py files are never edited.  optuna's env.py calls
fileConfig and builds its own engine with engine_from_config; meltano's takes
``config.attributes["connection"]`` when it is there.  For each project, on
both engines:

- a fresh deploy leaves the schema plain ``alembic upgrade head`` leaves
  (an inspector dump, compared whole), and a second run is answered by the
  fast path without touching the database;
- an update from an old revision with rows in it keeps them, and ends where
  plain Alembic ends from the same rows (schema and data compared whole);
- status, plan, check, verify and lint answer, and leave the database byte
  for byte as it was (the SQLite file's SHA-256, pg_dump's output).

Both upstream chains drop, rename or retype columns on purpose (after moving
the data).  No run sets ALLOW_DESTRUCTIVE=true: a fresh deploy loses nothing, and
an update whose revision really destroys rows is refused (exit 8, naming it) and
then allowed by name (``Project.destroys``).  The guard itself is
proved on a generic ``alembic init`` project (tests/fixtures/generic_env/):
a migration that drops a column with data in it is refused with exit 8, the
data stays, and ``plan`` changes nothing.

optuna deploys without MODELS: its BaseModel also defines trial_heartbeats,
which no migration creates (optuna's start-up makes it with create_all), so a
deploy verified against it could never pass.  Without MODELS a run checks the
revision only (README), and so must ``verify`` and the fast path; ``check``,
which compares with models by nature, gets MODELS=BaseModel and must agree
with Alembic's own compare_metadata.

Each ``Shipped`` project (third_party.py) runs as a deployment would: its env.py
as shipped, its EMPTY_DATABASE, no ALLOW_DESTRUCTIVE.  A fresh install must equal
the project's own way of building its database (schema and rows), and an update
of an older database with rows must equal the project's own upgrade, or be
refused with exit 8 at the revision that really destroys rows, and then pass with
that one revision allowed.

``migrate.py manifest`` writes its .manifest.marshal into the project's folder
in the cached venv, as the image build writes it into the image.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.integration.third_party import (
    OPTUNA,
    PROJECTS,
    SHIPPED,
    Project,
    Shipped,
    Venv,
    alembic_drift,
    data_dump,
    driver_url,
    fingerprint,
    migrate,
    plain_alembic,
    rewrite_ini,
    run_in,
    schema_dump,
    versions_in,
)
from tests.support import FIXTURES, not_a_case
from tests.support.dbstate import is_sqlite, query, sqlite_path
from tests.support.process import run_migrate, run_python

GENERIC = FIXTURES / "generic_env"
FAST_PATH = "Fast path: the database is at"

# The first session builds the projects' venvs with pip (about a minute each
# on a fresh machine) inside the first test that needs them.
pytestmark = pytest.mark.timeout(900)


def engine_of(url: str) -> str:
    return "sqlite" if is_sqlite(url) else "postgresql"


@pytest.fixture(scope="session", params=PROJECTS, ids=[p.name for p in PROJECTS])
def project(request) -> Project:
    return request.param


@pytest.fixture(scope="session")
def venv(project: Project) -> Venv:
    return project.venv()


class References:
    """Plain ``alembic upgrade head`` on an empty database, once per project and engine."""

    def __init__(self, pg_server, tmp_path_factory):
        self._pg = pg_server
        self._tmp = tmp_path_factory
        self._schemas: dict[tuple[str, str], dict] = {}

    def schema(self, project: Project, venv: Venv, engine: str) -> dict:
        key = (project.name, engine)
        if key not in self._schemas:
            workdir = self._tmp.mktemp(f"reference-{project.name}-{engine}")
            if engine == "sqlite":
                url = f"sqlite:///{workdir / 'reference.db'}"
                plain_alembic(project, venv, url, "head", workdir)
                self._schemas[key] = schema_dump(url)
            else:
                name = f"ref_{uuid.uuid4().hex[:12]}"
                url = self._pg.create_database(name)
                try:
                    plain_alembic(project, venv, url, "head", workdir)
                    self._schemas[key] = schema_dump(url)
                finally:
                    self._pg.drop_database(name)
        return self._schemas[key]


@pytest.fixture(scope="session")
def references(pg_server, tmp_path_factory) -> References:
    return References(pg_server, tmp_path_factory)


@pytest.fixture
def second_url(db_url, pg_server, tmp_path):
    """Another empty database on the same engine as db_url, for plain Alembic."""
    if is_sqlite(db_url):
        yield f"sqlite:///{tmp_path / 'reference' / 'reference.db'}"
        return
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = pg_server.create_database(name)
    yield url
    pg_server.drop_database(name)


@pytest.fixture
def workdir(tmp_path) -> Path:
    """An empty working directory for migrate.py: it must stay empty."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def env_for(
    project: Project, venv: Venv, url: str, tmp_path: Path, models: str | None = None, **extra: str
) -> dict[str, str]:
    env = {
        "DATABASE_URL": url,
        "MIGRATIONS_DIR": str(venv.migrations(project)),
        "DB_WAIT_TIMEOUT": "10",
        # Cold imports of the projects (numpy, pandas) count against it on slow machines.
        "MIGRATION_TIMEOUT": "120",
        # No ALLOW_DESTRUCTIVE: the defaults are what users get (issue 22).
        "REPORT_FILE": str(tmp_path / "report.json"),
        "LOG_LEVEL": "DEBUG",
        **extra,
    }
    models = models or project.models
    if models:
        env["MODELS"] = models
    return env


def refused_then_allowed(venv: Venv, env: dict[str, str], workdir: Path, destroys: tuple[str, ...]):
    """A run with the defaults; where a revision destroys rows: exit 8 naming it, then that one allowed."""
    result = migrate(venv, env=env, cwd=workdir)
    if not destroys:
        return result
    # Refused, rolled back, and the message gives the setting that allows that one revision.
    assert result.code == 8, result.out
    summary = [line for line in result.out.splitlines() if "(exit 8)" in line][-1]
    assert destroys[0] in summary and f"ALLOW_DESTRUCTIVE={destroys[0]}" in summary, summary
    return migrate(venv, env={**env, "ALLOW_DESTRUCTIVE": ",".join(destroys)}, cwd=workdir)


def assert_migrated(result, url: str, project: Project) -> None:
    assert result.code == 0, result.out
    assert "FALLBACK USED" not in result.out, result.out
    assert versions_in(url) == [project.head], result.out


def assert_workdir_empty(workdir: Path) -> None:
    # optuna's shipped alembic.ini says sqlalchemy.url = sqlite:///alembic.db:
    # an env.py that connected there would leave that file here.
    assert sorted(p.name for p in workdir.iterdir()) == []


# -- fresh deploy, then the fast path -------------------------------------------------


def test_fresh_deploy_equals_plain_alembic_and_the_second_run_takes_the_fast_path(
    project, venv, db_url, references, workdir, tmp_path
):
    reference = references.schema(project, venv, engine_of(db_url))
    env = env_for(project, venv, db_url, tmp_path)

    result = migrate(venv, env=env, cwd=workdir)

    assert_migrated(result, db_url, project)
    assert schema_dump(db_url) == reference
    assert_workdir_empty(workdir)

    manifest = migrate(venv, "manifest", env=env, cwd=workdir)
    assert manifest.code == 0, manifest.out
    before = fingerprint(db_url)

    second = migrate(venv, env=env, cwd=workdir)

    assert second.code == 0, second.out
    assert FAST_PATH in second.out, second.out
    assert "Fast path not taken" not in second.out, second.out
    assert fingerprint(db_url) == before
    assert_workdir_empty(workdir)


# -- update deploy from an old revision with rows -------------------------------------


def _upstream_breaks_the_update(params: dict) -> bool:
    """optuna's own chain cannot update from v1.2.0.a on PostgreSQL.

    v2.4.0.a creates study_directions with an Enum named ``studydirection``,
    which v0.9.0.a already created; a run that started before v0.9.0.a
    remembers the type and skips it, a later one does not.  Plain
    ``alembic upgrade head`` fails the same way (DuplicateObject), so the
    proof there is that migrate-init fails exactly as honestly: see
    test_a_chain_that_fails_under_plain_alembic_fails_honestly.
    """
    return params["project"].name == "optuna" and params["db_url"] != "sqlite"


@not_a_case(_upstream_breaks_the_update)
def test_update_from_an_old_revision_keeps_the_rows_as_plain_alembic_does(
    project, venv, db_url, second_url, workdir, tmp_path
):
    for url in (db_url, second_url):
        plain_alembic(project, venv, url, project.old_revision, tmp_path / "alembic")
        project.seed(url)
    env = env_for(project, venv, db_url, tmp_path)

    status = migrate(venv, "status", env=env, cwd=workdir)
    assert status.code == 1, status.out
    before = fingerprint(db_url)
    plan = migrate(venv, "plan", env=env, cwd=workdir)
    # plan exits as run would (issue 24): 8 where a revision moves values and drops their source.
    refused = project.destroys.get(engine_of(db_url), ())
    assert plan.code == (8 if refused else 0), plan.out
    assert all(f"ALLOW_DESTRUCTIVE={rev}" in plan.out for rev in refused), plan.out
    missing = [rev for rev in project.pending if rev not in plan.out]
    assert not missing, (missing, plan.out)
    assert fingerprint(db_url) == before, plan.out
    assert versions_in(db_url) == [project.old_revision]

    result = refused_then_allowed(venv, env, workdir, project.destroys.get(engine_of(db_url), ()))

    assert_migrated(result, db_url, project)
    project.assert_kept(db_url)
    plain_alembic(project, venv, second_url, "head", tmp_path / "alembic")
    assert schema_dump(db_url) == schema_dump(second_url)
    assert data_dump(db_url, project.volatile) == data_dump(second_url, project.volatile)
    assert_workdir_empty(workdir)


def test_a_chain_that_fails_under_plain_alembic_fails_honestly(pg_url, pg_server, workdir, tmp_path):
    """optuna from v1.2.0.a on PostgreSQL: plain alembic fails at v2.4.0.a; so does migrate-init, and says so.

    Exit 1 naming v2.4.0.a and its file and line, that migration rolled back, the
    one before it (v1.3.0.a) committed and recorded, the rows kept, no fallback
    (MODELS is not set), nothing claimed that did not happen.
    """
    project = OPTUNA
    venv = project.venv()
    reference = pg_server.create_database(f"t_{uuid.uuid4().hex[:16]}")
    try:
        for url in (pg_url, reference):
            plain_alembic(project, venv, url, project.old_revision, tmp_path / "alembic")
            project.seed(url)
        ini = tmp_path / "alembic" / "optuna-alembic.ini"
        project.write_ini(venv, driver_url(reference), ini)
        plain = run_in(venv, "-m", "alembic", "-c", ini, "upgrade", "head", cwd=tmp_path / "alembic")
        assert plain.code != 0 and 'type "studydirection" already exists' in plain.out, plain.out

        result = migrate(venv, env=env_for(project, venv, pg_url, tmp_path), cwd=workdir)

        assert result.code == 1, result.out
        summary = [line for line in result.out.splitlines() if "FAILED (exit 1)" in line][-1]
        assert "Migration v2.4.0.a (" in summary and "v2.4.0.a.py:" in summary, summary
        assert 'type "studydirection" already exists' in summary and "rolled back" in summary, summary
        assert "FALLBACK USED" not in result.out and "OK (exit 0)" not in result.out, result.out
        assert versions_in(pg_url) == ["v1.3.0.a"]
        assert query(pg_url, "SELECT study_name FROM studies") == [("kept-study",)]
        assert_workdir_empty(workdir)
    finally:
        pg_server.drop_database(reference.rsplit("/", 1)[-1])


# -- the read-only commands at head ------------------------------------------------------


def test_status_plan_check_verify_and_lint_at_head_leave_the_database_unchanged(
    project, venv, db_url, workdir, tmp_path
):
    plain_alembic(project, venv, db_url, "head", tmp_path / "alembic")
    env = env_for(project, venv, db_url, tmp_path)
    # Both projects' models differ from what their migrations build (optuna's
    # trial_heartbeats is made by create_all at start-up; meltano's nullability):
    # `check` must say what Alembic's own compare_metadata says.
    drift = alembic_drift(project, venv, db_url, workdir)
    before = fingerprint(db_url)

    status = migrate(venv, "status", env=env, cwd=workdir)
    assert status.code == 0, status.out
    assert project.head in status.out, status.out
    assert fingerprint(db_url) == before, "status changed the database"

    verify = migrate(venv, "verify", env=env, cwd=workdir)
    assert verify.code == 0, verify.out
    assert fingerprint(db_url) == before, "verify changed the database"

    check_env = env_for(project, venv, db_url, tmp_path, models=project.check_models)
    check = migrate(venv, "check", env=check_env, cwd=workdir)
    assert check.code == (1 if drift else 0), (drift, check.out)
    assert fingerprint(db_url) == before, "check changed the database"

    plan = migrate(venv, "plan", env=env, cwd=workdir)
    assert plan.code == 0, plan.out
    assert fingerprint(db_url) == before, f"plan changed the database:\n{plan.out}"

    lint = migrate(venv, "lint", env=env, cwd=workdir)
    # Candidate losses seen from an empty database are warnings (run judges the values): lint passes.
    assert lint.code == 0, lint.out
    assert project.lint_finding in lint.out and "[warning]" in lint.out and "[error]" not in lint.out, lint.out
    assert fingerprint(db_url) == before, f"lint changed the database:\n{lint.out}"
    assert versions_in(db_url) == [project.head]
    assert_workdir_empty(workdir)


# -- a generic `alembic init` project: the guard ------------------------------------------


def _generic_plain_alembic(url: str, revision: str, tmp_path: Path) -> None:
    """The fixture run by the plain alembic CLI, its ini pointed at ``url``."""
    ini = tmp_path / "generic-alembic.ini"
    rewrite_ini(
        GENERIC / "alembic.ini",
        ini,
        {
            "script_location": str(GENERIC / "alembic"),
            "sqlalchemy.url": driver_url(url),
        },
    )
    if is_sqlite(url):
        sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
    result = run_python("-m", "alembic", "-c", ini, "upgrade", revision, cwd=tmp_path)
    assert result.code == 0, result.out


def test_generic_env_refuses_dropping_a_column_with_data_and_plan_changes_nothing(db_url, workdir, tmp_path):
    _generic_plain_alembic(db_url, "a1c0de000002", tmp_path)
    query(db_url, "INSERT INTO note (body, title) VALUES ('keep me', 'first'), ('and me', NULL)")
    rows = query(db_url, "SELECT id, body, title FROM note ORDER BY id")
    env = {
        "DATABASE_URL": db_url,
        "MIGRATIONS_DIR": str(GENERIC / "alembic"),
        "DB_WAIT_TIMEOUT": "10",
        "REPORT_FILE": str(tmp_path / "report.json"),
        "LOG_LEVEL": "DEBUG",
    }
    before = fingerprint(db_url)

    plan = run_migrate("plan", env=env, cwd=workdir)

    assert plan.code == 8, plan.out  # as run exits below (issue 24: plan is a gate)
    assert "a1c0de000003" in plan.out, plan.out
    assert fingerprint(db_url) == before, f"plan changed the database:\n{plan.out}"

    result = run_migrate(env=env, cwd=workdir)

    assert result.code == 8, result.out
    assert "a1c0de000003" in result.out, result.out
    assert query(db_url, "SELECT id, body, title FROM note ORDER BY id") == rows
    assert versions_in(db_url) == ["a1c0de000002"]
    assert sorted(p.name for p in workdir.iterdir()) == []


def test_generic_env_fixture_is_what_alembic_init_writes(tmp_path):
    """env.py and alembic.ini are byte for byte the installed Alembic's generic template."""
    result = run_python("-m", "alembic", "init", "alembic", cwd=tmp_path)
    assert result.code == 0, result.out
    assert (GENERIC / "alembic" / "env.py").read_bytes() == (tmp_path / "alembic" / "env.py").read_bytes()
    assert (GENERIC / "alembic.ini").read_bytes() == (tmp_path / "alembic.ini").read_bytes()


# -- each project as shipped, with the defaults: no ALLOW_DESTRUCTIVE=true (issue 22) -----------


@pytest.fixture(scope="session", params=SHIPPED, ids=[s.name for s in SHIPPED])
def shipped(request) -> Shipped:
    return request.param


@pytest.fixture(scope="session")
def shipped_venv(shipped: Shipped) -> Venv:
    return shipped.venv()


def shipped_env(shipped: Shipped, venv: Venv, url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """What a deployment of ``shipped`` sets: never ALLOW_DESTRUCTIVE unless ``extra`` names revisions."""
    return {
        "DATABASE_URL": shipped.app_url(url),
        "MIGRATIONS_DIR": str(shipped.folder(venv)),
        "DATA_DIR": str(tmp_path / "data"),
        "DB_WAIT_TIMEOUT": "10",
        # mlflow's 67 revisions and open-webui's imports, on a loaded 2-core machine.
        "MIGRATION_TIMEOUT": "300",
        "REPORT_FILE": str(tmp_path / "report.json"),
        **shipped.settings,
        **shipped.app_env,
        **extra,
    }


def test_a_fresh_install_is_built_the_way_the_project_builds_it(
    shipped, shipped_venv, db_url, second_url, workdir, tmp_path
):
    venv = shipped_venv
    shipped.fresh(venv, second_url, tmp_path / "own")

    result = migrate(venv, env=shipped_env(shipped, venv, db_url, tmp_path), cwd=workdir)

    assert result.code == 0, result.out
    assert "FALLBACK USED" not in result.out, result.out
    assert versions_in(db_url) == [shipped.head], result.out
    assert schema_dump(db_url) == schema_dump(second_url)
    theirs = data_dump(second_url, shipped.volatile)
    assert data_dump(db_url, shipped.volatile) == {
        table: ([] if table in shipped.started else rows) for table, rows in theirs.items()
    }
    assert_workdir_empty(workdir)


@not_a_case(lambda params: params["db_url"] not in params["shipped"].update_engines)  # as above
def test_an_update_of_a_seeded_older_database_keeps_its_rows_or_names_the_revision_that_destroys_them(
    shipped, shipped_venv, db_url, second_url, workdir, tmp_path, request
):
    venv = shipped_venv
    if shipped.update_missing:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=shipped.update_missing))
    for url in (db_url, second_url):
        shipped.old(venv, url, tmp_path / "own")
        shipped.seed(url)
    assert versions_in(db_url) == [shipped.old_revision]
    shipped.upgrade(venv, second_url, tmp_path / "own")
    env = shipped_env(shipped, venv, db_url, tmp_path)

    result = refused_then_allowed(venv, env, workdir, shipped.destroys)

    assert result.code == 0, result.out
    assert "FALLBACK USED" not in result.out, result.out
    assert versions_in(db_url) == [shipped.head], result.out
    shipped.assert_kept(db_url)
    assert schema_dump(db_url) == schema_dump(second_url)
    assert data_dump(db_url, shipped.volatile) == data_dump(second_url, shipped.volatile)
    assert_workdir_empty(workdir)
