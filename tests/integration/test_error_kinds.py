"""errors.classify / errors.first_line on the real PostgreSQL server's errors.

The unit tests (tests/unit/test_errors.py) cover what needs no server; here
each error comes from the session's PostgreSQL server, reached over TCP with
password (scram-sha-256) authentication: a wrong password, a missing role or
database, a lock_timeout (55P03), a statement_timeout and a cancel (57014), a
missing privilege (42501) and a terminated session (57P01).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg2
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from migrate_init.errors import classify, first_line
from tests.support.pgserver import PgServer, connect

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
    engine = sqlalchemy.create_engine(url_as(pg_url, role, "wrong-" + PASSWORD).replace(
        "postgresql://", "postgresql+psycopg2://", 1))

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
