"""errors.classify / report.first_line on the real PostgreSQL and MariaDB servers' errors,
and what the wait for the database makes of them.

The unit tests (tests/unit/test_errors.py) cover what needs no server; here
each error comes from a real server, and the same error is proved on both
(the ``server`` fixture; each server's SQL, codes and words are its data): a
wrong password (also through SQLAlchemy), a missing database, a missing
privilege, a lock wait that runs out (also through SQLAlchemy), a statement
timeout, a cancel as the watchdog sends it (the engine's ``cancel``), and a
session the server ends.  PostgreSQL is reached over TCP with password
(scram-sha-256) authentication, MariaDB through PyMySQL.  Then what only
one says: a missing role (PostgreSQL), no grant on the database and a
refused port (MariaDB).

Then migrate.py itself on MariaDB: a server still starting is retried until
DB_WAIT_TIMEOUT (exit 3); a missing grant is exit 4 at once.  (A server that
comes up late and a database that does not exist are waited for on both
servers in test_faults.py.)
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2
import pymysql
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from migrate_init.errors import classify
from migrate_init.report import first_line
from migrate_init.url import parse as parse_url
from tests.support.myserver import MyServer
from tests.support.myserver import connect as my_connect
from tests.support.network import free_port
from tests.support.pgserver import PgServer, connect
from tests.support.process import Result, run_migrate, summary_line

PASSWORD = "Sup3r:s@cret/pw"


def raised(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except BaseException as exc:  # whatever the driver raises is what we classify
        return exc
    raise AssertionError("expected the server to refuse")


@dataclass
class Server:
    """One test server, and how each error of this file is raised and spelled on it.

    The behaviour is the same on both (the same error kind); what differs is the
    server's own SQL and its own codes and words, which are the data here.
    """

    url: str  #: a brand-new database of the server's superuser
    admin: Callable[[str], object]  #: runs a statement as the superuser
    connect: Callable[..., Any]  #: the bare driver's connection to a URL (autocommit unless told)
    driver: str  #: that driver's name in a SQLAlchemy URL
    create_account: Callable[[str], None]  #: an account with PASSWORD that may log in and read, nothing more
    drop_account: Callable[[str], None]
    code: Callable[[BaseException], object]  #: the server's code of an error
    session_id: str  #: the query of the session's id
    terminate: str  #: ends the session whose id it is given
    lost: type[BaseException]  #: what the driver raises on a session the server ended
    wrong_password: tuple[object, tuple[str, ...]]  #: (code, words of its first line)
    missing_database: tuple[object, str]  #: (code, words with {} for the name)
    denied_create: tuple[object, str]
    lock_timeout: tuple[str, object, str | None]  #: (the session's bound, code, the whole first line or None)
    statement_timeout: tuple[str, object, str | None]
    long_query: str  #: runs for minutes unless it is stopped
    cancelled: tuple[object, str]  #: (code, the whole first line)


def _postgresql(request: pytest.FixtureRequest) -> Server:
    pg_server: PgServer = request.getfixturevalue("pg_server")
    pg_url: str = request.getfixturevalue("pg_url")

    def drop_account(name: str) -> None:
        pg_server.psql(f'DROP OWNED BY "{name}" CASCADE', dbname=make_url(pg_url).database)
        pg_server.drop_role(name)

    return Server(
        url=pg_url,
        admin=lambda statement: pg_server.psql(statement),
        connect=connect,
        driver="psycopg2",
        create_account=lambda name: pg_server.create_role(name, PASSWORD),
        drop_account=drop_account,
        code=lambda exc: getattr(exc, "pgcode", None),
        session_id="SELECT pg_backend_pid()",
        terminate="SELECT pg_terminate_backend({})",
        lost=psycopg2.Error,
        wrong_password=(None, ("FATAL:", "password authentication failed")),  # libpq's own line
        missing_database=(None, 'database "{}" does not exist'),
        # PostgreSQL 15 grants CREATE on the public schema to its owner only.
        denied_create=("42501", "permission denied"),
        lock_timeout=("SET lock_timeout = '50ms'", "55P03", "canceling statement due to lock timeout"),
        statement_timeout=(
            "SET statement_timeout = '50ms'",
            "57014",
            "canceling statement due to statement timeout",
        ),
        long_query="SELECT pg_sleep(60)",
        cancelled=("57014", "canceling statement due to user request"),
    )


#: A statement that runs for minutes unless it is stopped (MariaDB ends a stopped SLEEP() early without an error).
MY_LONG_QUERY = (
    "SELECT COUNT(*) FROM information_schema.COLUMNS a, information_schema.COLUMNS b, information_schema.COLUMNS c"
)


def _mysql(request: pytest.FixtureRequest) -> Server:
    mysql_server: MyServer = request.getfixturevalue("mysql_server")
    mysql_url: str = request.getfixturevalue("mysql_url")
    return Server(
        url=mysql_url,
        admin=lambda statement: mysql_server.query(statement),
        connect=my_connect,
        driver="pymysql",
        create_account=lambda name: mysql_server.create_user(
            name, PASSWORD, f"SELECT ON `{make_url(mysql_url).database}`.*"
        ),
        drop_account=mysql_server.drop_user,
        code=lambda exc: exc.args[0] if exc.args else None,
        session_id="SELECT CONNECTION_ID()",
        terminate="KILL CONNECTION {}",
        lost=pymysql.err.OperationalError,
        wrong_password=(1045, ("Access denied for user",)),
        missing_database=(1049, "Unknown database '{}'"),
        denied_create=(1142, "CREATE command denied"),
        lock_timeout=("SET SESSION lock_wait_timeout = 1", 1205, None),
        statement_timeout=("SET SESSION max_statement_time = 0.05", 1969, None),
        long_query=MY_LONG_QUERY,
        cancelled=(1317, "(1317, 'Query execution was interrupted')"),
    )


@pytest.fixture(
    params=[
        pytest.param(_postgresql, marks=pytest.mark.postgres, id="postgresql"),
        pytest.param(_mysql, marks=pytest.mark.mysql, id="mysql"),
    ]
)
def server(request: pytest.FixtureRequest) -> Server:
    """The same error, raised on the PostgreSQL server and on the MariaDB one."""
    return request.param(request)


@pytest.fixture
def account(server: Server) -> Iterator[str]:
    """An account with PASSWORD that may log in and read, and create nothing; its name."""
    name = f"r_{uuid.uuid4().hex[:12]}"
    server.create_account(name)
    yield name
    server.drop_account(name)


def url_as(url: str, user: str, password: str, database: str | None = None) -> str:
    changed = make_url(url).set(username=user, password=password)
    if database is not None:
        changed = changed.set(database=database)
    return changed.render_as_string(hide_password=False)


def with_driver(server: Server, url: str) -> str:
    """``url`` naming the bare driver migrate-init uses, for SQLAlchemy's create_engine."""
    parts = make_url(url)
    return parts.set(drivername=f"{parts.get_backend_name()}+{server.driver}").render_as_string(hide_password=False)


def test_a_wrong_password_is_access_and_its_line_is_the_servers_own(server, account):
    exc = raised(lambda: server.connect(url_as(server.url, account, "wrong-" + PASSWORD)))

    code, words = server.wrong_password
    assert server.code(exc) == code
    assert classify(exc) == "access"
    assert all(word in first_line(exc) for word in words), first_line(exc)
    assert PASSWORD not in first_line(exc) and "wrong-" not in first_line(exc)


def test_a_wrong_password_through_sqlalchemy_is_access_too(server, account):
    engine = sqlalchemy.create_engine(with_driver(server, url_as(server.url, account, "wrong-" + PASSWORD)))
    try:
        exc = raised(engine.connect)
    finally:
        engine.dispose()

    assert isinstance(exc, sqlalchemy.exc.OperationalError)
    assert classify(exc) == "access"
    assert server.wrong_password[1][-1] in first_line(exc)


def test_a_missing_database_is_missing_database_not_access(server):
    missing = f"missing_{uuid.uuid4().hex[:8]}"
    admin = make_url(server.url)

    exc = raised(lambda: server.connect(url_as(server.url, admin.username, admin.password, missing)))

    code, words = server.missing_database
    assert server.code(exc) == code
    assert classify(exc) == "missing_database"
    assert words.format(missing) in first_line(exc)


def test_a_missing_privilege_is_access(server, account):
    connection = server.connect(url_as(server.url, account, PASSWORD))
    try:
        with connection.cursor() as cursor:
            exc = raised(lambda: cursor.execute("CREATE TABLE t (x int)"))
    finally:
        connection.close()

    code, words = server.denied_create
    assert server.code(exc) == code
    assert classify(exc) == "access"
    assert words in first_line(exc)


@pytest.fixture
def locked_table(server: Server) -> Iterator[Server]:
    """Table t, read by another session whose transaction stays open until the test ends: no ALTER can have it."""
    holder = server.connect(server.url, autocommit=False)
    with holder.cursor() as cursor:
        cursor.execute("CREATE TABLE t (x int)")
        holder.commit()
        cursor.execute("SELECT * FROM t")  # a lock on t (a metadata lock on MySQL) until the transaction ends
    yield server
    holder.rollback()
    holder.close()


def test_a_lock_timeout_is_lock_not_available(locked_table):
    server = locked_table
    bound, code, line = server.lock_timeout
    connection = server.connect(server.url, autocommit=False)
    try:
        with connection.cursor() as cursor:
            cursor.execute(bound)
            exc = raised(lambda: cursor.execute("ALTER TABLE t ADD COLUMN y int"))
    finally:
        connection.rollback()
        connection.close()

    assert server.code(exc) == code
    assert classify(exc) == "lock_not_available"
    if line is not None:
        assert first_line(exc) == line


def test_a_lock_timeout_under_sqlalchemy_is_lock_not_available(locked_table):
    engine = sqlalchemy.create_engine(with_driver(locked_table, locked_table.url))
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(locked_table.lock_timeout[0])
            exc = raised(lambda: connection.exec_driver_sql("ALTER TABLE t ADD COLUMN y int"))
    finally:
        engine.dispose()

    assert isinstance(exc, sqlalchemy.exc.OperationalError)
    assert classify(exc) == "lock_not_available"


def test_a_statement_timeout_is_query_canceled(server):
    bound, code, line = server.statement_timeout
    connection = server.connect(server.url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(bound)
            exc = raised(lambda: cursor.execute(server.long_query))
    finally:
        connection.close()

    assert server.code(exc) == code, exc
    assert classify(exc) == "query_canceled"
    if line is not None:
        assert first_line(exc) == line


def test_a_cancelled_statement_is_query_canceled(server):
    connection = server.connect(server.url)
    engine = parse_url(server.url).engine
    timer = threading.Timer(0.3, engine.cancel, (connection,))  # what the watchdog does on SIGTERM
    timer.start()
    try:
        with connection.cursor() as cursor:
            exc = raised(lambda: cursor.execute(server.long_query))
    finally:
        timer.cancel()
        connection.close()

    code, line = server.cancelled
    assert server.code(exc) == code, exc
    assert classify(exc) == "query_canceled"
    assert first_line(exc) == line


def test_a_terminated_session_is_unreachable(server):
    victim = server.connect(server.url)
    with victim.cursor() as cursor:
        cursor.execute(server.session_id)
        (session,) = cursor.fetchone()
    server.admin(server.terminate.format(int(session)))
    time.sleep(0.1)
    try:
        with victim.cursor() as cursor:
            exc = raised(lambda: cursor.execute("SELECT 1"))
    finally:
        victim.close()

    assert isinstance(exc, server.lost)
    assert classify(exc) == "unreachable"


# --- what only one of the servers says ---------------------------------------------------------------


def test_a_missing_role_is_access(pg_url):
    exc = raised(lambda: connect(url_as(pg_url, f"nobody_{uuid.uuid4().hex[:8]}", "pw")))

    assert classify(exc) == "access"


def test_mysql_no_grant_on_the_database_is_access(mysql_server, mysql_url):
    name = f"r_{uuid.uuid4().hex[:12]}"
    mysql_server.create_user(name, PASSWORD)  # may log in, nothing else
    try:
        exc = raised(lambda: my_connect(url_as(mysql_url, name, PASSWORD)))
    finally:
        mysql_server.drop_user(name)

    assert exc.args[0] == 1044
    assert classify(exc) == "access"


def test_mysql_a_refused_port_is_unreachable():
    exc = raised(lambda: my_connect(f"mysql://app:secret@127.0.0.1:{free_port()}/app"))

    assert exc.args[0] == 2003
    assert classify(exc) == "unreachable"


# --- what migrate.py's wait for the database makes of them, on MariaDB ---------------------------


class _Starting:
    """A port that accepts each connection and drops it before the server's greeting, as a
    proxy or Service in front of a MariaDB that is still starting does."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            client.close()

    def close(self) -> None:
        self.listener.close()


def _waited(url: str, *args: str, timeout: float) -> tuple[Result, float]:
    started = time.monotonic()
    result = run_migrate(*args, env={"DATABASE_URL": url, "DB_WAIT_TIMEOUT": str(timeout), "REPORT_FILE": "-"})
    return result, time.monotonic() - started


def test_mariadb_still_starting_is_retried_until_db_wait_timeout_then_exit_3(mysql_url):
    starting = _Starting()
    try:
        url = make_url(mysql_url).set(port=starting.port).render_as_string(hide_password=False)
        result, took = _waited(url, "current", timeout=2)
    finally:
        starting.close()

    assert result.code == 3, result.out
    summary = summary_line(result.out)
    assert "did not answer within DB_WAIT_TIMEOUT=2s" in summary, summary
    assert "Lost connection" in summary, summary
    assert starting.accepted >= 3, f"tried {starting.accepted} time(s): it was not retried"
    assert 2 <= took < 15, took


def test_mariadb_missing_grant_is_exit_4_at_once(mysql_server, mysql_url):
    name = f"r_{uuid.uuid4().hex[:12]}"
    no_grant = mysql_server.create_user(name, PASSWORD)  # may log in, nothing else
    try:
        url = make_url(no_grant).set(database=make_url(mysql_url).database).render_as_string(hide_password=False)
        result, took = _waited(url, timeout=30)
    finally:
        mysql_server.drop_user(name)

    assert result.code == 4, result.out
    assert "Access denied for user" in summary_line(result.out) and "this is not retried" in summary_line(result.out)
    assert "Waiting for the database" not in result.out
    assert took < 10, f"took {took:.1f}s: a missing grant was retried"
    assert PASSWORD not in result.out
    assert mysql_server.query(f"SHOW TABLES FROM `{make_url(mysql_url).database}`") == []
