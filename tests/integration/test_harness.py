"""The test harness itself: the PostgreSQL fixtures and the process helpers of tests/support."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg2
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.dbstate import pg_query, sqlite_query
from tests.support.process import run_python

TRICKY_PASSWORD = "p@ss/w%rd:x"
USER_TABLES = (
    "SELECT count(*) FROM information_schema.tables "
    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
)


def _role_url(pg_url: str, role: str, password: str) -> str:
    u = make_url(pg_url)
    return (f"postgresql://{quote(role, safe='')}:{quote(password, safe='')}"
            f"@{u.host}:{u.port}/{u.database}")


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


def test_pg_url_databases_are_empty_and_distinct(pg_server, pg_url):
    other_name = f"t_{uuid.uuid4().hex[:16]}"
    other_url = pg_server.create_database(other_name)
    try:
        assert make_url(other_url).database != make_url(pg_url).database
        assert pg_query(pg_url, USER_TABLES) == [(0,)]
        assert pg_query(other_url, USER_TABLES) == [(0,)]

        pg_query(pg_url, "CREATE TABLE marker (id int)")

        assert pg_query(pg_url, USER_TABLES) == [(1,)]
        assert pg_query(other_url, USER_TABLES) == [(0,)]
    finally:
        pg_server.drop_database(other_name)
    assert pg_server.psql(
        "SELECT count(*) FROM pg_database WHERE datname = %s", params=(other_name,)
    ) == [(0,)]


def test_drop_database_disconnects_open_sessions(pg_server):
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = psycopg2.connect(pg_server.create_database(name))
    try:
        pg_server.drop_database(name)
        with pytest.raises(psycopg2.OperationalError):
            conn.cursor().execute("select 1")
    finally:
        conn.close()


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
        "-c", "import json, os; print(json.dumps(dict(os.environ)))",
        env={"MIGRATION_TARGET": "head"},
    )

    assert result.code == 0, result.out
    assert sorted(json.loads(result.out)) == [
        "HOME", "LANG", "MIGRATION_TARGET", "PATH", "PYTHONDONTWRITEBYTECODE"]


def test_child_output_merges_stderr_into_stdout():
    result = run_python(
        "-c",
        "import sys; print('out', flush=True); print('err', file=sys.stderr); "
        "sys.exit(3)",
    )

    assert result.code == 3
    assert result.out == "out\nerr\n"
