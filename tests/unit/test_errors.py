"""errors.classify / report.first_line on real driver errors, and the stop errors' words.

Every error here is raised by the real driver: sqlite3 on real files,
psycopg2 against a closed port, PyMySQL against a closed port or a socket
that answers with a real MySQL error packet, the OS on /dev/full.  The
PostgreSQL server's own errors (authentication, SQLSTATEs) are in
tests/integration/test_error_kinds.py, since a unit test starts no server.
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy

from migrate_init import errors
from migrate_init.errors import (
    AccessDenied,
    DatabaseMissing,
    DiskFull,
    Interrupted,
    MigrationFailed,
    MigrationTimeout,
    classify,
)
from migrate_init.report import first_line


def raised(action: Callable[[], object]) -> BaseException:
    """The exception ``action`` raises; the test fails if it raises none."""
    try:
        action()
    except BaseException as exc:  # whatever the driver raises is what we classify
        return exc
    raise AssertionError("expected the driver to raise")


@pytest.fixture
def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (x)")
    return path


# -- unreachable ------------------------------------------------------------------------------


def test_a_refused_postgresql_connection_is_unreachable_and_its_line_names_the_port(closed_port):
    exc = raised(
        lambda: psycopg2.connect(
            host="127.0.0.1", port=closed_port, user="app", password="hunter2secret", dbname="app", connect_timeout=3
        )
    )

    assert classify(exc) == "unreachable"
    assert str(closed_port) in first_line(exc) and "refused" in first_line(exc).lower()
    assert "hunter2secret" not in first_line(exc)


def test_sqlalchemys_wrapper_is_read_through_its_orig(closed_port):
    engine = sqlalchemy.create_engine(f"postgresql+psycopg2://app:hunter2secret@127.0.0.1:{closed_port}/app")
    exc = raised(engine.connect)

    assert isinstance(exc, sqlalchemy.exc.OperationalError)
    assert classify(exc) == "unreachable"
    assert first_line(exc) == first_line(exc.orig)
    assert "sqlalche.me" not in first_line(exc) and "Background on this error" not in first_line(exc)


def test_a_sqlite_file_in_a_missing_folder_is_unreachable(tmp_path):
    exc = raised(lambda: sqlite3.connect(tmp_path / "no" / "such" / "app.db"))

    assert classify(exc) == "unreachable"
    assert first_line(exc) == "unable to open database file"


def test_a_refused_socket_is_unreachable(closed_port):
    exc = raised(lambda: socket.create_connection(("127.0.0.1", closed_port), timeout=3))

    assert isinstance(exc, ConnectionRefusedError)
    assert classify(exc) == "unreachable"


# -- SQLite: corrupt, access, busy, full, canceled ------------------------------------------------


def test_a_file_that_is_not_a_database_is_corrupt(tmp_path):
    path = tmp_path / "app.db"
    path.write_bytes(b"this is not a SQLite database " * 200)

    exc = raised(lambda: sqlite3.connect(path).execute("SELECT count(*) FROM sqlite_master").fetchall())

    assert classify(exc) == "corrupt"
    assert first_line(exc) == "file is not a database"


def test_a_damaged_page_is_corrupt(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA page_size = 1024")
        connection.execute("CREATE TABLE t (x)")
        connection.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 50)
    data = bytearray(path.read_bytes())
    data[1024:4096] = b"\xff" * 3072  # overwrite the table's pages, keep the header
    path.write_bytes(bytes(data))

    exc = raised(lambda: sqlite3.connect(path).execute("SELECT count(*), max(x) FROM t").fetchall())

    assert classify(exc) == "corrupt", exc


def test_writing_a_read_only_sqlite_database_is_access(sqlite_file):
    connection = sqlite3.connect(f"file:{sqlite_file}?mode=ro", uri=True)

    exc = raised(lambda: connection.execute("INSERT INTO t VALUES (1)"))

    assert classify(exc) == "access"
    assert first_line(exc) == "attempt to write a readonly database"


def test_a_locked_sqlite_database_is_busy(sqlite_file):
    holder = sqlite3.connect(sqlite_file, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        exc = raised(lambda: sqlite3.connect(sqlite_file, timeout=0, isolation_level=None).execute("BEGIN IMMEDIATE"))
    finally:
        holder.execute("ROLLBACK")

    assert classify(exc) == "busy"
    assert first_line(exc) == "database is locked"


def test_a_full_sqlite_database_is_disk_full(tmp_path):
    connection = sqlite3.connect(tmp_path / "app.db")
    connection.execute("PRAGMA page_size = 1024")
    connection.execute("CREATE TABLE t (x)")
    connection.execute("PRAGMA max_page_count = 4")  # SQLite's own SQLITE_FULL, as on a full volume

    exc = raised(lambda: connection.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 20))

    assert classify(exc) == "disk_full"
    assert first_line(exc) == "database or disk is full"


def test_no_space_left_on_the_device_is_disk_full():
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        exc = raised(lambda: os.write(fd, b"x"))
    finally:
        os.close(fd)

    assert isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    assert classify(exc) == "disk_full"


def test_an_interrupted_sqlite_statement_is_query_canceled():
    connection = sqlite3.connect(":memory:")
    timer = threading.Timer(0.2, connection.interrupt)
    timer.start()
    try:
        exc = raised(
            lambda: connection.execute(
                "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"
            ).fetchall()
        )
    finally:
        timer.cancel()

    assert classify(exc) == "query_canceled"
    assert first_line(exc) == "interrupted"


def test_an_ordinary_sql_error_is_other(sqlite_file):
    exc = raised(lambda: sqlite3.connect(sqlite_file).execute("SELECT * FROM missing_table"))

    assert classify(exc) == "other"
    assert first_line(exc) == "no such table: missing_table"


# -- chains, our own errors ----------------------------------------------------------------------


def test_the_cause_of_our_own_error_decides_its_kind(sqlite_file):
    holder = sqlite3.connect(sqlite_file, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        busy = raised(lambda: sqlite3.connect(sqlite_file, timeout=0, isolation_level=None).execute("BEGIN IMMEDIATE"))
    finally:
        holder.execute("ROLLBACK")

    wrapped = raised(lambda: _raise(MigrationFailed("Migration x failed: disk full words.", "x"), busy))

    assert wrapped.__cause__ is busy
    assert classify(wrapped) == "busy"  # our message's words are not read


def _raise(error: BaseException, cause: BaseException) -> None:
    raise error from cause


def test_an_error_raised_while_handling_another_is_read_outer_first(tmp_path, closed_port):
    corrupt = tmp_path / "bad.db"
    corrupt.write_bytes(b"garbage" * 500)

    def cleanup_fails() -> None:
        try:
            sqlite3.connect(corrupt).execute("SELECT * FROM sqlite_master").fetchall()
        except sqlite3.DatabaseError:
            psycopg2.connect(host="127.0.0.1", port=closed_port, dbname="x", connect_timeout=3)

    exc = raised(cleanup_fails)

    assert classify(exc) == "unreachable"
    assert classify(exc.__context__) == "corrupt"


def test_our_errors_that_name_a_kind_keep_it_and_a_chain_with_a_cycle_ends():
    cyclic = ValueError("first")
    second = RuntimeError("second")
    cyclic.__context__ = second
    second.__context__ = cyclic

    assert classify(DiskFull("The disk is full.")) == "disk_full"
    assert classify(AccessDenied("No.")) == "access"
    assert classify(DatabaseMissing("Gone.")) == "missing_database"
    assert classify(cyclic) == "other"
    assert errors.causes(cyclic) == [cyclic, second]


@pytest.mark.parametrize("kind", errors.KINDS)
def test_every_kind_is_one_of_the_documented_strings(kind):
    assert kind in {
        "access",
        "corrupt",
        "disk_full",
        "lock_not_available",
        "busy",
        "missing_database",
        "query_canceled",
        "unreachable",
        "other",
    }


# -- first_line ----------------------------------------------------------------------------------


class Silent(Exception):
    def __str__(self) -> str:
        return "  \n \n"


class Broken(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot say")


def test_first_line_is_never_empty():
    assert first_line(Exception()) == "Exception"
    assert first_line(Silent()) == "Silent"
    assert first_line(Broken()) == "Broken"


def test_first_line_prefers_libpqs_fatal_line_and_is_always_redacted():
    exc = psycopg2.OperationalError(
        'connection to server at "db" (10.0.0.5), port 5432 failed: Connection refused\n'
        "\tIs the server running on that host?\n"
        'connection to server at "db" (10.0.0.6), port 5432 failed: FATAL:  password authentication '
        'failed for user "app"\n'
    )
    leaky = ValueError("env.py could not use postgresql://app:hunter2@secret@db/app\nsecond line")

    assert first_line(exc).startswith('connection to server at "db" (10.0.0.6), port 5432 failed: FATAL:')
    assert first_line(leaky) == "env.py could not use postgresql://app:***@db/app"
    assert classify(exc) == "access"


# -- PyMySQL: its errors carry MySQL's number as args[0] -------------------------------------------


@pytest.fixture
def pymysql():
    return pytest.importorskip("pymysql", reason="PyMySQL is not installed in this environment")


@pytest.fixture
def mysql_refusing() -> Iterator[Callable[[int, str], tuple[str, int]]]:
    """A socket on 127.0.0.1 that answers one connection with a real MySQL error packet."""
    servers: list[socket.socket] = []

    def serve(number: int, text: str) -> tuple[str, int]:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(10)
        servers.append(server)
        payload = b"\xff" + struct.pack("<H", number) + b"#HY000" + text.encode()
        packet = struct.pack("<I", len(payload))[:3] + b"\x00" + payload

        def answer() -> None:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with client:
                client.sendall(packet)

        threading.Thread(target=answer, daemon=True).start()
        return server.getsockname()

    yield serve
    for server in servers:
        server.close()


@pytest.mark.parametrize(
    ("number", "text", "kind"),
    [
        (1045, "Access denied for user 'app'@'10.0.0.2' (using password: YES)", "access"),
        (1044, "Access denied for user 'app'@'%' to database 'appdb'", "access"),
        (1142, "CREATE command denied to user 'app'@'%' for table 'user'", "access"),
        (1049, "Unknown database 'appdb'", "missing_database"),
        (1205, "Lock wait timeout exceeded; try restarting transaction", "lock_not_available"),
        (3024, "Query execution was interrupted, maximum statement execution time exceeded", "query_canceled"),
        (1317, "Query execution was interrupted", "query_canceled"),
        (1040, "Too many connections", "unreachable"),
    ],
)
def test_pymysql_errors_are_read_by_their_mysql_number(pymysql, mysql_refusing, number, text, kind):
    host, port = mysql_refusing(number, text)

    exc = raised(lambda: pymysql.connect(host=host, port=port, user="app", password="hunter2secret", connect_timeout=5))

    assert exc.args[0] == number
    assert classify(exc) == kind
    assert "hunter2secret" not in first_line(exc)


def test_a_refused_pymysql_connection_is_unreachable(pymysql, closed_port):
    exc = raised(lambda: pymysql.connect(host="127.0.0.1", port=closed_port, connect_timeout=3))

    assert exc.args[0] == 2003
    assert classify(exc) == "unreachable"


# -- the stop errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "name"), [(15, "SIGTERM"), (2, "SIGINT"), (1, "SIGHUP")])
def test_interrupted_names_the_signal_and_exits_128_plus_its_number(signum, name):
    stop = Interrupted(signum)

    assert stop.exit_code == 128 + signum
    assert str(stop).startswith(f"Stopped by {name}.")
    assert "rolled back" not in str(stop)


@pytest.mark.parametrize(
    ("phase", "words"),
    [
        ("while waiting for the lock", "Stopped by SIGTERM while waiting for the lock."),
        ("during verification", "Stopped by SIGTERM during verification."),
        ("applying ef6fab585ac1", "Stopped by SIGTERM while applying ef6fab585ac1."),
        (None, "Stopped by SIGTERM."),
    ],
)
def test_interrupted_says_what_was_running(phase, words):
    assert str(Interrupted(15, phase=phase)).startswith(words)


def test_interrupted_takes_the_callers_exact_words_and_any_signal_number():
    assert str(Interrupted(15, message="Stopped; the migration was rolled back.")) == (
        "Stopped; the migration was rolled back."
    )
    odd = Interrupted(64)
    assert odd.exit_code == 192 and "signal 64" in str(odd)


def test_migration_timeout_keeps_exit_10_and_says_which_limit_ran_out_while_doing_what():
    assert MigrationTimeout("Exact words.").exit_code == 10
    assert str(MigrationTimeout("Exact words.")) == "Exact words."
    words = str(MigrationTimeout(timeout=30, phase="applying ef6fab585ac1"))
    assert words.startswith("MIGRATION_TIMEOUT=30s ran out while applying ef6fab585ac1.")
    assert "rolled back" not in words
    assert str(MigrationTimeout(variable="LOCK_TIMEOUT", phase="during verification")).startswith(
        "LOCK_TIMEOUT ran out during verification."
    )
