"""Issue 2, configuration and secrets: bad values exit 2 and name the variable,
the ``_FILE`` rules hold, and a password never reaches the output.

migrate.py runs as a real process; a configuration error must leave the
database untouched (for SQLite: not even its folder is created).
"""

from __future__ import annotations

import time
import uuid
from urllib.parse import quote, quote_plus

import pytest
from sqlalchemy.engine import make_url

from tests.support.chains import SHIPPED, TARGET
from tests.support.dbstate import running_upgrade_lines, sqlite_path, tables, versions
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


@pytest.fixture
def secret_database(pg_server):
    """A role whose password holds '@ / % :', owning a fresh database; its URL, percent-encoded."""
    suffix = uuid.uuid4().hex[:12]
    role, database = f"r_{suffix}", f"t_{suffix}"
    pg_server.create_role(role, PASSWORD)
    pg_server.create_database(database, owner=role)
    server = make_url(pg_server.superuser_url)
    yield f"postgresql://{role}:{quote(PASSWORD, safe='')}@{server.host}:{server.port}/{database}"
    pg_server.drop_database(database)
    pg_server.drop_role(role)


def test_password_with_special_characters_works_and_is_never_printed(secret_database, tmp_path):
    url = secret_database
    url_file = tmp_path / "database_url"
    url_file.write_text(url + "\n")
    env = {"DATABASE_URL": url, "DB_WAIT_TIMEOUT": "5"}
    file_env = {"DATABASE_URL_FILE": url_file, "DB_WAIT_TIMEOUT": "5"}

    pending = run_migrate("status", env=env)
    first = run_migrate(env={**env, "LOG_LEVEL": "DEBUG"})
    runs = [
        pending,
        first,
        run_migrate(env=file_env),
        run_migrate("status", env=file_env),
        run_migrate("current", env=env),
        run_migrate("heads", env=env),
        run_migrate("history", env=file_env),
        run_migrate(env={**env, "LOG_FORMAT": "json"}),
        run_python("-m", "alembic", "-c", "alembic.ini", "current", env=file_env),
    ]

    assert pending.code == 1, pending.out
    assert first.code == 0, first.out
    assert len(running_upgrade_lines(first.out)) == 10
    assert versions(url) == [TARGET]
    for result in runs:
        assert result.code in (0, 1), result.out
        assert_no_password(result.out)
    assert [r.code for r in runs[2:]] == [0] * 7, [r.out for r in runs[2:]]
    assert "nothing to do" in summary_line(runs[2].out)


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
    assert_wrong_password_exits_4_at_once_unprinted(secret_database, "password authentication failed", lambda out: out)
    assert versions(secret_database) == []


def test_unparsable_url_does_not_print_its_password():
    result = run_migrate(env={"DATABASE_URL": "postgresql://user:hunter2secret@host:port/db"})

    assert result.code == 2, result.out
    assert "hunter2secret" not in result.out


# -- MySQL/MariaDB URLs ----------------------------------------------------------------------


@pytest.fixture
def my_secret_database(mysql_server):
    """A MariaDB account whose password holds '@ / % :' with every privilege on a fresh database;
    its URL (percent-encoded, mysql://), and the server."""
    suffix = uuid.uuid4().hex[:12]
    user, database = f"r_{suffix}", f"t_{suffix}"
    mysql_server.create_database(database)
    mysql_server.create_user(user, PASSWORD, f"ALL PRIVILEGES ON `{database}`.*")
    server = make_url(mysql_server.superuser_url)
    yield f"mysql://{user}:{quote(PASSWORD, safe='')}@{server.host}:{server.port}/{database}"
    mysql_server.drop_database(database)
    mysql_server.drop_user(user)


def test_mariadb_scheme_works_like_mysql_and_the_password_is_never_printed(my_secret_database, tmp_path):
    """mariadb://, mysql:// and mysql+pymysql:// name the same database; DATABASE_URL_FILE too."""
    url = my_secret_database
    mariadb = url.replace("mysql://", "mariadb://", 1)
    pymysql = url.replace("mysql://", "mysql+pymysql://", 1)
    url_file = tmp_path / "database_url"
    url_file.write_text(mariadb + "\n")
    env = {"DB_WAIT_TIMEOUT": "5", "REPORT_FILE": "-"}

    report = tmp_path / "report.json"
    first = run_migrate(env={**env, "DATABASE_URL": mariadb, "LOG_LEVEL": "DEBUG", "REPORT_FILE": report})
    runs = [
        first,
        run_migrate("status", env={**env, "DATABASE_URL": url}),
        run_migrate(env={**env, "DATABASE_URL": pymysql, "LOG_FORMAT": "json"}),
        run_migrate("current", env={**env, "DATABASE_URL_FILE": url_file}),
        run_migrate("alembic", "current", env={**env, "DATABASE_URL": mariadb}),
    ]

    assert first.code == 0, first.out
    assert len(running_upgrade_lines(first.out)) == 10
    written = report_of(report)
    assert written["database"].startswith("mariadb://") and "***" in written["database"], written
    assert_no_password(report.read_text())
    assert versions(url) == [TARGET]
    for result in runs:
        assert_no_password(result.out)
    assert [r.code for r in runs] == [0] * len(runs), [r.out for r in runs]
    assert "pending:  none" in runs[1].out, runs[1].out
    assert "nothing to do" in summary_line(runs[2].out)
    assert runs[3].out.strip().splitlines()[-1] == TARGET
    assert f"{TARGET} (head)" in runs[4].out


def test_mariadb_wrong_password_exits_4_at_once_and_is_never_printed(my_secret_database):
    assert_wrong_password_exits_4_at_once_unprinted(my_secret_database, "Access denied for user", summary_line)
    assert versions(my_secret_database) == []


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
