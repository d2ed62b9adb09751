"""Issue 12 and 13, from outside: bad input gets the exit code of the table, secrets never leak,
read-only commands write nothing, and the entrypoint never migrates on an unknown command.

Every case is a real migrate.py (or docker-entrypoint.sh) process against a
real SQLite file, the real PostgreSQL test server or the real MariaDB test
server; each asserts the exit code and what the database (or the folder)
holds afterwards, then the words.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.chains import TARGET, Chain
from tests.support.dbstate import fingerprint, is_sqlite, sqlite_path, tables, versions
from tests.support.faults import (
    assert_no_secret,
    entrypoint_argv,
    entrypoint_env,
    entrypoint_shim,
    file_digest,
    pg_table_locks,
    stranger_env,
)
from tests.support.network import free_port
from tests.support.process import child_env, report_of, run_migrate, run_unprivileged, start_migrate, summary_line

#: What a refused configuration may take: no waiting at all (DB_WAIT_TIMEOUT is 30 in these cases).
AT_ONCE = 5.0


def migrate(url: str, tmp_path: Path, *args: str, timeout: float = 90, **extra: object):
    started = time.monotonic()
    result = run_migrate(*args, env=stranger_env(url, tmp_path, **extra), timeout=timeout)
    return result, time.monotonic() - started


def upgrade_to(url: str, tmp_path: Path, revision: str, **extra: object) -> None:
    result, _ = migrate(url, tmp_path, "upgrade", revision, **extra)
    assert result.code == 0, result.out
    assert versions(url) == [revision]


def untouched(url: str) -> bool:
    """A fresh database that nothing was written to: a SQLite file never created, or no table."""
    if is_sqlite(url) and not sqlite_path(url).exists():
        return True
    return not tables(url)


def run_many(
    cases: list[tuple[str, list[str], dict[str, str]]], timeout: float = 60
) -> dict[str, tuple[int, str, float]]:
    """Start every (name, args, env) at once; return {name: (exit code, output, seconds)}."""
    started = {}
    for name, args, env in cases:
        started[name] = (time.monotonic(), start_migrate(*args, env=env))
    results = {}
    for name, (began, proc) in started.items():
        out, _ = proc.communicate(timeout=timeout)
        results[name] = (proc.returncode, out, time.monotonic() - began)
    return results


# --- revisions and URLs that cannot be honoured -------------------------------------------------


@pytest.mark.parametrize("revision", ["merge_heads_final@-1", "+1"])
def test_relative_upgrade_revision_is_refused_with_exit_2_or_resolved_honestly(any_url, tmp_path, revision):
    report = tmp_path / "report.json"
    result, _ = migrate(any_url, tmp_path, "upgrade", revision, REPORT_FILE=report)
    assert "FALLBACK" not in result.out, result.out
    if result.code == 2:
        assert revision in summary_line(result.out)
        assert untouched(any_url), "a refused upgrade changed the database"
        return
    # Resolved: then it went exactly where it says, below the head, without a fallback.
    assert result.code == 0, result.out
    data = report_of(report)
    assert data["to_revisions"] == versions(any_url) and not data["fallback_used"], data
    expected = {"+1": ["7e5b5dc7342b"]}.get(revision)
    assert versions(any_url) != [TARGET] and (expected is None or versions(any_url) == expected), versions(any_url)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_is_refused_with_exit_2_naming_database_url(tmp_path, url):
    result, took = migrate(url, tmp_path, DB_WAIT_TIMEOUT=30)
    assert result.code == 2, result.out
    assert "DATABASE_URL" in summary_line(result.out)
    assert "Unexpected" not in result.out
    assert took < AT_ONCE


@pytest.mark.parametrize("models", [":Base", "models:", "models:Base:extra"])
def test_malformed_models_is_exit_2_naming_models(sqlite_url, tmp_path, models):
    result, _ = migrate(sqlite_url, tmp_path, MODELS=models)
    assert result.code == 2, result.out
    assert "MODELS" in summary_line(result.out)
    assert not sqlite_path(sqlite_url).exists()


def test_sqlite_url_naming_a_folder_is_exit_2_at_once_and_creates_nothing(tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    cases = []
    for path in ("/etc", str(folder)):
        for verb in ("run", "status", "verify", "current"):
            env = stranger_env(f"sqlite:///{path}", tmp_path, DB_WAIT_TIMEOUT=30)
            cases.append((f"{verb} {path}", [] if verb == "run" else [verb], env))
    etc_siblings = {name for name in os.listdir("/") if name.startswith("etc")}
    results = run_many(cases)
    for name, (code, out, took) in results.items():
        assert code == 2, f"{name}: exit {code}\n{out}"
        assert took < AT_ONCE, f"{name}: {took:.1f}s for a folder that can never be a database"
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
    assert not list(tmp_path.glob("a-folder?*")), list(tmp_path.glob("a-folder?*"))
    assert {name for name in os.listdir("/") if name.startswith("etc")} == etc_siblings


# --- secret files and REPORT_FILE ---------------------------------------------------------------------


@pytest.mark.parametrize("content", ["{url}\n\n", "{url}\n\r\n", "\t{url}\n", "{url}\x00\n"])
def test_database_url_file_with_anything_but_one_trailing_newline_is_exit_2_and_creates_nothing(tmp_path, content):
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'webui.db'}"
    secret = tmp_path / "db_url"
    secret.write_bytes(content.format(url=url).encode())
    env = stranger_env(url, tmp_path, DATABASE_URL_FILE=secret)
    env.pop("DATABASE_URL")
    result = run_migrate(env=env)
    assert result.code == 2, result.out
    assert "DATABASE_URL_FILE" in summary_line(result.out)
    assert not data.exists() or not list(data.iterdir()), list(data.iterdir())


def test_database_url_file_with_one_trailing_newline_works(tmp_path):
    """The control case of the one above: one newline is stripped, as documented."""
    url = f"sqlite:///{tmp_path / 'data' / 'webui.db'}"
    secret = tmp_path / "db_url"
    secret.write_text(url + "\n")
    env = stranger_env(url, tmp_path, DATABASE_URL_FILE=secret)
    env.pop("DATABASE_URL")
    result = run_migrate(env=env)
    assert result.code == 0, result.out
    assert versions(url) == [TARGET]
    assert sorted(p.name for p in (tmp_path / "data").iterdir() if "webui.db" in p.name)[0] == "webui.db"


@pytest.mark.parametrize("where", ["database", "journal", "backup folder"])
def test_report_file_pointing_at_the_database_is_exit_2_and_the_database_is_unchanged(sqlite_url, tmp_path, where):
    upgrade_to(sqlite_url, tmp_path, "70c7b727736e")
    db = sqlite_path(sqlite_url)
    backups = tmp_path / "backups"
    backups.mkdir()
    target = {"database": db, "journal": Path(f"{db}-journal"), "backup folder": backups / "report.json"}[where]
    before = file_digest(db)
    result, _ = migrate(sqlite_url, tmp_path, REPORT_FILE=target, BACKUP_DIR=backups)
    assert result.code == 2, result.out
    assert "REPORT_FILE" in summary_line(result.out)
    assert file_digest(db) == before
    assert versions(sqlite_url) == ["70c7b727736e"]
    assert where == "database" or not target.exists()


# --- DDL_LOCK_TIMEOUT edge values ------------------------------------------------------------------------


def _alter_user_chain(tmp_path: Path) -> Chain:
    chain = Chain(tmp_path / "alter_user")
    chain.add("stranger_alter", 'op.add_column("user", sa.Column("stranger_nick", sa.String(20), nullable=True))')
    return chain


def test_ddl_lock_timeout_1e10_is_exit_2_naming_the_variable(pg_url, tmp_path):
    result, _ = migrate(pg_url, tmp_path, DDL_LOCK_TIMEOUT="1e10")
    assert result.code == 2, result.out
    assert "DDL_LOCK_TIMEOUT" in summary_line(result.out)
    assert "Unexpected" not in result.out
    assert untouched(pg_url)


def test_ddl_lock_timeout_below_a_millisecond_never_means_no_limit(pg_url, tmp_path):
    """0.0004 s once became lock_timeout = 0: with MIGRATION_TIMEOUT=0 the run waited forever."""
    chain = _alter_user_chain(tmp_path)
    upgrade_to(pg_url, tmp_path, TARGET, **chain.env())
    with pg_table_locks(pg_url, "user"):
        result, took = migrate(
            pg_url,
            tmp_path,
            **chain.env(),
            timeout=30,
            DDL_LOCK_TIMEOUT="0.0004",
            DDL_LOCK_RETRIES=0,
            MIGRATION_TIMEOUT=0,
        )
    assert result.code in (1, 2), result.out
    if result.code == 2:
        assert "DDL_LOCK_TIMEOUT" in summary_line(result.out)
    assert versions(pg_url) == [TARGET]
    assert took < 20


def test_ddl_lock_timeout_0_is_still_bounded_by_migration_timeout(pg_url, tmp_path):
    chain = _alter_user_chain(tmp_path)
    upgrade_to(pg_url, tmp_path, TARGET, **chain.env())
    with pg_table_locks(pg_url, "user"):
        result, took = migrate(pg_url, tmp_path, **chain.env(), timeout=30, DDL_LOCK_TIMEOUT=0, MIGRATION_TIMEOUT=3)
    assert result.code == 10, result.out
    assert versions(pg_url) == [TARGET]
    assert took < 3 + 5, f"MIGRATION_TIMEOUT=3 ended the run after {took:.1f}s"


# --- a role that may not create -----------------------------------------------------------------------------


@pytest.fixture
def role_without_create(pg_server):
    """A database owned by the superuser and a login role that may connect but not CREATE in public."""
    name = f"nocreate_{uuid.uuid4().hex[:8]}"
    password = "Nc-" + uuid.uuid4().hex
    database = f"t_{uuid.uuid4().hex[:16]}"
    pg_server.create_role(name, password)
    pg_server.create_database(database)
    pg_server.psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC", dbname=database)
    try:
        yield pg_server.url(database=database, user=name, password=password), pg_server.url(database=database)
    finally:
        pg_server.drop_database(database)
        pg_server.drop_role(name)


def test_role_without_create_on_the_schema_is_exit_4_at_once_without_retry(role_without_create, tmp_path):
    url, admin_url = role_without_create
    report = tmp_path / "report.json"
    result, took = migrate(url, tmp_path, REPORT_FILE=report)
    assert result.code == 4, result.out
    assert result.out.count("Running upgrade") <= 1, "the same step was tried again"
    assert "FALLBACK" not in result.out and "retry" not in result.out.lower(), result.out
    assert not report_of(report)["fallback_used"]
    assert not tables(admin_url)
    assert took < 15


@pytest.fixture
def my_database(mysql_server):
    """A fresh MariaDB database and a way to make accounts on it; dropped (with the accounts) afterwards."""
    database = f"t_{uuid.uuid4().hex[:16]}"
    mysql_server.create_database(database)
    made: list[str] = []

    def account(password: str, *grants: str) -> str:
        """A new account with ``password`` and ``grants`` ("SELECT, INSERT", "ALL PRIVILEGES"...) on the database."""
        name = f"u_{uuid.uuid4().hex[:12]}"
        mysql_server.create_user(name, password, *(f"{grant} ON `{database}`.*" for grant in grants))
        made.append(name)
        return name

    try:
        yield database, account, mysql_server
    finally:
        mysql_server.drop_database(database)
        for name in made:
            mysql_server.drop_user(name)


def _port_of(server) -> int:
    from sqlalchemy.engine import make_url

    return make_url(server.url()).port


def _my_url(server, user: str, password: str | None, database: str, scheme: str = "mysql") -> str:
    port = _port_of(server)
    secret = "" if password is None else ":" + quote(password, safe="")
    return f"{scheme}://{user}{secret}@127.0.0.1:{port}/{database}"


def test_mariadb_account_without_create_is_exit_4_at_once_without_retry(my_database, tmp_path):
    database, account, server = my_database
    password = "Nc-" + uuid.uuid4().hex
    name = account(password, "SELECT, INSERT, UPDATE, DELETE")
    url = _my_url(server, name, password, database)
    report = tmp_path / "report.json"

    result, took = migrate(url, tmp_path, REPORT_FILE=report, DB_WAIT_TIMEOUT=30)

    assert result.code == 4, result.out
    assert "CREATE command denied" in summary_line(result.out), result.out
    assert "Running upgrade" not in result.out, "a migration ran without CREATE"
    assert "FALLBACK" not in result.out and "retry" not in result.out.lower(), result.out
    assert not report_of(report)["fallback_used"]
    assert not tables(server.url(database=database))
    assert took < 15


def test_read_only_commands_work_with_a_select_only_mariadb_account(my_database, tmp_path):
    """Reading needs no write: a SELECT-only account runs every read-only verb and changes nothing."""
    database, account, server = my_database
    admin_url = server.url(database=database)
    upgrade_to(admin_url, tmp_path, TARGET)
    password = "Ro-" + uuid.uuid4().hex
    name = account(password, "SELECT")
    url = _my_url(server, name, password, database)
    before = fingerprint(admin_url)
    verbs = ("status", "current", "verify", "wait")
    results = run_many(
        [(verb, [verb], stranger_env(url, tmp_path, LOCK_TIMEOUT=5, MIGRATION_TIMEOUT=5)) for verb in verbs]
    )
    for verb, (code, out, _took) in results.items():
        assert code == 0, f"{verb} with a SELECT-only account: exit {code}\n{out}"
    assert fingerprint(admin_url) == before


# --- passwords never leak -----------------------------------------------------------------------------------

#: Distinctive segments joined by the characters the probe found leaking: \ " ä and @ / #.
SEGMENTS = ("Zq7", "Kx9", "Wm3", "Pv5", "Rt6", "Yh8")
WEIRD = 'Zq7\\Kx9"Wm3äPv5@Rt6/Yh8#Nb4'


@pytest.fixture
def weird_role(pg_server):
    """A role whose password has every character the probe found leaking, owning a fresh database."""
    name = f"weird_{uuid.uuid4().hex[:8]}"
    database = f"t_{uuid.uuid4().hex[:16]}"
    pg_server.create_role(name, WEIRD)
    pg_server.create_database(database, owner=name)
    try:
        yield name, database, pg_server
    finally:
        pg_server.drop_database(database)
        pg_server.drop_role(name)


def _port(pg_server) -> int:
    from sqlalchemy.engine import make_url

    return make_url(pg_server.url()).port


def _assert_nothing_leaks(results: dict, tmp_path: Path, secret: str) -> None:
    for name, (_code, out, _took) in results.items():
        assert_no_secret(out, secret, name, fragments=SEGMENTS)
    for report in tmp_path.glob("report-*.json"):
        assert_no_secret(report.read_text(encoding="utf-8"), secret, report.name, fragments=SEGMENTS)


def test_weird_password_percent_encoded_or_from_database_password_works_and_never_shows(weird_role, tmp_path):
    name, database, pg_server = weird_role
    port = _port(pg_server)
    encoded = f"postgresql://{name}:{quote(WEIRD, safe='')}@127.0.0.1:{port}/{database}"
    bare = f"postgresql://{name}@127.0.0.1:{port}/{database}"
    password_file = tmp_path / "password"
    password_file.write_text(WEIRD + "\n", encoding="utf-8")
    cases = []
    for label, url, extra in (
        ("encoded", encoded, {}),
        ("DATABASE_PASSWORD", bare, {"DATABASE_PASSWORD": WEIRD}),
        ("DATABASE_PASSWORD_FILE", bare, {"DATABASE_PASSWORD_FILE": str(password_file)}),
    ):
        for log_format in ("text", "json"):
            for verb in ("run", "status", "verify"):
                key = f"{label}-{log_format}-{verb}"
                env = stranger_env(
                    url,
                    tmp_path,
                    LOG_FORMAT=log_format,
                    REPORT_FILE=tmp_path / f"report-{key}.json",
                    LOG_LEVEL="DEBUG",
                    **extra,
                )
                cases.append((key, [] if verb == "run" else [verb], env))
    # The runs of one label share a database: run first, then the read-only verbs.
    results = run_many([c for c in cases if c[0].endswith("-run") and c[0].startswith("encoded-text")])
    results.update(run_many([c for c in cases if not (c[0].endswith("-run") and c[0].startswith("encoded-text"))]))
    for key, (code, out, _took) in results.items():
        assert code == 0, f"{key}: exit {code}\n{out}"
    _assert_nothing_leaks(results, tmp_path, WEIRD)
    assert versions(encoded) == [TARGET]
    status = next(out for key, (_c, out, _t) in results.items() if key == "encoded-text-status")
    assert "127.0.0.1" in status, "the host must stay visible"


#: The schemes the malformed-URL test tries, and the verbs it runs with each (MySQL's fewer: time).
MALFORMED_SCHEMES = {
    "postgresql": ("run", "status"),
    "postgresql+psycopg2": ("run", "status"),
    "mysql": ("run", "status"),
    "mariadb+pymysql": ("run",),
}


def test_malformed_urls_with_raw_passwords_never_show_them_in_any_escaping(tmp_path):
    port = free_port()  # nothing listens: a URL that parses is unreachable (exit 3)
    passwords = {
        "backslash-quote-umlaut": 'Zq7\\Kx9"Wm3äPv5',
        "at-slash-hash": "Zq7@Kx9/Wm3#Pv5",
        "everything": WEIRD,
    }
    cases = []
    secret_of = {}
    for label, password in passwords.items():
        for scheme, verbs in MALFORMED_SCHEMES.items():
            url = f"{scheme}://app:{password}@127.0.0.1:{port}/app"
            for log_format in ("text", "json"):
                for verb in verbs:
                    key = f"{label}-{scheme}-{log_format}-{verb}"
                    env = stranger_env(
                        url,
                        tmp_path,
                        LOG_FORMAT=log_format,
                        DB_WAIT_TIMEOUT=1,
                        REPORT_FILE=tmp_path / f"report-{key}.json",
                        LOG_LEVEL="DEBUG",
                    )
                    cases.append((key, [] if verb == "run" else [verb], env))
                    secret_of[key] = password
    results = run_many(cases)
    for key, (code, out, _took) in results.items():
        assert code in (2, 3), f"{key}: exit {code}\n{out}"
        password = secret_of[key]
        assert_no_secret(out, password, key, fragments=SEGMENTS)
        report = tmp_path / f"report-{key}.json"
        if report.exists():
            assert_no_secret(report.read_text(encoding="utf-8"), password, report.name, fragments=SEGMENTS)


def _run_with_the_password_in_the_query(tmp_path, password, good, wrong, nowhere, *, status_code):
    """run and status on ``good``, run on ``wrong`` (exit 4) and ``nowhere`` (exit 3), in text and JSON,
    REPORT_FILE each: the password in none of it.  ``status_code`` None: any.  Returns the results by case."""
    cases = []
    for key, url, args, expected in (
        ("run", good, [], 0),
        ("status", good, ["status"], status_code),
        ("wrong", wrong, [], 4),
        ("nowhere", nowhere, [], 3),
    ):
        for log_format in ("text", "json"):
            env = stranger_env(
                url,
                tmp_path,
                LOG_FORMAT=log_format,
                DB_WAIT_TIMEOUT=2,
                REPORT_FILE=tmp_path / f"report-{key}-{log_format}.json",
            )
            cases.append((f"{key}-{log_format}", args, env, expected))
    results = run_many([c[:3] for c in cases if c[0].startswith("run-text")])
    results.update(run_many([c[:3] for c in cases if not c[0].startswith("run-text")]))
    for key, _args, _env, expected in cases:
        code, out, _took = results[key]
        assert_no_secret(out, password, key)
        if expected is not None:
            assert code == expected, f"{key}: exit {code}\n{out}"
    for report in tmp_path.glob("report-*.json"):
        assert_no_secret(report.read_text(encoding="utf-8"), password, report.name)
    return results


def test_password_in_the_query_string_never_shows(pg_server, tmp_path):
    name = f"query_{uuid.uuid4().hex[:8]}"
    password = "Qs7Password" + uuid.uuid4().hex[:8]
    database = f"t_{uuid.uuid4().hex[:16]}"
    pg_server.create_role(name, password)
    pg_server.create_database(database, owner=name)
    port = _port(pg_server)
    try:
        good = f"postgresql://{name}@127.0.0.1:{port}/{database}?password={password}"
        wrong = f"postgresql://{name}@127.0.0.1:{port}/{database}?password={password}Wrong"
        nowhere = f"postgresql://{name}@127.0.0.1:{free_port()}/{database}?password={password}"
        results = _run_with_the_password_in_the_query(tmp_path, password, good, wrong, nowhere, status_code=None)
        assert "127.0.0.1" in results["nowhere-text"][1], "the host must stay visible"
    finally:
        pg_server.drop_database(database)
        pg_server.drop_role(name)


#: Every ASCII character that breaks a naive URL parser or masker (PyMySQL sends a str password
#: as latin-1, so a non-ASCII one has a test of its own below).
MY_WEIRD = "Zq7\\Kx9\"Wm3'Pv5@Rt6/Yh8#Nb4%25:?&="


def test_mariadb_weird_password_percent_encoded_or_from_database_password_works_and_never_shows(my_database, tmp_path):
    database, account, server = my_database
    name = account(MY_WEIRD, "ALL PRIVILEGES")
    encoded = _my_url(server, name, MY_WEIRD, database)
    password_file = tmp_path / "password"
    password_file.write_text(MY_WEIRD + "\n", encoding="utf-8")
    cases = []
    for label, url, extra in (
        ("encoded", encoded, {}),
        ("DATABASE_PASSWORD", _my_url(server, name, None, database, scheme="mariadb"), {"DATABASE_PASSWORD": MY_WEIRD}),
        (
            "DATABASE_PASSWORD_FILE",
            _my_url(server, name, None, database),
            {"DATABASE_PASSWORD_FILE": str(password_file)},
        ),
    ):
        for log_format in ("text", "json"):
            for verb in ("run", "status"):
                key = f"{label}-{log_format}-{verb}"
                env = stranger_env(
                    url,
                    tmp_path,
                    LOG_FORMAT=log_format,
                    REPORT_FILE=tmp_path / f"report-{key}.json",
                    LOG_LEVEL="DEBUG",
                    **extra,
                )
                cases.append((key, [] if verb == "run" else [verb], env))
    first = "encoded-text-run"
    results = run_many([c for c in cases if c[0] == first])
    results.update(run_many([c for c in cases if c[0] != first]))
    _assert_nothing_leaks(results, tmp_path, MY_WEIRD)
    for key, (code, out, _took) in results.items():
        assert code == 0, f"{key}: exit {code}\n{out}"
        if key.endswith("-json-run"):  # one JSON object per line, Alembic's DEBUG lines included
            assert all(isinstance(json.loads(line), dict) for line in out.splitlines() if line.strip()), out
    assert "Upgraded base (empty) -> merge_heads_final" in summary_line(results[first][1])
    assert versions(server.url(database=database)) == [TARGET]
    status = results["DATABASE_PASSWORD_FILE-text-status"][1]
    assert f"127.0.0.1:{_port_of(server)}/{database}" in status, "the host, port and database must stay visible"


def test_mariadb_password_with_a_non_ascii_character_logs_in(my_database, tmp_path):
    """MariaDB hashes the UTF-8 bytes of a password set over a utf8mb4 connection (as the mysql
    client does); PyMySQL sends a str password as latin-1 unless it is given bytes."""
    database, account, server = my_database
    password = "pässwörd-" + uuid.uuid4().hex[:8]
    name = account(password, "ALL PRIVILEGES")

    result, _ = migrate(_my_url(server, name, password, database), tmp_path, "current")

    assert result.code == 0, result.out
    assert_no_secret(result.out, password, "current")


def test_mariadb_password_in_the_query_string_never_shows_and_the_host_stays_visible(my_database, tmp_path):
    database, account, server = my_database
    password = "Qs7Password" + uuid.uuid4().hex[:8]
    name = account(password, "ALL PRIVILEGES")
    where = f"127.0.0.1:{_port_of(server)}/{database}"
    good = f"mysql://{name}@{where}?password={password}"
    wrong = f"mysql://{name}@{where}?password={password}Wrong"
    nowhere = f"mysql://{name}@127.0.0.1:{free_port()}/{database}?password={password}"
    results = _run_with_the_password_in_the_query(tmp_path, password, good, wrong, nowhere, status_code=0)
    assert "127.0.0.1" in results["nowhere-text"][1], "the host must stay visible"
    refused = summary_line(results["wrong-text"][1])
    assert where in refused and "Access denied for user" in refused, refused


def test_sqlite_paths_stay_visible(sqlite_url, tmp_path):
    result, _ = migrate(sqlite_url, tmp_path)
    assert result.code == 0, result.out
    status, _ = migrate(sqlite_url, tmp_path, "status")
    assert str(sqlite_path(sqlite_url)) in status.out, status.out
    assert "***" not in status.out


# --- read-only commands write nothing -----------------------------------------------------------------------

READ_ONLY_VERBS = ("status", "current", "plan", "verify", "check")


def test_read_only_commands_on_a_mistyped_path_exit_3_and_create_nothing(tmp_path):
    typo = tmp_path / "dtaa"
    url = f"sqlite:///{typo / 'webui.db'}"
    results = run_many([(verb, [verb], stranger_env(url, tmp_path)) for verb in READ_ONLY_VERBS])
    for verb, (code, out, _took) in results.items():
        assert code == 3, f"{verb}: exit {code}\n{out}"
        assert str(typo / "webui.db") in out, f"{verb} does not name the path:\n{out}"
    assert not typo.exists(), f"a read-only command created {typo}: {list(typo.rglob('*'))}"


def test_read_only_commands_work_on_a_read_only_file_in_a_read_only_folder(shared_tmp):
    data = shared_tmp / "data"
    url = f"sqlite:///{data / 'webui.db'}"
    seeds = shared_tmp / "no-seeds"
    seeds.mkdir()
    built = run_migrate(env={"DATABASE_URL": url, "SEED_DIR": str(seeds), "DATA_DIR": str(shared_tmp / "dd")})
    assert built.code == 0, built.out
    db = data / "webui.db"
    db.chmod(0o444)
    data.chmod(0o555)
    before = (file_digest(db), sorted(p.name for p in data.iterdir()))
    env = {"DATABASE_URL": url, "SEED_DIR": str(seeds), "DATA_DIR": str(shared_tmp / "dd"), "DB_WAIT_TIMEOUT": "5"}
    for verb in READ_ONLY_VERBS:
        result = run_unprivileged(verb, env=env, timeout=60)
        assert result.code == 0, (
            f"{verb} as UID 65534 on a 0444 file in a 0555 folder: exit {result.code}\n{result.out}"
        )
    assert (file_digest(db), sorted(p.name for p in data.iterdir())) == before


def test_read_only_commands_work_on_a_read_only_postgresql_database(pg_url, pg_server, tmp_path):
    """A database whose every transaction is read-only, as on a hot standby: reading needs no write."""
    upgrade_to(pg_url, tmp_path, TARGET)
    from sqlalchemy.engine import make_url

    database = make_url(pg_url).database
    pg_server.psql(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    before = fingerprint(pg_url)
    verbs = ("status", "current", "verify", "check", "wait")
    results = run_many(
        [(verb, [verb], stranger_env(pg_url, tmp_path, LOCK_TIMEOUT=5, MIGRATION_TIMEOUT=5)) for verb in verbs]
    )
    for verb, (code, out, _took) in results.items():
        assert code == 0, f"{verb} on a read-only database: exit {code}\n{out}"
    assert fingerprint(pg_url) == before


def test_plan_runs_under_ddl_lock_timeout_and_ends_behind_a_locked_table(pg_url, tmp_path):
    chain = _alter_user_chain(tmp_path)
    upgrade_to(pg_url, tmp_path, TARGET, **chain.env())
    before = fingerprint(pg_url)
    with pg_table_locks(pg_url, "user"):
        result, took = migrate(
            pg_url,
            tmp_path,
            "plan",
            **chain.env(),
            timeout=60,
            DDL_LOCK_TIMEOUT=1,
            DDL_LOCK_RETRIES=0,
            MIGRATION_TIMEOUT=5,
        )
    assert took < 15, f'plan behind LOCK TABLE "user" took {took:.1f}s'
    assert result.code != 0, result.out
    assert fingerprint(pg_url) == before


# --- the entrypoint: an unknown command is exec'd as it is, never a migration ------------------------------------


def _entrypoint(tmp_path: Path, url: str, *args: str, timeout: float = 90, **extra: object) -> tuple[int, str, str]:
    bin_dir, calls = entrypoint_shim(tmp_path)
    calls.write_text("")
    env = entrypoint_env(bin_dir, stranger_env(url, tmp_path, **extra))
    proc = subprocess.run(
        entrypoint_argv(*args),
        env=child_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )
    return proc.returncode, proc.stdout, calls.read_text()


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("sh", "-c", "echo hello-from-sh"), 0),
        (("stauts",), 127),
        (("help",), 0),
        (("--version",), 0),
        (("run", "--"), 2),
    ],
)
def test_entrypoint_never_migrates_on_an_unknown_command_help_or_version(sqlite_url, tmp_path, args, code):
    got, out, calls = _entrypoint(tmp_path, sqlite_url, *args)
    assert got == code, f"{args}: exit {got}\n{out}"
    assert not sqlite_path(sqlite_url).exists(), f"{args} created or migrated the database:\n{out}"
    assert all(line.split()[1:2] != ["run"] and line.strip() != "/app/migrate.py" for line in calls.splitlines()), calls
    if args[0] == "sh":
        assert "hello-from-sh" in out and not calls.strip(), calls
    if args == ("--version",):
        assert "migrate-init" in out
    if args == ("help",):
        assert "usage" in out.lower()


def test_entrypoint_alembic_current_reports_without_migrating(sqlite_url, tmp_path):
    upgrade_to(sqlite_url, tmp_path, "70c7b727736e")
    before = file_digest(sqlite_path(sqlite_url))
    code, out, _calls = _entrypoint(tmp_path, sqlite_url, "alembic", "current")
    assert code == 0, out
    assert "70c7b727736e" in out
    assert versions(sqlite_url) == ["70c7b727736e"]
    assert file_digest(sqlite_path(sqlite_url)) == before


def test_entrypoint_wrapper_mode_migrates_then_starts_the_command(sqlite_url, tmp_path):
    code, out, _calls = _entrypoint(tmp_path, sqlite_url, "run", "--", "sh", "-c", "echo app-started")
    assert code == 0, out
    assert "app-started" in out
    assert versions(sqlite_url) == [TARGET]
    assert out.index("OK (exit 0)") < out.index("app-started")


def test_entrypoint_wrapper_mode_does_not_start_the_command_after_a_failure(sqlite_url, tmp_path):
    code, out, _calls = _entrypoint(tmp_path, sqlite_url, "run", "--", "sh", "-c", "echo app-started", MODELS=":Base")
    assert code == 2, out
    assert "app-started" not in out
    assert not sqlite_path(sqlite_url).exists()


def test_json_logs_stay_one_object_per_line_for_every_bad_input(tmp_path):
    cases = [
        ("memory", [], stranger_env("sqlite://", tmp_path, LOG_FORMAT="json")),
        ("models", [], stranger_env(f"sqlite:///{tmp_path / 'x.db'}", tmp_path, LOG_FORMAT="json", MODELS=":Base")),
        (
            "ddl",
            [],
            stranger_env(f"sqlite:///{tmp_path / 'x.db'}", tmp_path, LOG_FORMAT="json", DDL_LOCK_TIMEOUT="1e10"),
        ),
    ]
    for name, (code, out, _took) in run_many(cases).items():
        assert code == 2, f"{name}: exit {code}\n{out}"
        for line in out.splitlines():
            if line.strip():
                assert isinstance(json.loads(line), dict), line
