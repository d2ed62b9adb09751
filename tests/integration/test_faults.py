"""Issue 4: migrate-init survives held locks, kills, signals, timeouts and bad input.

Every test runs migrate.py as a real process against a real SQLite file or
the real PostgreSQL test server (a held lock and a signal mid-migration: the
MariaDB one too), and asserts the exit code, the message and
the state the database is left in.  The slow fixture revision (see
tests/support/chains.py, ``BODIES["slow"]``) creates a table, fills it, then waits in
pg_sleep, Python's time.sleep or a long recursive CTE, so that a kill or a
signal lands in the middle of a migration (MIGRATION_TIMEOUT there: test_exit_codes.py).

Cases that test_config.py and test_upgrade.py already prove (an
unparsable URL, X and X_FILE, a missing, empty or newline-terminated _FILE, a
password with ``@ / % :``, a wrong password, an empty or missing migrations
folder, an unknown revision, several heads) are not repeated here.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from migrate_init import wait
from migrate_init.engines import sqlite as engines_sqlite
from migrate_init.engines.mysql import mysql_lock_name
from migrate_init.engines.postgresql import advisory_key
from migrate_init.url import parse as parse_url
from tests.support import mounts
from tests.support.chains import TARGET, Chain, build_chain, marker_says
from tests.support.dbstate import (
    assert_at_head,
    columns,
    count,
    database_name,
    fingerprint,
    in_progress,
    integrity,
    is_mysql,
    is_sqlite,
    pg_query,
    sqlite_path,
    sqlite_query,
    still_running,
    table_count,
    tables,
    versions,
)
from tests.support.locks import (
    HOLDER_STARTED,
    TAKE_THE_LOCK_AWAY_ONCE,
    advisory_locks,
    flock_free,
    lock_away_env,
    migration_lock_free,
    migrator_backends,
    my_lock_held,
    pg_lock_held,
    sqlite_lock_held,
)
from tests.support.network import LateServer, free_port
from tests.support.pgserver import connect
from tests.support.process import (
    UNPRIVILEGED,
    Runner,
    child_env,
    migrate_env,
    run_unprivileged,
    summary_line,
    wait_until,
)

#: How long SIGTERM/SIGINT may take to end a run.  The requirement is 2 s; the
#: margin absorbs a loaded CI machine while still catching a statement that
#: was not cancelled (the slow revision waits 60 s).
SIGNAL_DEADLINE = 2.0
SIGNAL_MARGIN = 2.0
#: How late the database comes up: the issue's 20 s (ROBUST_LATE_SECONDS to change it).
LATE_SECONDS = float(os.environ.get("ROBUST_LATE_SECONDS", "20"))
SLOW = "robust_slow"
#: How long past LOCK_TIMEOUT a run may take to end: the interpreter's start and the report.
LOCK_MARGIN = 7.0


@pytest.fixture(autouse=True)
def _no_runner_left_behind():
    """A test that fails half-way must not leave migrate.py processes running."""
    yield
    Runner.kill_all()


@pytest.fixture
def slow_migrations(tmp_path: Path) -> Path:
    """The shipped migrations plus robust_slow after merge_heads_final."""
    return build_chain(tmp_path / "slow_migrations", (SLOW, "slow"))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker"


def start_slow(url: str, migrations: Path, marker: Path, log: Path, *, mode: str = "sleep", **extra: object) -> Runner:
    """Start a run and return once it is inside robust_slow, its rows inserted, waiting."""
    runner = Runner(
        migrate_env(url, migrations, ROBUST_MARKER=marker, ROBUST_SLOW_SECONDS=60, ROBUST_SLOW_MODE=mode, **extra), log
    )
    wait_until(marker_says(marker, SLOW), 60, "the run to reach the middle of robust_slow", runner)
    return runner


def upgrade_to(url: str, revision: str, tmp_path: Path, migrations: Path | None = None) -> None:
    runner = Runner(migrate_env(url, migrations), tmp_path / f"upgrade-{revision}.log", "upgrade", revision)
    assert runner.wait() == 0, runner.out
    assert versions(url) == [revision]


def run(
    url: str,
    tmp_path: Path,
    migrations: Path | None = None,
    *,
    name: str = "run",
    timeout: float = 120,
    **extra: object,
) -> Runner:
    runner = Runner(migrate_env(url, migrations, **extra), tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.log")
    runner.wait(timeout)
    return runner


def running_upgrades(out: str, revision: str) -> int:
    return sum(1 for line in out.splitlines() if "Running upgrade" in line and f"-> {revision}," in line)


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the lock ---------------------------------------------------------------------


@contextlib.contextmanager
def held_by_another(url: str):
    """Hold the migration lock as another session would: yields (words that name the lock, words that name
    the holder)."""
    if is_sqlite(url):
        db = sqlite_path(url)
        with sqlite_lock_held(db) as pid:
            yield engines_sqlite.lock_path(db), [f"PID {pid}", socket.gethostname(), HOLDER_STARTED]
    elif is_mysql(url):
        with my_lock_held(url) as session:
            # mysql_url's account is root, connected over TCP from this machine.
            lock = mysql_lock_name(database_name(url), "alembic_version")
            yield lock, [f"connection ID {session}, user 'root' from 127.0.0.1"]
    else:
        with pg_lock_held(url, application_name="robust-lock-holder") as pid:
            key = str(advisory_key(database_name(url), "alembic_version"))
            yield key, [f"backend PID {pid}", "robust-lock-holder", "127.0.0.1"]


def test_lock_held_past_lock_timeout_exits_5_names_the_holder_and_changes_nothing(any_url, tmp_path):
    upgrade_to(any_url, "70c7b727736e", tmp_path)  # four migrations pending
    before = fingerprint(any_url)
    file_based = parse_url(any_url).engine.file_based
    digest = file_hash(sqlite_path(any_url)) if file_based else None

    with held_by_another(any_url) as (lock, names):
        started = time.monotonic()
        runner = run(any_url, tmp_path, LOCK_TIMEOUT=2)
        took = time.monotonic() - started
        # `wait` takes the lock too (shared): it ends the same way, naming the same holder.
        waiter = Runner(migrate_env(any_url, LOCK_TIMEOUT=1, MIGRATION_TIMEOUT=1), tmp_path / "wait.log", "wait")
        waiter.wait()

    assert runner.proc.returncode == 5, runner.out
    summary = summary_line(runner.out)
    assert "LOCK_TIMEOUT=2s" in summary, summary
    for word in names:
        assert word in summary, f"the holder's {word!r} is not named:\n{runner.out}"
    waiting = [line for line in runner.out.splitlines() if re.search(r"Waiting for .*, held by ", line)]
    assert waiting and lock in waiting[0], runner.out
    assert took < 2 + LOCK_MARGIN, f"LOCK_TIMEOUT=2 ended the run after {took:.1f}s"
    assert "Running upgrade" not in runner.out
    assert fingerprint(any_url) == before, "a run that never got the lock must change nothing"
    if digest is not None:
        assert file_hash(sqlite_path(any_url)) == digest
    assert waiter.proc.returncode == 5, waiter.out
    for word in names:
        assert word in summary_line(waiter.out), f"the holder's {word!r} is not named:\n{waiter.out}"


def test_database_at_its_target_needs_no_lock(db_url, tmp_path):
    first = run(db_url, tmp_path)
    assert first.proc.returncode == 0, first.out

    with held_by_another(db_url):
        runner = run(db_url, tmp_path, LOCK_TIMEOUT=2)

    assert runner.proc.returncode == 0, runner.out
    assert "nothing to do" in runner.out
    assert "Waiting for" not in runner.out
    assert versions(db_url) == [TARGET]


def test_sigterm_while_waiting_for_the_lock_exits_143_at_once(db_url, tmp_path):
    upgrade_to(db_url, "70c7b727736e", tmp_path)
    with held_by_another(db_url):
        runner = Runner(migrate_env(db_url, LOCK_TIMEOUT=120), tmp_path / "waiting.log")
        wait_until(lambda: "Waiting for the" in runner.out, 30, "the run to wait for the lock", runner)
        started = time.monotonic()
        runner.signal(signal.SIGTERM)
        code = runner.wait(30)
        elapsed = time.monotonic() - started
    assert code == 143, runner.out
    assert elapsed < SIGNAL_DEADLINE + SIGNAL_MARGIN, f"took {elapsed:.1f}s"
    assert versions(db_url) == ["70c7b727736e"]


#: A revision that takes the run's migration lock away from outside the run, once.
_TAKE_THE_LOCK_AWAY = 'op.execute("CREATE TABLE IF NOT EXISTS lost_two (id INTEGER)")\n' + TAKE_THE_LOCK_AWAY_ONCE


def test_a_lock_taken_away_mid_run_stops_the_run_before_that_migration_commits_and_a_rerun_finishes(any_url, tmp_path):
    """A lock lost while held (an administrator, a pooler's or the server's idle timeout, a deleted
    lock file) keeps no second migrator out: the run must notice and stop, not go on unguarded."""
    chain = Chain(tmp_path / "lost")
    chain.add("lost_one", 'op.execute("CREATE TABLE lost_one (id INTEGER)")')
    chain.add("lost_two", _TAKE_THE_LOCK_AWAY, idempotent=True)  # MySQL: its DDL commits at once
    chain.add("lost_three", 'op.execute("CREATE TABLE lost_three (id INTEGER)")')
    extra = lock_away_env(any_url, tmp_path / "lost.marker")
    first = run(any_url, tmp_path, chain.path, name="lost", **extra)
    summary = summary_line(first.out)
    if extra["LOST_KIND"] == "sqlite":
        assert first.proc.returncode == 5, first.out
        assert f"lost the migration lock {extra['LOST_TARGET']} while it held it: the lock file" in summary, summary
    else:  # the server ended the session: a lost connection, exit 3 as in issue 25 N35
        assert first.proc.returncode == 3, first.out
        assert "The session that held the migration lock" in summary and "ended by the server" in summary, summary
    assert "Migration lost_two was stopped before its commit" in summary, summary
    assert "the database is at lost_one" in summary, summary
    assert versions(any_url) == ["lost_one"], first.out  # lost_two did not commit its version row
    assert "lost_three" not in tables(any_url)
    if not is_mysql(any_url):
        assert "lost_two" not in tables(any_url), "a transactional engine rolls the migration back"
    second = run(any_url, tmp_path, chain.path, name="again", **extra)
    assert second.proc.returncode == 0, second.out
    assert versions(any_url) == ["lost_three"]
    assert {"lost_one", "lost_two", "lost_three"} <= tables(any_url)


# --- killed, signalled, timed out ---------------------------------------------------


def test_sigkill_mid_migration_leaves_nothing_half_applied_and_no_stale_lock(db_url, slow_migrations, marker, tmp_path):
    runner = start_slow(db_url, slow_migrations, marker, tmp_path / "killed.log")
    runner.kill()
    assert runner.proc.returncode == -signal.SIGKILL

    if is_sqlite(db_url):
        db = sqlite_path(db_url)
        # The kill landed inside the transaction: its rollback journal is hot.
        assert db.with_name(db.name + "-journal").stat().st_size > 0
        assert flock_free(db), "the flock of a killed process must be gone"
    else:
        wait_until(lambda: advisory_locks(db_url) == 0, 10, "the killed run's advisory lock to go")
        # Its server session was in pg_sleep: client_connection_check_interval ends it.
        wait_until(lambda: migrator_backends(db_url) == 0, 15, "the killed run's sessions to end")
        assert versions(db_url) == [TARGET]
        assert table_count(db_url, SLOW) == 0

    # A stale lock would make this run time out with exit 5.
    after = run(db_url, tmp_path, slow_migrations, LOCK_TIMEOUT=3)

    assert after.proc.returncode == 0, after.out
    assert "Waiting for the" not in after.out
    assert running_upgrades(after.out, SLOW) == 1
    assert running_upgrades(after.out, TARGET) == 0  # committed before the kill, not redone
    assert_at_head(db_url, [SLOW], slow_tables=(SLOW,))


@pytest.mark.parametrize(
    "sig, code, mode",
    [
        (signal.SIGTERM, 143, "sleep"),
        (signal.SIGINT, 130, "sleep"),
        (signal.SIGTERM, 143, "statement"),
    ],
    ids=["SIGTERM", "SIGINT", "SIGTERM-during-long-statement"],
)
def test_signal_mid_migration_rolls_back_what_the_engine_can_releases_the_lock_and_exits_fast(
    any_url, slow_migrations, marker, tmp_path, sig, code, mode
):
    """sleep: PostgreSQL is in pg_sleep(60), MariaDB in SLEEP(60), SQLite in Python's time.sleep after
    its DDL.  statement: SQLite runs a recursive CTE that lasts minutes; only the watchdog's interrupt()
    (PostgreSQL: cancel; MariaDB: KILL QUERY) ends it, and on a server it must end there too."""
    engine = parse_url(any_url).engine
    runner = start_slow(any_url, slow_migrations, marker, tmp_path / "signalled.log", mode=mode)
    time.sleep(0.3)  # let the statement start
    started = time.monotonic()
    runner.signal(sig)
    returncode = runner.wait(30)
    elapsed = time.monotonic() - started

    assert returncode == code, runner.out
    assert elapsed < SIGNAL_DEADLINE + SIGNAL_MARGIN, f"exit took {elapsed:.1f}s:\n{runner.out}"
    assert f"Stopped by {signal.Signals(sig).name}" in runner.out
    summary = summary_line(runner.out)
    assert signal.Signals(sig).name in summary and SLOW in summary, summary
    assert versions(any_url) == [TARGET]
    assert migration_lock_free(any_url), "a signal must release the migration lock"
    if engine.transactional_ddl:  # rolled back whole: no table, no rows, the version before robust_slow
        assert table_count(any_url, SLOW) == 0
    else:  # its table committed at once: the revision is recorded as interrupted, and nothing claims a rollback
        assert in_progress(any_url) == [SLOW]
        assert "rolled back" not in summary, summary
    if engine.file_based:
        db = sqlite_path(any_url)
        assert not db.with_name(db.name + "-journal").exists()
        assert integrity(any_url) == [("ok",)]
    else:
        assert still_running(any_url, "SLEEP(") == 0, "the cancel did not reach the server"  # pg_sleep( too


# --- DDL lock timeout (PostgreSQL) ------------------------------------------------


@pytest.fixture
def alter_user(pg_url, tmp_path):
    """A database at merge_heads_final, with scripts whose next revision ALTERs "user",
    and an application session in an open transaction that has read and updated "user"."""
    migrations = build_chain(tmp_path / "alter_migrations", ("robust_alter_user", "alter_user"))
    upgrade_to(pg_url, TARGET, tmp_path, migrations)
    pg_query(pg_url, "INSERT INTO \"user\" (id, name) VALUES ('u1', 'Ann')")
    app = connect(pg_url, application_name="robust-app", autocommit=False)
    with app.cursor() as cur:
        cur.execute('SELECT count(*) FROM "user"')  # ACCESS SHARE until the transaction ends
        cur.execute("UPDATE \"user\" SET name = name WHERE id = 'u1'")  # ROW EXCLUSIVE
    yield migrations, app
    app.close()


def alter_waiting(url: str) -> bool:
    """Whether migrate-init's ALTER is queued for a lock on "user"."""
    return bool(
        pg_query(
            url,
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.application_name = 'migrate-init' "
            "AND l.relation = 'public.\"user\"'::regclass",
        )[0][0]
    )


def test_ddl_lock_timeout_retries_and_succeeds_once_the_app_transaction_ends(pg_url, alter_user, tmp_path):
    migrations, app = alter_user
    runner = Runner(migrate_env(pg_url, migrations, DDL_LOCK_TIMEOUT=1, DDL_LOCK_RETRIES=2), tmp_path / "ddl.log")
    wait_until(lambda: "retry 1/2" in runner.out, 30, "the first DDL lock retry", runner)
    app.commit()  # the application's transaction ends between two attempts

    assert runner.wait() == 0, runner.out
    assert "DDL_LOCK_TIMEOUT" in runner.out
    assert "retry 2/2" not in runner.out
    assert versions(pg_url) == ["robust_alter_user"]
    assert "robust_nick" in columns(pg_url, "user")
    assert pg_query(pg_url, 'SELECT id, name FROM "user"') == [("u1", "Ann")]


def test_ddl_lock_never_released_exits_1_naming_the_revision_and_never_freezes_readers(pg_url, alter_user, tmp_path):
    migrations, _app = alter_user
    ddl_lock_timeout = 1
    runner = Runner(
        migrate_env(pg_url, migrations, DDL_LOCK_TIMEOUT=ddl_lock_timeout, DDL_LOCK_RETRIES=2), tmp_path / "ddl.log"
    )
    wait_until(lambda: alter_waiting(pg_url), 30, "the ALTER to queue behind the app", runner, interval=0.01)

    # A reader arriving now queues behind the ALTER's ACCESS EXCLUSIVE request.
    # Without lock_timeout it would wait as long as the app's transaction
    # (forever here); with it, at most about DDL_LOCK_TIMEOUT.
    reader = connect(pg_url, application_name="robust-reader", autocommit=False)
    try:
        started = time.monotonic()
        with reader.cursor() as cur:
            cur.execute("SET statement_timeout = '20s'")
            cur.execute('SELECT count(*) FROM "user"')
            assert cur.fetchone() == (1,)
        blocked = time.monotonic() - started
    finally:
        reader.close()
    assert blocked < ddl_lock_timeout + 3, f"a reader was blocked {blocked:.1f}s behind the ALTER"

    assert runner.wait() == 1, runner.out
    assert "retry 1/2" in runner.out and "retry 2/2" in runner.out
    summary = runner.out.splitlines()[-1]
    assert "robust_alter_user" in summary and "DDL_LOCK_RETRIES=2" in summary, summary
    assert "FALLBACK USED" not in runner.out  # create_all cannot apply an ALTER
    assert versions(pg_url) == [TARGET]
    assert "robust_nick" not in columns(pg_url, "user")
    assert advisory_locks(pg_url) == 0


# --- SQLite batch rebuild ----------------------------------------------------------


def test_batch_rebuild_of_a_parent_keeps_every_on_delete_cascade_child_row(sqlite_url, tmp_path):
    migrations = build_chain(
        tmp_path / "batch_migrations", ("robust_parent_child", "parent_child"), ("robust_batch", "batch")
    )
    upgrade_to(sqlite_url, "robust_parent_child", tmp_path, migrations)
    db = sqlite_path(sqlite_url)
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.executemany("INSERT INTO robust_parent VALUES (?, ?)", [(i, f"p{i}") for i in range(3)])
        conn.executemany("INSERT INTO robust_child VALUES (?, ?)", [(i, i % 3) for i in range(10)])
    # The hazard is real for this schema: with foreign keys on, dropping the
    # parent (as a rebuild does) deletes every child row.
    control = tmp_path / "control.db"
    shutil.copy(db, control)
    with sqlite3.connect(control) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DROP TABLE robust_parent")
        assert conn.execute("SELECT count(*) FROM robust_child").fetchone() == (0,)

    runner = run(sqlite_url, tmp_path, migrations)

    assert runner.proc.returncode == 0, runner.out
    assert running_upgrades(runner.out, "robust_batch") == 1
    assert versions(sqlite_url) == ["robust_batch"]
    assert "rebuilt" in columns(sqlite_url, "robust_parent")
    assert sqlite_query(sqlite_url, "SELECT id, parent_id FROM robust_child ORDER BY id") == [
        (i, i % 3) for i in range(10)
    ]
    assert count(sqlite_url, "robust_parent") == 3
    foreign_keys = sqlite_query(sqlite_url, "PRAGMA foreign_key_list(robust_child)")
    assert [(fk[2], fk[6]) for fk in foreign_keys] == [("robust_parent", "CASCADE")]
    assert sqlite_query(sqlite_url, "PRAGMA foreign_key_check") == []
    assert integrity(sqlite_url) == [("ok",)]


# --- bad input: the database and its server ------------------------------------------


def test_plain_postgresql_scheme_works_without_psycopg3(pg_url, tmp_path):
    probe = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; print(u.find_spec('psycopg'))"],
        capture_output=True,
        text=True,
        env=child_env(),
    )
    assert probe.stdout.strip() == "None", "psycopg 3 is installed; this test needs it absent"
    assert importlib.util.find_spec("psycopg2") is not None
    assert pg_url.startswith("postgresql://")

    runner = run(pg_url, tmp_path)

    assert runner.proc.returncode == 0, runner.out
    assert_at_head(pg_url, [TARGET])


#: The same wait on the PostgreSQL server and on the MariaDB one: the prefix of their fixtures.
servers = pytest.mark.parametrize(
    "server_name",
    [
        pytest.param("pg", marks=pytest.mark.postgres, id="postgresql"),
        pytest.param("mysql", marks=pytest.mark.mysql, id="mysql"),
    ],
)
#: Per server: its driver's words for a database that does not exist, and how to look one up as superuser
#: (the harness's method, the statement).
MISSING_DATABASE = {
    "pg": ('database "{}" does not exist', "psql", "SELECT 1 FROM pg_database WHERE datname = %s"),
    "mysql": ("Unknown database '{}'", "query", "SHOW DATABASES LIKE %s"),
}


@servers
def test_missing_database_is_waited_for_then_exits_3_naming_it(server_name, request, tmp_path):
    """'database does not exist' is retried, not final: a server's init scripts or
    an operator may still create it.  After DB_WAIT_TIMEOUT: exit 3, naming it."""
    server = request.getfixturevalue(f"{server_name}_server")
    driver_words, superuser, exists = MISSING_DATABASE[server_name]
    name = f"robust_missing_{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    runner = run(server.url(database=name), tmp_path, DB_WAIT_TIMEOUT=2)
    took = time.monotonic() - started

    assert runner.proc.returncode == 3, runner.out
    summary = summary_line(runner.out)
    assert f"The server answers, but the database '{name}' does not exist on it" in summary, summary
    assert driver_words.format(name) in summary, summary
    assert "DB_WAIT_TIMEOUT=2s" in summary
    assert "Waiting for the database" in runner.out
    assert 2 <= took < 15, took
    assert not getattr(server, superuser)(exists, params=(name,))


def test_missing_database_created_while_waiting_is_migrated(pg_server, tmp_path):
    name = f"robust_late_{uuid.uuid4().hex[:8]}"
    url = pg_server.url(database=name)
    runner = Runner(migrate_env(url, DB_WAIT_TIMEOUT=60), tmp_path / "late-db.log")
    try:
        wait_until(lambda: "does not exist" in runner.out, 30, "the run to wait for the database", runner)
        pg_server.create_database(name)
        assert runner.wait() == 0, runner.out
        assert "The database answered after" in runner.out
        assert_at_head(url, [TARGET])
    finally:
        runner.kill()
        pg_server.drop_database(name)


def test_dns_failure_is_retried_until_db_wait_timeout_then_exits_3(tmp_path):
    url = "postgresql://app:pw@migrate-init-robust.invalid:5432/app"
    runner = run(url, tmp_path, DB_WAIT_TIMEOUT=2)

    assert runner.proc.returncode == 3, runner.out
    summary = runner.out.splitlines()[-1]
    assert "migrate-init-robust.invalid" in summary and "DB_WAIT_TIMEOUT=2s" in summary
    assert "could not translate host name" in summary


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_server_that_never_comes_up_exits_3_after_db_wait_timeout(tmp_path, scheme):
    port = free_port()  # nothing listens: connection refused at every attempt
    runner = run(f"{scheme}://app:pw@127.0.0.1:{port}/app", tmp_path, DB_WAIT_TIMEOUT=3)

    assert runner.proc.returncode == 3, runner.out
    assert runner.out.count("Connection refused") >= 1
    summary = runner.out.splitlines()[-1]
    assert f"127.0.0.1:{port}/app" in summary and "DB_WAIT_TIMEOUT=3s" in summary


@servers
def test_server_that_comes_up_late_is_waited_for_then_migrated(server_name, request, tmp_path):
    target = make_url(request.getfixturevalue(f"{server_name}_url"))
    late = LateServer(target.host, target.port, delay=LATE_SECONDS)
    try:
        url = target.set(port=late.port).render_as_string(hide_password=False)
        runner = run(url, tmp_path, DB_WAIT_TIMEOUT=LATE_SECONDS + 60)
        assert late.listening.is_set()
    finally:
        late.close()

    assert runner.proc.returncode == 0, runner.out
    assert "Connection refused" in runner.out  # it did wait
    assert f"Waiting for the database at {target.drivername}://{target.username}:***@" in runner.out, runner.out
    assert re.search(r"The database answered after \d+ attempts\.", runner.out), runner.out
    assert_at_head(target.render_as_string(hide_password=False), [TARGET])


# --- bad input: the SQLite file and its folder --------------------------------------


def _require_root(why: str) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} needs root, and CI runs as root")
        pytest.skip(f"{why} needs root")


@pytest.mark.parametrize("case", ["root_owned_file", "read_only_file", "root_owned_folder", "folder_not_creatable"])
def test_unwritable_sqlite_file_or_folder_exits_4_naming_the_path_and_uid(case, shared_tmp):
    _require_root("running migrate.py as another UID")
    folder = shared_tmp / "data"
    db = folder / "webui.db"
    url = f"sqlite:///{db}"
    seeded = run(url, shared_tmp, name="seed")  # as root: a database with pending work
    assert seeded.proc.returncode == 0, seeded.out
    sqlite_query(url, "DELETE FROM alembic_version")
    sqlite_query(url, "INSERT INTO alembic_version VALUES ('70c7b727736e')")
    nobody = (UNPRIVILEGED, UNPRIVILEGED)
    named = db
    if case == "root_owned_file":
        os.chown(folder, *nobody)
    elif case == "read_only_file":
        os.chown(folder, *nobody)
        os.chown(db, *nobody)
        db.chmod(0o444)
    elif case == "root_owned_folder":
        os.chown(db, *nobody)
        named = folder
    elif case == "folder_not_creatable":
        url = f"sqlite:///{shared_tmp / 'new' / 'webui.db'}"
        named = shared_tmp / "new"
    for leftover in folder.glob("backups"):
        shutil.rmtree(leftover)
    digest = file_hash(db)

    result = run_unprivileged(env=migrate_env(url))

    assert result.code == 4, result.out
    summary = result.out.splitlines()[-1]
    assert str(named) in summary, summary
    assert f"UID {UNPRIVILEGED}" in summary, summary
    assert file_hash(db) == digest
    assert not (shared_tmp / "new").exists()


def test_a_lock_file_left_by_another_uid_still_serves_through_a_read_only_descriptor(shared_tmp):
    """OpenShift may run the next pod as another UID: a root-owned 0644 lock file must not block it."""
    _require_root("running migrate.py as another UID")
    folder = shared_tmp / "data"
    db = folder / "webui.db"
    url = f"sqlite:///{db}"
    seeded = run(url, shared_tmp, name="seed")  # as root: leaves a root-owned lock file
    assert seeded.proc.returncode == 0, seeded.out
    sqlite_query(url, "DELETE FROM alembic_version")
    sqlite_query(url, "INSERT INTO alembic_version VALUES ('70c7b727736e')")
    nobody = (UNPRIVILEGED, UNPRIVILEGED)
    os.chown(folder, *nobody)
    os.chown(db, *nobody)
    named = Path(engines_sqlite.lock_path(db))
    named.chmod(0o644)  # root's, and not writable by UID 65534
    assert named.stat().st_uid == 0
    for leftover in folder.glob("backups"):
        shutil.rmtree(leftover)

    result = run_unprivileged(env=migrate_env(url))

    assert result.code == 0, result.out
    assert versions(url) == [TARGET]


def test_full_disk_exits_1_naming_the_path_and_leaves_the_database_unchanged(tmp_path):
    with mounts.tmpfs(tmp_path / "small", "512k") as volume:
        db = volume / "data" / "webui.db"
        url = f"sqlite:///{db}"
        upgrade_to(url, "70c7b727736e", tmp_path)  # four migrations pending
        sqlite_query(url, "INSERT INTO user (id, name) VALUES ('u1', 'Ann')")
        digest = file_hash(db)
        mounts.fill_disk(volume)

        # No backup (BACKUP_KEEP=0), so the first write that fails is SQLite's journal.
        runner = run(url, tmp_path, BACKUP_KEEP=0)

        assert runner.proc.returncode == 1, runner.out
        summary = runner.out.splitlines()[-1]
        assert str(db) in summary and "is full" in summary, summary
        assert "fallback was not tried" in summary
        assert "Traceback" not in runner.out
        assert file_hash(db) == digest
        assert not db.with_name(db.name + "-journal").exists()
        assert versions(url) == ["70c7b727736e"]
        assert integrity(url) == [("ok",)]
        assert sqlite_query(url, "SELECT id, name FROM user") == [("u1", "Ann")]


def test_full_disk_for_the_lock_file_exits_1_naming_it(tmp_path):
    with mounts.tmpfs(tmp_path / "small", "256k") as volume:
        db = volume / "webui.db"
        url = f"sqlite:///{db}"
        upgrade_to(url, "70c7b727736e", tmp_path)
        Path(engines_sqlite.lock_path(db)).unlink()
        digest = file_hash(db)
        mounts.fill_disk(volume)

        runner = run(url, tmp_path, BACKUP_KEEP=0)

        assert runner.proc.returncode == 1, runner.out
        summary = runner.out.splitlines()[-1]
        assert str(engines_sqlite.lock_path(db)) in summary and "is full" in summary, summary
        assert "Traceback" not in runner.out
        assert file_hash(db) == digest


@pytest.mark.parametrize("damage", ["random_bytes", "garbage_after_the_header"])
def test_corrupt_sqlite_file_is_named_and_left_untouched(damage, tmp_path):
    db = tmp_path / "data" / "webui.db"
    url = f"sqlite:///{db}"
    db.parent.mkdir()
    rng = random.Random(4)
    if damage == "random_bytes":
        db.write_bytes(bytes(rng.randrange(256) for _ in range(16384)))
    else:
        upgrade_to(url, TARGET, tmp_path)
        data = bytearray(db.read_bytes())
        data[100:] = bytes(rng.randrange(256) for _ in range(len(data) - 100))
        db.write_bytes(bytes(data))
    digest = file_hash(db)
    # Besides the database: the lock file and the manifest cache of the run that made it, if any.
    before = sorted(p.name for p in db.parent.iterdir() if p.name != Path(engines_sqlite.lock_path(db)).name)

    runner = run(url, tmp_path)

    assert runner.proc.returncode == 1, runner.out
    summary = runner.out.splitlines()[-1]
    assert f"The SQLite file {db} is not a usable database" in summary, summary
    assert "Traceback" not in runner.out
    assert file_hash(db) == digest
    assert "webui.db" in before
    assert sorted(p.name for p in db.parent.iterdir() if p.name != Path(engines_sqlite.lock_path(db)).name) == before


# --- network filesystems -----------------------------------------------------------


def test_filesystem_type_reads_a_real_tmpfs_mount(tmp_path):
    with mounts.tmpfs(tmp_path / "mnt", "64k") as mount:
        assert wait.filesystem_type(mount) == "tmpfs"
        assert wait.filesystem_type(mount / "data" / "not-yet") == "tmpfs"
    # Unmounted, the same path belongs to the filesystem around it again.
    assert wait.filesystem_type(tmp_path / "mnt") == wait.filesystem_type(tmp_path)


def test_sqlite_on_a_network_filesystem_is_refused_before_anything_is_created(tmp_path):
    """A FUSE mount of type fuse.sshfs whose server is gone stands in for NFS or
    CIFS, which cannot be mounted here."""
    with mounts.dead_network_mount(tmp_path / "remote") as mount:
        url = f"sqlite:///{mount / 'data' / 'webui.db'}"
        refused = run(url, tmp_path)
        allowed = run(url, tmp_path, SQLITE_ALLOW_NETWORK_FS="true")

    assert refused.proc.returncode == 2, refused.out
    summary = refused.out.splitlines()[-1]
    assert str(mount / "data" / "webui.db") in summary and "'fuse.sshfs'" in summary, summary
    assert "SQLITE_ALLOW_NETWORK_FS=true" in summary
    assert "Traceback" not in refused.out
    # Allowed, it goes on and meets the dead mount itself, which it names.
    assert allowed.proc.returncode not in (0, 2), allowed.out
    assert "network filesystem" not in allowed.out
    assert str(mount / "data") in allowed.out.splitlines()[-1]
    assert "Traceback" not in allowed.out
