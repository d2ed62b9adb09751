"""The engine contract (issue 21): every engine of migrate_init/engines/ passes the same behaviours.

golang-migrate's database/testing is the model: one suite, parametrized over
the engines, against real servers (SQLite files, the session's PostgreSQL and
MariaDB).  A new engine is served when it passes these.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
import sqlalchemy

from migrate_init import alembic_glue, engines, url
from migrate_init.errors import ConfigError, LockTimeout


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
    sa_engine = alembic_glue.create_engine(database, busy_timeout=5, read_only=True)
    try:
        with sa_engine.connect() as connection:
            read = engine.read_catalog(connection, None, lambda name, relname: name != "alembic_version", None)
    finally:
        sa_engine.dispose()
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
