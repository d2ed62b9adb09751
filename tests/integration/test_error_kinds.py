"""errors.classify / report.first_line on the real PostgreSQL and MariaDB servers' errors,
and what the wait for the database makes of them.

The unit tests (tests/unit/test_errors.py) cover what needs no server; here
each error comes from the session's PostgreSQL server, reached over TCP with
password (scram-sha-256) authentication: a wrong password, a missing role or
database, a lock_timeout (55P03), a statement_timeout and a cancel (57014), a
missing privilege (42501) and a terminated session (57P01); and from the
session's MariaDB server through PyMySQL: 1045, 1044, 1049, 1142, 1205,
1969, 1317, a killed session and a refused port.

Then migrate.py itself on MariaDB: a refused or starting server is waited
for until DB_WAIT_TIMEOUT (exit 3, or 0 when it comes up); a bad password or
a missing grant is exit 4 at once; an unknown database is exit 3, named.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg2
import pymysql
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from migrate_init.errors import classify
from migrate_init.report import first_line
from tests.support.chains import TARGET
from tests.support.dbstate import versions
from tests.support.myserver import MyServer
from tests.support.myserver import connect as my_connect
from tests.support.network import LateServer, free_port
from tests.support.pgserver import PgServer, connect
from tests.support.process import Result, run_migrate, summary_line

PASSWORD = "Sup3r:s@cret/pw"


def raised(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except BaseException as exc:  # whatever the driver raises is what we classify
        return exc
    raise AssertionError("expected the server to refuse")


@pytest.fixture
def role(pg_server: PgServer, pg_url: str) -> Iterator[str]:
    """A login role with PASSWORD and no privileges beyond CONNECT; its name."""
    name = f"r_{uuid.uuid4().hex[:12]}"
    pg_server.create_role(name, PASSWORD)
    yield name
    database = make_url(pg_url).database
    pg_server.psql(f'DROP OWNED BY "{name}" CASCADE', dbname=database)
    pg_server.drop_role(name)


def url_as(pg_url: str, user: str, password: str, database: str | None = None) -> str:
    url = make_url(pg_url).set(username=user, password=password)
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


def test_a_wrong_password_is_access_and_its_line_is_libpqs_fatal_line(pg_url, role):
    exc = raised(lambda: connect(url_as(pg_url, role, "wrong-" + PASSWORD)))

    assert classify(exc) == "access"
    assert "FATAL:" in first_line(exc) and "password authentication failed" in first_line(exc)
    assert PASSWORD not in first_line(exc) and "wrong-" not in first_line(exc)


def test_a_wrong_password_through_sqlalchemy_is_access_too(pg_url, role):
    engine = sqlalchemy.create_engine(
        url_as(pg_url, role, "wrong-" + PASSWORD).replace("postgresql://", "postgresql+psycopg2://", 1)
    )

    exc = raised(engine.connect)

    assert isinstance(exc, sqlalchemy.exc.OperationalError)
    assert classify(exc) == "access"
    assert "password authentication failed" in first_line(exc)


def test_a_missing_role_is_access(pg_url):
    exc = raised(lambda: connect(url_as(pg_url, f"nobody_{uuid.uuid4().hex[:8]}", "pw")))

    assert classify(exc) == "access"


def test_a_missing_database_is_missing_database_not_access(pg_url):
    missing = f"missing_{uuid.uuid4().hex[:8]}"

    exc = raised(lambda: connect(url_as(pg_url, make_url(pg_url).username, make_url(pg_url).password, missing)))

    assert classify(exc) == "missing_database"
    assert f'database "{missing}" does not exist' in first_line(exc)


def test_a_missing_privilege_is_access(pg_server, pg_url, role):
    schema = f"s_{uuid.uuid4().hex[:8]}"
    database = make_url(pg_url).database
    pg_server.psql(f'CREATE SCHEMA "{schema}"', dbname=database)
    connection = connect(url_as(pg_url, role, PASSWORD))
    try:
        with connection.cursor() as cursor:
            exc = raised(lambda: cursor.execute(f'CREATE TABLE "{schema}".t (x int)'))
    finally:
        connection.close()

    assert getattr(exc, "pgcode", None) == "42501"
    assert classify(exc) == "access"
    assert "permission denied" in first_line(exc)


@pytest.fixture
def locked_table(pg_url: str) -> Iterator[str]:
    """Table t, held in ACCESS EXCLUSIVE mode by another session until the test ends."""
    holder = connect(pg_url, autocommit=False)
    with holder.cursor() as cursor:
        cursor.execute("CREATE TABLE t (x int)")
        holder.commit()
        cursor.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    yield pg_url
    holder.rollback()
    holder.close()


def test_a_lock_timeout_is_lock_not_available(locked_table):
    connection = connect(locked_table, autocommit=False)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '50ms'")
            exc = raised(lambda: cursor.execute("ALTER TABLE t ADD COLUMN y int"))
    finally:
        connection.rollback()
        connection.close()

    assert getattr(exc, "pgcode", None) == "55P03"
    assert classify(exc) == "lock_not_available"
    assert first_line(exc) == "canceling statement due to lock timeout"


def test_a_lock_timeout_under_sqlalchemy_is_lock_not_available(locked_table):
    engine = sqlalchemy.create_engine(locked_table.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SET lock_timeout = '50ms'")
            exc = raised(lambda: connection.exec_driver_sql("ALTER TABLE t ADD COLUMN y int"))
    finally:
        engine.dispose()

    assert isinstance(exc, sqlalchemy.exc.OperationalError)
    assert classify(exc) == "lock_not_available"


def test_a_statement_timeout_is_query_canceled(pg_url):
    connection = connect(pg_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = '50ms'")
            exc = raised(lambda: cursor.execute("SELECT pg_sleep(5)"))
    finally:
        connection.close()

    assert getattr(exc, "pgcode", None) == "57014"
    assert classify(exc) == "query_canceled"
    assert first_line(exc) == "canceling statement due to statement timeout"


def test_a_cancelled_statement_is_query_canceled(pg_url):
    connection = connect(pg_url)
    timer = threading.Timer(0.2, connection.cancel)  # what the watchdog does on SIGTERM
    timer.start()
    try:
        with connection.cursor() as cursor:
            exc = raised(lambda: cursor.execute("SELECT pg_sleep(5)"))
    finally:
        timer.cancel()
        connection.close()

    assert classify(exc) == "query_canceled"
    assert first_line(exc) == "canceling statement due to user request"


def test_a_terminated_session_is_unreachable(pg_server, pg_url):
    victim = connect(pg_url, application_name=f"victim_{uuid.uuid4().hex[:8]}")
    with victim.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    pg_server.psql("SELECT pg_terminate_backend(%s)", params=(pid,))
    time.sleep(0.1)
    try:
        with victim.cursor() as cursor:
            exc = raised(lambda: cursor.execute("SELECT 1"))
    finally:
        victim.close()

    assert isinstance(exc, psycopg2.Error)
    assert classify(exc) == "unreachable"


# --- MySQL/MariaDB: the same reading of PyMySQL's errors, on the real MariaDB server ---------------


def my_url_as(mysql_url: str, user: str, password: str, database: str | None = None) -> str:
    url = make_url(mysql_url).set(username=user, password=password)
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


@pytest.fixture
def my_account(mysql_server: MyServer, mysql_url: str) -> Iterator[str]:
    """An account with PASSWORD that may log in to mysql_url's database and only SELECT there."""
    name = f"r_{uuid.uuid4().hex[:12]}"
    mysql_server.create_user(name, PASSWORD, f"SELECT ON `{make_url(mysql_url).database}`.*")
    yield name
    mysql_server.drop_user(name)


def test_mysql_a_wrong_password_is_access(mysql_url, my_account):
    exc = raised(lambda: my_connect(my_url_as(mysql_url, my_account, "wrong-" + PASSWORD)))

    assert exc.args[0] == 1045
    assert classify(exc) == "access"
    assert "Access denied for user" in first_line(exc)
    assert PASSWORD not in first_line(exc) and "wrong-" not in first_line(exc)


def test_mysql_a_wrong_password_through_sqlalchemy_is_access_too(mysql_url, my_account):
    url = my_url_as(mysql_url, my_account, "wrong-" + PASSWORD).replace("mysql://", "mysql+pymysql://", 1)
    engine = sqlalchemy.create_engine(url)
    try:
        exc = raised(engine.connect)
    finally:
        engine.dispose()

    assert isinstance(exc, sqlalchemy.exc.OperationalError)
    assert classify(exc) == "access"


def test_mysql_no_grant_on_the_database_is_access(mysql_server, mysql_url):
    name = f"r_{uuid.uuid4().hex[:12]}"
    mysql_server.create_user(name, PASSWORD)  # may log in, nothing else
    try:
        exc = raised(lambda: my_connect(my_url_as(mysql_url, name, PASSWORD)))
    finally:
        mysql_server.drop_user(name)

    assert exc.args[0] == 1044
    assert classify(exc) == "access"


def test_mysql_a_missing_database_is_missing_database_not_access(mysql_url):
    missing = f"missing_{uuid.uuid4().hex[:8]}"
    admin = make_url(mysql_url)

    exc = raised(lambda: my_connect(my_url_as(mysql_url, admin.username, admin.password, missing)))

    assert exc.args[0] == 1049
    assert classify(exc) == "missing_database"
    assert f"Unknown database '{missing}'" in first_line(exc)


def test_mysql_a_missing_privilege_is_access(mysql_url, my_account):
    connection = my_connect(my_url_as(mysql_url, my_account, PASSWORD))
    try:
        with connection.cursor() as cursor:
            exc = raised(lambda: cursor.execute("CREATE TABLE t (x int)"))
    finally:
        connection.close()

    assert exc.args[0] == 1142
    assert classify(exc) == "access"
    assert "CREATE command denied" in first_line(exc)


def test_mysql_a_lock_wait_timeout_is_lock_not_available(mysql_url):
    holder = my_connect(mysql_url, autocommit=False)
    waiter = my_connect(mysql_url)
    try:
        with holder.cursor() as cursor:
            cursor.execute("CREATE TABLE t (x int)")
            cursor.execute("START TRANSACTION")
            cursor.execute("SELECT * FROM t")  # holds a metadata lock until the transaction ends
        with waiter.cursor() as cursor:
            cursor.execute("SET SESSION lock_wait_timeout = 1")
            exc = raised(lambda: cursor.execute("ALTER TABLE t ADD COLUMN y int"))
    finally:
        holder.rollback()
        holder.close()
        waiter.close()

    assert exc.args[0] == 1205
    assert classify(exc) == "lock_not_available"


#: A statement that runs for minutes unless it is stopped (MariaDB ends a stopped SLEEP() early without an error).
MY_LONG_QUERY = (
    "SELECT COUNT(*) FROM information_schema.COLUMNS a, information_schema.COLUMNS b, information_schema.COLUMNS c"
)


def test_mysql_a_statement_timeout_is_query_canceled(mysql_url):
    connection = my_connect(mysql_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION max_statement_time = 0.05")
            exc = raised(lambda: cursor.execute(MY_LONG_QUERY))
    finally:
        connection.close()

    assert exc.args[0] == 1969, exc
    assert classify(exc) == "query_canceled"


def test_mysql_a_killed_query_is_query_canceled(mysql_url, mysql_server):
    connection = my_connect(mysql_url)
    thread_id = connection.thread_id()
    timer = threading.Timer(0.3, lambda: mysql_server.query(f"KILL QUERY {thread_id}"))  # what the watchdog does
    timer.start()
    try:
        with connection.cursor() as cursor:
            exc = raised(lambda: cursor.execute(MY_LONG_QUERY))
    finally:
        timer.cancel()
        connection.close()

    assert exc.args[0] == 1317, exc
    assert classify(exc) == "query_canceled"
    assert first_line(exc) == "(1317, 'Query execution was interrupted')"


def test_mysql_a_killed_session_is_unreachable(mysql_url, mysql_server):
    victim = my_connect(mysql_url)
    mysql_server.query(f"KILL CONNECTION {victim.thread_id()}")
    time.sleep(0.1)
    try:
        with victim.cursor() as cursor:
            exc = raised(lambda: cursor.execute("SELECT 1"))
    finally:
        victim.close()

    assert isinstance(exc, pymysql.err.OperationalError)
    assert classify(exc) == "unreachable"


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


def test_mariadb_that_refuses_at_first_is_waited_for_and_then_migrated(mysql_url):
    server = make_url(mysql_url)
    late = LateServer(server.host, server.port, delay=1.5)
    try:
        result, _took = _waited(server.set(port=late.port).render_as_string(hide_password=False), timeout=30)
    finally:
        late.close()

    assert result.code == 0, result.out
    assert "Waiting for the database at mysql://root:***@" in result.out, result.out
    assert re.search(r"The database answered after \d+ attempts\.", result.out), result.out
    assert versions(mysql_url) == [TARGET]


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


def test_mariadb_unknown_database_is_retried_then_exit_3_naming_it(mysql_server):
    missing = f"missing_{uuid.uuid4().hex[:8]}"
    url = mysql_server.url(database=missing)

    result, took = _waited(url, timeout=2)

    assert result.code == 3, result.out
    summary = summary_line(result.out)
    assert f"The server answers, but the database '{missing}' does not exist on it" in summary, summary
    assert f"Unknown database '{missing}'" in summary, summary
    assert "Waiting for the database" in result.out
    assert 2 <= took < 15, took
    assert not mysql_server.query("SHOW DATABASES LIKE %s", params=(missing,))
