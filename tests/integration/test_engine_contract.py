"""The engine contract (issue 21): every engine of migrate_init/engines/ passes the same behaviours.

golang-migrate's database/testing is the model: one suite, parametrized over
the engines, against real servers (SQLite files, the session's PostgreSQL and
MariaDB).  A new engine is served when it passes these: connect and read
(versions, the catalog, incrementally too, counts, the digest of a column's
values), quote, lock and name the holder, cancel, bound a DDL statement's wait
for a lock, whether DDL rolls back, run a script, make a session read-only,
forbid a COMMIT, list the deferred triggers a COMMIT would fire, tell one
transaction from the next, and class the catalog's types.  Where an engine
cannot do something (forbid a COMMIT, digest on the server), the test proves
that it says so and that nothing else changes.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy

from migrate_init import alembic_glue, catalog, engines, url, values
from migrate_init.catalog import CatalogRead
from migrate_init.errors import ConfigError, LockLost, LockTimeout, classify
from tests.support import not_a_case


def _engine(any_url: str) -> tuple[url.Url, engines.Engine]:
    database = url.parse(any_url)
    return database, database.engine


def _create(database: url.Url, *statements: str) -> None:
    if database.sqlite_path is not None:
        os.makedirs(os.path.dirname(database.sqlite_path), exist_ok=True)
    engine = alembic_glue.create_engine(database, busy_timeout=5)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


@contextlib.contextmanager
def _connection(database: url.Url, *, read_only: bool = False) -> Iterator[sqlalchemy.Connection]:
    """A connection of migrate-init's own SQLAlchemy engine, disposed of afterwards."""
    sa_engine = alembic_glue.create_engine(database, busy_timeout=5, read_only=read_only)
    try:
        with sa_engine.connect() as connection:
            yield connection
    finally:
        sa_engine.dispose()


def _read_catalog(database: url.Url, engine: engines.Engine, watched: Callable[[str, str], bool]) -> CatalogRead:
    """The engine's catalog reader, in a read-only connection of its own."""
    with _connection(database, read_only=True) as connection:
        return engine.read_catalog(connection, None, watched, None)


def _server_connection(database: url.Url, engine: engines.Engine) -> Any:
    return None if engine.file_based else engine.connect(database, 5, None)


def _lock(database: url.Url, engine: engines.Engine, timeout: float) -> Any:
    return engine.lock(
        database,
        connection=_server_connection(database, engine),
        version_table="alembic_version",
        timeout=timeout,
        checkpoint=None,
        on_wait=None,
        shared=False,
        allow_network_fs=False,
    )


def test_every_spelling_of_an_engine_is_the_one_engine_and_an_unknown_one_is_a_config_error() -> None:
    assert engines.of("postgres") is engines.of("postgresql") is engines.of("postgresql+psycopg2")
    assert engines.of("mariadb") is engines.of("mysql") is engines.of("mysql+pymysql")
    assert engines.of("sqlite").name == "sqlite"
    assert {engines.of(name).name for name in ("sqlite", "postgres", "mariadb")} == {"sqlite", "postgresql", "mysql"}
    with pytest.raises(ConfigError) as raised:
        engines.of("oracle")
    assert "oracle" in str(raised.value) and "DATABASE_URL" in str(raised.value)
    assert not engines.known("mssql+pyodbc")


def test_the_reader_sees_an_empty_database_as_empty_and_creates_nothing(any_url: str) -> None:
    database, engine = _engine(any_url)
    with engine.reader(
        database, read_only=False, connect_timeout=5, statement_timeout=5, checkpoint=None, track=None
    ) as reader:
        assert reader.backend == engine.name
        snapshot = reader.snapshot("alembic_version")
        assert snapshot.versions is None
        assert snapshot.columns == {}
    if engine.file_based:
        assert database.sqlite_path is not None
        assert not os.path.exists(database.sqlite_path), "a read created the file"


def test_the_reader_and_the_catalog_reader_see_the_same_tables_and_columns(any_url: str) -> None:
    database, engine = _engine(any_url)
    _create(
        database,
        "CREATE TABLE contract_a (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, note TEXT)",
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
        "INSERT INTO alembic_version (version_num) VALUES ('abc123')",
    )
    with engine.reader(
        database, read_only=True, connect_timeout=5, statement_timeout=5, checkpoint=None, track=None
    ) as reader:
        snapshot = reader.snapshot("alembic_version")
        assert snapshot.versions == ("abc123",)
        assert snapshot.columns["contract_a"] == {"id", "name", "note"}
        assert reader.counts(["contract_a"]) == {"contract_a": 0}
    read = _read_catalog(database, engine, lambda name, relname: name != "alembic_version")
    # Only what the caller watches is read in full (the version table may be listed, never judged).
    assert set(read.tables) - {"alembic_version"} == {"contract_a"}
    columns = read.tables["contract_a"]
    assert list(columns) == ["id", "name", "note"]
    assert not columns["name"].nullable and columns["note"].nullable


def test_ddl_is_rolled_back_with_its_transaction_exactly_where_the_engine_says_it_is(any_url: str) -> None:
    database, engine = _engine(any_url)
    _create(database)
    sa_engine = alembic_glue.create_engine(database, busy_timeout=5)
    try:
        with sa_engine.connect() as connection:
            transaction = connection.begin()
            connection.exec_driver_sql("CREATE TABLE contract_ddl (id INTEGER)")
            transaction.rollback()
        with sa_engine.connect() as connection:
            exists = sqlalchemy.inspect(connection).has_table("contract_ddl")
    finally:
        sa_engine.dispose()
    assert exists is not engine.transactional_ddl


def test_a_script_runs_every_statement_as_the_engines_client_would_in_the_open_transaction(any_url: str) -> None:
    database, engine = _engine(any_url)
    _create(database, "CREATE TABLE contract_seed (id INTEGER PRIMARY KEY, body VARCHAR(100))")
    script = (
        "-- a comment; with a semicolon\n"
        "INSERT INTO contract_seed (id, body) VALUES (1, 'one; still one');\n"
        "INSERT INTO contract_seed (id, body) VALUES (2, 'two');\n"
    )
    sa_engine = alembic_glue.create_engine(database, busy_timeout=5)
    try:
        with sa_engine.connect() as connection:
            with connection.begin():
                engine.run_script(connection.connection.driver_connection, script)
            rows = connection.exec_driver_sql("SELECT id, body FROM contract_seed ORDER BY id").fetchall()
    finally:
        sa_engine.dispose()
    assert [tuple(row) for row in rows] == [(1, "one; still one"), (2, "two")]


def test_the_lock_excludes_a_second_holder_names_the_first_and_is_free_after_release(any_url: str) -> None:
    database, engine = _engine(any_url)
    if engine.file_based:
        assert database.sqlite_path is not None
        os.makedirs(os.path.dirname(database.sqlite_path), exist_ok=True)
    assert engine.holder(database, "alembic_version") is None
    first = _lock(database, engine, timeout=5)
    assert first.acquire()
    try:
        holder = engine.holder(database, "alembic_version")
        assert holder is not None
        second = _lock(database, engine, timeout=0.3)
        with pytest.raises(LockTimeout) as raised:
            second.acquire()
        assert holder.split(",")[0] in str(raised.value), (holder, raised.value)
        second.release()
    finally:
        first.release()
    assert engine.holder(database, "alembic_version") is None
    third = _lock(database, engine, timeout=5)
    assert third.acquire()
    third.release()


def _break_from_outside(database: url.Url, engine: engines.Engine, held: Any) -> None:
    """What takes a held lock away without its holder's knowledge: a deleted file, an ended session."""
    if engine.file_based:
        os.remove(held.path)
        return
    other = engine.connect(database, 5, None)
    try:
        with other.cursor() as cursor:
            if engine.name == "postgresql":
                cursor.execute("SELECT pg_terminate_backend(%s)", (held.connection.get_backend_pid(),))
            else:
                cursor.execute(f"KILL {int(held.connection.thread_id())}")
    finally:
        other.close()


def _free_for_another(database: url.Url, engine: engines.Engine) -> None:
    """Another migrator takes the lock at once, and holds it."""
    other = _lock(database, engine, timeout=5)
    assert other.acquire()
    try:
        other.verify()
    finally:
        other.release()


def test_a_held_lock_verifies_until_taken_away_from_outside_then_says_how_it_went(any_url: str) -> None:
    database, engine = _engine(any_url)
    if engine.file_based:
        assert database.sqlite_path is not None
        os.makedirs(os.path.dirname(database.sqlite_path), exist_ok=True)
    first = _lock(database, engine, timeout=5)
    first.verify()  # not taken: nothing to verify
    assert first.acquire()
    try:
        first.verify()
        first.verify()
        _break_from_outside(database, engine, first)
        deadline = time.monotonic() + 10
        while True:  # a terminated backend is gone within moments, not at once
            try:
                first.verify()
            except LockLost as exc:
                lost = exc
                break
            assert time.monotonic() < deadline, "verify() kept passing after the lock was taken away"
            time.sleep(0.1)
        assert first.description in str(lost)
        if engine.file_based:
            assert "was deleted" in str(lost) and lost.exit_code == 5, lost
        else:  # the server ended the session: a lost connection
            assert "ended by the server" in str(lost) and lost.exit_code == 3, lost
        _free_for_another(database, engine)  # which is why the holder had to know
    finally:
        first.release()


def test_a_sqlite_lock_file_replaced_while_held_is_lost_for_the_holder_and_fresh_for_the_next(tmp_path: Any) -> None:
    database, engine = _engine(f"sqlite:///{tmp_path}/app.db")
    first = _lock(database, engine, timeout=5)
    assert first.acquire()
    try:
        os.rename(first.path, f"{first.path}.old")
        open(first.path, "w").close()
        with pytest.raises(LockLost, match="replaced"):
            first.verify()
        _free_for_another(database, engine)  # the file now there is free
    finally:
        first.release()


def test_a_sqlite_lock_taken_on_a_file_deleted_meanwhile_is_taken_again_on_the_file_there_now(tmp_path: Any) -> None:
    database, engine = _engine(f"sqlite:///{tmp_path}/app.db")
    first = _lock(database, engine, timeout=5)
    assert first.acquire()
    second = _lock(database, engine, timeout=5)
    second._open()  # opened while the first holds the file, as a waiter does
    stale = os.fstat(second._fd).st_ino
    first.release()
    os.remove(first.path)  # an operator cleans up "a stale lock file" between two attempts
    third = _lock(database, engine, timeout=5)
    assert third.acquire()  # on a new file at the path
    try:
        assert not second._try_lock(), "a lock on the deleted file would keep no one out"
        assert os.fstat(second._fd).st_ino != stale  # it now waits on the file that is there
        with pytest.raises(LockTimeout):
            second.timeout = 0.3
            second.acquire()
    finally:
        third.release()
        second.release()


_LONG = {
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
    "postgresql": "SELECT pg_sleep(60)",
    "mysql": "SELECT SLEEP(60)",
}


def test_cancel_ends_the_statement_in_progress_on_the_drivers_connection(any_url: str) -> None:
    database, engine = _engine(any_url)
    _create(database, "CREATE TABLE contract_cancel (id INTEGER)")  # SQLite: the file exists
    with engine.reader(
        database, read_only=True, connect_timeout=5, statement_timeout=120, checkpoint=None, track=None
    ) as reader:
        connection = reader.connection
        outcome: list[BaseException | None] = []

        def long_statement() -> None:
            cursor = connection.cursor()
            try:
                cursor.execute(_LONG[engine.name])
                cursor.fetchall()
                outcome.append(None)
            except BaseException as exc:  # the cancel's error, whichever driver
                outcome.append(exc)

        worker = threading.Thread(target=long_statement, daemon=True)
        worker.start()
        time.sleep(1.0)
        assert worker.is_alive(), f"the statement ended by itself: {outcome}"
        engine.cancel(connection)
        worker.join(30)
        # The statement runs 60 s (SQLite's, for ever): ending within 30 s is the cancel's doing.
        assert not worker.is_alive(), "cancel() did not end the statement within 30 s"


def _rows(database: url.Url, sql: str) -> list[tuple[Any, ...]]:
    """``sql``'s rows, read in a connection of its own (what another session sees)."""
    with _connection(database) as connection:
        return [tuple(row) for row in connection.exec_driver_sql(sql).fetchall()]


def test_a_session_made_read_only_refuses_every_write_for_good_and_still_reads(any_url: str) -> None:
    database, engine = _engine(any_url)
    _create(database, "CREATE TABLE contract_ro (id INTEGER)", "INSERT INTO contract_ro (id) VALUES (1)")
    sa_engine = alembic_glue.create_engine(database, busy_timeout=5)
    try:
        dbapi_connection = sa_engine.raw_connection()
        try:
            engine.make_read_only(dbapi_connection.driver_connection)
            # For good: every later transaction of the session is read-only, not only the next one.
            for attempt in range(2):
                cursor = dbapi_connection.cursor()
                try:
                    cursor.execute("SELECT count(*) FROM contract_ro")
                    assert cursor.fetchall()[0][0] == 1
                    with pytest.raises(Exception) as refused:
                        cursor.execute(f"INSERT INTO contract_ro (id) VALUES ({attempt + 2})")
                    assert "read" in str(refused.value).lower(), refused.value  # read-only, readonly, READ ONLY
                finally:
                    cursor.close()
                    dbapi_connection.rollback()
        finally:
            dbapi_connection.close()
    finally:
        sa_engine.dispose()
    assert _rows(database, "SELECT id FROM contract_ro") == [(1,)]


#: A table and a column whose names hold both engines' quote characters, a space and a reserved word.
_ODD_TABLE = 'contract "odd" `select`'
_ODD_COLUMN = 'the "value" `from`'


def test_a_quoted_name_holding_quote_characters_round_trips_through_sql_and_the_catalog(any_url: str) -> None:
    database, engine = _engine(any_url)
    table, column = engine.quote(_ODD_TABLE), engine.quote(_ODD_COLUMN)
    _create(
        database,
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, {column} VARCHAR(20))",
        f"INSERT INTO {table} (id, {column}) VALUES (1, 'kept')",
    )
    assert _rows(database, f"SELECT {column} FROM {table}") == [("kept",)]
    read = _read_catalog(database, engine, lambda name, relname: True)
    assert list(read.tables[_ODD_TABLE]) == ["id", _ODD_COLUMN]


def test_a_columns_values_are_counted_and_digested_whatever_their_row_order_and_nulls(any_url: str) -> None:
    """values.read (the guard's count of what a candidate loss held) through the engine's digest_sql."""
    database, engine = _engine(any_url)
    _create(database, "CREATE TABLE contract_digest (id INTEGER PRIMARY KEY, v VARCHAR(20))")
    sa_engine = alembic_glue.create_engine(database, busy_timeout=5)

    def held(*rows: tuple[int, str | None]) -> values.Held:
        with sa_engine.begin() as connection:
            connection.exec_driver_sql("DELETE FROM contract_digest")
            for row in rows:
                connection.exec_driver_sql(
                    f"INSERT INTO contract_digest (id, v) VALUES ({engine.placeholder}, {engine.placeholder})", row
                )
            snapshot = catalog.snapshot(connection, connection.dialect.name)
            return values.read(connection, snapshot, {"contract_digest": {"v": True}})["contract_digest"]

    try:
        first = held((1, "a"), (2, "b; c"), (3, None))
        reordered = held((1, "b; c"), (2, None), (3, "a"), (4, None))
        changed = held((1, "a"), (2, "b; C"))
    finally:
        sa_engine.dispose()
    assert (first.rows, first.count("v")) == (3, 2)
    assert (reordered.rows, reordered.count("v")) == (4, 2)
    digest = first.columns["v"][1]
    # Where DDL is not transactional the guard judges before a statement runs: there is no "after" to compare.
    assert (digest is not None) is engine.transactional_ddl
    if digest is not None:
        assert reordered.columns["v"][1] == digest, "the digest depends on the row order or on the NULLs"
        assert changed.columns["v"][1] != digest, "the digest missed a changed value"


def test_a_commit_the_engine_forbids_is_refused_by_the_server_and_the_work_is_rolled_back(any_url: str) -> None:
    database, engine = _engine(any_url)
    _create(database, "CREATE TABLE contract_commit (id INTEGER)")
    with _connection(database) as connection:
        transaction = connection.begin()
        connection.exec_driver_sql("INSERT INTO contract_commit (id) VALUES (1)")
        armed = engine.forbid_commit(connection, "contract_poison")
        connection.exec_driver_sql("INSERT INTO contract_commit (id) VALUES (2)")  # still usable
        if armed:
            with pytest.raises(sqlalchemy.exc.DBAPIError) as refused:
                transaction.commit()
            assert "contract_poison" in str(refused.value)
        else:  # the engine cannot: the transaction is as it was, and commits
            transaction.commit()
    assert _rows(database, "SELECT id FROM contract_commit ORDER BY id") == ([] if armed else [(1,), (2,)])


def test_the_transaction_id_is_the_same_throughout_a_transaction_and_new_in_the_next(any_url: str) -> None:
    database, engine = _engine(any_url)
    _create(database, "CREATE TABLE contract_xid (id INTEGER)")
    with _connection(database) as connection:
        with connection.begin():
            first = engine.transaction_id(connection)
            connection.exec_driver_sql("INSERT INTO contract_xid (id) VALUES (1)")
            again = engine.transaction_id(connection)
            sent = connection.exec_driver_sql(engine.transaction_id_sql).scalar() if engine.transaction_id_sql else None
        with connection.begin():
            following = engine.transaction_id(connection)
    assert first == again == sent  # the guard sends transaction_id_sql with its savepoint and compares
    if first is not None:
        assert following is not None and following != first
    else:  # nothing to ask: None every time, and no query to send
        assert following is None and not engine.transaction_id_sql


#: A deferred constraint trigger, where the engine has them: a COMMIT would fire it (it logs a row).
_DEFERRED_TRIGGER = {
    "postgresql": (
        "CREATE TABLE contract_fired (id INTEGER)",
        "CREATE FUNCTION contract_fire() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO contract_fired VALUES (NEW.id); RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER contract_deferred AFTER INSERT ON contract_watched "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE PROCEDURE contract_fire()",
    ),
}


def test_deferred_constraints_names_what_a_commit_would_fire_and_never_the_forbid_commit_trigger(any_url: str) -> None:
    database, engine = _engine(any_url)
    trigger = _DEFERRED_TRIGGER.get(engine.name, ())
    _create(database, "CREATE TABLE contract_watched (id INTEGER)", *trigger)
    with _connection(database) as connection, connection.begin() as transaction:
        engine.forbid_commit(connection, "contract_poison")
        connection.exec_driver_sql("INSERT INTO contract_watched (id) VALUES (7)")
        deferred = engine.deferred_constraints(connection)
        if trigger:
            fired = "SELECT id FROM contract_fired"
            assert connection.exec_driver_sql(fired).fetchall() == []
            # What the guard does with the list: fire them now, inside the transaction, and judge that.
            connection.exec_driver_sql(f"SET CONSTRAINTS {deferred} IMMEDIATE")
            assert [tuple(row) for row in connection.exec_driver_sql(fired)] == [(7,)]
        transaction.rollback()
    assert "contract_poison" not in deferred  # it must stay deferred: it refuses the COMMIT itself
    assert deferred.split(".")[-1] == ("contract_deferred" if trigger else "")


def test_the_catalogs_spelling_of_a_string_type_is_classed_as_varchar_of_its_length_or_text(any_url: str) -> None:
    database, engine = _engine(any_url)
    _create(database, "CREATE TABLE contract_types (id INTEGER, short VARCHAR(40), body TEXT)")
    read = _read_catalog(database, engine, lambda name, relname: True)
    columns = read.tables["contract_types"]
    classes = {name: engine.string_class(engine.canonical_type(column.type)) for name, column in columns.items()}
    assert classes == {"id": None, "short": ("varchar", 40), "body": ("text", None)}, columns
    # The same type read twice is the same canonical type, whatever spacing or case the text has.
    assert engine.canonical_type(columns["short"].type) == engine.canonical_type(f"  {columns['short'].type} ")


_ACCOUNT = "CREATE TABLE account (id INTEGER PRIMARY KEY, name TEXT, email VARCHAR(50))"
#: The tables each change starts from: ``other`` is never touched; PostgreSQL's ``app`` is another schema.
_START = [
    _ACCOUNT,
    "CREATE TABLE other (id INTEGER PRIMARY KEY, label TEXT)",
    "INSERT INTO account VALUES (1, 'a', 'a@x')",
]
_IN_ANOTHER_SCHEMA = {
    "postgresql": [
        "CREATE SCHEMA app",
        "CREATE TABLE app.ledger (id integer PRIMARY KEY, note text)",
        "CREATE TYPE app.mood AS ENUM ('calm', 'keen')",
        "CREATE TABLE app.diary (id integer PRIMARY KEY, feeling app.mood)",
    ],
}


def _everywhere(*statements: str) -> dict[str, tuple[str, ...]]:
    return dict.fromkeys(("sqlite", "postgresql", "mysql"), statements)


#: Each change the catalog must see, in each engine's SQL (an engine missing from one has no such change).
_CHANGES: dict[str, dict[str, tuple[str, ...]]] = {
    # A batch rebuild: same name, a new table (SQLite: a new root page, the CREATE text written anew).
    "batch-rebuild": _everywhere(
        _ACCOUNT.replace("account", "_alembic_tmp_account"),
        "INSERT INTO _alembic_tmp_account SELECT * FROM account",
        "DROP TABLE account",
        "ALTER TABLE _alembic_tmp_account RENAME TO account",
    ),
    "drop-column": _everywhere("ALTER TABLE account DROP COLUMN name"),
    "rename-column": _everywhere("ALTER TABLE account RENAME COLUMN name TO full_name"),
    "add-not-null": _everywhere("ALTER TABLE account ADD COLUMN note VARCHAR(20) NOT NULL DEFAULT ''"),
    # Same name, another column (PostgreSQL: a new attnum; SQLite: it moves to the end).
    "drop-and-readd": _everywhere("ALTER TABLE account DROP COLUMN name", "ALTER TABLE account ADD COLUMN name TEXT"),
    "drop-and-recreate": _everywhere("DROP TABLE account", _ACCOUNT),
    "rename-table": _everywhere("ALTER TABLE account RENAME TO customer"),
    "drop-table": _everywhere("DROP TABLE account"),
    "type": {
        "postgresql": ("ALTER TABLE account ALTER COLUMN name TYPE varchar(20)",),
        "mysql": ("ALTER TABLE account MODIFY name VARCHAR(20)",),
    },
    # A type change that changes nothing but the typmod.
    "typmod": {
        "postgresql": ("ALTER TABLE account ALTER COLUMN email TYPE varchar(60)",),
        "mysql": ("ALTER TABLE account MODIFY email VARCHAR(60)",),
    },
    "not-null": {
        "postgresql": ("ALTER TABLE account ALTER COLUMN name SET NOT NULL",),
        "mysql": ("ALTER TABLE account MODIFY name TEXT NOT NULL",),
    },
    "default": {
        "postgresql": ("ALTER TABLE account ALTER COLUMN name SET DEFAULT 'x'",),
        "mysql": ("ALTER TABLE account ALTER COLUMN name SET DEFAULT 'x'",),
    },
    "identity": {"postgresql": ("ALTER TABLE account ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY",)},
    # Outside the current schema.
    "other-schema-drop": {"postgresql": ("ALTER TABLE app.ledger DROP COLUMN note",)},
    "other-schema-type": {"postgresql": ("ALTER TABLE app.ledger ALTER COLUMN note TYPE varchar(5)",)},
    "set-schema": {"postgresql": ("ALTER TABLE account SET SCHEMA app",)},
    # What a column's type is read as changes with no row of the table written (format_type).
    "type-rename": {"postgresql": ("ALTER TYPE app.mood RENAME TO temper",)},
    "schema-rename": {"postgresql": ("ALTER SCHEMA app RENAME TO books",)},
    "search-path": {"postgresql": ("SET LOCAL search_path = app, public",)},
}


#: The changes that leave a table just as it was, but for its identity.
_IDENTICAL = {"batch-rebuild", "drop-and-recreate"}
#: The changes that touch no table's own rows: every table is read again.
_EVERY_TABLE = {"type-rename", "schema-rename", "search-path"}


def _ordered(snap: catalog.Snapshot) -> list[tuple[str, list[Any]]]:
    """Tables and columns in the reader's order (dict equality would ignore it, and order is judged)."""
    return [(name, list(columns.values())) for name, columns in snap.tables.items()]


@not_a_case(lambda params: params["any_url"] not in _CHANGES[params["change"]])
@pytest.mark.parametrize("change", list(_CHANGES))
def test_a_catalog_read_given_the_previous_one_is_a_full_read_after_each_change(any_url: str, change: str) -> None:
    """Issue 27: the guard reads again only the tables whose mark changed; a mark that missed a change
    would let a loss through."""
    database, engine = _engine(any_url)
    _create(database, *_START, *_IN_ANOTHER_SCHEMA.get(engine.name, ()))
    with _connection(database) as connection, connection.begin() as transaction:
        before = catalog.snapshot(connection, connection.dialect.name)
        for statement in _CHANGES[change][engine.name]:
            connection.exec_driver_sql(statement)
        # Read inside the transaction that made the change, as the guard does.
        incremental = catalog.snapshot(connection, connection.dialect.name, previous=before)
        full = catalog.snapshot(connection, connection.dialect.name)
        transaction.rollback()
    assert _ordered(incremental) == _ordered(full)
    assert incremental.table_ids == full.table_ids
    assert incremental.locations == full.locations
    # A table made again identically is a change only where the catalog has an identity that is never
    # reused: a server's oid (a file's freed page may come back as the new root page; MySQL has none).
    if change not in _IDENTICAL or (before.table_ids and not engine.file_based):
        assert (_ordered(incremental), incremental.table_ids) != (_ordered(before), before.table_ids)
    if change in _EVERY_TABLE:  # the keys may change with the schema's name or the search_path
        return
    if before.marks:  # the engine reads incrementally: the untouched table is handed over as it was
        assert incremental.tables["other"] is before.tables["other"]
    else:  # it reads in full: the same columns, read again
        assert incremental.tables["other"] == before.tables["other"]


def test_ddl_behind_another_sessions_open_transaction_gives_up_within_the_engines_bound(any_url: str) -> None:
    """What upgrade does before each migration (DDL_LOCK_TIMEOUT; SQLite's wait is its busy timeout): the
    ALTER gives up, with an error that classify calls one upgrade retries, instead of queueing for ever."""
    database, engine = _engine(any_url)
    _create(database, "CREATE TABLE contract_held (id INTEGER)", "INSERT INTO contract_held (id) VALUES (1)")
    with _connection(database) as reader:
        reader.begin()
        # An open transaction that read the table: PostgreSQL's ACCESS SHARE lock, MySQL's metadata lock;
        # on SQLite the file's write lock, which migrate-init's engine takes as a transaction begins.
        assert reader.exec_driver_sql("SELECT count(*) FROM contract_held").scalar() == 1
        sa_engine = alembic_glue.create_engine(database, busy_timeout=0.5)
        try:
            with sa_engine.connect() as connection:
                engine.ddl_session(connection, 0.5)
                with pytest.raises(Exception) as gave_up, connection.begin():  # whichever driver's error
                    connection.exec_driver_sql("ALTER TABLE contract_held ADD COLUMN note VARCHAR(20)")
        finally:
            sa_engine.dispose()
        reader.rollback()
    assert classify(gave_up.value) in ("lock_not_available", "busy"), gave_up.value
    assert "note" not in _read_catalog(database, engine, lambda name, relname: True).tables["contract_held"]
