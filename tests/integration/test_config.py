"""Issue 2, configuration and secrets: bad values exit 2 and name the variable,
the ``_FILE`` rules hold, and a password never reaches the output.

migrate.py runs as a real process; a configuration error must leave the
database untouched (for SQLite: not even its folder is created).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import pytest
from sqlalchemy.engine import make_url

from tests.support.accounts import own_database
from tests.support.chains import SHIPPED, TARGET
from tests.support.dbstate import running_upgrade_lines, sqlite_path, tables, versions
from tests.support.myserver import MyServer
from tests.support.pgserver import PgServer
from tests.support.process import report_of, run_migrate, run_python, summary_line

# Every character the issue names, plus a literal "%25" that a double decode would spoil.
PASSWORD = "Tr1:ck@y/p%25ss%w0rd:#?"


def assert_no_password(out: str, password: str = PASSWORD) -> None:
    for form in {password, quote(password, safe=""), quote(password), quote_plus(password)}:
        assert form not in out, f"the password appears as {form!r} in:\n{out}"


# -- bad values exit 2 and name the variable ------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ENABLE_FALLBACK_CREATE", "maybe"),
        ("ENABLE_AUTO_MIGRATION", "yes please"),
        ("MIGRATION_TIMEOUT", "-1"),
        ("MIGRATION_TIMEOUT", "soon"),
        ("DB_WAIT_TIMEOUT", "-5"),
        ("MODELS", "models.Base"),
        ("LOG_LEVEL", "chatty"),
    ],
)
def test_bad_value_exits_2_naming_the_variable_and_touches_nothing(sqlite_url, variable, value):
    result = run_migrate(env={"DATABASE_URL": sqlite_url, variable: value})

    assert result.code == 2, result.out
    assert variable in summary_line(result.out)
    assert not sqlite_path(sqlite_url).parent.exists()


@pytest.mark.parametrize("url", ["not a url", "postgresql://user:pw@host:port/db", "://nothing"])
def test_unparsable_database_url_exits_2_naming_database_url(url):
    result = run_migrate(env={"DATABASE_URL": url})

    assert result.code == 2, result.out
    assert "DATABASE_URL" in summary_line(result.out)


def test_empty_database_url_exits_2_instead_of_using_the_default(tmp_path):
    result = run_migrate(env={"DATABASE_URL": "", "DATA_DIR": tmp_path / "data"})

    assert result.code == 2, result.out
    assert "DATABASE_URL" in summary_line(result.out)
    assert not (tmp_path / "data").exists()


def test_unknown_command_exits_2():
    result = run_migrate("frobnicate", env={"DATABASE_URL": "sqlite:////nonexistent/x.db"})

    assert result.code == 2, result.out
    assert "frobnicate" in result.out


# -- the migrations folder ---------------------------------------------------------------


def test_missing_migrations_folder_exits_2_naming_migrations_dir(sqlite_url, tmp_path):
    result = run_migrate(env={"DATABASE_URL": sqlite_url, "MIGRATIONS_DIR": tmp_path / "nowhere"})

    assert result.code == 2, result.out
    assert "MIGRATIONS_DIR" in summary_line(result.out)
    assert not sqlite_path(sqlite_url).parent.exists()


def test_empty_migrations_folder_exits_2_naming_migrations_dir(sqlite_url, tmp_path):
    (tmp_path / "empty").mkdir()

    result = run_migrate(env={"DATABASE_URL": sqlite_url, "MIGRATIONS_DIR": tmp_path / "empty"})

    assert result.code == 2, result.out
    assert "MIGRATIONS_DIR" in summary_line(result.out)
    assert not sqlite_path(sqlite_url).parent.exists()


def test_migrations_folder_without_revisions_exits_2_instead_of_doing_nothing(sqlite_url, tmp_path):
    folder = tmp_path / "no_revisions"
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text((SHIPPED / "env.py").read_text())

    result = run_migrate(env={"DATABASE_URL": sqlite_url, "MIGRATIONS_DIR": folder})

    assert result.code == 2, result.out
    assert "MIGRATIONS_DIR" in summary_line(result.out)
    assert "no migration scripts" in summary_line(result.out)
    assert not sqlite_path(sqlite_url).exists()


# -- the _FILE twin -------------------------------------------------------------------------


def test_database_url_file_is_read_with_one_trailing_newline_stripped(sqlite_url, tmp_path):
    url_file = tmp_path / "database_url"
    url_file.write_text(sqlite_url + "\n")

    result = run_migrate(env={"DATABASE_URL_FILE": url_file})

    assert result.code == 0, result.out
    database = sqlite_path(sqlite_url)
    assert database.is_file()
    assert not [p for p in database.parent.iterdir() if "\n" in p.name]
    assert versions(sqlite_url) == [TARGET]


def test_database_url_file_without_newline_is_read_as_is(sqlite_url, tmp_path):
    url_file = tmp_path / "database_url"
    url_file.write_text(sqlite_url)

    result = run_migrate(env={"DATABASE_URL_FILE": url_file})

    assert result.code == 0, result.out
    assert versions(sqlite_url) == [TARGET]


@pytest.mark.parametrize("content", ["", "\n"], ids=["empty", "only-a-newline"])
def test_empty_database_url_file_exits_2_naming_the_variable(tmp_path, content):
    url_file = tmp_path / "database_url"
    url_file.write_text(content)

    result = run_migrate(env={"DATABASE_URL_FILE": url_file, "DATA_DIR": tmp_path / "data"})

    assert result.code == 2, result.out
    assert "DATABASE_URL_FILE" in summary_line(result.out)
    assert "empty" in summary_line(result.out)
    assert not (tmp_path / "data").exists()


def test_missing_database_url_file_exits_2_naming_the_variable_and_path(tmp_path):
    missing = tmp_path / "no-such-secret"

    result = run_migrate(env={"DATABASE_URL_FILE": missing, "DATA_DIR": tmp_path / "data"})

    assert result.code == 2, result.out
    assert "DATABASE_URL_FILE" in summary_line(result.out)
    assert str(missing) in summary_line(result.out)
    assert not (tmp_path / "data").exists()


def test_database_url_and_its_file_both_set_exit_2_naming_both(sqlite_url, tmp_path):
    url_file = tmp_path / "database_url"
    url_file.write_text(sqlite_url + "\n")

    result = run_migrate(env={"DATABASE_URL": sqlite_url, "DATABASE_URL_FILE": url_file})

    assert result.code == 2, result.out
    assert "DATABASE_URL_FILE" in summary_line(result.out)
    assert "Both DATABASE_URL and" in summary_line(result.out)
    assert not sqlite_path(sqlite_url).parent.exists()


# -- a password with special characters never reaches the output --------------------------


#: Per scheme: another spelling of the same engine, the same with its driver named, and the words of a
#: wrong password.
SCHEMES = {
    "postgresql": ("postgres", "postgresql+psycopg2", "password authentication failed"),
    "mysql": ("mariadb", "mysql+pymysql", "Access denied for user"),
}


@contextlib.contextmanager
def secret_account(server: PgServer | MyServer) -> Iterator[str]:
    """An account whose password holds '@ / % :', owning a fresh database; its URL, percent-encoded."""
    name = f"r_{uuid.uuid4().hex[:12]}"
    with own_database(server, name, PASSWORD) as url:
        parts = make_url(url)
        yield f"{parts.drivername}://{name}:{quote(PASSWORD, safe='')}@{parts.host}:{parts.port}/{name}"


@pytest.fixture(
    params=[
        pytest.param("pg_server", marks=pytest.mark.postgres, id="postgresql"),
        pytest.param("mysql_server", marks=pytest.mark.mysql, id="mysql"),
    ]
)
def secret_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """secret_account's URL on the PostgreSQL server and on the MariaDB one."""
    with secret_account(request.getfixturevalue(request.param)) as url:
        yield url


def test_password_with_special_characters_works_under_every_scheme_and_is_never_printed(secret_database, tmp_path):
    """postgres:// and postgresql+psycopg2://, mariadb:// and mysql+pymysql:// name the same database as the
    plain scheme; DATABASE_URL_FILE too; and no verb prints the password."""
    url = secret_database
    scheme = url.partition("://")[0]
    alias, with_driver = (url.replace(f"{scheme}://", f"{other}://", 1) for other in SCHEMES[scheme][:2])
    url_file = tmp_path / "database_url"
    url_file.write_text(alias + "\n")
    env = {"DB_WAIT_TIMEOUT": "5", "REPORT_FILE": "-"}
    plain, file_env = {**env, "DATABASE_URL": url}, {**env, "DATABASE_URL_FILE": url_file}
    report = tmp_path / "report.json"

    pending = run_migrate("status", env=plain)
    first = run_migrate(env={**env, "DATABASE_URL": alias, "LOG_LEVEL": "DEBUG", "REPORT_FILE": report})
    runs = [
        pending,
        first,
        run_migrate(env=file_env),
        run_migrate("status", env=plain),
        run_migrate("status", env=file_env),
        run_migrate("current", env=file_env),
        run_migrate("current", env=plain),
        run_migrate("heads", env=plain),
        run_migrate("history", env=file_env),
        run_migrate(env={**env, "DATABASE_URL": with_driver, "LOG_FORMAT": "json"}),
        run_migrate("alembic", "current", env={**env, "DATABASE_URL": alias}),
        run_python("-m", "alembic", "-c", "alembic.ini", "current", env=file_env),
    ]

    assert pending.code == 1, pending.out
    assert first.code == 0, first.out
    assert len(running_upgrade_lines(first.out)) == 10
    written = report_of(report)
    assert written["database"].startswith(f"{alias.partition('://')[0]}://") and "***" in written["database"], written
    assert_no_password(report.read_text())
    assert versions(url) == [TARGET]
    for result in runs:
        assert_no_password(result.out)
    assert [r.code for r in runs[2:]] == [0] * len(runs[2:]), [r.out for r in runs[2:]]
    assert "nothing to do" in summary_line(runs[2].out)
    assert "pending:  none" in runs[3].out, runs[3].out
    assert runs[5].out.strip().splitlines()[-1] == TARGET
    assert f"{TARGET} (head)" in runs[10].out


def assert_wrong_password_exits_4_at_once_unprinted(url_with_password: str, refusal: str, where) -> None:
    """``url_with_password`` with a wrong password: exit 4 without retrying, ``refusal`` said, no password shown."""
    wrong = PASSWORD + "-wrong"
    url = url_with_password.replace(quote(PASSWORD, safe=""), quote(wrong, safe=""))
    assert url != url_with_password

    started = time.monotonic()
    result = run_migrate(env={"DATABASE_URL": url, "DB_WAIT_TIMEOUT": "30"})
    elapsed = time.monotonic() - started

    assert result.code == 4, result.out
    assert elapsed < 15, f"took {elapsed:.1f}s: was authentication retried?"
    assert "Waiting for the database" not in result.out
    assert refusal in where(result.out)
    assert_no_password(result.out, wrong)
    assert_no_password(result.out, PASSWORD)


def test_wrong_password_exits_4_at_once_and_is_never_printed(secret_database):
    refusal = SCHEMES[secret_database.partition("://")[0]][2]
    assert_wrong_password_exits_4_at_once_unprinted(secret_database, refusal, summary_line)
    assert versions(secret_database) == []


def test_unparsable_url_does_not_print_its_password():
    result = run_migrate(env={"DATABASE_URL": "postgresql://user:hunter2secret@host:port/db"})

    assert result.code == 2, result.out
    assert "hunter2secret" not in result.out


# -- MySQL/MariaDB URLs ----------------------------------------------------------------------


@pytest.fixture
def my_secret_database(mysql_server):
    """secret_account's URL on the MariaDB server (mysql://)."""
    with secret_account(mysql_server) as url:
        yield url


@pytest.mark.parametrize(
    ("option", "named"),
    [
        ("frobnicate=1", "frobnicate"),
        ("connect_timeout=soon", "connect_timeout"),
        ("charset=utf8mb4&charset=latin1", "charset"),
    ],
)
def test_a_mysql_url_option_pymysql_cannot_take_is_exit_2_naming_it(my_secret_database, option, named):
    url = f"{my_secret_database}?{option}"

    result = run_migrate(env={"DATABASE_URL": url, "DB_WAIT_TIMEOUT": "30"})

    assert result.code == 2, result.out
    assert named in summary_line(result.out), result.out
    assert "Traceback" not in result.out
    assert_no_password(result.out)
    assert tables(my_secret_database) == set()
