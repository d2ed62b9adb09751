"""Issue 13, from outside: nothing is ever lost.

- The destructive guard judges effects: every raw-SQL shape that loses a
  table, a column, a type or nullability is refused with exit 8 and the data
  intact, on SQLite and PostgreSQL; additive changes (a batch rebuild
  included) pass.
- Backups touch only their own files: a shared BACKUP_DIR, or the database's
  own folder, keeps every file that is not a backup; an interrupted
  ``.partial`` is removed by the next run; the summary names a file that exists.
- Seeds survive an interruption (SIGTERM, MIGRATION_TIMEOUT, kill -9): the
  next run seeds; a ``%`` in a ``.sql`` seed is a ``%``.

Each case is a real migrate.py process on a real SQLite file or a fresh
database of the real PostgreSQL server.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import textwrap
import time
from pathlib import Path

import pytest

from migrate_init.url import parse as parse_url
from tests.support.chains import TARGET, Chain
from tests.support.dbstate import (
    add_blobs,
    all_rows,
    columns,
    count,
    integrity,
    is_sqlite,
    sqlite_path,
    tables,
    versions,
)
from tests.support.faults import file_digest, stranger_env
from tests.support.process import Runner, report_of, run_migrate, summary_line, wait_until

SIGNAL_BOUND = 4.0
ACCOUNT = [{"id": 1, "name": "alice", "email": "alice@example.com"}, {"id": 2, "name": "bob", "email": None}]

_CREATE_ACCOUNT = """
op.create_table(
    "account",
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("email", sa.String(50), nullable=True),
)
op.execute("INSERT INTO account (id, name, email) VALUES (1, 'alice', 'alice@example.com')")
op.execute("INSERT INTO account (id, name, email) VALUES (2, 'bob', NULL)")
"""


@pytest.fixture(autouse=True)
def _no_runner_left_behind():
    yield
    Runner.kill_all()


def migrate(url: str, tmp_path: Path, *args: str, timeout: float = 90, **extra: object):
    return run_migrate(*args, env=stranger_env(url, tmp_path, **extra), timeout=timeout)


def _sql(*statements: str) -> str:
    """An upgrade() body sending each statement with op.execute, as raw SQL."""
    return "\n".join(f"op.execute({statement!r})" for statement in statements)


def _account_chain(tmp_path: Path, url: str) -> Chain:
    """The shipped chain plus stranger_account (the account table, two rows), applied."""
    chain = Chain(tmp_path / "guard")
    chain.add("stranger_account", _CREATE_ACCOUNT)
    result = migrate(url, tmp_path, **chain.env())
    assert result.code == 0, result.out
    assert versions(url) == ["stranger_account"]
    return chain


# --- the guard judges effects, whatever the SQL looks like ------------------------------------------

POSTGRESQL_LOSSES = {
    "add and drop in one ALTER": _sql("ALTER TABLE account ADD COLUMN x integer, DROP COLUMN name"),
    "ALTER TABLE IF EXISTS ... DROP COLUMN": _sql("ALTER TABLE IF EXISTS account DROP COLUMN name"),
    "two statements in one string": _sql("SELECT 1; DROP TABLE account"),
    "ALTER TABLE ONLY ... TYPE ... USING": _sql(
        "ALTER TABLE ONLY account ALTER COLUMN name TYPE integer USING length(name)"
    ),
    "DO block": _sql("DO $$ BEGIN ALTER TABLE account DROP COLUMN name; END $$"),
    "DO block with dynamic SQL": _sql("DO $$ BEGIN EXECUTE 'ALTER TABLE account DROP ' || 'COLUMN name'; END $$"),
    # NOT NULL loses no value (PostgreSQL refuses it over NULLs) and a narrower type every value fits
    # in keeps them all: both pass since issue 22. A cast that truncates does not.
    "narrower type, truncating": _sql("ALTER TABLE account ALTER COLUMN email TYPE varchar(5) USING email::varchar(5)"),
    "type kept, values NULLed": _sql("ALTER TABLE account ALTER COLUMN name TYPE varchar(50) USING NULL"),
    "drop and add back": _sql("ALTER TABLE account DROP COLUMN name; ALTER TABLE account ADD COLUMN name text"),
    "copy, drop, rename": _sql(
        "CREATE TABLE account_new AS SELECT id, email FROM account; "
        "DROP TABLE account; ALTER TABLE account_new RENAME TO account"
    ),
}

SQLITE_LOSSES = {
    "DROP COLUMN": _sql("ALTER TABLE account DROP COLUMN name"),
    "DROP TABLE IF EXISTS": _sql("DROP TABLE IF EXISTS account"),
    "SELECT then DROP TABLE": _sql("SELECT 1", "DROP TABLE account"),
    "rename a column": _sql("ALTER TABLE account RENAME COLUMN name TO full_name"),
    "hand-made rebuild without a column": _sql(
        "CREATE TABLE account_new (id INTEGER PRIMARY KEY, email VARCHAR(50))",
        "INSERT INTO account_new (id, email) SELECT id, email FROM account",
        "DROP TABLE account",
        "ALTER TABLE account_new RENAME TO account",
    ),
    "batch: drop and add back": textwrap.dedent("""
        with op.batch_alter_table("account") as batch:
            batch.drop_column("name")
        with op.batch_alter_table("account") as batch:
            batch.add_column(sa.Column("name", sa.Text))
        """),
    "batch: type change": textwrap.dedent("""
        with op.batch_alter_table("account") as batch:
            batch.alter_column("name", existing_type=sa.Text, type_=sa.Integer)
        """),
    "batch: drop a column": textwrap.dedent("""
        with op.batch_alter_table("account") as batch:
            batch.drop_column("name")
        """),
}


def _account_intact(url: str) -> list[str]:
    problems = []
    if "account" not in tables(url):
        return ["the account table is gone"]
    if columns(url, "account") != {"id", "name", "email"}:
        problems.append(f"account has columns {sorted(columns(url, 'account'))}")
    elif all_rows(url, "account") != ACCOUNT:
        problems.append(f"account holds {all_rows(url, 'account')}")
    if versions(url) != ["stranger_account"]:
        problems.append(f"the version table says {versions(url)}")
    return problems


def test_raw_sql_that_loses_data_is_refused_with_exit_8_and_the_data_intact(db_url, tmp_path):
    url = db_url
    chain = _account_chain(tmp_path, url)
    shapes = {"sqlite": SQLITE_LOSSES, "postgresql": POSTGRESQL_LOSSES}[parse_url(url).engine.name]
    let_through = []
    for shape, body in shapes.items():
        path = chain.add("stranger_loss", body, down="stranger_account")
        result = migrate(url, tmp_path, **chain.env())
        path.unlink()
        problems = _account_intact(url)
        if result.code != 8 or problems:
            let_through.append(
                f"{shape}: exit {result.code}; {'; '.join(problems) or 'data intact'}; "
                f"{summary_line(result.out) if '(exit ' in result.out else result.out[-300:]}"
            )
            if problems:  # start the next shape from the same state
                pytest.fail("a loss went through and the state is no longer known:\n" + "\n".join(let_through))
            continue
        line = summary_line(result.out)
        if "stranger_loss" not in line or "account" not in line:
            let_through.append(f"{shape}: the refusal does not name the revision and what would be lost: {line}")
    assert not let_through, "\n".join(let_through)


ADDITIVE = {
    "sqlite": textwrap.dedent("""
        with op.batch_alter_table("account", recreate="always") as batch:
            batch.add_column(sa.Column("nick", sa.String(20), nullable=True))
        op.execute("CREATE INDEX ix_account_email ON account (email)")
        """),
    "postgresql": _sql(
        "ALTER TABLE account ADD COLUMN nick varchar(20)",
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'account' "
        "AND column_name = 'note') THEN ALTER TABLE account ADD COLUMN note text; END IF; END $$",
        "CREATE INDEX ix_account_email ON account (email)",
        "ALTER TABLE account ALTER COLUMN email DROP NOT NULL",
    ),
}


def test_additive_changes_pass_and_allow_destructive_lets_a_loss_through(db_url, tmp_path):
    url = db_url
    chain = _account_chain(tmp_path, url)
    chain.add("stranger_more", ADDITIVE[parse_url(url).engine.name], down="stranger_account")
    result = migrate(url, tmp_path, **chain.env())
    assert result.code == 0, result.out
    assert versions(url) == ["stranger_more"]
    assert {"id", "name", "email", "nick"} <= columns(url, "account")
    assert [{k: r[k] for k in ("id", "name", "email")} for r in all_rows(url, "account")] == ACCOUNT
    # The control: the guard is what refused the losses above.
    chain.add("stranger_drop", _sql("ALTER TABLE account DROP COLUMN name"), down="stranger_more")
    result = migrate(url, tmp_path, **chain.env(), ALLOW_DESTRUCTIVE="true")
    assert result.code == 0, result.out
    assert versions(url) == ["stranger_drop"]
    assert "name" not in columns(url, "account")


# --- backups touch only their own files -------------------------------------------------------------------------


def _user_files(folder: Path, db_name: str) -> dict[str, str]:
    """Files a user keeps beside the backups, some named much like them; {name: sha256}."""
    stem, suffix = os.path.splitext(db_name)
    folder.mkdir(parents=True, exist_ok=True)
    names = [
        f"{stem}-audit{suffix}",
        f"{stem}-00-old{suffix}",
        f"{stem}-01-old{suffix}",
        f"{db_name}.bak",
        f"{stem}-2024-01-01{suffix}",
        "notes.txt",
        f"other{suffix}.20200101T000000000000Z.at-base.migrate-init-backup",
        f"{db_name}.20200101T000000000000Z.at-base.migrate-init-backup.txt",
        f"{db_name}.old.migrate-init-backup",
    ]
    for name in names:
        path = folder / name
        if name.endswith(suffix) and not name.startswith("other"):
            conn = sqlite3.connect(path)
            conn.execute("CREATE TABLE mine (x)")
            conn.execute("INSERT INTO mine VALUES (?)", (name,))
            conn.commit()
            conn.close()
        else:
            path.write_text(f"user data: {name}\n")
    return {name: file_digest(folder / name) for name in names}


@pytest.mark.parametrize("where", ["shared BACKUP_DIR", "the database's own folder"])
def test_backup_pruning_keeps_every_file_that_is_not_a_backup(tmp_path, where):
    data = tmp_path / "data"
    db = data / "app.db"
    url = f"sqlite:///{db}"
    folder = tmp_path / "shared" if where == "shared BACKUP_DIR" else data
    mine = _user_files(folder, db.name)
    named = []
    for revision in ("7e5b5dc7342b", "ca81bd47c050", "9b4c5d8e2f10", None):
        report = tmp_path / "report.json"
        args = ("upgrade", revision) if revision else ()
        result = migrate(url, tmp_path, *args, BACKUP_DIR=folder, BACKUP_KEEP=2, REPORT_FILE=report)
        assert result.code == 0, result.out
        backup = report_of(report)["backup"]
        if backup:
            named.append(backup)
            assert Path(backup).exists(), f"the summary names {backup}, which no longer exists"
            assert integrity(backup) == [("ok",)]
            assert backup in summary_line(result.out)
    assert len(named) == 3, named  # the first run had no database to back up
    changed = {name: (folder / name).exists() and file_digest(folder / name) == digest for name, digest in mine.items()}
    assert all(changed.values()), f"pruning deleted or changed user files: {[n for n, ok in changed.items() if not ok]}"
    ours = sorted(
        p
        for p in folder.iterdir()
        if p.name.startswith(f"{db.name}.") and p.name.endswith(".migrate-init-backup") and p.name not in mine
    )
    assert [str(p) for p in ours] == named[-2:], f"BACKUP_KEEP=2 should keep the two newest: {ours}"
    assert versions(url) == [TARGET]


@pytest.mark.parametrize("way", ["kill -9", "SIGTERM"])
def test_interrupted_backup_leaves_no_partial_after_the_next_run(sqlite_url, tmp_path, way):
    result = migrate(sqlite_url, tmp_path, "upgrade", "70c7b727736e")
    assert result.code == 0, result.out
    db = sqlite_path(sqlite_url)
    # About 200 MB, so that the backup takes long enough (a few tenths of a second) to be interrupted.
    add_blobs(db, 200)
    backups = tmp_path / "backups"
    backups.mkdir()
    foreign = {
        "other.db.20200101T000000000000Z.at-base.migrate-init-backup.partial": "not ours",
        "notes.partial": "not ours either",
    }
    for name, text in foreign.items():
        (backups / name).write_text(text)
    try:
        runner = Runner(
            stranger_env(sqlite_url, tmp_path, BACKUP_DIR=backups, MIGRATION_TIMEOUT=120), tmp_path / "interrupted.log"
        )

        def partial() -> list[Path]:
            # .partial and SQLite's .partial-journal beside it (issue 25, N33: the journal stayed for ever)
            return [p for p in backups.iterdir() if p.name.startswith(db.name) and ".partial" in p.name]

        wait_until(partial, 60, "the backup to start", runner, interval=0.002)
        started = time.monotonic()
        if way == "kill -9":
            runner.kill()
            assert partial(), "the kill did not land in the middle of the backup"
        else:
            runner.signal(signal.SIGTERM)
            assert runner.wait(30) == 143, runner.out
            assert time.monotonic() - started < SIGNAL_BOUND, "SIGTERM waited for the whole backup"
            assert not partial(), f"SIGTERM left {partial()}"
        assert versions(sqlite_url) == ["70c7b727736e"]
        report = tmp_path / "report.json"
        result = migrate(sqlite_url, tmp_path, BACKUP_DIR=backups, REPORT_FILE=report, timeout=120)
        assert result.code == 0, result.out
        assert not partial(), f"the next run left {partial()}"
        assert Path(report_of(report)["backup"]).exists()
        assert {p.name for p in backups.iterdir()} >= set(foreign)
        assert all((backups / name).read_text() == text for name, text in foreign.items())
    finally:
        for path in [db, *backups.iterdir()]:
            path.unlink(missing_ok=True)


# --- seeds survive an interruption ---------------------------------------------------------------------------------

_ADMIN_SEED = """
import os
from pathlib import Path

from sqlalchemy import text

connection.execute(text('INSERT INTO "user" (id, name, email, role) VALUES (:id, :name, :email, :role)'),
                   {"id": "admin", "name": "Admin", "email": "admin@example.com", "role": "admin"})
marker = os.environ.get("SEED_MARKER")
if marker:
    Path(marker).write_text("seeding")
if os.environ.get("SEED_STALL") == "1":
    # A statement that the watchdog can cancel: pg_sleep, or a long query on SQLite.
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SELECT pg_sleep(60)")
    else:
        connection.exec_driver_sql("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                                   "LIMIT 5000000000) SELECT count(*) FROM c")
"""


@pytest.mark.parametrize("way", ["SIGTERM", "MIGRATION_TIMEOUT", "kill -9"])
def test_seed_interrupted_after_the_migrations_completes_on_the_next_run(db_url, tmp_path, way):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "01-admin.py").write_text(_ADMIN_SEED)
    marker = tmp_path / "seed-marker"
    extra = {
        "SEED_DIR": seeds,
        "SEED_MARKER": marker,
        "SEED_STALL": "1",
        "MIGRATION_TIMEOUT": 6 if way == "MIGRATION_TIMEOUT" else 120,
    }
    runner = Runner(stranger_env(db_url, tmp_path, **extra), tmp_path / "interrupted.log")
    wait_until(marker.exists, 60, "the seed to start", runner)
    started = time.monotonic()
    if way == "SIGTERM":
        runner.signal(signal.SIGTERM)
        assert runner.wait(30) == 143, runner.out
        assert time.monotonic() - started < SIGNAL_BOUND, "SIGTERM during seeding was not honoured within 2 s"
    elif way == "MIGRATION_TIMEOUT":
        assert runner.wait(60) == 10, runner.out
    else:
        runner.kill()
    stopped = summary_line(runner.out) if way != "kill -9" else ""
    assert versions(db_url) == [TARGET], "the migrations committed before the seed started"
    assert count(db_url, "user", "WHERE id = 'admin'") == 0, "the interrupted seed was rolled back"
    report = tmp_path / "report.json"
    result = migrate(db_url, tmp_path, SEED_DIR=seeds, REPORT_FILE=report)
    assert result.code == 0, result.out
    assert count(db_url, "user", "WHERE id = 'admin'") == 1, f"the next run did not seed:\n{result.out}"
    assert report_of(report)["seeded"] == ["01-admin.py"]
    again = migrate(db_url, tmp_path, SEED_DIR=seeds)
    assert again.code == 0, again.out
    assert count(db_url, "user", "WHERE id = 'admin'") == 1, "a completed seed ran again"
    # The stop's message names what happened: a stop, not a seed file to fix.
    assert "fix the file" not in stopped, stopped


def test_a_seed_file_added_later_runs_once_on_a_database_migrate_init_created(db_url, tmp_path):
    """The condition is "not yet recorded as done", not "the database was empty before this run"."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "01-admin.py").write_text(_ADMIN_SEED)
    first = migrate(db_url, tmp_path, SEED_DIR=seeds)
    assert first.code == 0, first.out
    (seeds / "02-config.sql").write_text("INSERT INTO config (data, version) VALUES ('later', 2);\n")
    report = tmp_path / "report.json"
    second = migrate(db_url, tmp_path, SEED_DIR=seeds, REPORT_FILE=report)
    assert second.code == 0, second.out
    assert report_of(report)["seeded"] == ["02-config.sql"]
    third = migrate(db_url, tmp_path, SEED_DIR=seeds)
    assert third.code == 0, third.out
    assert count(db_url, "user", "WHERE id = 'admin'") == 1
    assert [(r["data"], r["version"]) for r in all_rows(db_url, "config")] == [("later", 2)]


_PERCENT_SEED = """
-- A % and a :name are text, not parameters.
INSERT INTO config (data, version) VALUES ('{"discount": "100%", "fmt": "%s %(name)s %% :name"}', 1);
"""


def test_sql_seed_with_percent_signs_is_sent_as_it_is(db_url, tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "01-percent.sql").write_text(_PERCENT_SEED)
    report = tmp_path / "report.json"
    result = migrate(db_url, tmp_path, SEED_DIR=seeds, REPORT_FILE=report)
    assert result.code == 0, result.out
    assert report_of(report)["seeded"] == ["01-percent.sql"]
    rows = [(r["data"], r["version"]) for r in all_rows(db_url, "config")]
    assert rows == [('{"discount": "100%", "fmt": "%s %(name)s %% :name"}', 1)], rows
    if not is_sqlite(db_url):
        assert versions(db_url) == [TARGET]
