"""Issue 22 (items 3 and 4): the env.py shapes real projects ship, run as they are.

- jupyterhub's (and the older cookbook's) env.py calls ``.connect()`` on
  ``config.attributes["connection"]``, expecting an Engine there
  (tests/fixtures/connect_env/, a minimal project of that exact shape);
- the stock ``alembic init -t async`` project, generated here by the real
  ``alembic init``, with the app's own async URL (aiosqlite, asyncpg, aiomysql);
- ``version_locations`` with ``%(here)s`` in the project's alembic.ini;
- a migration that inspects through ``op.get_bind().engine`` (jupyterhub's
  651f5419b74d): on SQLite it once waited for its own write lock until
  MIGRATION_TIMEOUT; on PostgreSQL ``plan`` could not see what the previous
  migration of the same plan created.

Real SQLite files, the real PostgreSQL and MariaDB servers, migrate.py as a real process;
the guard stays on (no ALLOW_DESTRUCTIVE) and MIGRATION_TIMEOUT is left short
so that a self-deadlock would fail the run, not slow it.
"""

from __future__ import annotations

import re
import shutil
import signal
import sqlite3
import textwrap
from pathlib import Path

import pytest

from migrate_init.url import parse as parse_url
from tests.support import FIXTURES
from tests.support.chains import BODIES
from tests.support.dbstate import (
    columns,
    count,
    in_progress,
    is_mysql,
    is_sqlite,
    query,
    snapshot,
    sqlite_path,
    table_count,
    versions,
)
from tests.support.process import (
    Runner,
    migrate_env,
    operator_env,
    run_migrate,
    run_python,
    summary_line,
    wait_until,
)

CONNECT_ENV = FIXTURES / "connect_env"
GENERIC = FIXTURES / "generic_env"

_REVISION = '''"""{name}"""
import os
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{body}


def downgrade() -> None:
    pass
'''


def write_revision(folder: Path, revision: str, down: str | None, body: str) -> Path:
    path = folder / f"{revision}.py"
    path.write_text(
        _REVISION.format(
            name=f"test {revision}",
            revision=revision,
            down=down,
            body=textwrap.indent(textwrap.dedent(body).strip("\n"), "    "),
        )
    )
    return path


_ITEMS = """
op.create_table("item", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40)),
                sa.Column("note", sa.String(40)))
op.execute("INSERT INTO item (id, name, note) VALUES (1, 'kept', 'a note')")
"""

#: jupyterhub 651f5419b74d's shape: it asks the migration's engine what exists.
_INSPECTS_ENGINE = """
tables = sa.inspect(op.get_bind().engine).get_table_names()
if "item" not in tables:
    raise RuntimeError(f"item is not there: {tables}")
op.add_column("item", sa.Column("added", sa.Integer))
"""

_DROPS_NOTE = """
with op.batch_alter_table("item") as batch:
    batch.drop_column("note")
"""


def empty_database(url: str) -> None:
    """A SQLite file with nothing in it (plan opens an existing database read-only); a server's is there."""
    if is_sqlite(url):
        sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(sqlite_path(url)).close()


def items_chain(versions: Path, first: str, second: str) -> None:
    """``first`` creates item with a row; ``second`` inspects through the engine and adds a column."""
    write_revision(versions, first, None, _ITEMS)
    write_revision(versions, second, first, _INSPECTS_ENGINE)


# -- config.attributes["connection"].connect() ------------------------------------------


def connect_project(tmp_path: Path) -> Path:
    folder = tmp_path / "hub"
    shutil.copytree(CONNECT_ENV, folder)
    items_chain(folder / "versions", "h1", "h2")
    return folder


def test_an_env_py_that_calls_connect_on_the_attribute_runs_and_the_next_run_has_nothing_to_do(db_url, tmp_path):
    folder = connect_project(tmp_path)
    env = operator_env(db_url, tmp_path, MIGRATIONS_DIR=folder, MIGRATION_TIMEOUT=30)

    first = run_migrate(env=env)
    again = run_migrate(env=env)

    assert first.code == 0, first.out
    assert versions(db_url) == ["h2"]
    assert columns(db_url, "item") == {"id", "name", "note", "added"}
    assert count(db_url, "item") == 1
    assert again.code == 0, again.out
    assert "nothing to do" in summary_line(again.out), again.out


def generic_project(tmp_path: Path) -> Path:
    """What plain ``alembic init`` writes (tests/fixtures/generic_env/), with only h1 and the inspecting h2."""
    shutil.copytree(GENERIC, tmp_path / "generic")
    folder = tmp_path / "generic" / "alembic"
    shutil.rmtree(folder / "versions")  # the fixture's own chain: these tests bring theirs
    (folder / "versions").mkdir()
    items_chain(folder / "versions", "h1", "h2")
    return folder


def test_a_migration_inspecting_through_its_engine_runs_and_plan_agrees(db_url, tmp_path):
    """SQLite: no wait on its own write lock.  PostgreSQL: plan sees what h1 made in the same transaction."""
    folder = generic_project(tmp_path)
    env = operator_env(db_url, tmp_path, MIGRATIONS_DIR=folder, MIGRATION_TIMEOUT=30)
    empty_database(db_url)
    before = snapshot(db_url)

    plan = run_migrate("plan", env=env)

    assert plan.code == 0, plan.out
    assert "h2" in plan.out and "added" in plan.out, plan.out
    assert snapshot(db_url) == before
    assert versions(db_url) == []

    result = run_migrate(env=env)

    assert result.code == 0, result.out
    assert "MIGRATION_TIMEOUT" not in result.out, result.out
    assert versions(db_url) == ["h2"]
    assert "added" in columns(db_url, "item")


def test_a_migration_writing_through_its_engine_writes_in_its_own_transaction(sqlite_url, tmp_path):
    """engine.begin() inside a migration is the migration's transaction: a failure later undoes it too."""
    folder = generic_project(tmp_path)
    write_revision(
        folder / "versions",
        "h3",
        "h2",
        """
        with op.get_bind().engine.begin() as connection:
            connection.execute(sa.text("INSERT INTO item (id, name) VALUES (2, 'through the engine')"))
            assert "item" in sa.inspect(connection).get_table_names()
        with op.get_bind().engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM item")).scalar() == 2
        raise RuntimeError("h3 fails after writing")
    """,
    )
    env = operator_env(sqlite_url, tmp_path, MIGRATIONS_DIR=folder, MIGRATION_TIMEOUT=30)

    result = run_migrate(env=env)

    assert result.code == 1, result.out
    assert "h3.py" in summary_line(result.out) and "h3 fails after writing" in summary_line(result.out), result.out
    assert versions(sqlite_url) == ["h2"]
    assert count(sqlite_url, "item") == 1


# -- the stock async template --------------------------------------------------------------


def async_project(tmp_path: Path) -> Path:
    """``alembic init -t async`` as a user runs it, plus two revisions; returns the script folder."""
    made = run_python("-m", "alembic", "init", "-t", "async", "alembic", cwd=tmp_path)
    assert made.code == 0, made.out
    folder = tmp_path / "alembic"
    assert "async_engine_from_config" in (folder / "env.py").read_text()
    items_chain(folder / "versions", "a1", "a2")
    return folder


#: Each engine's async driver, and the fixture of a brand-new database of that engine.
ASYNC_DRIVERS = {"sqlite+aiosqlite": "sqlite_url", "postgresql+asyncpg": "pg_url", "mysql+aiomysql": "mysql_url"}


@pytest.fixture(
    params=[
        "sqlite+aiosqlite",
        pytest.param("postgresql+asyncpg", marks=pytest.mark.postgres),
        pytest.param("mysql+aiomysql", marks=pytest.mark.mysql),
    ]
)
def async_url(request: pytest.FixtureRequest) -> str:
    """The app's own async URL for a brand-new database."""
    scheme = request.param
    plain = request.getfixturevalue(ASYNC_DRIVERS[scheme])
    return scheme + plain[plain.index("://") :]


def plain_url(url: str) -> str:
    """The same database, as the test's own (sync) helpers reach it."""
    scheme, rest = url.split("://", 1)
    return scheme.partition("+")[0] + "://" + rest


def test_the_async_template_runs_unmodified_with_the_apps_async_url(async_url, tmp_path):
    folder = async_project(tmp_path)
    env = operator_env(async_url, tmp_path, MIGRATIONS_DIR=folder, MIGRATION_TIMEOUT=30)
    db = plain_url(async_url)
    empty_database(db)

    plan = run_migrate("plan", env=env)
    first = run_migrate(env=env)
    again = run_migrate(env=env)

    assert plan.code == 0, plan.out
    assert "a2" in plan.out, plan.out
    # Where DDL is transactional, plan rehearses the chain and shows its SQL; elsewhere it lists it, not run.
    assert ("added" in plan.out) is parse_url(db).engine.transactional_ddl, plan.out
    assert first.code == 0, first.out
    assert versions(db) == ["a2"]
    assert columns(db, "item") == {"id", "name", "note", "added"}
    assert again.code == 0, again.out
    assert "nothing to do" in summary_line(again.out), again.out


def test_the_guard_refuses_a_data_losing_drop_in_the_async_template(async_url, tmp_path):
    folder = async_project(tmp_path)
    write_revision(folder / "versions", "a3", "a2", _DROPS_NOTE)
    env = operator_env(async_url, tmp_path, MIGRATIONS_DIR=folder, MIGRATION_TIMEOUT=30)
    db = plain_url(async_url)
    assert run_migrate("upgrade", "a2", env=env).code == 0
    before = snapshot(db)

    result = run_migrate(env=env)

    assert result.code == 8, result.out
    assert "a3" in summary_line(result.out), result.out
    assert versions(db) == ["a2"]
    assert snapshot(db) == before
    assert query(db, "SELECT note FROM item") == [("a note",)]


def test_sigterm_mid_migration_rolls_back_what_the_engine_can_in_the_async_template(async_url, tmp_path):
    folder = async_project(tmp_path)
    write_revision(folder / "versions", "slow", "a2", BODIES["slow"])
    marker = tmp_path / "marker"
    db = plain_url(async_url)
    runner = Runner(
        migrate_env(
            async_url,
            MIGRATIONS_DIR=folder,
            ROBUST_MARKER=marker,
            ROBUST_SLOW_SECONDS=60,
            SEED_DIR=tmp_path / "no-seeds",
        ),
        tmp_path / "slow.log",
    )
    wait_until(lambda: marker.exists() and marker.read_text() == "slow", 60, "the run to be inside slow", runner)

    runner.signal(signal.SIGTERM)
    code = runner.wait(30)

    assert code == 143, runner.out
    assert "Stopped by SIGTERM" in runner.out, runner.out
    assert versions(db) == ["a2"]
    if parse_url(db).engine.transactional_ddl:  # rolled back whole
        assert table_count(db, "slow") == 0
    else:  # its table committed at once: the revision is recorded as interrupted
        assert in_progress(db) == ["slow"]


# -- version_locations ------------------------------------------------------------------


def test_version_locations_with_here_are_honoured_and_a_revision_added_to_the_second_is_applied(sqlite_url, tmp_path):
    folder = tmp_path / "app"
    shutil.copytree(CONNECT_ENV, folder)
    shutil.rmtree(folder / "versions")
    (folder / "base_versions").mkdir()
    (folder / "more_versions").mkdir()
    ini = (
        (CONNECT_ENV / "alembic.ini")
        .read_text()
        .replace("[alembic]\n", "[alembic]\nversion_locations = %(here)s/base_versions %(here)s/more_versions\n", 1)
    )
    (folder / "alembic.ini").write_text(ini)
    write_revision(folder / "base_versions", "v1", None, _ITEMS)
    write_revision(folder / "more_versions", "v2", "v1", _INSPECTS_ENGINE)
    env = operator_env(sqlite_url, tmp_path, MIGRATIONS_DIR=folder, MIGRATION_TIMEOUT=30)

    first = run_migrate(env=env)
    idle = run_migrate(env=env)
    write_revision(folder / "more_versions", "v3", "v2", 'op.add_column("item", sa.Column("later", sa.Integer))')
    after = run_migrate(env=env)

    assert first.code == 0, first.out
    assert idle.code == 0 and "nothing to do" in summary_line(idle.out), idle.out
    assert after.code == 0, after.out
    assert "v3" in summary_line(after.out), after.out
    assert versions(sqlite_url) == ["v3"]
    assert "later" in columns(sqlite_url, "item")


def test_lint_reads_the_scripts_of_every_version_location(tmp_path):
    folder = tmp_path / "app"
    shutil.copytree(CONNECT_ENV, folder)
    (folder / "more_versions").mkdir()
    (folder / "alembic.ini").write_text(
        (CONNECT_ENV / "alembic.ini")
        .read_text()
        .replace("[alembic]\n", "[alembic]\nversion_locations = %(here)s/versions %(here)s/more_versions\n", 1)
    )
    write_revision(folder / "versions", "v1", None, _ITEMS)
    dropping = write_revision(folder / "more_versions", "v2", "v1", _DROPS_NOTE)

    result = run_migrate("lint", env=operator_env(f"sqlite:///{tmp_path}/unused.db", tmp_path, MIGRATIONS_DIR=folder))

    assert result.code == 0 and "[warning]" in result.out, result.out  # a candidate loss is a warning
    # The source pass (the SQL pass reads the chain whatever the folders) names the line in more_versions/.
    assert re.search(rf"^{re.escape(str(dropping))}:\d+: destructive: drop_column\(\)", result.out, re.M), result.out
    assert not (tmp_path / "unused.db").exists()


def test_an_empty_version_location_names_version_locations(sqlite_url, tmp_path):
    folder = tmp_path / "app"
    shutil.copytree(CONNECT_ENV, folder)
    (folder / "versions" / "sqlite").mkdir()
    write_revision(folder / "versions" / "sqlite", "s1", None, _ITEMS)

    result = run_migrate(env=operator_env(sqlite_url, tmp_path, MIGRATIONS_DIR=folder))

    assert result.code == 2, result.out
    assert "version_locations" in summary_line(result.out), result.out
    assert "versions/sqlite" in summary_line(result.out)
    assert not sqlite_path(sqlite_url).exists()


# -- an async driver migrate-init does not know ---------------------------------------------


def test_an_async_driver_migrate_init_does_not_know_is_exit_2_naming_it(sqlite_url, tmp_path):
    """A third-party async dialect, registered the way SQLAlchemy finds plugins (an entry point)."""
    site = tmp_path / "site"
    (site / "fakeasync-1.0.dist-info").mkdir(parents=True)
    (site / "fakeasync-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeasync\nVersion: 1.0\n")
    (site / "fakeasync-1.0.dist-info" / "entry_points.txt").write_text(
        "[sqlalchemy.dialects]\nsqlite.fakeasync = fakeasync:Dialect\n"
    )
    (site / "fakeasync.py").write_text(
        "from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite\n\n\n"
        "class Dialect(SQLiteDialect_aiosqlite):\n    driver = 'fakeasync'\n"
    )
    folder = async_project(tmp_path)
    url = sqlite_url.replace("sqlite://", "sqlite+fakeasync://", 1)

    result = run_migrate(env=operator_env(url, tmp_path, MIGRATIONS_DIR=folder, PYTHONPATH=site))

    assert result.code == 2, result.out
    assert "async driver 'fakeasync'" in summary_line(result.out), result.out
    assert not sqlite_path(sqlite_url).exists() or versions(sqlite_url) == []


# -- what env.py asks Alembic for -------------------------------------------------------------


def configure_with(folder: Path, option: str) -> None:
    """env.py passes ``option`` to both configure() calls, offline and online, as users write it."""
    env_py = folder / "env.py"
    text = env_py.read_text()
    text = text.replace(
        "target_metadata=target_metadata,\n        literal_binds=True,",
        f"target_metadata=target_metadata,\n        {option},\n        literal_binds=True,",
    )
    text = text.replace(
        "connection=connection, target_metadata=target_metadata\n",
        f"connection=connection, target_metadata=target_metadata, {option}\n",
    )
    assert text.count(option) == 2
    env_py.write_text(text)


def assert_every_command_reads(url: str, env: dict[str, str], version_rows: str) -> None:
    """A run, status, verify, manifest and a run again all read the version table ``version_rows`` selects."""
    first = run_migrate(env=env)
    status = run_migrate("status", env=env)
    verify = run_migrate("verify", env=env)
    manifest = run_migrate("manifest", env=env)
    again = run_migrate(env=env)

    assert first.code == 0, first.out
    assert "Upgraded base (empty) -> h2" in summary_line(first.out), first.out
    assert query(url, version_rows) == [("h2",)]
    assert versions(url) == []  # no alembic_version beside it
    assert status.code == 0, status.out
    assert "current:  h2" in status.out and "pending:  none" in status.out, status.out
    assert verify.code == 0, verify.out
    assert manifest.code == 0, manifest.out
    assert again.code == 0, again.out
    assert "nothing to do" in summary_line(again.out), again.out
    assert query(url, version_rows) == [("h2",)]


def test_a_version_table_of_its_own_is_what_every_command_and_the_manifest_read(db_url, tmp_path):
    """Issue 25 N14: env.py passes version_table="app_versions" (both branches, as users write it)."""
    folder = generic_project(tmp_path)
    configure_with(folder, "version_table='app_versions'")
    env = operator_env(db_url, tmp_path, MIGRATIONS_DIR=folder, MIGRATION_TIMEOUT=30)

    assert_every_command_reads(db_url, env, "SELECT version_num FROM app_versions")


def test_a_second_configure_after_migrations_committed_says_what_was_applied(sqlite_url, tmp_path):
    """Issue 25 N16: the refusal comes after the first configure's migrations committed."""
    folder = generic_project(tmp_path)
    env_py = folder / "env.py"
    env_py.write_text(env_py.read_text() + "\nif not context.is_offline_mode():\n    run_migrations_online()\n")
    env = operator_env(sqlite_url, tmp_path, MIGRATIONS_DIR=folder, MIGRATION_TIMEOUT=30)

    result = run_migrate(env=env)

    assert result.code == 2, result.out
    summary = summary_line(result.out)
    assert "several databases" in summary, summary
    assert "had applied h1, h2, which stay committed" in summary, summary
    assert "Nothing was applied" not in summary
    assert versions(sqlite_url) == ["h2"]


@pytest.fixture(
    params=[pytest.param("postgresql", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)]
)
def server_url(request: pytest.FixtureRequest) -> str:
    """A schema of its own is a server's notion (SQLite would need an attached file)."""
    return request.getfixturevalue({"postgresql": "pg_url", "mysql": "mysql_url"}[request.param])


def test_a_version_table_in_a_schema_of_its_own_is_what_every_run_reads(server_url, tmp_path, request):
    """Issue 25 N15: env.py passes version_table_schema (both branches); every run said "Upgraded base -> base"."""
    if is_mysql(server_url):  # a MySQL schema is a database: one of its own per test
        schema_name = "meta_" + re.sub(r"[^a-z0-9_]", "_", tmp_path.name.lower())[-24:]
        query(server_url, f"CREATE DATABASE {schema_name}")
        request.addfinalizer(lambda: query(server_url, f"DROP DATABASE IF EXISTS {schema_name}"))
    else:
        schema_name = "meta"
        query(server_url, f"CREATE SCHEMA {schema_name}")
    folder = generic_project(tmp_path)
    configure_with(folder, f"version_table_schema={schema_name!r}")
    env = operator_env(server_url, tmp_path, MIGRATIONS_DIR=folder, MIGRATION_TIMEOUT=30)

    assert_every_command_reads(server_url, env, f"SELECT version_num FROM {schema_name}.alembic_version")
