"""The effect guard on real databases: whatever SQL a migration sends, a loss is refused.

Each test builds a tiny Alembic project in tmp_path whose env.py runs one
transaction per migration and calls ``EffectGuard.check`` from
``on_version_apply`` (inside that transaction, before it commits), then runs
``alembic.command.upgrade`` in-process on a real SQLite file (with
transactional DDL) or on a fresh database of the real PostgreSQL server.
A refusal must leave the version table at the previous revision and every row
in place, read back through a new connection.
"""

from __future__ import annotations

import sqlite3
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from migrate_init.catalog import Column, snapshot
from migrate_init.effects import EffectGuard
from migrate_init.errors import DestructiveOperation
from tests.support import not_a_case

ROWS = [(1, "alice", "alice@example.com"), (2, "bob", None)]

ENV_PY = """
from alembic import context

connection = context.config.attributes["connection"]
guard = context.config.attributes["guard"]


def check(ctx, step, heads, run_args):
    # Runs inside the migration's transaction, after the version-table update.
    guard.check(ctx.connection, ctx.dialect.name, step.up_revision_id, step.up_revision.path)


context.configure(
    connection=connection,
    transactional_ddl=True,
    transaction_per_migration=True,
    on_version_apply=[check],
)
# After configure(): a transaction open at configure time would make Alembic
# treat it as the caller's and skip the per-migration commits.
guard.begin(connection, connection.dialect.name)


class Guarded:
    # The step, with its migration function run through EffectGuard.step (as migrate-init's glue does).

    def __init__(self, step):
        self._step = step

    def __getattr__(self, name):
        return getattr(self._step, name)

    @property
    def migration_fn(self):
        inner, script = self._step.migration_fn, self._step.revision

        def run(**kw):
            guard.step(connection, connection.dialect.name, script.revision, script.path, lambda: inner(**kw))
        return run


migration_context = context.get_context()
steps_of = migration_context._migrations_fn
migration_context._migrations_fn = lambda heads, ctx: (Guarded(step) for step in steps_of(heads, ctx))
with context.begin_transaction():
    context.run_migrations()
"""

CREATE_ACCOUNT = """
op.create_table(
    "account",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("email", sa.String(50)),
)
op.execute("INSERT INTO account (id, name, email) VALUES (1, 'alice', 'alice@example.com')")
op.execute("INSERT INTO account (id, name, email) VALUES (2, 'bob', NULL)")
"""

REVISION = """
import sqlalchemy as sa
from alembic import op

revision = {revision!r}
down_revision = {down!r}


def upgrade():
{body}
"""


def write_project(folder: Path, *bodies: str) -> Config:
    """An Alembic project whose revisions r1, r2, ... run ``bodies`` in order."""
    versions = folder / "versions"
    versions.mkdir(parents=True)
    (folder / "env.py").write_text(ENV_PY)
    (folder / "alembic.ini").write_text(f"[alembic]\nscript_location = {folder}\n")
    down = None
    for number, body in enumerate(bodies, start=1):
        revision = f"r{number}"
        (versions / f"{revision}_step.py").write_text(
            REVISION.format(revision=revision, down=down, body=textwrap.indent(textwrap.dedent(body), "    "))
        )
        down = revision
    return Config(str(folder / "alembic.ini"))


def sqlite_engine(path: Path) -> sa.Engine:
    """SQLAlchemy's pysqlite recipe for transactional DDL (as migrate_init.db does)."""
    engine = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver stops issuing its own BEGIN/COMMIT

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        made = sqlite_engine(tmp_path / "app.db")
    else:
        url = sa.make_url(request.getfixturevalue("pg_url")).set(drivername="postgresql+psycopg2")
        made = sa.create_engine(url)
    yield made
    made.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[sa.Engine]:
    made = sqlite_engine(tmp_path / "app.db")
    yield made
    made.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    made = sa.create_engine(sa.make_url(pg_url).set(drivername="postgresql+psycopg2"))
    yield made
    made.dispose()


def upgrade(engine: sa.Engine, config: Config, target: str = "head", allow: bool = False) -> EffectGuard:
    guard = EffectGuard(allow)
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        config.attributes["guard"] = guard
        command.upgrade(config, target)
    return guard


def version(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return [row[0] for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")]


def accounts(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        result = connection.exec_driver_sql("SELECT id, name, email FROM account ORDER BY id")
        return [tuple(row) for row in result]


def assert_refused(engine: sa.Engine, tmp_path: Path, body: str, *phrases: str) -> DestructiveOperation:
    """r1 creates and fills account; r2 runs ``body`` and must be refused, leaving r1."""
    config = write_project(tmp_path / "project", CREATE_ACCOUNT, body)
    upgrade(engine, config, "r1")
    with pytest.raises(DestructiveOperation) as caught:
        upgrade(engine, config)
    message = str(caught.value)
    assert caught.value.exit_code == 8
    assert "Migration r2 (" in message and "r2_step.py" in message, message
    # The exact setting that lets r2 through, and nothing more.
    assert "ALLOW_DESTRUCTIVE=r2 " in message and "ALLOW_DESTRUCTIVE=true" not in message, message
    for phrase in phrases:
        assert phrase in message, message
    assert version(engine) == ["r1"]
    assert accounts(engine) == ROWS
    return caught.value


#: Raw SQL that loses values, in each engine's SQL, and the words of the refusal.
RAW_SQL_LOSSES: dict[str, list[tuple[str, str]]] = {
    "postgresql": [
        (
            "ALTER TABLE account ADD COLUMN x integer, DROP COLUMN name",
            "column account.name (text) would be dropped",
        ),
        (
            "ALTER TABLE IF EXISTS account DROP COLUMN name",
            "column account.name (text) would be dropped",
        ),
        (
            "SELECT 1; DROP TABLE account",
            "table account (3 columns: id, name, email) would be dropped",
        ),
        (
            "ALTER TABLE ONLY account ALTER COLUMN name TYPE integer USING length(name)",
            "column account.name would change type (text -> integer)",
        ),
        (
            "DO $$ BEGIN ALTER TABLE account DROP COLUMN name; END $$",
            "column account.name (text) would be dropped",
        ),
        (
            "DO $$ BEGIN EXECUTE 'ALTER TABLE account DROP COLUMN ' || 'name'; END $$",
            "column account.name (text) would be dropped",
        ),
        (
            "DROP TABLE account CASCADE",
            "table account (3 columns: id, name, email) would be dropped",
        ),
        (
            # An explicit cast truncates silently: judged by the values, 'alice@example.com' changed.
            "ALTER TABLE account ALTER COLUMN email TYPE varchar(5) USING email::varchar(5)",
            "(character varying(50) -> character varying(5)), holding 1 non-NULL value(s) before, "
            "a different set of values",
        ),
        (
            # Issue 25, N3: the type is kept in name, the values are NULLed.
            "ALTER TABLE account ALTER COLUMN name TYPE varchar(50) USING NULL",
            "(text -> character varying(50)), holding 2 non-NULL value(s) before, 0 after",
        ),
        (
            # Issue 25, N2: same name, another column (attnum).
            "ALTER TABLE account DROP COLUMN name; ALTER TABLE account ADD COLUMN name text",
            "column account.name (text -> text) would be dropped and added again under its name, "
            "holding 2 non-NULL value(s) before, 0 after",
        ),
        (
            "ALTER TABLE account RENAME COLUMN name TO old_name; ALTER TABLE account ADD COLUMN name text",
            "column account.name (text -> text) would be dropped and added again under its name",
        ),
        (
            "ALTER TABLE account RENAME TO account_old; "
            "CREATE TABLE account (id integer PRIMARY KEY, name text, email varchar(50)); "
            "INSERT INTO account SELECT * FROM account_old WHERE id = 1",
            "dropped and created again",
        ),
    ],
    "sqlite": [
        # sqlite3 runs one statement per execute(), so a multi-statement string
        # cannot be sent through op.execute on SQLite at all.
        ("ALTER TABLE account DROP COLUMN name", "column account.name (TEXT) would be dropped"),
        (
            "ALTER TABLE account RENAME COLUMN name TO full_name",
            "column account.name (TEXT) would be dropped (renamed to full_name?)",
        ),
        ("DROP TABLE account", "table account (3 columns: id, name, email) would be dropped"),
        (
            "DROP TABLE IF EXISTS account",
            "table account (3 columns: id, name, email) would be dropped",
        ),
    ],
}


@not_a_case(lambda params: params["engine"] != params["loss"][0])
@pytest.mark.parametrize(
    "loss",
    [(name, sql, phrase) for name, losses in RAW_SQL_LOSSES.items() for sql, phrase in losses],
    ids=[sql for losses in RAW_SQL_LOSSES.values() for sql, _ in losses],
)
def test_raw_sql_that_loses_data_is_refused(engine: sa.Engine, tmp_path: Path, loss: tuple[str, str, str]) -> None:
    _engine_name, sql, phrase = loss
    assert_refused(engine, tmp_path, f"op.execute({sql!r})", phrase)


# --------------------------------------------------------------------------- PostgreSQL


def test_postgresql_table_dropped_and_recreated_identically_is_refused(pg_engine: sa.Engine, tmp_path: Path) -> None:
    body = (
        'op.execute("DROP TABLE account")\n'
        'op.execute("CREATE TABLE account (id integer PRIMARY KEY, name text, email varchar(50))")'
    )
    assert_refused(pg_engine, tmp_path, body, "3 columns: id, name, email; dropped and created again")


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE account ADD COLUMN credits integer NOT NULL DEFAULT 0",
        "ALTER TABLE account ADD COLUMN phone text",
        "ALTER TABLE account ALTER COLUMN email TYPE varchar(100)",
        "ALTER TABLE account ALTER COLUMN email TYPE text",
        "ALTER TABLE account ALTER COLUMN email TYPE varchar",
        "CREATE TABLE note (id integer PRIMARY KEY, body text NOT NULL)",
        "CREATE INDEX ix_account_email ON account (email)",
        # The same column (attnum) under a new name: every value is there.
        "ALTER TABLE account RENAME COLUMN name TO full_name; ALTER TABLE account RENAME COLUMN full_name TO name",
        # Narrower, but every value fits: PostgreSQL would refuse one that does not.
        "ALTER TABLE account ALTER COLUMN email TYPE varchar(20)",
        "ALTER TABLE account ALTER COLUMN id TYPE bigint",
        # Copied to a new column of the same name and type, values and all.
        "ALTER TABLE account RENAME COLUMN name TO name_old; ALTER TABLE account ADD COLUMN name text; "
        "UPDATE account SET name = name_old; ALTER TABLE account DROP COLUMN name_old",
    ],
)
def test_postgresql_changes_that_keep_every_value_pass(pg_engine: sa.Engine, tmp_path: Path, sql: str) -> None:
    config = write_project(tmp_path / "project", CREATE_ACCOUNT, f"op.execute({sql!r})")
    guard = upgrade(pg_engine, config)
    assert version(pg_engine) == ["r2"]
    assert accounts(pg_engine) == ROWS
    assert guard.findings == []


# --------------------------------------------------------------------------- SQLite


def test_sqlite_additive_batch_rebuild_passes_and_keeps_rows(sqlite_db: sa.Engine, tmp_path: Path) -> None:
    body = """
    with op.batch_alter_table("account", recreate="always") as batch:
        batch.add_column(sa.Column("phone", sa.String(30)))
    """
    config = write_project(tmp_path / "project", CREATE_ACCOUNT, body)
    guard = upgrade(sqlite_db, config)
    assert version(sqlite_db) == ["r2"]
    assert accounts(sqlite_db) == ROWS
    with sqlite_db.connect() as connection:
        assert "phone" in snapshot(connection, "sqlite").tables["account"]
    assert guard.findings == []


def test_sqlite_batch_rebuild_of_a_raw_sql_table_is_not_a_type_change(sqlite_db: sa.Engine, tmp_path: Path) -> None:
    # Batch mode re-declares INT as INTEGER, STRING as NUMERIC, CLOB as TEXT:
    # the same types as SQLite stores them, so nothing is lost.
    create = """
    op.execute("CREATE TABLE legacy (id INT PRIMARY KEY, n TINYINT, s STRING, c CLOB, "
               "d DOUBLE PRECISION, v CHARACTER VARYING(30), m NUMERIC(10,2), b BOOL)")
    op.execute("INSERT INTO legacy VALUES (1, 2, '3', 'four', 5.5, 'six', 7.25, 1)")
    """
    body = """
    with op.batch_alter_table("legacy", recreate="always") as batch:
        batch.add_column(sa.Column("extra", sa.Text))
    """
    config = write_project(tmp_path / "project", create, body)
    upgrade(sqlite_db, config)
    assert version(sqlite_db) == ["r2"]
    with sqlite_db.connect() as connection:
        columns = snapshot(connection, "sqlite").tables["legacy"]
        row = connection.exec_driver_sql("SELECT id, n, s, c, d, v, m, b FROM legacy").one()
    assert columns["id"].type == "INTEGER" and columns["s"].type == "NUMERIC"  # rebuilt
    assert tuple(row) == (1, 2, 3, "four", 5.5, "six", 7.25, 1)


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        (
            """
            with op.batch_alter_table("account", recreate="always") as batch:
                batch.drop_column("name")
            """,
            "column account.name (TEXT) would be dropped",
        ),
        (
            """
            with op.batch_alter_table("account") as batch:
                batch.alter_column("name", type_=sa.Integer)
            """,
            "column account.name would change type (TEXT -> INTEGER)",
        ),
        (
            # Issue 25, N2 in batch mode: the rebuilt table has an empty column of that name.
            """
            with op.batch_alter_table("account") as batch:
                batch.drop_column("name")
            with op.batch_alter_table("account") as batch:
                batch.add_column(sa.Column("name", sa.Text))
            """,
            "column account.name (TEXT -> TEXT) would be dropped and added again under its name, "
            "holding 2 non-NULL value(s) before, 0 after",
        ),
        (
            # Issue 25, N2 with SQLite's own ALTER TABLE: name moves behind email.
            """
            op.execute("ALTER TABLE account DROP COLUMN name")
            op.execute("ALTER TABLE account ADD COLUMN name TEXT")
            """,
            "column account.name (TEXT -> TEXT) would be dropped and added again under its name",
        ),
    ],
)
def test_sqlite_batch_rebuild_that_loses_data_is_refused(
    sqlite_db: sa.Engine, tmp_path: Path, body: str, phrase: str
) -> None:
    assert_refused(sqlite_db, tmp_path, body, phrase)


# --------------------------------------------------------------------------- both engines


def test_making_a_column_not_null_loses_no_value_and_passes_as_a_hint(engine: sa.Engine, tmp_path: Path) -> None:
    # batch mode on SQLite (a table rebuild), ALTER COLUMN ... SET NOT NULL on PostgreSQL.
    # Both engines refuse it while NULLs are there, so no value can be lost; code that
    # still inserts without the column breaks, which is a hint, not a refusal.
    body = """
    with op.batch_alter_table("account") as batch:
        batch.alter_column("name", existing_type=sa.Text, nullable=False)
    """
    config = write_project(tmp_path / "project", CREATE_ACCOUNT, body)
    guard = upgrade(engine, config)
    assert version(engine) == ["r2"] and accounts(engine) == ROWS
    assert guard.findings == []
    (hint,) = guard.hints
    assert [loss.describe() for loss in hint.losses] == [
        f"column account.name ({'TEXT' if engine.dialect.name == 'sqlite' else 'text'}) would become NOT NULL"
    ]


def test_making_a_column_holding_nulls_not_null_is_refused_by_the_engine(engine: sa.Engine, tmp_path: Path) -> None:
    body = """
    with op.batch_alter_table("account") as batch:
        batch.alter_column("email", existing_type=sa.String(50), nullable=False)
    """
    config = write_project(tmp_path / "project", CREATE_ACCOUNT, body)
    upgrade(engine, config, "r1")
    with pytest.raises(Exception, match=r"(?i)null"):
        upgrade(engine, config)
    assert version(engine) == ["r1"] and accounts(engine) == ROWS


def test_alembic_drop_column_and_drop_table_are_refused(engine: sa.Engine, tmp_path: Path) -> None:
    body = """
    with op.batch_alter_table("account") as batch:
        batch.drop_column("email")
    op.create_table("note", sa.Column("id", sa.Integer, primary_key=True))
    op.drop_table("note")
    """
    error = assert_refused(engine, tmp_path, body, "column account.email")
    assert "note" not in str(error)  # created and dropped in one migration: nothing lost


def test_each_migration_is_judged_against_the_one_before(engine: sa.Engine, tmp_path: Path) -> None:
    # r2 adds a table and commits; r3 dropping it is a loss and is refused alone.
    add = """
    op.create_table(
        "note", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.Text)
    )
    op.execute("INSERT INTO note (id, body) VALUES (1, 'kept')")
    """
    drop = 'op.drop_table("note")'
    config = write_project(tmp_path / "project", CREATE_ACCOUNT, add, drop)
    with pytest.raises(
        DestructiveOperation,
        match=r"Migration r3 \(.*table note \(2 columns: id, body\) would be dropped, holding 1 row",
    ):
        upgrade(engine, config)
    assert version(engine) == ["r2"]
    assert accounts(engine) == ROWS
    with engine.connect() as connection:
        assert set(snapshot(connection, engine.dialect.name).tables) == {"account", "note"}


def test_allow_destructive_applies_the_loss_and_records_it(engine: sa.Engine, tmp_path: Path) -> None:
    body = """
    with op.batch_alter_table("account") as batch:
        batch.drop_column("email")
    """
    config = write_project(tmp_path / "project", CREATE_ACCOUNT, body)
    guard = upgrade(engine, config, allow=True)
    assert version(engine) == ["r2"]
    (finding,) = guard.findings
    assert finding.revision == "r2" and finding.path.endswith("r2_step.py")
    assert [loss.describe().split(" (")[0] for loss in finding.losses] == ["column account.email"]


def test_loss_the_migration_committed_itself_is_reported_as_not_undone(engine: sa.Engine, tmp_path: Path) -> None:
    # A migration that ends its own transaction escapes the rollback; the guard
    # must then say that the loss happened instead of claiming it was undone.
    if engine.dialect.name == "sqlite":
        # executescript() COMMITs the open transaction before it runs.
        body = 'op.get_bind().connection.driver_connection.executescript("ALTER TABLE account DROP COLUMN name")'
    else:
        body = 'op.execute("COMMIT; ALTER TABLE account DROP COLUMN name")'
    config = write_project(tmp_path / "project", CREATE_ACCOUNT, body)
    upgrade(engine, config, "r1")
    with pytest.raises(DestructiveOperation) as caught:
        upgrade(engine, config)
    message = str(caught.value)
    assert "Migration r2 (" in message, message
    assert "column account.name (TEXT) was dropped".lower() in message.lower(), message
    assert "could not be rolled back" in message and "Restore the backup" in message
    assert "stays at the revision before it" not in message
    with engine.connect() as connection:
        assert "name" not in snapshot(connection, engine.dialect.name).tables["account"]


def test_autocommit_block_drop_is_refused_saying_the_change_stayed(engine: sa.Engine, tmp_path: Path) -> None:
    """Issue 25, N6: a migration that commits by itself is named as such; nothing was rolled back."""
    body = """
    with op.get_context().autocommit_block():
        op.drop_column("account", "name")
    """
    config = write_project(tmp_path / "project", CREATE_ACCOUNT, body)
    upgrade(engine, config, "r1")
    with pytest.raises(DestructiveOperation) as caught:
        upgrade(engine, config)
    message = str(caught.value)
    assert "committed by itself" in message and "the change stayed in the database" in message, message
    assert "rolled back and" not in message and "stays at the revision before it" not in message, message
    with engine.connect() as connection:
        assert "name" not in snapshot(connection, engine.dialect.name).tables["account"]


# --------------------------------------------------------------------------- judged by the values


def test_a_revision_that_copies_values_then_drops_their_source_is_refused_saying_so(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """open-webui f1e2d3c4b5a6's shape: the operator decides, by name, whether the copy is complete."""
    body = """
    op.add_column("account", sa.Column("display_name", sa.Text))
    op.execute("UPDATE account SET display_name = name")
    with op.batch_alter_table("account") as batch:
        batch.drop_column("name")
    """
    error = assert_refused(
        engine,
        tmp_path,
        body,
        "column account.name (",
        "holding 2 non-NULL value(s)",
        "(this revision filled account.display_name with 2 before dropping it)",
    )
    assert "It copies values and then drops their source" in str(error)


def test_a_table_renamed_keeps_every_value_and_passes(engine: sa.Engine, tmp_path: Path) -> None:
    """The same table (PostgreSQL's oid, SQLite's root page) under a new name: nothing is lost (meltano 5b43800443d1)."""
    config = write_project(tmp_path / "project", CREATE_ACCOUNT, 'op.rename_table("account", "member")')
    guard = upgrade(engine, config)
    assert version(engine) == ["r2"] and guard.findings == []
    with engine.connect() as connection:
        rows = [tuple(r) for r in connection.exec_driver_sql("SELECT id, name, email FROM member ORDER BY id")]
    assert rows == ROWS


def test_a_table_swapped_for_an_empty_copy_is_refused(engine: sa.Engine, tmp_path: Path) -> None:
    # Issue 25, N9 (as the MariaDB test has it): the rows live on in account_old, but account, the
    # name the application reads, now holds another table without them.
    body = (
        'op.execute("CREATE TABLE account_new AS SELECT * FROM account WHERE 1 = 0")\n'
        'op.execute("ALTER TABLE account RENAME TO account_old")\n'
        'op.execute("ALTER TABLE account_new RENAME TO account")'
    )
    phrase = (
        "table account (3 columns: id, name, email; dropped and created again)"
        if engine.dialect.name == "postgresql"  # another oid; SQLite: another root page, a rebuild
        else "column account.name (TEXT) would change its values in the table's rebuild, holding 2"
    )
    assert_refused(engine, tmp_path, body, phrase)


def test_a_column_dropped_from_a_renamed_table_is_judged_by_its_values(engine: sa.Engine, tmp_path: Path) -> None:
    body = 'op.rename_table("account", "member")\nop.drop_column("member", "name")'
    assert_refused(engine, tmp_path, body, "column account.name (", "would be dropped, holding 2 non-NULL value(s)")


def test_deleting_the_rows_and_dropping_the_table_in_one_revision_is_a_loss(engine: sa.Engine, tmp_path: Path) -> None:
    """Values that existed before the revision and exist nowhere after it: the revision's own DELETE counts."""
    assert_refused(
        engine,
        tmp_path,
        'op.execute("DELETE FROM account")\nop.drop_table("account")',
        "table account (3 columns: id, name, email) would be dropped, holding 2 row(s)",
    )


@pytest.mark.parametrize(
    ("emptied", "body"),
    [
        ('op.execute("DELETE FROM account")', 'op.drop_table("account")'),
        ('op.execute("UPDATE account SET email = NULL")', 'op.drop_column("account", "email")'),
        (
            'op.execute("UPDATE account SET email = NULL")',
            'with op.batch_alter_table("account") as batch:\n    batch.drop_column("email")',
        ),
    ],
    ids=["empty table", "all-NULL column", "all-NULL column, batch"],
)
def test_dropping_what_holds_no_value_passes(engine: sa.Engine, tmp_path: Path, emptied: str, body: str) -> None:
    config = write_project(tmp_path / "project", CREATE_ACCOUNT, emptied, body)
    guard = upgrade(engine, config)
    assert version(engine) == ["r3"] and guard.findings == []
    with engine.connect() as connection:
        tables = snapshot(connection, engine.dialect.name).tables
    assert "account" not in tables or "email" not in tables["account"]


def test_sqlite_rebuild_of_a_table_with_binary_values_keeps_them_and_passes(
    sqlite_db: sa.Engine, tmp_path: Path
) -> None:
    """A rebuilt table's columns are compared by their values; bytes that are not UTF-8 read as hex."""
    create = """
    op.create_table("blobs", sa.Column("id", sa.Integer, primary_key=True), sa.Column("data", sa.LargeBinary))
    op.execute("INSERT INTO blobs (id, data) VALUES (1, X'FF00FE')")
    """
    rebuild = """
    with op.batch_alter_table("blobs", recreate="always") as batch:
        batch.add_column(sa.Column("note", sa.Text))
    """
    guard = upgrade(sqlite_db, write_project(tmp_path / "project", create, rebuild))
    assert version(sqlite_db) == ["r2"] and guard.findings == []
    with sqlite_db.connect() as connection:
        assert connection.exec_driver_sql("SELECT data FROM blobs").scalar() == b"\xff\x00\xfe"


def test_a_table_created_earlier_in_the_run_is_no_loss_while_empty(engine: sa.Engine, tmp_path: Path) -> None:
    """open-webui's shape: chat.chat TEXT -> JSON four revisions after chat was created, still empty."""
    config = write_project(
        tmp_path / "project",
        CREATE_ACCOUNT,
        'op.create_table("chat", sa.Column("id", sa.Integer, primary_key=True), sa.Column("chat", sa.Text),'
        ' sa.Column("status", sa.String(20)), sa.Column("old", sa.Text))',
        'op.add_column("account", sa.Column("phone", sa.Text))',
        'with op.batch_alter_table("chat") as batch:\n'
        '    batch.alter_column("chat", type_=sa.JSON, existing_type=sa.Text,'
        ' postgresql_using="chat::json")\n'
        '    batch.alter_column("status", type_=sa.String(9), existing_type=sa.String(20))\n'
        '    batch.drop_column("old")',
    )
    guard = upgrade(engine, config)
    assert version(engine) == ["r4"] and guard.findings == [] and accounts(engine) == ROWS


def test_postgresql_drop_column_in_another_schema_is_judged(pg_engine: sa.Engine, tmp_path: Path) -> None:
    """Issue 25, N4: every schema a migration touches is watched, not only current_schema()."""
    create = """
    op.execute("CREATE SCHEMA app")
    op.execute("CREATE TABLE app.account (id integer PRIMARY KEY, name text)")
    op.execute("INSERT INTO app.account VALUES (1, 'alice')")
    """
    config = write_project(tmp_path / "project", create, 'op.drop_column("account", "name", schema="app")')
    upgrade(pg_engine, config, "r1")
    with pytest.raises(
        DestructiveOperation,
        match=r"column app\.account\.name \(text\) would be dropped, "
        r"holding 1 non-NULL value",
    ):
        upgrade(pg_engine, config)
    assert version(pg_engine) == ["r1"]
    with pg_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT name FROM app.account").scalar() == "alice"


def test_a_revision_with_candidates_runs_twice_and_its_sql_is_applied_once(engine: sa.Engine, tmp_path: Path) -> None:
    """The guard rolls back to its savepoint to read the values, then runs the migration again."""
    body = """
    op.execute("INSERT INTO account (id, name) VALUES (3, 'carol')")
    op.drop_column("account", "email")
    """
    config = write_project(tmp_path / "project", CREATE_ACCOUNT, 'op.execute("UPDATE account SET email = NULL")', body)
    upgrade(engine, config)
    with engine.connect() as connection:
        names = [row[0] for row in connection.exec_driver_sql("SELECT name FROM account ORDER BY id")]
    assert names == ["alice", "bob", "carol"]


# --------------------------------------------------------------------------- snapshots


def test_snapshot_reads_the_same_through_a_raw_dbapi_connection(engine: sa.Engine, tmp_path: Path) -> None:
    config = write_project(tmp_path / "project", CREATE_ACCOUNT)
    upgrade(engine, config)
    with engine.connect() as connection:
        through_sqlalchemy = snapshot(connection, engine.dialect.name)
    raw: Any
    if engine.dialect.name == "sqlite":
        raw = sqlite3.connect(str(engine.url.database))
    else:
        url = engine.url
        raw = psycopg2.connect(
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            dbname=url.database,
        )
    try:
        assert snapshot(raw, engine.dialect.name) == through_sqlalchemy
    finally:
        raw.close()
    assert set(through_sqlalchemy.tables) == {"account"}  # alembic_version is left out


def test_sqlite_snapshot_reads_generated_and_virtual_table_columns(tmp_path: Path) -> None:
    connection = sqlite3.connect(str(tmp_path / "x.db"))
    try:
        connection.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a int NOT NULL DEFAULT 1, "
            "g int GENERATED ALWAYS AS (a + 1) VIRTUAL, s text GENERATED ALWAYS AS ('x') STORED)"
        )
        connection.execute("CREATE VIRTUAL TABLE doc USING fts5(title, body)")
        connection.execute("CREATE TABLE _alembic_tmp_t (id INTEGER)")
        tables = snapshot(connection, "sqlite").tables
    finally:
        connection.close()
    assert tables["t"] == {
        "id": Column("id", "INTEGER", False, False, False),
        "a": Column("a", "INT", False, True, False),
        "g": Column("g", "INT", True, False, True),
        "s": Column("s", "TEXT", True, False, True),
    }
    assert list(tables["doc"]) == ["title", "body"]  # the hidden columns (doc, rank) left out
    assert "_alembic_tmp_t" not in tables and "sqlite_sequence" not in tables


def test_postgresql_snapshot_reads_defaults_identity_and_generated(pg_engine: sa.Engine) -> None:
    with pg_engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE t (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "n serial, a numeric(10,2) NOT NULL DEFAULT 0, "
            "g integer GENERATED ALWAYS AS (id * 2) STORED, "
            "v varchar(40), z timestamp(3) with time zone)"
        )
        connection.exec_driver_sql("CREATE TABLE nothing ()")
        connection.exec_driver_sql("CREATE VIEW w AS SELECT id FROM t")
        taken = snapshot(connection, "postgresql")
    # type_id: PostgreSQL's fixed oids of its built-in types (pg_type.dat)
    assert taken.tables["t"] == {
        "id": Column("id", "integer", False, True, False, 1, type_id=23),
        "n": Column("n", "integer", False, True, False, 2, type_id=23),
        "a": Column("a", "numeric(10,2)", False, True, False, 3, type_id=1700),
        "g": Column("g", "integer", True, False, True, 4, type_id=23),
        "v": Column("v", "character varying(40)", True, False, False, 5, type_id=1043),
        "z": Column("z", "timestamp(3) with time zone", True, False, False, 6, type_id=1184),
    }
    assert taken.tables["nothing"] == {} and "w" not in taken.tables
    assert set(taken.table_ids) == {"t", "nothing"}


def test_snapshot_time_for_eleven_tables(engine: sa.Engine) -> None:
    """Measured and printed, not asserted: the cost of one snapshot (two per migration)."""
    with engine.begin() as connection:
        for number in range(11):
            columns = ", ".join(f"c{i} varchar(50)" for i in range(12))
            connection.exec_driver_sql(f"CREATE TABLE t{number} (id integer PRIMARY KEY, {columns})")
    with engine.begin() as connection:
        snapshot(connection, engine.dialect.name)  # warm: first-use costs are not the steady state
        runs = 50
        started = time.perf_counter()
        for _ in range(runs):
            taken = snapshot(connection, engine.dialect.name)
        each = (time.perf_counter() - started) / runs
    assert len(taken.tables) == 11
    print(f"\nsnapshot of 11 tables x 13 columns on {engine.dialect.name}: {each * 1000:.2f} ms")


def test_postgresql_rerun_that_leaves_out_a_type_rename_of_the_first_run_is_refused(
    pg_engine: sa.Engine, tmp_path: Path
) -> None:
    """The guard reads values, rolls back to its savepoint and runs the migration again: the read after
    the second run starts from the catalog the rollback went back to, not from the read it undid (whose
    renamed type, rolled back, no catalog row written since would show)."""
    config = write_project(
        tmp_path / "project",
        """
        op.execute("CREATE TYPE mood AS ENUM ('calm', 'keen')")
        op.execute("CREATE TABLE other (id integer PRIMARY KEY, feeling mood)")
        op.execute("CREATE TABLE diary (id integer PRIMARY KEY, note text)")
        op.execute("INSERT INTO other VALUES (1, 'calm')")
        op.execute("INSERT INTO diary VALUES (1, NULL)")
        """,
        """
        upgrade.runs = getattr(upgrade, "runs", 0) + 1
        if upgrade.runs == 1:  # the first run only: the guard's second run does less
            op.execute("ALTER TYPE mood RENAME TO temper")
        op.drop_column("diary", "note")  # NULL only: judged by its values, so the guard runs it twice
        """,
    )
    upgrade(pg_engine, config, "r1")
    with pytest.raises(DestructiveOperation, match="changed the schema differently"):
        upgrade(pg_engine, config)
    assert version(pg_engine) == ["r1"]
    with pg_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT feeling::text FROM other").all() == [("calm",)]
        assert connection.exec_driver_sql("SELECT id, note FROM diary").all() == [(1, None)]
