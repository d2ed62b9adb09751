"""The test harness itself: the PostgreSQL and MariaDB fixtures and the process helpers of tests/support."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
import pymysql
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support import myserver
from tests.support.dbstate import pg_query, sqlite_query
from tests.support.process import run_python

TRICKY_PASSWORD = "p@ss/w%rd:x"
USER_TABLES = (
    "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
)
MY_TABLES = "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()"
# PyMySQL error codes: access denied (bad credentials), to a database, to a table.
ER_ACCESS_DENIED, ER_DBACCESS_DENIED, ER_TABLEACCESS_DENIED = 1045, 1044, 1142


def _role_url(pg_url: str, role: str, password: str) -> str:
    u = make_url(pg_url)
    return f"postgresql://{quote(role, safe='')}:{quote(password, safe='')}@{u.host}:{u.port}/{u.database}"


@pytest.fixture
def role(pg_server):
    name = f"r_{uuid.uuid4().hex[:12]}"
    pg_server.create_role(name, TRICKY_PASSWORD)
    yield name
    pg_server.drop_role(name)


def test_server_answers_select_1(pg_server):
    assert pg_server.psql("select 1") == [(1,)]
    assert pg_query(pg_server.superuser_url, "select current_user") == [("postgres",)]


def test_role_with_url_encoded_password_logs_in(pg_url, role):
    url = _role_url(pg_url, role, TRICKY_PASSWORD)

    assert pg_query(url, "select current_user") == [(role,)]
    # The URL works through SQLAlchemy too.  SQLAlchemy 2.1 maps a bare
    # postgresql:// to psycopg 3, which the image does not ship: name psycopg2.
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select current_user")).scalar() == role
    finally:
        engine.dispose()


def test_wrong_password_is_refused(pg_url, role):
    url = _role_url(pg_url, role, TRICKY_PASSWORD + "-wrong")

    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        pg_query(url, "select 1")


# --- MariaDB (tests/support/myserver.py) ------------------------------------------


@pytest.fixture
def my_user(mysql_server):
    """A MariaDB account with a tricky password and no grants yet."""
    name = f"u_{uuid.uuid4().hex[:12]}"
    mysql_server.create_user(name, TRICKY_PASSWORD)
    yield name
    mysql_server.drop_user(name)


def _my_user_url(mysql_url: str, user: str, password: str) -> str:
    u = make_url(mysql_url)
    return f"mysql://{quote(user, safe='')}:{quote(password, safe='')}@{u.host}:{u.port}/{u.database}"


def _mysql_error(excinfo: pytest.ExceptionInfo) -> int:
    return excinfo.value.args[0]


def test_mysql_server_answers_as_its_superuser(mysql_server):
    url = make_url(mysql_server.superuser_url)

    assert url.drivername == "mysql"
    if mysql_server.unix_socket is not None:  # ours, not TEST_MYSQL_URL's
        assert (url.host, url.username) == ("127.0.0.1", "root")
    assert mysql_server.query("SELECT 1") == [(1,)]
    [(user,)] = myserver.execute(mysql_server.superuser_url, "SELECT CURRENT_USER()")
    assert user.startswith(f"{url.username}@"), user
    assert "MariaDB" in mysql_server.server_version()
    grants = " ".join(row[0] for row in mysql_server.query("SHOW GRANTS"))
    assert "ALL PRIVILEGES ON *.*" in grants and "WITH GRANT OPTION" in grants


def test_mysql_server_listens_on_loopback_only_with_real_grant_tables(mysql_server):
    assert mysql_server.query("SELECT @@skip_grant_tables") == [(0,)]
    if mysql_server.unix_socket is not None:  # ours, not TEST_MYSQL_URL's
        assert mysql_server.query("SELECT @@bind_address, @@skip_name_resolve, @@socket") == [
            ("127.0.0.1", 1, str(mysql_server.unix_socket))
        ]
    # Every account has a password; none is anonymous.
    assert (
        mysql_server.query(
            "SELECT user, host FROM mysql.user WHERE user = '' OR "
            "(plugin IN ('', 'mysql_native_password') AND authentication_string = '' AND user <> 'mariadb.sys')"
        )
        == []
    )


def test_mysql_wrong_password_is_refused_with_1045(mysql_server, mysql_url, my_user):
    for user, password in [(my_user, TRICKY_PASSWORD + "-wrong"), ("root", "not-the-password"), ("root", "")]:
        with pytest.raises(pymysql.err.OperationalError) as excinfo:
            myserver.execute(_my_user_url(mysql_url, user, password), "SELECT 1")
        assert _mysql_error(excinfo) == ER_ACCESS_DENIED, excinfo.value


def test_mysql_user_with_url_encoded_password_logs_in(mysql_server, mysql_url, my_user):
    database = make_url(mysql_url).database
    mysql_server.grant(my_user, f"ALL PRIVILEGES ON `{database}`.*")
    url = _my_user_url(mysql_url, my_user, TRICKY_PASSWORD)

    assert myserver.execute(url, "SELECT CURRENT_USER(), DATABASE()") == [(f"{my_user}@%", database)]
    # The URL works through SQLAlchemy too, with the driver named: a bare
    # mysql:// means mysqlclient to SQLAlchemy, and the venv has PyMySQL.
    engine = create_engine(url.replace("mysql://", "mysql+pymysql://", 1))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT CURRENT_USER()")).scalar() == f"{my_user}@%"
    finally:
        engine.dispose()


def test_mysql_user_without_grants_is_denied_with_1044_and_1142(mysql_server, mysql_url, my_user):
    database = make_url(mysql_url).database
    myserver.execute(mysql_url, "CREATE TABLE marker (id int)")
    # A user with no grant on the database cannot even select it (1044)...
    with pytest.raises(pymysql.err.OperationalError) as excinfo:
        myserver.execute(_my_user_url(mysql_url, my_user, TRICKY_PASSWORD), "SELECT 1")
    assert _mysql_error(excinfo) == ER_DBACCESS_DENIED, excinfo.value

    # ... and one with SELECT only can read but not write or create (1142).
    mysql_server.grant(my_user, f"SELECT ON `{database}`.*")
    url = _my_user_url(mysql_url, my_user, TRICKY_PASSWORD)
    assert myserver.execute(url, "SELECT count(*) FROM marker") == [(0,)]
    for statement in ["INSERT INTO marker VALUES (1)", "CREATE TABLE other (id int)", "DROP TABLE marker"]:
        with pytest.raises(pymysql.MySQLError) as excinfo:
            myserver.execute(url, statement)
        assert _mysql_error(excinfo) == ER_TABLEACCESS_DENIED, (statement, excinfo.value)


def test_mysql_create_user_grants_at_once_and_returns_its_url(mysql_server, mysql_url):
    database = make_url(mysql_url).database
    name = f"u_{uuid.uuid4().hex[:12]}"
    url = mysql_server.create_user(name, TRICKY_PASSWORD, f"SELECT, INSERT ON `{database}`.*")
    try:
        assert make_url(url).username == name and make_url(url).password == TRICKY_PASSWORD
        user_url = make_url(url).set(database=database).render_as_string(hide_password=False)
        grants = myserver.execute(user_url, "SHOW GRANTS")
        assert any(f"GRANT SELECT, INSERT ON `{database}`.*" in row[0] for row in grants), grants
    finally:
        mysql_server.drop_user(name)
    assert mysql_server.query("SELECT count(*) FROM mysql.user WHERE user = %s", params=(name,)) == [(0,)]


# --- both servers: a database per test, dropped with its sessions ------------------------------------


@dataclass(frozen=True)
class Harness:
    """What differs between the two harnesses: how each reads, connects and looks a database up."""

    server_fixture: str
    url_fixture: str
    execute: Callable[..., list[tuple[Any, ...]]]  #: a statement on a URL, with the server's own driver
    tables: str  #: how many user tables the connected database holds
    encoding: tuple[str, str]  #: the query of the database's character set, and the one it must be
    exists: tuple[str, str]  #: the superuser's method, and its query: how many databases have that name
    connect: Callable[[str], Any]  #: a connection in a transaction of its own
    lost: type[BaseException]  #: what the driver raises on a session whose database was dropped


HARNESSES = {
    "postgresql": Harness(
        "pg_server",
        "pg_url",
        pg_query,
        USER_TABLES,
        ("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()", "UTF8"),
        ("psql", "SELECT count(*) FROM pg_database WHERE datname = %s"),
        lambda url: psycopg2.connect(url),
        psycopg2.OperationalError,
    ),
    "mysql": Harness(
        "mysql_server",
        "mysql_url",
        myserver.execute,
        MY_TABLES,
        ("SELECT @@character_set_database", "utf8mb4"),
        ("query", "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s"),
        lambda url: myserver.connect(url, autocommit=False),
        pymysql.err.OperationalError,
    ),
}
servers = pytest.mark.parametrize(
    "harness",
    [
        pytest.param(HARNESSES["postgresql"], marks=pytest.mark.postgres, id="postgresql"),
        pytest.param(HARNESSES["mysql"], marks=pytest.mark.mysql, id="mysql"),
    ],
)


@servers
def test_url_databases_are_empty_distinct_and_owned_by_the_superuser(harness, request):
    server = request.getfixturevalue(harness.server_fixture)
    url = request.getfixturevalue(harness.url_fixture)
    u = make_url(url)
    assert (u.drivername, u.username) == (
        make_url(server.superuser_url).drivername,
        make_url(server.superuser_url).username,
    )
    other_name = f"t_{uuid.uuid4().hex[:16]}"
    other_url = server.create_database(other_name)
    try:
        assert make_url(other_url).database == other_name != u.database
        assert harness.execute(url, harness.tables) == [(0,)]
        assert harness.execute(other_url, harness.tables) == [(0,)]

        harness.execute(url, "CREATE TABLE marker (id int)")

        assert harness.execute(url, harness.tables) == [(1,)]
        assert harness.execute(other_url, harness.tables) == [(0,)]
        encoding, expected = harness.encoding
        assert harness.execute(url, encoding) == [(expected,)]
    finally:
        server.drop_database(other_name)
    method, exists = harness.exists
    assert getattr(server, method)(exists, params=(other_name,)) == [(0,)]


@servers
def test_drop_database_disconnects_open_sessions(harness, request):
    server = request.getfixturevalue(harness.server_fixture)
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = harness.connect(server.create_database(name))
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE held (id int)")
            cur.execute("INSERT INTO held VALUES (1)")  # an open transaction holding a lock

        server.drop_database(name)

        with pytest.raises(harness.lost), conn.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        conn.close()
    method, exists = harness.exists
    assert getattr(server, method)(exists, params=(name,)) == [(0,)]


def test_any_url_gives_a_usable_database_on_each_engine(any_url, request):
    engine = request.node.callspec.params["any_url"]
    marks = {m.name for m in request.node.iter_markers()}

    if engine == "sqlite":
        assert any_url.startswith("sqlite:///") and not marks & {"postgres", "mysql"}
        assert sqlite_query(any_url, "select 1", create=True) == [(1,)]
    elif engine == "postgresql":
        assert "postgres" in marks and "mysql" not in marks
        assert pg_query(any_url, USER_TABLES) == [(0,)]
    else:
        assert "mysql" in marks and "postgres" not in marks
        assert any_url.startswith("mysql://")
        assert myserver.execute(any_url, MY_TABLES) == [(0,)]


def test_db_url_gives_a_usable_database_on_each_engine(db_url):
    if db_url.startswith("sqlite"):
        path = Path(make_url(db_url).database)
        assert path.is_absolute() and path.name == "webui.db"
        assert not path.parent.exists(), "the product, not the fixture, creates data/"
        assert sqlite_query(db_url, "select 1", create=True) == [(1,)]
    else:
        assert pg_query(db_url, USER_TABLES) == [(0,)]


def test_child_processes_get_only_the_minimal_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "sqlite:////leaked.db")

    result = run_python(
        "-c",
        "import json, os; print(json.dumps(dict(os.environ)))",
        env={"MIGRATION_TARGET": "head"},
    )

    assert result.code == 0, result.out
    assert sorted(json.loads(result.out)) == ["HOME", "LANG", "MIGRATION_TARGET", "PATH", "PYTHONDONTWRITEBYTECODE"]


def test_child_output_merges_stderr_into_stdout():
    result = run_python(
        "-c",
        "import sys; print('out', flush=True); print('err', file=sys.stderr); sys.exit(3)",
    )

    assert result.code == 3
    assert result.out == "out\nerr\n"
