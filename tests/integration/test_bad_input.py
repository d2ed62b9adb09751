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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.support.accounts import limited_account, own_database
from tests.support.chains import TARGET, Chain
from tests.support.dbstate import database_name, fingerprint, is_sqlite, sqlite_path, tables, versions
from tests.support.faults import (
    assert_no_secret,
    entrypoint_argv,
    entrypoint_env,
    entrypoint_shim,
    file_digest,
    pg_table_locks,
    stranger_env,
)
from tests.support.myserver import MyServer
from tests.support.network import free_port
from tests.support.pgserver import PgServer
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


# --- an account that may not create, or only read: the same case on both servers ----------------------------


@dataclass(frozen=True)
class Server:
    """A brand-new database on one test server, and what that server says and offers."""

    server: PgServer | MyServer
    database: str
    alias: str  #: another scheme of the same engine (DATABASE_URL may use either)
    denied_create: str  #: the words of a CREATE the account may not run
    wrong_password: str  #: the words of a wrong password
    #: Whether the server can make one database refuse every write (as a hot standby does); an account
    #: granted SELECT only refuses them on every server.
    read_only_database: bool

    @property
    def admin_url(self) -> str:
        return self.server.url(database=self.database)


#: Each server's fixtures and what it says and offers.
_SERVERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "postgresql": (
        "pg_server",
        "pg_url",
        {
            "alias": "postgres",
            "denied_create": "permission denied for schema public",
            "wrong_password": "password authentication failed",
            "read_only_database": True,
        },
    ),
    "mysql": (
        "mysql_server",
        "mysql_url",
        {
            "alias": "mariadb",
            "denied_create": "CREATE command denied",
            "wrong_password": "Access denied for user",
            "read_only_database": False,
        },
    ),
}


@pytest.fixture(
    params=[
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def server(request: pytest.FixtureRequest) -> Server:
    """The same case on the PostgreSQL server and on the MariaDB one."""
    server_fixture, url_fixture, said = _SERVERS[request.param]
    database = database_name(request.getfixturevalue(url_fixture))
    return Server(request.getfixturevalue(server_fixture), database, **said)


def test_an_account_that_may_not_create_is_exit_4_at_once_without_retry(server, tmp_path):
    report = tmp_path / "report.json"
    password = "Nc-" + uuid.uuid4().hex
    with limited_account(server.server, server.database, password, "SELECT, INSERT, UPDATE, DELETE") as url:
        result, took = migrate(url, tmp_path, REPORT_FILE=report, DB_WAIT_TIMEOUT=30)

    assert result.code == 4, result.out
    assert server.denied_create in summary_line(result.out), result.out
    assert "Running upgrade" not in result.out, "a migration ran without CREATE"
    assert "FALLBACK" not in result.out and "retry" not in result.out.lower(), result.out
    assert not report_of(report)["fallback_used"]
    assert not tables(server.admin_url)
    assert took < 15


def test_read_only_commands_work_where_the_database_refuses_every_write(server, tmp_path):
    """Reading needs no write: with a SELECT-only account, and on a database whose every transaction is
    read-only (as on a hot standby) where the server has one, every read-only verb runs and changes nothing."""
    upgrade_to(server.admin_url, tmp_path, TARGET)
    before = fingerprint(server.admin_url)
    verbs = ("status", "current", "verify", "check", "wait")

    def every_verb_works(url: str, way: str) -> None:
        results = run_many(
            [(verb, [verb], stranger_env(url, tmp_path, LOCK_TIMEOUT=5, MIGRATION_TIMEOUT=5)) for verb in verbs]
        )
        for verb, (code, out, _took) in results.items():
            assert code == 0, f"{verb} with {way}: exit {code}\n{out}"

    with limited_account(server.server, server.database, "Ro-" + uuid.uuid4().hex, "SELECT") as select_only:
        every_verb_works(select_only, "a SELECT-only account")
    if server.read_only_database:
        server.server.psql(f'ALTER DATABASE "{server.database}" SET default_transaction_read_only = on')
        every_verb_works(server.admin_url, "a read-only database")
    assert fingerprint(server.admin_url) == before


# --- passwords never leak -----------------------------------------------------------------------------------

#: Distinctive segments joined by the characters the probe found leaking: \ " ä and @ / #.
SEGMENTS = ("Zq7", "Kx9", "Wm3", "Pv5", "Rt6", "Yh8")
WEIRD = 'Zq7\\Kx9"Wm3äPv5@Rt6/Yh8#Nb4'


def _assert_nothing_leaks(results: dict, tmp_path: Path, secret: str) -> None:
    for name, (_code, out, _took) in results.items():
        assert_no_secret(out, secret, name, fragments=SEGMENTS)
    for report in tmp_path.glob("report-*.json"):
        assert_no_secret(report.read_text(encoding="utf-8"), secret, report.name, fragments=SEGMENTS)


#: Every character the probe found leaking (\\ " ä and @ / #), and every ASCII one that breaks a naive
#: URL parser or masker.  MariaDB logs in with the ä too: migrate-init sends the password's UTF-8 bytes.
EVERY_WEIRD = "Zq7\\Kx9\"Wm3'Pv5ä@Rt6/Yh8#Nb4%25:?&="


def test_weird_password_percent_encoded_or_from_database_password_works_and_never_shows(server, tmp_path):
    name = f"weird_{uuid.uuid4().hex[:8]}"
    with own_database(server.server, name, EVERY_WEIRD) as encoded:
        parts = make_url(encoded)
        where = f"127.0.0.1:{parts.port}/{name}"
        bare = f"{parts.drivername}://{name}@{where}"
        password_file = tmp_path / "password"
        password_file.write_text(EVERY_WEIRD + "\n", encoding="utf-8")
        cases = []
        for label, url, extra in (
            ("encoded", encoded, {}),
            ("DATABASE_PASSWORD", f"{server.alias}://{name}@{where}", {"DATABASE_PASSWORD": EVERY_WEIRD}),
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
        # The runs share the database: the first one migrates it, then the others run together.
        first = "encoded-text-run"
        results = run_many([c for c in cases if c[0] == first])
        results.update(run_many([c for c in cases if c[0] != first]))
        at = versions(server.server.url(database=name))  # as the server's superuser (an ASCII password)
    for key, (code, out, _took) in results.items():
        assert code == 0, f"{key}: exit {code}\n{out}"
        if key.endswith("-json-run"):  # one JSON object per line, Alembic's DEBUG lines included
            assert all(isinstance(json.loads(line), dict) for line in out.splitlines() if line.strip()), out
    _assert_nothing_leaks(results, tmp_path, EVERY_WEIRD)
    assert "Upgraded base (empty) -> merge_heads_final" in summary_line(results[first][1])
    assert at == [TARGET]
    for label in ("encoded", "DATABASE_PASSWORD_FILE"):
        status = results[f"{label}-text-status"][1]
        assert where in status, "the host, port and database must stay visible"


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


def _run_with_the_password_in_the_query(tmp_path, password, good, wrong, nowhere):
    """run and status on ``good`` (exit 0), run on ``wrong`` (exit 4) and ``nowhere`` (exit 3), in text and
    JSON, REPORT_FILE each: the password in none of it.  Returns the results by case."""
    cases = []
    for key, url, args, expected in (
        ("run", good, [], 0),
        ("status", good, ["status"], 0),
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
        assert code == expected, f"{key}: exit {code}\n{out}"
    for report in tmp_path.glob("report-*.json"):
        assert_no_secret(report.read_text(encoding="utf-8"), password, report.name)
    return results


def test_a_password_in_the_query_string_never_shows_and_the_host_stays_visible(server, tmp_path):
    name = f"query_{uuid.uuid4().hex[:8]}"
    password = "Qs7Password" + uuid.uuid4().hex[:8]
    with own_database(server.server, name, password) as url:
        parts = make_url(url)
        where = f"127.0.0.1:{parts.port}/{name}"
        good = f"{parts.drivername}://{name}@{where}?password={password}"
        wrong = f"{parts.drivername}://{name}@{where}?password={password}Wrong"
        nowhere = f"{parts.drivername}://{name}@127.0.0.1:{free_port()}/{name}?password={password}"
        results = _run_with_the_password_in_the_query(tmp_path, password, good, wrong, nowhere)
    assert "127.0.0.1" in results["nowhere-text"][1], "the host must stay visible"
    refused = summary_line(results["wrong-text"][1])
    assert where in refused and server.wrong_password in refused, refused


def test_mariadb_password_with_a_non_ascii_character_logs_in(mysql_server, tmp_path):
    """MariaDB hashes the UTF-8 bytes of a password set over a utf8mb4 connection (as the mysql
    client does); PyMySQL sends a str password as latin-1 unless it is given bytes."""
    password = "pässwörd-" + uuid.uuid4().hex[:8]
    with own_database(mysql_server, f"na_{uuid.uuid4().hex[:8]}", password) as url:
        result, _ = migrate(url, tmp_path, "current")

    assert result.code == 0, result.out
    assert_no_secret(result.out, password, "current")


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
