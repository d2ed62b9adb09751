"""Issue 25 N1, N23, N11, N5: a read-only verb cannot commit, and nothing env.py does escapes the guard.

- N1: ``plan`` on a chain whose c3 runs ``op.execute("COMMIT")`` (the old
  pattern for ``ALTER TYPE ... ADD VALUE``) printed "rolled back" and exited 0
  while the database was left at c3 with b2's drop committed. ``lint`` left its
  scratch schema ``migrate_init_lint`` behind on PostgreSQL.
- N23: a migration with ``autocommit_block()`` made plan and lint fail with
  "AssertionError ... fix it", while ``run`` applies it.
- N11: an env.py that runs ``DROP TABLE account`` on the handed connection
  after ``run_migrations()``: committed, exit 0.
- N5: a deferred constraint trigger on the version table that drops a column
  at COMMIT, after the guard looked.

A plan that cannot preview a revision without ending its transaction stops
there, names the revision and why, rolls back, and leaves the database exactly
as it was: the SQLite file byte for byte, PostgreSQL's schemas and rows.

Each test runs migrate.py as a real process on a real SQLite file and on a
database of the real PostgreSQL test server (``db_url``), with the project
``alembic init`` writes (tests/fixtures/generic_env/), and the guard on.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from migrate_init.url import parse as parse_url
from tests.integration.test_env_shapes import write_revision
from tests.support import FIXTURES
from tests.support.dbstate import (
    columns,
    count,
    is_mysql,
    is_sqlite,
    pg_query,
    query,
    snapshot,
    sqlite_path,
    tables,
    versions,
)
from tests.support.process import operator_env, run_migrate

GENERIC = FIXTURES / "generic_env"

#: a1: a table with two rows whose names are values a drop would lose.
CREATE_ACCOUNT = """
op.create_table("account", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40)),
                sa.Column("note", sa.String(40)))
op.execute("INSERT INTO account (id, name) VALUES (1, 'alice'), (2, 'bob')")
"""
#: b2: drops a column that holds nothing (run would apply it: no value is lost).
DROP_EMPTY_NOTE = 'op.drop_column("account", "note")'
#: b2: drops a column holding values (run refuses it: exit 8).
DROP_NAME = 'op.drop_column("account", "name")'
ADD_EXTRA = 'op.add_column("account", sa.Column("extra", sa.Integer))'


def project(tmp_path: Path, *bodies: tuple[str, str], env_py: str | None = None) -> Path:
    """The ``alembic init`` project with revisions ``(revision, body)`` chained in order; its folder."""
    shutil.copytree(GENERIC, tmp_path / "generic")
    folder = tmp_path / "generic" / "alembic"
    shutil.rmtree(folder / "versions")
    (folder / "versions").mkdir()
    down = None
    for revision, body in bodies:
        write_revision(folder / "versions", revision, down, body)
        down = revision
    if env_py is not None:
        (folder / "env.py").write_text(env_py)
    return folder


def state(url: str) -> object:
    """Everything a read-only verb must leave as it found: the file's bytes, or every schema and row."""
    if is_sqlite(url):
        return hashlib.sha256(sqlite_path(url).read_bytes()).hexdigest()
    if is_mysql(url):
        return snapshot(url), {table: query(url, f'SELECT * FROM "{table}" ORDER BY 1') for table in tables(url)}
    schema = pg_query(
        url,
        """
        SELECT n.nspname, c.relname, c.relkind, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
        ORDER BY 1, 2, 4""",
    )
    schemas = pg_query(url, "SELECT nspname FROM pg_namespace ORDER BY 1")
    types = pg_query(
        url,
        "SELECT t.typname, e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
        "ORDER BY 1, e.enumsortorder",
    )
    rows = {table: query(url, f'SELECT * FROM "{table}" ORDER BY 1') for table in sorted(tables(url))}
    return schema, schemas, types, rows


def at_a1(url: str, tmp_path: Path, folder: Path, then_env_py: str | None = None) -> dict[str, str]:
    """The database at a1 (account with alice and bob); the environment of the verbs on ``folder``.

    ``then_env_py`` replaces env.py once a1 is applied (by the env.py ``folder`` had).
    """
    if is_sqlite(url):
        sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
    env = operator_env(url, tmp_path, MIGRATIONS_DIR=folder, MIGRATION_TIMEOUT=30)
    first = run_migrate("upgrade", "a1", env=env)
    assert first.code == 0, first.out
    if then_env_py is not None:
        (folder / "env.py").write_text(then_env_py)
    return env


# -- N1: plan and lint end no transaction -----------------------------------------------


def test_plan_refuses_a_migration_that_commits_names_it_and_leaves_the_database_as_it_was(db_url, tmp_path):
    folder = project(tmp_path, ("a1", CREATE_ACCOUNT), ("b2", DROP_NAME), ("c3", 'op.execute("COMMIT")'))
    env = at_a1(db_url, tmp_path, folder)
    before = state(db_url)

    plan = run_migrate("plan", env=env)

    # b2 loses values, so run would refuse it (exit 8) before c3 is reached; plan says both.
    assert plan.code == 8, plan.out
    assert "c3" in plan.out and "could not preview" in plan.out, plan.out
    assert "COMMIT" in plan.out, plan.out
    assert state(db_url) == before
    assert versions(db_url) == ["a1"]
    assert "name" in columns(db_url, "account")


@pytest.mark.parametrize(
    "statement",
    [
        "COMMIT",
        "END",
        "ROLLBACK",
        "BEGIN",
        "commit; SELECT 1",
        "SELECT 1; COMMIT",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    ],
)
def test_plan_never_lets_a_transaction_ending_statement_reach_the_database(db_url, tmp_path, statement):
    folder = project(
        tmp_path,
        ("a1", CREATE_ACCOUNT),
        ("b2", DROP_EMPTY_NOTE),
        ("c3", f"op.execute({statement!r})"),
        ("d4", ADD_EXTRA),
    )
    env = at_a1(db_url, tmp_path, folder)
    before = state(db_url)

    plan = run_migrate("plan", env=env)

    # b2 would apply cleanly; c3 cannot be previewed: plan is a gate, and it does not pass.
    assert plan.code == 1, plan.out
    if is_sqlite(db_url) and statement.startswith("SELECT 1;"):
        # sqlite3 runs one statement per call: it refuses this string itself, and the first one is harmless.
        assert "You can only execute one statement at a time" in plan.out, plan.out
    else:
        assert "could not preview c3" in plan.out, plan.out
    assert "d4" not in plan.out.split("could not preview")[0].split("[")[-1], plan.out
    assert state(db_url) == before
    assert versions(db_url) == ["a1"]
    assert columns(db_url, "account") == {"id", "name", "note"}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("op.get_bind().commit()", "connection.commit()"),
        ("op.get_bind().rollback()", "connection.rollback()"),
    ],
)
def test_plan_refuses_a_commit_or_rollback_on_the_connection(db_url, tmp_path, body, why):
    folder = project(tmp_path, ("a1", CREATE_ACCOUNT), ("b2", DROP_EMPTY_NOTE), ("c3", body), ("d4", ADD_EXTRA))
    env = at_a1(db_url, tmp_path, folder)
    before = state(db_url)

    plan = run_migrate("plan", env=env)

    assert plan.code == 1, plan.out
    assert "could not preview c3" in plan.out and why in plan.out, plan.out
    assert state(db_url) == before


def test_plan_on_sqlite_refuses_what_bypasses_sqlalchemy(sqlite_url, tmp_path):
    """executescript() commits first, through the driver: SQLite's authorizer refuses that COMMIT."""
    body = 'op.get_bind().connection.driver_connection.executescript("SELECT 1;")'
    folder = project(tmp_path, ("a1", CREATE_ACCOUNT), ("b2", DROP_EMPTY_NOTE), ("c3", body), ("d4", ADD_EXTRA))
    env = at_a1(sqlite_url, tmp_path, folder)
    before = state(sqlite_url)

    plan = run_migrate("plan", env=env)

    assert plan.code == 1, plan.out
    assert "could not preview c3" in plan.out and "around SQLAlchemy" in plan.out, plan.out
    assert state(sqlite_url) == before
    assert versions(sqlite_url) == ["a1"]


AUTOCOMMIT_BLOCK = """
with op.get_context().autocommit_block():
    op.add_column("account", sa.Column("extra", sa.Integer))
"""


def test_plan_refuses_an_autocommit_block_naming_it_instead_of_an_assertion(db_url, tmp_path):
    folder = project(tmp_path, ("a1", CREATE_ACCOUNT), ("b2", DROP_EMPTY_NOTE), ("c3", AUTOCOMMIT_BLOCK))
    env = at_a1(db_url, tmp_path, folder)
    before = state(db_url)

    plan = run_migrate("plan", env=env)

    assert plan.code == 1, plan.out
    assert "AssertionError" not in plan.out, plan.out
    assert "could not preview c3" in plan.out and "autocommit_block" in plan.out, plan.out
    assert state(db_url) == before
    assert versions(db_url) == ["a1"]

    # run applies it, as before (N23): the refusal is plan's, not a defect of the revision.
    run = run_migrate(env=env)
    assert run.code == 0, run.out
    assert versions(db_url) == ["c3"]
    assert columns(db_url, "account") == {"id", "name", "extra"}


@pytest.mark.parametrize(
    ("body", "why"), [('op.execute("COMMIT")', "COMMIT, which commits"), (AUTOCOMMIT_BLOCK, "autocommit_block()")]
)
def test_lint_names_a_migration_that_commits_and_leaves_no_schema_behind(db_url, tmp_path, body, why):
    folder = project(tmp_path, ("a1", CREATE_ACCOUNT), ("b2", DROP_NAME), ("c3", body))
    env = at_a1(db_url, tmp_path, folder)
    before = state(db_url)

    lint = run_migrate("lint", env=env)

    # run applies c3 in a transaction of its own: lint warns that its SQL pass stopped there, and passes.
    assert lint.code == 0, lint.out
    assert "AssertionError" not in lint.out, lint.out
    assert "the SQL pass stopped at c3" in lint.out and why in lint.out, lint.out
    assert "[warning]" in lint.out and "[error]" not in lint.out, lint.out
    assert state(db_url) == before
    if not is_sqlite(db_url):
        assert pg_query(db_url, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'migrate_init_lint%'") == [(0,)]


BARE_COMMIT = "op.get_bind().connection.driver_connection.commit()"


@pytest.mark.parametrize("verb", ["plan", "lint"])
def test_a_commit_through_the_bare_postgresql_driver_is_refused_by_the_server(pg_url, tmp_path, verb):
    """libpq sends psycopg2's own commit() with no hook: the dry run's armed trigger makes the server fail it."""
    folder = project(tmp_path, ("a1", CREATE_ACCOUNT), ("b2", DROP_EMPTY_NOTE), ("c3", BARE_COMMIT), ("d4", ADD_EXTRA))
    env = at_a1(pg_url, tmp_path, folder)
    before = state(pg_url)

    result = run_migrate(verb, env=env)

    assert result.code == (1 if verb == "plan" else 0), result.out
    assert "could not preview c3" in result.out or "the SQL pass stopped at c3" in result.out, result.out
    assert "the server refused" in result.out or "database driver itself" in result.out, result.out
    assert pg_query(pg_url, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'migrate_init_lint%'") == [(0,)]
    assert state(pg_url) == before
    assert versions(pg_url) == ["a1"]
    assert columns(pg_url, "account") == {"id", "name", "note"}


def test_plan_of_a_clean_chain_still_passes_and_changes_no_byte(db_url, tmp_path):
    folder = project(tmp_path, ("a1", CREATE_ACCOUNT), ("b2", DROP_EMPTY_NOTE), ("c3", ADD_EXTRA))
    env = at_a1(db_url, tmp_path, folder)
    before = state(db_url)

    plan = run_migrate("plan", env=env)

    assert plan.code == 0, plan.out
    assert state(db_url) == before
    assert count(db_url, "account") == 2


# -- N11: what env.py does on the handed connection outside a migration is judged ------------

HANDED_ENV = """
from alembic import context
from sqlalchemy import text

connection = context.config.attributes["connection"]
{before}
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
{after}
"""


def handed_env(before: str = "", after: str = "") -> str:
    """An env.py on config.attributes["connection"] that runs ``before`` and ``after`` the migrations there."""
    return HANDED_ENV.format(before=before, after=after)


DROP_ACCOUNT = 'connection.execute(text("DROP TABLE account"))'


@pytest.mark.parametrize("commits", [False, True], ids=["left-open", "env-commits"])
def test_env_py_dropping_a_table_with_rows_after_the_migrations_is_refused_and_the_table_stays(
    any_url, tmp_path, commits
):
    after = DROP_ACCOUNT + ("\nconnection.commit()" if commits else "")
    folder = project(tmp_path, ("a1", CREATE_ACCOUNT), ("b2", ADD_EXTRA), env_py=handed_env())
    env = at_a1(any_url, tmp_path, folder, then_env_py=handed_env(after=after))

    result = run_migrate(env=env)

    assert result.code == 8, result.out
    assert "env.py" in result.out and "outside any migration" in result.out, result.out
    assert "table account" in result.out and "2 row(s)" in result.out, result.out
    if parse_url(any_url).engine.transactional_ddl:
        # b2 committed in its own transaction before env.py's statement, and the message says so.
        assert "stay applied (b2)" in result.out, result.out
    else:  # DDL commits at once: env.py's statement is judged before it runs
        assert "It was not run" in result.out, result.out
    assert versions(any_url) == ["b2"]
    assert count(any_url, "account") == 2


def test_env_py_dropping_a_table_before_the_migrations_is_refused_and_nothing_is_applied(db_url, tmp_path):
    folder = project(tmp_path, ("a1", CREATE_ACCOUNT), ("b2", ADD_EXTRA), env_py=handed_env())
    env = at_a1(db_url, tmp_path, folder, then_env_py=handed_env(before=DROP_ACCOUNT))

    result = run_migrate(env=env)

    assert result.code == 8, result.out
    assert "outside any migration" in result.out and "Nothing of this run was committed" in result.out, result.out
    assert versions(db_url) == ["a1"]
    assert count(db_url, "account") == 2


def test_env_py_dropping_an_empty_table_after_the_migrations_loses_nothing_and_passes(db_url, tmp_path):
    after = 'connection.execute(text("DROP TABLE scratch"))'
    scratch = 'op.create_table("scratch", sa.Column("id", sa.Integer, primary_key=True))'
    folder = project(tmp_path, ("a1", CREATE_ACCOUNT), ("b2", scratch), env_py=handed_env())
    env = at_a1(db_url, tmp_path, folder, then_env_py=handed_env(after=after))

    result = run_migrate(env=env)

    assert result.code == 0, result.out
    assert versions(db_url) == ["b2"]
    assert "scratch" not in tables(db_url)
    assert count(db_url, "account") == 2


def test_plan_gives_run_s_verdict_on_env_py_s_statement_and_changes_nothing(db_url, tmp_path):
    folder = project(tmp_path, ("a1", CREATE_ACCOUNT), ("b2", ADD_EXTRA), env_py=handed_env())
    env = at_a1(db_url, tmp_path, folder, then_env_py=handed_env(after=DROP_ACCOUNT))
    before = state(db_url)

    plan = run_migrate("plan", env=env)

    assert plan.code == 8, plan.out
    assert "env.py" in plan.out and "table account" in plan.out, plan.out
    assert state(db_url) == before


# -- N5: a deferred trigger that changes the schema at COMMIT is judged before the commit -----------

#: b2 arms a constraint trigger on the version table that drops account.name at COMMIT, after b2 itself.
LATE_DROP = '''
op.execute("""
CREATE FUNCTION drop_account_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'account'::regclass AND attname = 'name'
               AND NOT attisdropped) THEN
        ALTER TABLE account DROP COLUMN name;
    END IF;
    RETURN NULL;
END $$
""")
op.execute("CREATE CONSTRAINT TRIGGER late_drop AFTER UPDATE ON alembic_version "
           "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION drop_account_name()")
'''


def test_a_deferred_trigger_that_drops_a_column_at_commit_is_refused_and_the_values_stay(pg_url, tmp_path):
    folder = project(tmp_path, ("a1", CREATE_ACCOUNT), ("b2", LATE_DROP))
    env = at_a1(pg_url, tmp_path, folder)

    result = run_migrate(env=env)

    assert result.code == 8, result.out
    assert "b2" in result.out and "column account.name" in result.out and "deferred trigger" in result.out, result.out
    assert versions(pg_url) == ["a1"]
    assert columns(pg_url, "account") == {"id", "name", "note"}
    assert query(pg_url, "SELECT name FROM account ORDER BY id") == [("alice",), ("bob",)]


def test_plan_shows_what_a_deferred_trigger_would_drop_and_changes_nothing(pg_url, tmp_path):
    folder = project(tmp_path, ("a1", CREATE_ACCOUNT), ("b2", LATE_DROP))
    env = at_a1(pg_url, tmp_path, folder)
    before = state(pg_url)

    plan = run_migrate("plan", env=env)

    assert plan.code == 8, plan.out
    assert "-- DESTRUCTIVE: column account.name" in plan.out, plan.out
    assert state(pg_url) == before


def test_a_deferred_trigger_that_loses_nothing_passes(pg_url, tmp_path):
    drops_note = LATE_DROP.replace("'name'", "'note'").replace("COLUMN name", "COLUMN note")
    folder = project(tmp_path, ("a1", CREATE_ACCOUNT), ("b2", drops_note))
    env = at_a1(pg_url, tmp_path, folder)

    result = run_migrate(env=env)

    assert result.code == 0, result.out
    assert versions(pg_url) == ["b2"]
    assert columns(pg_url, "account") == {"id", "name"}


# -- MariaDB: DDL commits at once there, so no dry run runs ------------------------------------------


def test_mariadb_plan_and_lint_run_nothing_on_the_database_whatever_a_revision_commits(mysql_url, tmp_path):
    folder = project(tmp_path, ("a1", CREATE_ACCOUNT), ("b2", DROP_NAME), ("c3", 'op.execute("COMMIT")'))
    env = at_a1(mysql_url, tmp_path, folder)
    before = state(mysql_url)

    plan = run_migrate("plan", env=env)
    lint = run_migrate("lint", env=env)

    assert plan.code == 0, plan.out
    assert "not run: MySQL/MariaDB commit each DDL statement at once" in plan.out, plan.out
    assert lint.code == 0, lint.out
    assert "the SQL pass stopped at c3" in lint.out, lint.out
    assert state(mysql_url) == before
    assert versions(mysql_url) == ["a1"]
