"""Issue 27: the guard reads the catalog incrementally and still sees every change.

After each migration the guard reads only the tables whose mark changed
(SQLite: root page and CREATE text; PostgreSQL: its oid, and whether a
transaction since the previous read wrote its pg_class or pg_attribute rows or
took its youngest one away, a user type, a schema, the search path or a type
sharing its name with another) and keeps the columns of the others.  A
mark that misses a change would let a loss through, so these tests prove two
things on the real engines: the incremental read gives exactly what a full
read gives, change by change (on every engine, in test_engine_contract.py;
here a schema read on its own, another schema's snapshot, a second change in
one transaction, another session's commit, a shadowed type and a rollback after
a read); and a real ``migrate.py`` run whose catalog
cache is warm (the shipped chain, then tables and columns added elsewhere)
still refuses a loss in an older table with exit 8 and passes the same kind
of change when it loses nothing.  Speed is the benchmark's business (row 7),
not these tests'.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migrate_init.catalog import Snapshot, snapshot
from tests.support.chains import Chain
from tests.support.dbstate import columns, count, query, versions
from tests.support.pgserver import connect
from tests.support.process import operator_env, run_migrate


def ordered(snap: Snapshot) -> list[tuple[str, list[Any]]]:
    """Tables and columns in the reader's order (dict equality would ignore it, and order is judged)."""
    return [(name, list(cols.values())) for name, cols in snap.tables.items()]


def assert_same_as_a_full_read(incremental: Snapshot, full: Snapshot) -> None:
    assert ordered(incremental) == ordered(full)
    assert incremental.table_ids == full.table_ids
    assert incremental.locations == full.locations


# --------------------------------------------------------------------------- the reader
# Change by change on every engine: test_engine_contract.py
# (test_a_catalog_read_given_the_previous_one_is_a_full_read_after_each_change).


@pytest.fixture
def pg_connection(pg_url: str) -> Iterator[Any]:
    connection = connect(pg_url, autocommit=True)
    cursor = connection.cursor()
    cursor.execute("CREATE SCHEMA app")
    cursor.execute("CREATE TABLE account (id integer PRIMARY KEY, name text, email varchar(50))")
    cursor.execute("CREATE TABLE other (id integer PRIMARY KEY, label text)")
    cursor.execute("CREATE TABLE app.ledger (id integer PRIMARY KEY, note text)")
    connection.autocommit = False
    yield connection  # a raw psycopg2 connection, as the guard also reads through
    connection.rollback()
    connection.close()


def test_postgresql_incremental_read_of_one_schema_equals_a_full_read(pg_connection: Any) -> None:
    before = snapshot(pg_connection, "postgresql", "app")
    pg_connection.cursor().execute("ALTER TABLE app.ledger ADD COLUMN amount numeric(10, 2)")
    incremental = snapshot(pg_connection, "postgresql", "app", previous=before)
    assert_same_as_a_full_read(incremental, snapshot(pg_connection, "postgresql", "app"))
    assert list(incremental.tables["ledger"]) == ["id", "note", "amount"]


def test_a_snapshot_of_another_schema_is_not_taken_as_the_previous_one(pg_connection: Any) -> None:
    app = snapshot(pg_connection, "postgresql", "app")
    public = snapshot(pg_connection, "postgresql", "public", previous=app)
    assert_same_as_a_full_read(public, snapshot(pg_connection, "postgresql", "public"))


def test_postgresql_second_change_to_a_table_in_the_same_transaction_is_seen(pg_connection: Any, pg_url: str) -> None:
    """The mark is the transaction that wrote a catalog row: a table changed again in the transaction
    that the previous read ran in (the same writer) is still read again, even when a newer transaction
    committed in between, and when the change is made in a savepoint (a subtransaction's own xid)."""
    cursor = pg_connection.cursor()
    cursor.execute("ALTER TABLE account ADD COLUMN note text")
    newer = connect(pg_url, autocommit=True)
    newer.cursor().execute("CREATE TABLE newer (id integer)")
    newer.close()
    first = snapshot(pg_connection, "postgresql", previous=snapshot(pg_connection, "postgresql"))
    cursor.execute("ALTER TABLE account RENAME COLUMN note TO remark")
    second = snapshot(pg_connection, "postgresql", previous=first)
    cursor.execute("SAVEPOINT inner_step")  # a subtransaction's own xid
    cursor.execute("ALTER TABLE account ALTER COLUMN remark SET NOT NULL")
    third = snapshot(pg_connection, "postgresql", previous=second)
    cursor.execute("RELEASE SAVEPOINT inner_step")
    assert "remark" in second.tables["account"] and not third.tables["account"]["remark"].nullable
    assert_same_as_a_full_read(third, snapshot(pg_connection, "postgresql"))


def test_postgresql_change_committed_by_another_session_between_two_reads_is_seen(
    pg_connection: Any, pg_url: str
) -> None:
    """A session whose transaction began before the previous read and committed after it: its xid
    is older than this session's, but not older than the oldest one in progress at that read."""
    other = connect(pg_url, autocommit=False)
    try:
        other.cursor().execute("ALTER TABLE other ADD COLUMN late text")  # in progress, with an xid
        pg_connection.cursor().execute("ALTER TABLE account ADD COLUMN mine text")  # this session's xid, newer
        before = snapshot(pg_connection, "postgresql")
        other.commit()
        after = snapshot(pg_connection, "postgresql", previous=before)
        assert "late" in after.tables["other"]
        assert_same_as_a_full_read(after, snapshot(pg_connection, "postgresql"))
    finally:
        other.close()


def diary_of_a_type_on_the_path(pg_connection: Any, *more: str) -> Snapshot:
    """app.diary, of the type app.mood, with app after public on the search_path; the snapshot then."""
    cursor = pg_connection.cursor()
    cursor.execute("SET search_path = public, app")
    cursor.execute("CREATE TYPE app.mood AS ENUM ('calm')")
    cursor.execute("CREATE TABLE app.diary (id integer, feeling app.mood)")
    for statement in more:
        cursor.execute(statement)
    pg_connection.commit()
    return snapshot(pg_connection, "postgresql")


def test_postgresql_type_shadowed_on_the_search_path_is_seen(pg_connection: Any) -> None:
    """format_type names a type by its schema once another type of that name comes first on the
    search_path: the table's own rows are not written, the reader still reads it again."""
    before = diary_of_a_type_on_the_path(pg_connection)
    assert before.tables["app.diary"]["feeling"].type == "mood"
    pg_connection.cursor().execute("CREATE TYPE public.mood AS ENUM ('x')")
    after = snapshot(pg_connection, "postgresql", previous=before)
    assert after.tables["app.diary"]["feeling"].type == "app.mood"
    assert_same_as_a_full_read(after, snapshot(pg_connection, "postgresql"))


# --------------------------------------------------------------------------- migrate.py, cache warm

# The ledger is made and filled first; other tables change after it, so by the
# time the last revision runs, the guard holds the ledger's columns from an
# older read and must notice that they changed.
LEDGER = "c27a00000001"
ELSEWHERE = ("c27a00000002", "c27a00000003")
LAST = "c27a00000004"


def ledger_chain(tmp_path: Path, last: str, *, schema: str | None = None, notes: bool = True) -> Chain:
    chain = Chain(tmp_path / "migrations")
    where = f'schema="{schema}"' if schema else "schema=None"
    prefix = f"{schema}." if schema else ""
    create_schema = f'op.execute("CREATE SCHEMA {schema}")\n' if schema else ""
    chain.add(
        LEDGER,
        create_schema
        + f"""
op.create_table("ledger", sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.Text),
                sa.Column("code", sa.String(40)), {where})
op.execute("INSERT INTO {prefix}ledger (id, note, code) VALUES (1, {"'kept'" if notes else "NULL"}, 'ab')")
op.execute("INSERT INTO {prefix}ledger (id, note, code) VALUES (2, NULL, 'cd')")
""",
        name="ledger",
    )
    chain.add(
        ELSEWHERE[0],
        """
op.create_table("elsewhere", sa.Column("id", sa.Integer, primary_key=True))
""",
        name="elsewhere",
    )
    chain.add(
        ELSEWHERE[1],
        """
op.add_column("elsewhere", sa.Column("label", sa.String(40), nullable=True))
""",
        name="elsewhere_label",
    )
    chain.add(LAST, last, name="last")
    return chain


def run_chain(url: str, tmp_path: Path, chain: Chain) -> Any:
    return run_migrate(env=operator_env(url, tmp_path, **chain.env()))


def assert_refused_and_kept(result: Any, url: str, table: str = "ledger") -> None:
    assert result.code == 8, result.out
    assert f"Migration {LAST} (" in result.out, result.out
    assert versions(url) == [ELSEWHERE[1]]
    assert query(url, f"SELECT id, note FROM {table} ORDER BY id") == [(1, "kept"), (2, None)]


SQLITE_BATCH_DROP = """
with op.batch_alter_table("ledger", recreate="always") as batch:
    batch.drop_column("note")
"""


def test_sqlite_batch_rebuild_of_an_older_table_that_loses_values_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    result = run_chain(sqlite_url, tmp_path, ledger_chain(tmp_path, SQLITE_BATCH_DROP))
    assert_refused_and_kept(result, sqlite_url)
    assert "column ledger.note (TEXT) would be dropped, holding 1 non-NULL value(s)" in result.out, result.out


def test_sqlite_batch_rebuild_of_an_older_table_that_loses_nothing_passes(sqlite_url: str, tmp_path: Path) -> None:
    result = run_chain(sqlite_url, tmp_path, ledger_chain(tmp_path, SQLITE_BATCH_DROP, notes=False))
    assert result.code == 0, result.out
    assert versions(sqlite_url) == [LAST]
    assert "note" not in columns(sqlite_url, "ledger") and count(sqlite_url, "ledger") == 2


SQLITE_BATCH_TYPE = """
with op.batch_alter_table("ledger", recreate="always") as batch:
    batch.alter_column("code", type_=sa.String(1))
op.execute("UPDATE ledger SET code = substr(code, 1, 1)")
"""


def test_sqlite_type_change_of_an_older_table_that_keeps_the_name_is_judged(sqlite_url: str, tmp_path: Path) -> None:
    result = run_chain(sqlite_url, tmp_path, ledger_chain(tmp_path, SQLITE_BATCH_TYPE))
    assert_refused_and_kept(result, sqlite_url)
    assert "column ledger.code would change type (VARCHAR(40) -> VARCHAR(1))" in result.out, result.out
    assert query(sqlite_url, "SELECT code FROM ledger ORDER BY id") == [("ab",), ("cd",)]


PG_DROP_AND_READD = """
op.execute("ALTER TABLE {table} DROP COLUMN note; ALTER TABLE {table} ADD COLUMN note text")
"""


def test_postgresql_column_dropped_and_readded_in_an_older_table_is_refused(pg_url: str, tmp_path: Path) -> None:
    result = run_chain(pg_url, tmp_path, ledger_chain(tmp_path, PG_DROP_AND_READD.format(table="ledger")))
    assert_refused_and_kept(result, pg_url)
    assert "column ledger.note (text -> text) would be dropped and added again under its name" in result.out


def test_postgresql_column_dropped_and_readded_holding_only_nulls_passes(pg_url: str, tmp_path: Path) -> None:
    chain = ledger_chain(tmp_path, PG_DROP_AND_READD.format(table="ledger"), notes=False)
    result = run_chain(pg_url, tmp_path, chain)
    assert result.code == 0, result.out
    assert versions(pg_url) == [LAST]
    assert count(pg_url, "ledger") == 2


def test_postgresql_type_change_that_keeps_the_name_is_judged_by_its_values(pg_url: str, tmp_path: Path) -> None:
    refused = ledger_chain(
        tmp_path / "refused",
        """
op.execute("ALTER TABLE ledger ALTER COLUMN code TYPE varchar(1) USING substr(code, 1, 1)")
""",
    )
    result = run_chain(pg_url, tmp_path, refused)
    assert_refused_and_kept(result, pg_url)
    assert "column ledger.code would change type (character varying(40) -> character varying(1))" in result.out
    assert query(pg_url, "SELECT code FROM ledger ORDER BY id") == [("ab",), ("cd",)]


def test_postgresql_widening_an_older_column_passes(pg_url: str, tmp_path: Path) -> None:
    chain = ledger_chain(tmp_path, 'op.alter_column("ledger", "code", type_=sa.String(80))')
    result = run_chain(pg_url, tmp_path, chain)
    assert result.code == 0, result.out
    assert versions(pg_url) == [LAST]
    assert query(pg_url, "SELECT code FROM ledger ORDER BY id") == [("ab",), ("cd",)]


def test_postgresql_loss_in_a_non_default_schema_is_refused(pg_url: str, tmp_path: Path) -> None:
    chain = ledger_chain(tmp_path, 'op.drop_column("ledger", "note", schema="vault")', schema="vault")
    result = run_chain(pg_url, tmp_path, chain)
    assert_refused_and_kept(result, pg_url, "vault.ledger")
    assert "column vault.ledger.note (text) would be dropped, holding 1 non-NULL value(s)" in result.out, result.out


def test_postgresql_change_in_a_non_default_schema_that_loses_nothing_passes(pg_url: str, tmp_path: Path) -> None:
    chain = ledger_chain(
        tmp_path, 'op.add_column("ledger", sa.Column("extra", sa.Text), schema="vault")', schema="vault"
    )
    result = run_chain(pg_url, tmp_path, chain)
    assert result.code == 0, result.out
    assert versions(pg_url) == [LAST]
    assert query(pg_url, "SELECT note FROM vault.ledger WHERE id = 1") == [("kept",)]


# --------------------------------------------------------------------------- an enum rebuilt under its name

# Issue 25 N3, second shape: the type keeps its name, so format_type() reads the same before and
# after; only the column's type oid (atttypid) tells that the column now holds another type.
MOOD = """
op.execute("CREATE TYPE mood AS ENUM ('glad', 'sad')")
op.execute("CREATE TABLE feeling (id integer PRIMARY KEY, mood mood)")
op.execute("INSERT INTO feeling VALUES (1, 'glad'), (2, 'sad'), (3, NULL)")
"""
MOOD_REBUILT = """
op.execute("ALTER TYPE mood RENAME TO mood_old")
op.execute("CREATE TYPE mood AS ENUM ('glad', 'sad', 'calm')")
op.execute("ALTER TABLE feeling ALTER COLUMN mood TYPE mood USING {using}")
op.execute("DROP TYPE mood_old")
"""


def mood_chain(tmp_path: Path, using: str) -> Chain:
    chain = Chain(tmp_path / "migrations")
    chain.add(LEDGER, MOOD, name="mood")
    chain.add(LAST, MOOD_REBUILT.format(using=using), name="mood_rebuilt")
    return chain


def test_postgresql_enum_rebuilt_under_its_name_that_nulls_the_values_is_refused(pg_url: str, tmp_path: Path) -> None:
    result = run_chain(pg_url, tmp_path, mood_chain(tmp_path, "NULL"))
    assert result.code == 8, result.out
    assert f"Migration {LAST} (" in result.out and f"ALLOW_DESTRUCTIVE={LAST}" in result.out, result.out
    assert "feeling.mood" in result.out, result.out
    assert versions(pg_url) == [LEDGER]
    assert query(pg_url, "SELECT id, mood::text FROM feeling ORDER BY id") == [(1, "glad"), (2, "sad"), (3, None)]
    # the rebuild was rolled back whole: the old type is back under its name, with its two labels
    assert query(pg_url, "SELECT enum_range(NULL::mood)::text") == [("{glad,sad}",)]


def test_postgresql_enum_rebuilt_under_its_name_that_keeps_the_values_passes(pg_url: str, tmp_path: Path) -> None:
    result = run_chain(pg_url, tmp_path, mood_chain(tmp_path, "mood::text::mood"))
    assert result.code == 0, result.out
    assert versions(pg_url) == [LAST]
    assert query(pg_url, "SELECT id, mood::text FROM feeling ORDER BY id") == [(1, "glad"), (2, "sad"), (3, None)]
    assert query(pg_url, "SELECT enum_range(NULL::mood)::text") == [("{glad,sad,calm}",)]


# --------------------------------------------------------------------------- what the horizon alone misses


def test_postgresql_change_rolled_back_to_a_savepoint_after_a_read_is_seen(pg_connection: Any) -> None:
    """A read inside a savepoint holds the savepoint's columns; rolled back, the table's rows are its
    older ones again, written before the read's horizon, and the reader must not keep the newer."""
    cursor = pg_connection.cursor()
    pg_connection.commit()  # the tables' rows are older than any transaction of the reads below
    before = snapshot(pg_connection, "postgresql")
    cursor.execute("SAVEPOINT step")
    cursor.execute("ALTER TABLE account DROP COLUMN name")
    inside = snapshot(pg_connection, "postgresql", previous=before)
    assert "name" not in inside.tables["account"]
    cursor.execute("ROLLBACK TO SAVEPOINT step")
    after = snapshot(pg_connection, "postgresql", previous=inside)
    assert "name" in after.tables["account"]
    assert_same_as_a_full_read(after, snapshot(pg_connection, "postgresql"))


def test_postgresql_change_of_a_transaction_rolled_back_after_a_read_is_seen(pg_connection: Any) -> None:
    """The same with the whole transaction rolled back, and the next read in a new one."""
    cursor = pg_connection.cursor()
    pg_connection.commit()
    before = snapshot(pg_connection, "postgresql")
    cursor.execute("ALTER TABLE account ALTER COLUMN email TYPE varchar(5)")
    cursor.execute("ALTER TABLE other ALTER COLUMN label SET NOT NULL")
    inside = snapshot(pg_connection, "postgresql", previous=before)
    pg_connection.rollback()
    after = snapshot(pg_connection, "postgresql", previous=inside)
    assert after.tables["account"]["email"].type == "character varying(50)" and after.tables["other"]["label"].nullable
    assert_same_as_a_full_read(after, snapshot(pg_connection, "postgresql"))


def test_postgresql_table_whose_row_type_shadows_a_type_on_the_search_path_is_seen(pg_connection: Any) -> None:
    """A table's row type is a type of its name: made earlier on the search_path, it hides a user type
    of that name, which format_type then names by its schema; only the new table's rows are written."""
    before = diary_of_a_type_on_the_path(pg_connection)
    assert before.tables["app.diary"]["feeling"].type == "mood"
    cursor = pg_connection.cursor()
    cursor.execute("CREATE TABLE public.mood (id integer)")
    made = snapshot(pg_connection, "postgresql", previous=before)
    assert made.tables["app.diary"]["feeling"].type == "app.mood"
    assert_same_as_a_full_read(made, snapshot(pg_connection, "postgresql"))
    cursor.execute("ALTER TABLE public.mood RENAME TO weather")
    renamed = snapshot(pg_connection, "postgresql", previous=made)
    assert_same_as_a_full_read(renamed, snapshot(pg_connection, "postgresql"))
    assert renamed.tables["app.diary"]["feeling"].type == "mood"


def test_postgresql_temporary_table_whose_row_type_shadows_a_type_is_seen(pg_connection: Any) -> None:
    """pg_temp comes first on every search_path for types: a temporary table hides a type of its name."""
    cursor = pg_connection.cursor()
    cursor.execute("CREATE TYPE mood AS ENUM ('calm')")
    cursor.execute("CREATE TABLE diary (id integer, feeling mood)")
    cursor.execute("CREATE TEMPORARY TABLE scratch (id integer)")  # the session's pg_temp schema exists
    pg_connection.commit()
    before = snapshot(pg_connection, "postgresql")
    cursor.execute("CREATE TEMPORARY TABLE mood (id integer)")
    after = snapshot(pg_connection, "postgresql", previous=before)
    assert after.tables["diary"]["feeling"].type == "public.mood"
    assert_same_as_a_full_read(after, snapshot(pg_connection, "postgresql"))


def test_postgresql_type_dropped_that_shadowed_another_is_seen(pg_connection: Any) -> None:
    """A type dropped writes no row, it deletes one: the type of that name it hid is named bare again."""
    before = diary_of_a_type_on_the_path(pg_connection, "CREATE TYPE public.mood AS ENUM ('x')")
    assert before.tables["app.diary"]["feeling"].type == "app.mood"
    pg_connection.cursor().execute("DROP TYPE public.mood")
    after = snapshot(pg_connection, "postgresql", previous=before)
    assert after.tables["app.diary"]["feeling"].type == "mood"
    assert_same_as_a_full_read(after, snapshot(pg_connection, "postgresql"))


def test_postgresql_role_changed_under_a_user_search_path_is_seen(pg_connection: Any) -> None:
    """The search_path's text stays "$user", public under SET ROLE; the schemas it names do not."""
    cursor = pg_connection.cursor()
    role = f"s9_{uuid.uuid4().hex[:12]}"
    cursor.execute(f"CREATE ROLE {role}")
    cursor.execute(f"CREATE SCHEMA {role} AUTHORIZATION {role}")
    cursor.execute(f"CREATE TYPE {role}.mood AS ENUM ('calm')")
    cursor.execute(f"CREATE TABLE {role}.diary (id integer, feeling {role}.mood)")
    cursor.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    pg_connection.commit()
    try:
        before = snapshot(pg_connection, "postgresql")
        assert before.tables[f"{role}.diary"]["feeling"].type == f"{role}.mood"
        cursor.execute(f"SET LOCAL ROLE {role}")
        after = snapshot(pg_connection, "postgresql", previous=before)
        assert after.tables["diary"]["feeling"].type == "mood"
        assert_same_as_a_full_read(after, snapshot(pg_connection, "postgresql"))
    finally:
        pg_connection.rollback()
        cursor.execute(f"DROP SCHEMA {role} CASCADE")
        cursor.execute(f"REVOKE ALL ON SCHEMA public FROM {role}")
        cursor.execute(f"DROP ROLE {role}")
        pg_connection.commit()


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TYPE app.mood RENAME TO temper",
        "CREATE SCHEMA zoo; ALTER TYPE app.mood SET SCHEMA zoo",
        "ALTER SCHEMA app RENAME TO books",
        "CREATE TYPE public.mood AS ENUM ('x')",
        "DROP TYPE app.mood CASCADE",
        "SET LOCAL search_path = public",
    ],
)
def test_postgresql_type_or_schema_change_rolled_back_after_a_read_is_seen(pg_connection: Any, change: str) -> None:
    """Rolled back, a type's or a schema's older row is back, written before the horizon: what every
    column's type is named by changed again with no new row."""
    before = diary_of_a_type_on_the_path(pg_connection)
    cursor = pg_connection.cursor()
    cursor.execute("SAVEPOINT step")
    cursor.execute(change)
    inside = snapshot(pg_connection, "postgresql", previous=before)
    assert_same_as_a_full_read(inside, snapshot(pg_connection, "postgresql"))
    cursor.execute("ROLLBACK TO SAVEPOINT step")
    after = snapshot(pg_connection, "postgresql", previous=inside)
    assert_same_as_a_full_read(after, before)
    assert_same_as_a_full_read(after, snapshot(pg_connection, "postgresql"))


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("other", "ALTER TABLE other RENAME TO renamed"),
        ("other[]", "ALTER TABLE other SET SCHEMA app"),
        ("app.ledger", "ALTER SCHEMA app RENAME TO books"),
        ("shown", "ALTER VIEW shown RENAME TO seen"),
    ],
)
def test_postgresql_column_of_a_row_type_whose_relation_is_renamed_is_seen(
    pg_connection: Any, kind: str, change: str
) -> None:
    """A table's or a view's row type is named by the relation: renamed or moved, it renames the type
    of a column in another table, whose own rows are not written."""
    cursor = pg_connection.cursor()
    cursor.execute("CREATE VIEW shown AS SELECT 1 AS one")
    cursor.execute(f"CREATE TABLE holder (id integer, held {kind})")
    pg_connection.commit()
    before = snapshot(pg_connection, "postgresql")
    cursor.execute(change)
    after = snapshot(pg_connection, "postgresql", previous=before)
    assert after.tables["holder"]["held"].type != before.tables["holder"]["held"].type
    assert_same_as_a_full_read(after, snapshot(pg_connection, "postgresql"))


def test_postgresql_column_of_a_row_type_hidden_by_a_new_table_of_its_name_is_seen(pg_connection: Any) -> None:
    """A table made earlier on the search_path hides another table's row type of its name, which a
    column elsewhere is of: neither that column's table nor the hidden type is written."""
    cursor = pg_connection.cursor()
    cursor.execute("SET search_path = public, app")
    cursor.execute("CREATE TABLE app.thing (id integer)")
    cursor.execute("CREATE TABLE app.holder (id integer, held app.thing)")
    pg_connection.commit()
    before = snapshot(pg_connection, "postgresql")
    assert before.tables["app.holder"]["held"].type == "thing"
    cursor.execute("CREATE TABLE public.thing (id integer)")
    after = snapshot(pg_connection, "postgresql", previous=before)
    assert after.tables["app.holder"]["held"].type == "app.thing"
    assert_same_as_a_full_read(after, snapshot(pg_connection, "postgresql"))


# --------------------------------------------------------------------------- migrate.py, a rollback the guard made

# The guard rolls a migration back to its savepoint to read the values it held, then runs it
# again. A migration that does its change only once (a sequence is not rolled back) leaves the
# table as it was; the guard's next read must see that, not keep the columns it read in between:
# the data copied into the column that is back, and then dropped, would be lost with exit 0.
ONCE = """
if op.get_bind().exec_driver_sql("SELECT nextval('runs')").scalar() == 1:
    op.drop_column("ledger", "spare")
"""


def test_postgresql_change_that_only_its_first_run_made_is_not_kept_by_the_guard(pg_url: str, tmp_path: Path) -> None:
    chain = Chain(tmp_path / "migrations")
    chain.add(
        LEDGER,
        """
op.execute("CREATE SEQUENCE runs")
op.execute("CREATE TABLE ledger (id integer PRIMARY KEY, note text, spare text)")
op.execute("INSERT INTO ledger (id, note) VALUES (1, 'kept'), (2, NULL)")
""",
        name="ledger",
    )
    chain.add(ELSEWHERE[0], ONCE, name="once")
    chain.add(ELSEWHERE[1], """op.execute("UPDATE ledger SET spare = 'only here'")""", name="fill")
    chain.add(LAST, 'op.drop_column("ledger", "spare")', name="last")
    result = run_chain(pg_url, tmp_path, chain)
    # Refused where the second run did not do what the first did (before the fix: exit 0, spare gone).
    assert result.code == 8, result.out
    assert f"Migration {ELSEWHERE[0]} (" in result.out and "changed the schema differently" in result.out, result.out
    assert versions(pg_url) == [LEDGER]
    assert query(pg_url, "SELECT id, note, spare FROM ledger ORDER BY id") == [(1, "kept", None), (2, None, None)]


def test_postgresql_migration_run_again_after_a_ddl_lock_retry_is_judged_against_the_catalog_as_it_is(
    pg_url: str, tmp_path: Path
) -> None:
    """A DDL lock timeout after the guard judged a migration (here: its history row waits for a lock the
    app holds) rolls the migration back and runs it again: the guard judges the second run against the
    catalog the rollback went back to, not the one it read inside the transaction that is gone."""
    from tests.integration.test_guard_round_trips import LAST as SECOND
    from tests.integration.test_guard_round_trips import LEDGER as FIRST
    from tests.integration.test_guard_round_trips import chain_with

    chain = chain_with(
        tmp_path,
        """
upgrade.attempts = getattr(upgrade, "attempts", 0) + 1
if upgrade.attempts == 1:  # what the guard judged before the retry
    op.add_column("ledger", sa.Column("extra", sa.Text))
else:  # what the run after the rollback does: a loss
    op.drop_column("ledger", "note")
""",
    )
    assert run_migrate("upgrade", FIRST, env=operator_env(pg_url, tmp_path, **chain.env())).code == 0
    app = connect(pg_url, autocommit=False)
    try:
        app.cursor().execute("LOCK TABLE migrate_init_history IN SHARE MODE")  # readers pass, inserts wait
        result = run_migrate(env=operator_env(pg_url, tmp_path, **chain.env(), DDL_LOCK_TIMEOUT=1, DDL_LOCK_RETRIES=1))
    finally:
        app.rollback()
        app.close()
    assert "retry 1/1" in result.out, result.out
    assert result.code == 8, result.out
    assert f"Migration {SECOND} (" in result.out, result.out
    assert versions(pg_url) == [FIRST]
    assert query(pg_url, "SELECT id, note FROM ledger") == [(1, "kept")]
