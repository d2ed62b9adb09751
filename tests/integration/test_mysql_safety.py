"""Issue 15, from outside: MySQL/MariaDB commit each DDL statement at once, and migrate-init copes.

Every test runs ``migrate.py`` as a real process against the real MariaDB
test server (``mysql_server``, ``mysql_url``), on a small Alembic project
written into tmp_path with the ``env.py`` that ``alembic init`` writes
(tests/fixtures/generic_env), and reads what the server holds afterwards
through a connection of its own:

- the destructive guard judges each raw-SQL statement before it runs: exit 8
  names the revision and the loss, and every row and column is still there;
  with ALLOW_DESTRUCTIVE=true the same statement runs;
- a revision killed half-way is recorded: an idempotent one runs again and
  the schema ends whole; any other stops with exit 1 naming
  ``migrate.py resolve REV``; a stale record is cleared;
- (SIGTERM and MIGRATION_TIMEOUT end the statement on the server, ``KILL QUERY``:
  test_faults.py and test_exit_codes.py, on every engine);
- DDL_LOCK_TIMEOUT / DDL_LOCK_RETRIES retry an idempotent revision only.

That the migration lock is released after a failed migration (test_upgrade.py)
and that a held one is exit 5 naming its holder (test_faults.py) is proved on
every engine.
"""

from __future__ import annotations

import random
import signal
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from migrate_init.engines.mysql import mysql_lock_name
from tests.support import FIXTURES
from tests.support.myserver import connect, execute
from tests.support.process import Result, Runner, operator_env, run_migrate, summary_line, wait_until

#: What a stop may add to the limit that caused it: generous, as in test_stops_and_bounds (a loaded
#: two-core CI machine took 5.6 s for a 1 s DDL_LOCK_TIMEOUT, start-up included).
MARGIN = 7.0
#: The env.py `alembic init` writes (generic template).
ENV_PY = (FIXTURES / "generic_env" / "alembic" / "env.py").read_text()
PROGRESS_TABLE = "migrate_init_progress"

REVISION = '''"""{name}"""

import time

import sqlalchemy as sa
from alembic import op

from migrate_init import ops

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None
{idempotent}

def upgrade():
{body}
'''

CREATE_ACCOUNT = """
op.create_table(
    "account",
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(50)),
    sa.Column("email", sa.String(50)),
)
op.execute("INSERT INTO account (id, name, email) VALUES (1, 'alice', 'alice@example.com'), (2, 'bob', NULL)")
"""
#: account as CREATE_ACCOUNT leaves it: (column, COLUMN_TYPE), then its rows.
ACCOUNT_COLUMNS = [("id", "int(11)"), ("name", "varchar(50)"), ("email", "varchar(50)")]
ACCOUNT_ROWS = [(1, "alice", "alice@example.com"), (2, "bob", None)]


@pytest.fixture(autouse=True)
def _no_runner_left_behind():
    yield
    Runner.kill_all()


@pytest.fixture
def new_database(mysql_server) -> Iterator[Callable[[], str]]:
    """Make more empty databases on the test server (one per attempt of a test); dropped afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        made.append(name)
        return mysql_server.create_database(name)

    yield make
    for name in made:
        mysql_server.drop_database(name)


# --- the project, the runs, and what the server holds ---------------------------------------


def write_project(folder: Path, *revisions: tuple[str, bool]) -> Path:
    """An `alembic init`-style folder whose revisions r1, r2, ... run ``(body, idempotent)`` in order."""
    versions = folder / "versions"
    versions.mkdir(parents=True)
    (folder / "env.py").write_text(ENV_PY)
    down = None
    for number, (body, idempotent) in enumerate(revisions, start=1):
        revision = f"r{number}"
        (versions / f"{revision}_step.py").write_text(
            REVISION.format(
                name=f"step {number}",
                revision=revision,
                down=down,
                idempotent="idempotent = True\n" if idempotent else "",
                body=textwrap.indent(textwrap.dedent(body).strip("\n"), "    "),
            )
        )
        down = revision
    return folder


def env_of(url: str, project: Path, tmp_path: Path, **extra: object) -> dict[str, str]:
    return operator_env(url, tmp_path, MIGRATIONS_DIR=project, **extra)


def migrate(url: str, project: Path, tmp_path: Path, *args: str, **extra: object) -> tuple[Result, float]:
    """Run migrate.py to completion; return its result and how long it took."""
    started = time.monotonic()
    result = run_migrate(*args, env=env_of(url, project, tmp_path, **extra), timeout=90)
    return result, time.monotonic() - started


def rows(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    return [tuple(row) for row in execute(url, sql, params or None)]


def database_of(url: str) -> str:
    return make_url(url).database or ""


def tables_of(url: str) -> set[str]:
    return {
        name
        for (name,) in rows(url, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
    }


def columns_of(url: str, table: str) -> list[tuple[str, str]]:
    """(column, COLUMN_TYPE) of ``table`` in order; [] when there is no such table."""
    return rows(
        url,
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (table,),
    )


def versions_of(url: str) -> list[str]:
    if "alembic_version" not in tables_of(url):
        return []
    return sorted(version for (version,) in rows(url, "SELECT version_num FROM alembic_version"))


def recorded(url: str) -> list[str] | None:
    """The revisions recorded as in progress (migrate_init/progress.py); None without its table."""
    if PROGRESS_TABLE not in tables_of(url):
        return None
    return sorted(revision for (revision,) in rows(url, f"SELECT revision FROM {PROGRESS_TABLE}"))


def account_rows(url: str) -> list[tuple]:
    return rows(url, "SELECT id, name, email FROM account ORDER BY id")


def assert_account_intact(url: str) -> None:
    assert columns_of(url, "account") == ACCOUNT_COLUMNS
    assert account_rows(url) == ACCOUNT_ROWS


def lock_is_free(url: str) -> bool:
    """Whether migrate-init's GET_LOCK lock of this database is free (nobody holds it)."""
    name = mysql_lock_name(database_of(url), "alembic_version")
    return rows(url, "SELECT IS_FREE_LOCK(%s)", (name,))[0][0] == 1


def log_has(runner: Runner, needle: str) -> Callable[[], bool]:
    return lambda: needle in runner.out


# --- the destructive guard, statement by statement ---------------------------------------------

#: (id, the statement r2 runs, what the refusal names, account's columns once ALLOW_DESTRUCTIVE ran it
#: (None: account is gone), extra DATABASE_URL query).
SHAPES = [
    (
        "add-and-drop",
        "ALTER TABLE account ADD COLUMN nick VARCHAR(20), DROP COLUMN email",
        "column account.email (varchar(50)) would be dropped",
        [("id", "int(11)"), ("name", "varchar(50)"), ("nick", "varchar(20)")],
        "",
    ),
    (
        "narrowing",
        "ALTER TABLE account MODIFY email VARCHAR(20)",
        "column account.email would change type (varchar(50) -> varchar(20))",
        [("id", "int(11)"), ("name", "varchar(50)"), ("email", "varchar(20)")],
        "",
    ),
    (
        "rename-column",
        "ALTER TABLE `account` CHANGE `email` `contact` VARCHAR(50)",
        "column account.email (varchar(50)) would be dropped (renamed to contact?)",
        [("id", "int(11)"), ("name", "varchar(50)"), ("contact", "varchar(50)")],
        "",
    ),
    (
        "rename-table",
        "RENAME TABLE account TO account_old",
        "table account (3 columns: id, name, email) would be dropped (renamed to account_old?)",
        None,
        "",
    ),
    (
        "create-or-replace",
        "CREATE OR REPLACE TABLE account (id INT PRIMARY KEY)",
        "table account (3 columns: id, name, email) would be dropped",
        [("id", "int(11)")],
        "",
    ),
    (
        "drop-and-add-again",
        "ALTER TABLE account DROP COLUMN email, ADD COLUMN email VARCHAR(50)",
        "column account.email (varchar(50)) would be dropped",
        ACCOUNT_COLUMNS,
        "",
    ),
    (
        "executable-comment",
        "/*!40101 ALTER TABLE account DROP COLUMN email */",
        "column account.email (varchar(50)) would be dropped",
        [("id", "int(11)"), ("name", "varchar(50)")],
        "",
    ),
    # PyMySQL sends several statements in one string only with CLIENT.MULTI_STATEMENTS.
    (
        "multi-statement",
        "-- tidy up\nSELECT 1; DROP TABLE IF EXISTS account",
        "table account (3 columns: id, name, email) would be dropped",
        None,
        "?client_flag=65536",
    ),
    ("unreadable", "ALTER TABLE account CONVERT TO CHARACTER SET latin1", "cannot judge", ACCOUNT_COLUMNS, ""),
]


@pytest.mark.parametrize(
    ("statement", "named", "allowed_columns", "query"),
    [shape[1:] for shape in SHAPES],
    ids=[shape[0] for shape in SHAPES],
)
def test_a_destructive_statement_is_refused_before_it_runs_and_runs_with_allow_destructive(
    mysql_url, tmp_path, statement, named, allowed_columns, query
):
    url = mysql_url + query
    # r2 runs the statement alone: the guard refuses it before anything of r2 ran, so r2 may run again.
    project = write_project(tmp_path / "project", (CREATE_ACCOUNT, False), (f"op.execute({statement!r})", True))
    result, _ = migrate(url, project, tmp_path)
    assert result.code == 8, result.out
    summary = summary_line(result.out)
    assert "r2" in summary and str(project / "versions" / "r2_step.py") in summary, summary
    assert named in summary, summary
    assert_account_intact(mysql_url)
    assert versions_of(mysql_url) == ["r1"]
    assert lock_is_free(mysql_url), "exit 8 must release the migration lock"

    # The refusal names the setting that allows r2 alone; with it, r2 runs.
    assert "ALLOW_DESTRUCTIVE=r2 " in summary and "ALLOW_DESTRUCTIVE=true" not in summary, summary
    result, _ = migrate(url, project, tmp_path, ALLOW_DESTRUCTIVE="r2")
    assert result.code == 0, result.out
    if named != "cannot judge":  # each loss let through is a warning naming what allowed it
        assert "ALLOW_DESTRUCTIVE=r2 let r2 through: " in result.out, result.out
    assert versions_of(mysql_url) == ["r2"]
    assert recorded(mysql_url) == []
    if allowed_columns is None:
        assert "account" not in tables_of(mysql_url)
    else:
        assert columns_of(mysql_url, "account") == allowed_columns
    if statement.startswith("ALTER TABLE account CONVERT"):
        assert rows(
            mysql_url,
            "SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE "
            "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'account'",
        )[0][0].startswith("latin1")


def test_a_drop_of_nothing_passes_and_not_null_is_judged_by_the_nulls_there(mysql_url, tmp_path):
    """Judged on the live tables before each statement: an empty table or an all-NULL column loses nothing,
    and NOT NULL over NULLs (which a non-strict sql_mode would turn into '') is refused."""
    project = write_project(
        tmp_path / "project",
        (CREATE_ACCOUNT, False),
        (
            """
        op.create_table("scratch", sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.Text))
        op.execute("INSERT INTO scratch (id) VALUES (1)")
    """,
            False,
        ),
        (
            """
        op.drop_column("scratch", "note")
        op.execute("DELETE FROM scratch")
        op.drop_table("scratch")
        op.execute("ALTER TABLE account MODIFY name VARCHAR(50) NOT NULL")
    """,
            False,
        ),
        ('op.execute("ALTER TABLE account MODIFY email VARCHAR(50) NOT NULL")', False),
    )
    result, _ = migrate(mysql_url, project, tmp_path)
    assert result.code == 8, result.out
    summary = summary_line(result.out)
    assert "Migration r4 (" in summary, summary
    assert "column account.email (varchar(50)) would become NOT NULL, holding 1 NULL" in summary, summary
    assert versions_of(mysql_url) == ["r3"] and "scratch" not in tables_of(mysql_url)
    assert account_rows(mysql_url) == ACCOUNT_ROWS


def test_statements_that_change_rows_only_pass_the_guard(mysql_url, tmp_path):
    """REPLACE INTO, UPDATE, DELETE, INSERT (with parameters, with DDL words in their data) are not refused."""
    project = write_project(
        tmp_path / "project",
        (CREATE_ACCOUNT, False),
        (
            """
        op.execute("REPLACE INTO account (id, name, email) VALUES (3, 'carol', NULL)")
        op.get_bind().exec_driver_sql("UPDATE account SET name = %s WHERE id = %s", ("ALICE", 1))
        op.execute(sa.text("DELETE FROM account WHERE id = :id").bindparams(id=2))
        op.execute("INSERT INTO account (id, name) VALUES (4, 'DROP TABLE account; RENAME TABLE a TO b')")
    """,
            False,
        ),
    )
    result, _ = migrate(mysql_url, project, tmp_path)
    assert result.code == 0, result.out
    assert versions_of(mysql_url) == ["r2"] and recorded(mysql_url) == []
    assert columns_of(mysql_url, "account") == ACCOUNT_COLUMNS
    assert account_rows(mysql_url) == [
        (1, "ALICE", "alice@example.com"),
        (3, "carol", None),
        (4, "DROP TABLE account; RENAME TABLE a TO b", None),
    ]


def test_statements_before_a_refused_one_stay_applied_and_the_revision_stays_recorded(mysql_url, tmp_path):
    project = write_project(
        tmp_path / "project",
        (CREATE_ACCOUNT, False),
        (
            """
        op.add_column("account", sa.Column("nick", sa.String(20)))
        op.drop_column("account", "email")
        op.create_table("never", sa.Column("id", sa.Integer, primary_key=True))
    """,
            False,
        ),
    )
    result, _ = migrate(mysql_url, project, tmp_path)
    assert result.code == 8, result.out
    assert "column account.email (varchar(50)) would be dropped" in summary_line(result.out)
    # MySQL committed the ADD COLUMN; the DROP never ran, nor anything after it.
    assert columns_of(mysql_url, "account") == [*ACCOUNT_COLUMNS, ("nick", "varchar(20)")]
    assert account_rows(mysql_url) == ACCOUNT_ROWS
    assert "never" not in tables_of(mysql_url)
    assert versions_of(mysql_url) == ["r1"]
    assert recorded(mysql_url) == ["r2"]


# --- revisions interrupted half-way ------------------------------------------------------------

STEPS = 6
PAUSE = 0.15
#: Several ops-style steps with a pause between them; every step checks before it acts.
IDEMPOTENT_STEPS = f"""
for i in range({STEPS}):
    ops.add_column_if_missing("account", sa.Column(f"c{{i}}", sa.Integer, nullable=True))
    op.execute(f"UPDATE account SET c{{i}} = id * {{i}} WHERE c{{i}} IS NULL")
    time.sleep({PAUSE})
ops.create_table_if_missing("audit", sa.Column("id", sa.Integer, primary_key=True),
                            sa.Column("note", sa.String(40)))
ops.create_index_if_missing("ix_account_c0", "account", ["c0"])
"""
#: The same columns, added blindly: run twice, the first ADD COLUMN fails.
PLAIN_STEPS = f"""
for i in range({STEPS}):
    op.add_column("account", sa.Column(f"c{{i}}", sa.Integer, nullable=True))
    time.sleep({PAUSE})
"""
ADDED = [(f"c{i}", "int(11)") for i in range(STEPS)]


def kill_during(
    url: str,
    project: Path,
    tmp_path: Path,
    log: Path,
    delay: float,
    start: str = "Running upgrade r1 -> r2",
    **extra: object,
) -> Runner:
    """Start a run, SIGKILL it ``delay`` seconds after ``start`` appears in its log."""
    runner = Runner(env_of(url, project, tmp_path, **extra), log)
    wait_until(log_has(runner, start), 60, f"'{start}' in the log", runner=runner)
    time.sleep(delay)
    runner.kill()
    return runner


def test_an_idempotent_revision_killed_at_random_points_runs_again_to_a_whole_schema(new_database, tmp_path):
    project = write_project(tmp_path / "project", (CREATE_ACCOUNT, False), (IDEMPOTENT_STEPS, True))
    rng = random.Random(15)
    for attempt in range(3):
        url = new_database()
        delay = rng.uniform(0.0, STEPS * PAUSE * 0.9)
        runner = kill_during(url, project, tmp_path, tmp_path / f"killed-{attempt}.log", delay)
        assert runner.proc.returncode == -signal.SIGKILL, f"the run ended before the kill at {delay:.2f}s"
        assert versions_of(url) == ["r1"] and recorded(url) == ["r2"], (delay, runner.out)

        result, _ = migrate(url, project, tmp_path)
        assert result.code == 0, f"kill at {delay:.2f}s:\n{result.out}"
        assert "r2 was interrupted on an earlier run" in result.out
        assert "Waiting for the MySQL lock" not in result.out, "the killed run's lock must be gone with it"
        assert versions_of(url) == ["r2"] and recorded(url) == []
        assert columns_of(url, "account") == ACCOUNT_COLUMNS + ADDED
        assert rows(url, "SELECT id, name, email, " + ", ".join(c for c, _ in ADDED) + " FROM account ORDER BY id") == [
            (*row, *(row[0] * i for i in range(STEPS))) for row in ACCOUNT_ROWS
        ]
        assert columns_of(url, "audit") == [("id", "int(11)"), ("note", "varchar(40)")]
        assert rows(
            url,
            "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            "AND INDEX_NAME = 'ix_account_c0'",
        ) == [(1,)]


def test_a_non_idempotent_revision_killed_half_way_stops_the_next_run_until_resolved(mysql_url, tmp_path):
    project = write_project(tmp_path / "project", (CREATE_ACCOUNT, False), (PLAIN_STEPS, False))
    runner = Runner(env_of(mysql_url, project, tmp_path), tmp_path / "killed.log")
    # Killed once two columns are in: part of r2 is applied (MySQL committed it).
    wait_until(lambda: len(columns_of(mysql_url, "account")) >= 5, 60, "r2 to add two columns", runner=runner)
    time.sleep(random.Random(15).uniform(0, PAUSE))
    runner.kill()
    left = columns_of(mysql_url, "account")
    assert left[:5] == ACCOUNT_COLUMNS + ADDED[:2] and left != ACCOUNT_COLUMNS + ADDED, left
    assert versions_of(mysql_url) == ["r1"] and recorded(mysql_url) == ["r2"]

    result, _ = migrate(mysql_url, project, tmp_path)
    assert result.code == 1, result.out
    summary = summary_line(result.out)
    assert "r2" in summary and str(project / "versions" / "r2_step.py") in summary, summary
    assert "migrate.py resolve r2" in summary, summary
    assert columns_of(mysql_url, "account") == left, "a stopped run must not touch the half-applied revision"
    assert recorded(mysql_url) == ["r2"]

    result, _ = migrate(mysql_url, project, tmp_path, "resolve", "r1")  # not the one recorded
    assert result.code == 2, result.out
    assert recorded(mysql_url) == ["r2"]

    for column, _type in left[len(ACCOUNT_COLUMNS) :]:  # the operator undoes what r2 applied
        execute(mysql_url, f"ALTER TABLE account DROP COLUMN {column}")
    result, _ = migrate(mysql_url, project, tmp_path, "resolve", "r2")
    assert result.code == 0, result.out
    assert recorded(mysql_url) == []
    assert versions_of(mysql_url) == ["r1"]

    result, _ = migrate(mysql_url, project, tmp_path)
    assert result.code == 0, result.out
    assert versions_of(mysql_url) == ["r2"] and recorded(mysql_url) == []
    assert columns_of(mysql_url, "account") == ACCOUNT_COLUMNS + ADDED
    assert account_rows(mysql_url) == ACCOUNT_ROWS


def record(url: str, revision: str) -> None:
    """Record ``revision`` as in progress, as a run that began it leaves the record."""
    execute(
        url,
        f"CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (revision VARCHAR(255) NOT NULL PRIMARY KEY, "
        "started_at VARCHAR(40) NOT NULL, started_by VARCHAR(255) NOT NULL)",
    )
    execute(
        url,
        f"REPLACE INTO {PROGRESS_TABLE} (revision, started_at, started_by) VALUES (%s, %s, %s)",
        (revision, "2026-01-01T00:00:00+00:00", "a run long gone"),
    )


def warnings_in(out: str) -> list[str]:
    return [line for line in out.splitlines() if " WARNING " in line and "MODELS is not set" not in line]


def test_a_stale_record_is_cleared_silently_and_the_pending_revision_applied(mysql_url, tmp_path):
    project = write_project(
        tmp_path / "project", (CREATE_ACCOUNT, False), (PLAIN_STEPS.replace(str(PAUSE), "0"), False)
    )
    result, _ = migrate(mysql_url, project, tmp_path, "upgrade", "r1")
    assert result.code == 0, result.out
    record(mysql_url, "r1")  # the version table is already past it
    result, _ = migrate(mysql_url, project, tmp_path)
    assert result.code == 0, result.out
    assert recorded(mysql_url) == []
    assert not warnings_in(result.out), result.out
    assert "-> r1" not in result.out, "a stale record must not run a finished revision again"
    assert result.out.count("Running upgrade r1 -> r2") == 1
    assert versions_of(mysql_url) == ["r2"]
    assert columns_of(mysql_url, "account") == ACCOUNT_COLUMNS + ADDED


def test_the_head_revision_finished_by_hand_and_stamped_is_cleared_by_the_next_run(mysql_url, tmp_path):
    """The interrupted-revision message's second way out: finish it by hand, `alembic stamp REV`."""
    project = write_project(
        tmp_path / "project", (CREATE_ACCOUNT, False), (PLAIN_STEPS.replace(str(PAUSE), "0"), False)
    )
    result, _ = migrate(mysql_url, project, tmp_path, "upgrade", "r1")
    assert result.code == 0, result.out
    record(mysql_url, "r2")  # a run of r2 was killed after two of its columns
    for column, type_ in ADDED[:2]:
        execute(mysql_url, f"ALTER TABLE account ADD COLUMN {column} {type_}")

    for column, type_ in ADDED[2:]:  # the operator finishes r2 by hand and records it
        execute(mysql_url, f"ALTER TABLE account ADD COLUMN {column} {type_}")
    result, _ = migrate(mysql_url, project, tmp_path, "alembic", "stamp", "r2")
    assert result.code == 0, result.out
    assert versions_of(mysql_url) == ["r2"]

    result, _ = migrate(mysql_url, project, tmp_path)
    assert result.code == 0, result.out
    assert "Running upgrade" not in result.out
    assert recorded(mysql_url) == [], (
        "the message promised that the next run clears the record itself; it is still there:\n" + result.out
    )
    # Until it is cleared, `wait` (the app's initContainer) waits for a migrator that never comes.
    result, _ = migrate(mysql_url, project, tmp_path, "wait", LOCK_TIMEOUT=1, MIGRATION_TIMEOUT=1)
    assert result.code == 0, result.out


def test_the_shipped_chain_killed_at_a_random_moment_reaches_its_head_on_the_next_run(new_database, tmp_path):
    rng = random.Random(15)
    for attempt in range(1):
        url = new_database()
        env = operator_env(url, tmp_path)  # DATABASE_URL only: the shipped migrations and MODELS
        # A random migration of the ten, a random moment into it (each takes tens of milliseconds).
        step, delay = rng.randint(1, 9), rng.uniform(0.0, 0.05)
        runner = Runner(env, tmp_path / f"killed-{attempt}.log")
        wait_until(
            log_has(runner, f"[{step}/10] Applying"), 60, f"migration {step} of 10", runner=runner, interval=0.005
        )
        time.sleep(delay)
        runner.kill()
        assert versions_of(url) != ["merge_heads_final"], f"the kill in migration {step} came after the end"

        result = run_migrate(env=env, timeout=90)
        assert result.code == 0, f"killed in migration {step} + {delay:.3f}s:\n{result.out}"
        assert versions_of(url) == ["merge_heads_final"]
        assert recorded(url) == []
        verify = run_migrate("verify", env=env, timeout=60)
        assert verify.code == 0, verify.out


# --- DDL lock waits ---------------------------------------------------------------------------------

ADD_NICK_IDEMPOTENT = 'ops.add_column_if_missing("account", sa.Column("nick", sa.String(20)))'
ADD_NICK = 'op.add_column("account", sa.Column("nick", sa.String(20)))'


def account_by_hand(url: str) -> None:
    execute(url, "CREATE TABLE account (id INT PRIMARY KEY, name VARCHAR(50), email VARCHAR(50))")
    execute(url, "INSERT INTO account VALUES (1, 'alice', 'alice@example.com'), (2, 'bob', NULL)")


def test_an_idempotent_revision_that_loses_a_metadata_lock_wait_is_retried_until_it_succeeds(mysql_url, tmp_path):
    account_by_hand(mysql_url)
    project = write_project(tmp_path / "project", (ADD_NICK_IDEMPOTENT, True))
    reader = connect(mysql_url, autocommit=False)
    try:
        with reader.cursor() as cursor:  # an application transaction that has read the table: a metadata lock
            cursor.execute("BEGIN")
            cursor.execute("SELECT * FROM account")
            cursor.fetchall()
        runner = Runner(
            env_of(mysql_url, project, tmp_path, DDL_LOCK_TIMEOUT=1, DDL_LOCK_RETRIES=2), tmp_path / "run.log"
        )
        wait_until(log_has(runner, "retry 1/2"), 30, "the first retry", runner=runner)
        assert columns_of(mysql_url, "account") == ACCOUNT_COLUMNS
    finally:
        reader.commit()
        reader.close()
    code = runner.wait(30)
    assert code == 0, runner.out
    assert "timed out waiting for a table lock" in runner.out
    assert columns_of(mysql_url, "account") == [*ACCOUNT_COLUMNS, ("nick", "varchar(20)")]
    assert account_rows(mysql_url) == ACCOUNT_ROWS
    assert versions_of(mysql_url) == ["r1"] and recorded(mysql_url) == []


def test_a_non_idempotent_revision_that_loses_a_metadata_lock_wait_is_not_retried(mysql_url, tmp_path):
    account_by_hand(mysql_url)
    project = write_project(tmp_path / "project", (ADD_NICK, False))
    holder = connect(mysql_url)
    try:
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLES account WRITE")
        result, took = migrate(mysql_url, project, tmp_path, DDL_LOCK_TIMEOUT=1, DDL_LOCK_RETRIES=2)
    finally:
        holder.close()  # UNLOCK TABLES with the session
    assert result.code == 1, result.out
    assert "retry 1/2" not in result.out, "a non-idempotent revision on MySQL must not run again"
    assert took < 1 + MARGIN
    summary = summary_line(result.out)
    assert "r1" in summary and "Lock wait timeout" in summary and "DDL_LOCK_TIMEOUT" in summary, summary
    # What the message advises must hold on MySQL: nothing was retried, and pg_stat_activity is PostgreSQL's.
    assert "pg_stat_activity" not in summary, summary
    assert "through DDL_LOCK_RETRIES=2 retries" not in summary, f"no retry happened, yet: {summary}"
    assert columns_of(mysql_url, "account") == ACCOUNT_COLUMNS
    assert versions_of(mysql_url) == []
