"""Issue 12, from outside: signals and timeouts are never lost, every wait ends, reports say what happened.

A stranger's probe, replayed with real processes: a stderr pipe that nobody
reads, a PostgreSQL session holding ``LOCK TABLE ... IN ACCESS EXCLUSIVE
MODE``, another process holding SQLite's write lock, a TCP server that
accepts and never answers, a SQLite file with one damaged page.  Each test
asserts the exit code, how long the run took (loosely: a promise of 2 s is
checked as "< 4 s"), the REPORT_FILE and what the database holds afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.chains import TARGET, Chain, build_chain, marker_says
from tests.support.dbstate import (
    add_users,
    count,
    is_sqlite,
    sqlite_path,
    sqlite_query,
    tables,
    versions,
)
from tests.support.faults import (
    child_pids,
    damage_page,
    entrypoint_argv,
    entrypoint_env,
    entrypoint_shim,
    file_digest,
    fill_pipe,
    migrate_argv,
    paused,
    pg_table_locks,
    run_with_termination_log,
    silent_server,
    sqlite_write_lock,
    stalled_pipe,
    start_stalled,
    stranger_env,
    wait_blocked,
    wait_exit,
)
from tests.support.pgserver import execute as pg_execute
from tests.support.process import Runner, report_of, run_migrate, run_split, start_migrate, summary_line, wait_until

#: SIGTERM must be honoured within 2 s in every phase (issue 12); checked as "< 4 s" for a loaded machine.
SIGNAL_BOUND = 4.0
#: What a stop may add to the limit that caused it (start-up, the last lines); generous on purpose: a
#: CI machine running servers on two cores took 6.6 s for a 2 s MIGRATION_TIMEOUT (start-up alone
#: took seconds), while the failures these bounds catch are a hang or the 10 s hard exit.
MARGIN = 7.0
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)\b")


@pytest.fixture(autouse=True)
def _no_runner_left_behind():
    yield
    Runner.kill_all()


def migrate(url: str, tmp_path: Path, *args: str, timeout: float = 90, **extra: object):
    """Run migrate.py to completion; return (result, seconds it took)."""
    started = time.monotonic()
    result = run_migrate(*args, env=stranger_env(url, tmp_path, **extra), timeout=timeout)
    return result, time.monotonic() - started


def at_target(url: str, tmp_path: Path, **extra: object) -> None:
    result, _ = migrate(url, tmp_path, **extra)
    assert result.code == 0, result.out
    assert versions(url) == [TARGET]


def migrated(url: str) -> bool:
    """Whether the database reached the shipped head (a SQLite file that was never created did not)."""
    if is_sqlite(url) and not sqlite_path(url).exists():
        return False
    return versions(url) == [TARGET]


def upgrade_to(url: str, tmp_path: Path, revision: str, **extra: object) -> None:
    result, _ = migrate(url, tmp_path, "upgrade", revision, **extra)
    assert result.code == 0, result.out
    assert versions(url) == [revision]


# --- a stalled stderr reader -----------------------------------------------------------------


def test_sigterm_with_a_stalled_stderr_reader_exits_143_promptly_and_says_so_in_report_file(db_url, tmp_path):
    report = tmp_path / "report.json"
    env = stranger_env(db_url, tmp_path, REPORT_FILE=report, MIGRATION_TIMEOUT=60)
    with stalled_pipe() as stderr:
        proc = start_stalled(migrate_argv(), env=env, stderr_fd=stderr, stdout=tmp_path / "stdout")
        wait_blocked(proc)
        proc.send_signal(signal.SIGTERM)
        code, took = wait_exit(proc, 30)
    assert code == 143, f"SIGTERM behind a stalled stderr gave exit {code} after {took:.1f}s, not 143"
    assert took < SIGNAL_BOUND, f"SIGTERM took {took:.1f}s to honour (the promise is 2 s)"
    data = report_of(report)
    assert (data["exit_code"], data["outcome"]) == (143, "interrupted"), data
    assert "SIGTERM" in data["message"]
    # The run stopped where it was blocked: it did not go on to migrate everything (the probe's exit 0).
    assert not migrated(db_url)


def test_migration_timeout_with_a_stalled_stderr_reader_exits_10_and_says_so_in_report_file(db_url, tmp_path):
    report = tmp_path / "report.json"
    env = stranger_env(db_url, tmp_path, REPORT_FILE=report, MIGRATION_TIMEOUT=2)
    with stalled_pipe() as stderr:
        started = time.monotonic()
        proc = start_stalled(migrate_argv(), env=env, stderr_fd=stderr, stdout=tmp_path / "stdout")
        code, _ = wait_exit(proc, 60)
        took = time.monotonic() - started
    assert code == 10, f"MIGRATION_TIMEOUT=2 behind a stalled stderr gave exit {code} after {took:.1f}s, not 10"
    assert took < 2 + MARGIN, f"MIGRATION_TIMEOUT=2 ended the run only after {took:.1f}s"
    data = report_of(report)
    assert (data["exit_code"], data["outcome"]) == (10, "timeout"), data
    assert "MIGRATION_TIMEOUT" in data["message"]
    assert not migrated(db_url)


def test_stderr_that_stalls_mid_migration_does_not_hold_back_sigterm(db_url, tmp_path):
    """The reader stalls while a migration runs; SIGTERM then cancels it, rolls it back, exits 143."""
    migrations = build_chain(tmp_path / "slow", ("robust_slow", "slow"))
    marker = tmp_path / "marker"
    report = tmp_path / "report.json"
    env = stranger_env(
        db_url,
        tmp_path,
        REPORT_FILE=report,
        MIGRATION_TIMEOUT=120,
        MIGRATIONS_DIR=migrations,
        MODELS="models:Base",
        ROBUST_MARKER=marker,
        ROBUST_SLOW_SECONDS=60,
        ROBUST_SLOW_MODE="statement",
    )
    read_fd, write_fd = os.pipe()
    drained = bytearray()
    stop_draining = threading.Event()

    def drain() -> None:  # a log reader that works ... until it stalls
        while not stop_draining.is_set():
            ready, _, _ = select.select([read_fd], [], [], 0.05)
            if ready:
                drained.extend(os.read(read_fd, 65536))

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = start_stalled(migrate_argv(), env=env, stderr_fd=write_fd, stdout=tmp_path / "stdout")
        wait_until(marker_says(marker, "robust_slow"), 60, "the run to reach the middle of robust_slow")
        stop_draining.set()
        reader.join(5)
        fill_pipe(write_fd)
        proc.send_signal(signal.SIGTERM)
        code, took = wait_exit(proc, 60)
    finally:
        stop_draining.set()
        os.close(write_fd)
        os.close(read_fd)
    assert code == 143, f"exit {code} after {took:.1f}s; the log so far:\n{drained.decode(errors='replace')}"
    assert took < SIGNAL_BOUND, f"SIGTERM took {took:.1f}s to honour"
    assert versions(db_url) == [TARGET], "robust_slow must have been rolled back"
    assert "robust_slow" not in tables(db_url)
    assert report_of(report)["exit_code"] == 143


def test_wrapper_mode_with_a_stalled_stderr_never_starts_the_app_after_sigterm(sqlite_url, tmp_path):
    bin_dir, _calls = entrypoint_shim(tmp_path)
    started_flag = tmp_path / "app-started"
    env = entrypoint_env(bin_dir, stranger_env(sqlite_url, tmp_path, MIGRATION_TIMEOUT=60))
    argv = entrypoint_argv("run", "--", "sh", "-c", f"touch {started_flag}")
    with stalled_pipe() as stderr:
        proc = start_stalled(argv, env=env, stderr_fd=stderr, stdout=tmp_path / "stdout")
        python = wait_until(lambda: child_pids(proc.pid), 20, "the entrypoint to start migrate.py")[0]
        wait_blocked(proc, pid=python)
        proc.send_signal(signal.SIGTERM)  # docker stop: to PID 1, the entrypoint
        try:
            code: int | None = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
    assert not started_flag.exists(), "the app started after docker stop"
    assert code == 143, (
        f"the entrypoint gave {'no exit within 10 s' if code is None else f'exit {code}'} "
        "after SIGTERM behind a stalled stderr, not 143"
    )


# --- a signal at any moment, the last ones included -------------------------------------------


def test_sigterm_at_any_moment_of_a_run_gives_0_or_143_with_a_summary_never_a_traceback(db_url, tmp_path):
    """The probe's 1-in-120 case: SIGTERM during the watchdog's shutdown gave a traceback and exit 1."""
    at_target(db_url, tmp_path)
    base = stranger_env(db_url, tmp_path, FAST_PATH="false")
    _, duration = migrate(db_url, tmp_path, FAST_PATH="false")
    rng = random.Random(12)
    outcomes: list[tuple[float, int]] = []
    for batch in range(3):
        runs = []
        for n in range(4):
            report = tmp_path / f"report-{batch}-{n}.json"
            # From well after start-up to just past the end: the shutdown is where the probe found the hole.
            delay = rng.uniform(0.3, duration + 0.1)
            runs.append((start_migrate(env={**base, "REPORT_FILE": report}), delay, report))
        started = time.monotonic()
        for proc, delay, _ in sorted(runs, key=lambda r: r[1]):
            time.sleep(max(0.0, started + delay - time.monotonic()))
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, delay, report in runs:
            out, _ = proc.communicate(timeout=60)
            code = proc.returncode
            outcomes.append((delay, code))
            assert code in (0, 143), f"SIGTERM after {delay:.2f}s gave exit {code}:\n{out}"
            assert "Traceback" not in out, out
            assert f"(exit {code})" in summary_line(out), out
            assert report.exists(), f"exit {code} after SIGTERM at {delay:.2f}s wrote no REPORT_FILE:\n{out}"
            assert report_of(report)["exit_code"] == code
    assert sum(1 for _, code in outcomes if code == 143) >= 3, f"too few signals landed: {outcomes}"
    assert versions(db_url) == [TARGET]


# --- waits that are bounded ----------------------------------------------------------------------


def test_postgresql_table_locked_by_another_session_run_verify_and_wait_end_and_report_counts_unknown(pg_url, tmp_path):
    at_target(pg_url, tmp_path)
    add_users(pg_url, "u1", "u2")
    cases = [
        ("run at target (fast path)", (), {}),
        ("run at target (full path, MIGRATION_TIMEOUT=5)", (), {"FAST_PATH": "false", "MIGRATION_TIMEOUT": 5}),
        ("verify", ("verify",), {}),
        ("wait", ("wait",), {"LOCK_TIMEOUT": 5, "MIGRATION_TIMEOUT": 5}),
    ]
    with pg_table_locks(pg_url, "user"):
        for n, (what, args, extra) in enumerate(cases):
            report = tmp_path / f"report-{n}.json"
            result, took = migrate(pg_url, tmp_path, *args, timeout=60, DB_WAIT_TIMEOUT=5, REPORT_FILE=report, **extra)
            # Bounded by DB_WAIT_TIMEOUT (+ LOCK_TIMEOUT + MIGRATION_TIMEOUT for wait): far below 10 s.
            assert took < 10, f'{what} took {took:.1f}s behind LOCK TABLE "user"'
            assert result.code == 0, f"{what}:\n{result.out}"
            assert "user=unknown" in result.out, f"{what} did not report the count of user as unknown:\n{result.out}"
            assert "user" not in report_of(report).get("row_counts", {}), report.read_text()
    assert count(pg_url, "user") == 2


def _sqlite_at_70c(sqlite_url: str, tmp_path: Path) -> Path:
    upgrade_to(sqlite_url, tmp_path, "70c7b727736e")
    return sqlite_path(sqlite_url)


def test_sqlite_write_locked_by_another_process_migration_timeout_exits_10_within_a_few_seconds(sqlite_url, tmp_path):
    db = _sqlite_at_70c(sqlite_url, tmp_path)
    report = tmp_path / "report.json"
    with sqlite_write_lock(db, "IMMEDIATE"):
        result, took = migrate(sqlite_url, tmp_path, timeout=60, MIGRATION_TIMEOUT=3, REPORT_FILE=report)
    assert result.code == 10, result.out
    assert took < 3 + MARGIN, f"MIGRATION_TIMEOUT=3 ended the run after {took:.1f}s"
    assert "host, port" not in result.out
    assert versions(sqlite_url) == ["70c7b727736e"]
    assert report_of(report)["exit_code"] == 10


def test_sqlite_write_locked_by_another_process_sigterm_is_honoured_within_2_s(sqlite_url, tmp_path):
    db = _sqlite_at_70c(sqlite_url, tmp_path)
    with sqlite_write_lock(db, "IMMEDIATE"):
        runner = Runner(stranger_env(sqlite_url, tmp_path, MIGRATION_TIMEOUT=60), tmp_path / "run.log")
        # Its first write (the history table, then the first migration) waits behind the lock.
        wait_until(lambda: "migration(s) to apply" in runner.out, 30, "the run to start upgrading", runner)
        time.sleep(1.0)  # inside SQLite's busy wait, behind the other process's write lock
        started = time.monotonic()
        runner.signal(signal.SIGTERM)
        code = runner.wait(30)
        took = time.monotonic() - started
    assert code == 143, runner.out
    assert took < SIGNAL_BOUND, f"SIGTERM took {took:.1f}s behind SQLite's write lock"
    assert versions(sqlite_url) == ["70c7b727736e"]


def test_sqlite_locked_against_readers_db_wait_timeout_exits_3_naming_the_file_not_host_and_port(sqlite_url, tmp_path):
    db = _sqlite_at_70c(sqlite_url, tmp_path)
    problems = []
    # EXCLUSIVE, not IMMEDIATE: a RESERVED lock lets readers in, so the wait itself would succeed.
    with sqlite_write_lock(db, "EXCLUSIVE"):
        procs = []
        for verb in ("run", "status", "verify"):
            env = stranger_env(sqlite_url, tmp_path, DB_WAIT_TIMEOUT=3, MIGRATION_TIMEOUT=60)
            procs.append((verb, time.monotonic(), start_migrate(*([] if verb == "run" else [verb]), env=env)))
        deadline = time.monotonic() + 15
        for verb, started, proc in procs:
            try:
                out, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
                problems.append(f"{verb}: still waiting after 15 s with DB_WAIT_TIMEOUT=3")
                continue
            took = time.monotonic() - started
            if proc.returncode != 3:
                problems.append(f"{verb}: exit {proc.returncode}, not 3:\n{out}")
            elif took >= 3 + MARGIN:
                problems.append(f"{verb}: DB_WAIT_TIMEOUT=3 ended the wait after {took:.1f}s")
            elif "host, port" in out or str(db) not in summary_line(out):
                problems.append(f"{verb}: the message does not name the locked file:\n{out}")
    assert not problems, "\n".join(problems)
    assert versions(sqlite_url) == ["70c7b727736e"]


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_server_that_accepts_and_never_answers_ends_at_db_wait_timeout_not_double(tmp_path, scheme):
    """A hung server (or a proxy with nothing behind it): TCP connects, the driver's first packet is never
    answered.  Each attempt is bounded by what is left of DB_WAIT_TIMEOUT, so no verb overstays it by a
    connect timeout of the driver's own, nor waits it twice (the probe saw 6.6 s for 3 s)."""
    # 6 s, not 4: four processes start at once, and on a loaded 2-core machine their start alone took
    # most of the 3.5 s left between one wait and two; a wait taken twice still ends past 11.5 s.
    wait_timeout = 6
    cases = [("run",), ("run", "FAST_PATH=false"), ("wait",), ("status",)]
    with silent_server() as port:
        url = f"{scheme}://app:secret@127.0.0.1:{port}/app"
        procs = []
        for number, case in enumerate(cases):
            args = [a for a in case if "=" not in a and a != "run"]
            extra = dict(a.split("=", 1) for a in case if "=" in a)
            report = tmp_path / f"report-{number}.json"
            env = stranger_env(url, tmp_path, DB_WAIT_TIMEOUT=wait_timeout, REPORT_FILE=report, **extra)
            procs.append((case, report, time.monotonic(), start_migrate(*args, env=env)))
        for case, report, started, proc in procs:
            out, _ = proc.communicate(timeout=60)
            took = time.monotonic() - started
            assert proc.returncode == 3, f"{case}: exit {proc.returncode}\n{out}"
            # It did wait, and did not wait twice.
            assert wait_timeout - 0.5 <= took < 2 * wait_timeout - 0.5, f"{case}: {took:.1f}s\n{out}"
            summary = summary_line(out)
            assert f"127.0.0.1:{port}/app" in summary and f"DB_WAIT_TIMEOUT={wait_timeout}s" in summary, summary
            assert "secret" not in out
            # DB_WAIT_TIMEOUT plus libpq's rounding to whole seconds: a connect timeout of its own (10 s)
            # would overshoot this.
            total = json.loads(report.read_text())["durations"]["total"]
            assert total < wait_timeout + 3, f"{case}: the run took {total:.1f}s of DB_WAIT_TIMEOUT={wait_timeout}s"


@pytest.mark.parametrize("shape", ["MariaDB stopped (SIGSTOP)", "a MySQL URL at a PostgreSQL port"])
def test_a_mysql_server_that_never_answers_ends_status_verify_and_wait_at_db_wait_timeout(
    mysql_server, mysql_url, pg_server, tmp_path, shape
):
    """PyMySQL reads without a timeout by default: these verbs hung past 100 s with DB_WAIT_TIMEOUT=3 (issue 25,
    N24).  Each must end with exit 3 (unreachable), well before 30 s, and leave the database as it was."""
    at_target(mysql_url, tmp_path)
    url = mysql_url
    if shape.startswith("a MySQL URL"):
        pg_port = make_url(pg_server.superuser_url).port
        url = str(make_url(mysql_url).set(port=pg_port).render_as_string(hide_password=False))
    pid = mysql_server.pid
    if shape.startswith("MariaDB") and pid is None:
        pytest.fail("TEST_MYSQL_URL's server cannot be stopped by this test; run it with the local MariaDB")
    stopped = paused(pid) if shape.startswith("MariaDB") else contextlib.nullcontext()
    results = {}
    with stopped:
        procs = [
            (verb, start_migrate(verb, env=stranger_env(url, tmp_path, DB_WAIT_TIMEOUT=3)))
            for verb in ("status", "verify", "wait")
        ]
        for verb, proc in procs:
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
            results[verb] = (proc.returncode, out)
    for verb, (code, out) in results.items():
        assert code == 3, f"{verb}: exit {code} (-9: still blocked after 30 s with DB_WAIT_TIMEOUT=3)\n{out}"
        assert "DB_WAIT_TIMEOUT=3" in summary_line(out), out
    assert versions(mysql_url) == [TARGET]


def _ended(runner: Runner, timeout: float, what: str) -> int:
    """The run's exit code; the test fails, the run killed, when ``what`` did not end it within ``timeout``."""
    try:
        return runner.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        runner.kill()
        pytest.fail(f"{what} did not end the run within {timeout} s:\n{runner.out}")


def _backend_running(url: str, fragment: str) -> int | None:
    """The pid of the PostgreSQL backend whose statement holds ``fragment``, if one runs it now."""
    rows = pg_execute(
        url, "SELECT pid FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()", (f"%{fragment}%",)
    )
    return rows[0][0] if rows else None


@pytest.mark.parametrize("stop", ["SIGTERM", "MIGRATION_TIMEOUT", "SIGTERM, the postmaster stopped too"])
def test_a_postgresql_backend_that_stops_answering_mid_migration_still_ends_the_run(pg_server, pg_url, tmp_path, stop):
    """The backend running a migration's statement is stopped (SIGSTOP): the cancel request reaches the
    postmaster, but the statement never replies; with the postmaster stopped too, the cancel request itself
    never returns.  The stop must still end the run with its own exit code and summary (REPORT_FILE); the
    migration is not applied (issue 25, N25)."""
    at_target(pg_url, tmp_path)
    chain = Chain(tmp_path / "chain")
    chain.add("n25_stuck", "op.execute('SELECT pg_sleep(600) /* n25_stuck */')")
    report = tmp_path / "report.json"
    limits = {"MIGRATION_TIMEOUT": 8} if stop == "MIGRATION_TIMEOUT" else {"MIGRATION_TIMEOUT": 600}
    runner = Runner(stranger_env(pg_url, tmp_path, **chain.env(), REPORT_FILE=report, **limits), tmp_path / "run.log")
    backend = wait_until(lambda: _backend_running(pg_url, "n25_stuck */"), 60, "the stuck statement", runner)
    postmaster = pg_server.pid if "postmaster" in stop else None
    if "postmaster" in stop and postmaster is None:
        pytest.fail("TEST_DATABASE_URL's server cannot be stopped by this test; run it with the local PostgreSQL")
    try:
        with paused(backend), paused(postmaster) if postmaster else contextlib.nullcontext():
            if stop.startswith("SIGTERM"):
                runner.signal(signal.SIGTERM)
            code = _ended(runner, 60, f"{stop} with the backend stopped")
    finally:
        runner.kill()
    expected = 143 if stop.startswith("SIGTERM") else 10
    assert code == expected, runner.out
    summary = report_of(report)
    assert summary["exit_code"] == expected, summary
    wait_until(lambda: _backend_running(pg_url, "n25_stuck */") is None, 60, "the stopped backend to end")
    assert versions(pg_url) == [TARGET]


@pytest.mark.parametrize("what", ["a server that accepts and never answers", "a SQLite file locked against readers"])
def test_sigterm_while_waiting_for_the_database_is_honoured_within_2_s(sqlite_url, tmp_path, what):
    if what.startswith("a server"):
        server = silent_server()
        port = server.__enter__()
        url = f"postgresql://app:secret@127.0.0.1:{port}/app"
    else:
        db = _sqlite_at_70c(sqlite_url, tmp_path)
        server = sqlite_write_lock(db, "EXCLUSIVE")
        server.__enter__()
        url = sqlite_url
    try:
        runner = Runner(stranger_env(url, tmp_path, DB_WAIT_TIMEOUT=60, MIGRATION_TIMEOUT=60), tmp_path / "run.log")
        time.sleep(1.5)  # well inside the wait
        assert runner.alive(), runner.out
        started = time.monotonic()
        runner.signal(signal.SIGTERM)
        code = _ended(runner, 15, f"SIGTERM while waiting for {what}")
        took = time.monotonic() - started
    finally:
        server.__exit__(None, None, None)
    assert code == 143, runner.out
    assert took < SIGNAL_BOUND, f"SIGTERM while waiting for {what} took {took:.1f}s"
    assert "waiting for the database" in summary_line(runner.out), summary_line(runner.out)


# --- reports that say only what happened -----------------------------------------------------------


def _all_tables_counted(chain: Chain) -> None:
    """Custom models without count_rows markers: every table is counted (schema.counted_tables)."""
    models = chain.path / "models.py"
    text = models.read_text()
    assert text.count('__table_args__ = {"info": {"count_rows": True}}') == 2
    models.write_text(text.replace('    __table_args__ = {"info": {"count_rows": True}}\n', ""))


def _model_tables(url: str) -> list[str]:
    return sorted(t for t in tables(url) if t not in ("alembic_version", "migrate_init_seed", "migrate_init_history"))


def _tail_chain(tmp_path: Path) -> Chain:
    chain = Chain(tmp_path / "tail")
    _all_tables_counted(chain)
    chain.add("stranger_tail", 'op.create_table("stranger_tail", sa.Column("id", sa.Integer, primary_key=True))')
    return chain


def test_sigterm_during_verification_claims_no_rollback_and_is_honoured_within_2_s(pg_url, tmp_path):
    chain = _tail_chain(tmp_path)
    upgrade_to(pg_url, tmp_path, TARGET, **chain.env())
    report = tmp_path / "report.json"
    with pg_table_locks(pg_url, *_model_tables(pg_url)):
        runner = Runner(
            stranger_env(pg_url, tmp_path, **chain.env(), REPORT_FILE=report, MIGRATION_TIMEOUT=120),
            tmp_path / "run.log",
        )
        wait_until(lambda: "Verified" in runner.out, 60, "the verification to start", runner)
        started = time.monotonic()
        runner.signal(signal.SIGTERM)
        code = runner.wait(60)
        took = time.monotonic() - started
    assert code == 143, runner.out
    assert versions(pg_url) == ["stranger_tail"], "the migration had committed before the signal"
    data = report_of(report)
    problems = []
    if "rolled back" in data["message"] or "rolled back" in summary_line(runner.out):
        problems.append(f"the message claims a rollback: {data['message']}")
    if data["to_revisions"] != ["stranger_tail"] or data["applied"] != ["stranger_tail"]:
        problems.append(
            f"REPORT_FILE says to_revisions={data['to_revisions']}, applied={data['applied']}; the "
            "version table says stranger_tail was applied"
        )
    if took >= SIGNAL_BOUND:
        problems.append(f"SIGTERM during verification (row counts behind locked tables) took {took:.1f}s")
    assert not problems, "\n".join(problems)


def test_timeout_during_verification_after_every_migration_committed_claims_no_rollback(pg_url, tmp_path):
    chain = _tail_chain(tmp_path)
    upgrade_to(pg_url, tmp_path, TARGET, **chain.env())
    report = tmp_path / "report.json"
    with pg_table_locks(pg_url, *_model_tables(pg_url)):
        # FAST_PATH=false loads the scripts before the lock, so the 3 s go to the migration and the
        # row counts, which wait about a second per locked table (11 of them): the timeout lands there.
        result, took = migrate(
            pg_url, tmp_path, timeout=90, **chain.env(), FAST_PATH="false", MIGRATION_TIMEOUT=3, REPORT_FILE=report
        )
    assert versions(pg_url) == ["stranger_tail"], f"the timeout landed before the commit:\n{result.out}"
    assert result.code == 10, result.out
    data = report_of(report)
    problems = []
    if "rolled back" in data["message"]:
        problems.append(f"the message claims a rollback: {data['message']}")
    if data["to_revisions"] != ["stranger_tail"] or data["applied"] != ["stranger_tail"]:
        problems.append(
            f"REPORT_FILE says to_revisions={data['to_revisions']}, applied={data['applied']}; the "
            "version table says stranger_tail was applied"
        )
    # Start-up and loading the scripts (FAST_PATH=false) come before the 3 s.
    if took >= 3 + 2 + MARGIN:
        problems.append(f"MIGRATION_TIMEOUT=3 ended the run after {took:.1f}s")
    assert not problems, "\n".join(problems)


_ONE_TRANSACTION_ENV = '''
"""An env.py without transaction_per_migration: every migration of a run in one transaction."""
from alembic import context

context.configure(connection=context.config.attributes["connection"], target_metadata=None,
                  transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
'''


def test_applied_lists_only_what_the_version_table_says_when_one_transaction_is_rolled_back(db_url, tmp_path):
    chain = Chain(tmp_path / "one_tx")
    chain.add("stranger_one", 'op.create_table("stranger_one", sa.Column("id", sa.Integer, primary_key=True))')
    chain.add(
        "stranger_two",
        'op.create_table("stranger_two", sa.Column("id", sa.Integer, primary_key=True))\n'
        'raise RuntimeError("stranger_two fails on purpose")',
    )
    upgrade_to(db_url, tmp_path, TARGET, **chain.env())
    (chain.path / "env.py").write_text(_ONE_TRANSACTION_ENV)
    report = tmp_path / "report.json"
    result, _ = migrate(db_url, tmp_path, **chain.env(), ENABLE_FALLBACK_CREATE="false", REPORT_FILE=report)
    assert result.code == 1, result.out
    data = report_of(report)
    after = versions(db_url)
    assert data["to_revisions"] == after, data
    # Whether stranger_one stayed (migrate-init commits per migration) or went with the one
    # transaction, the report says what the version table says.
    expected_applied = {(TARGET,): [], ("stranger_one",): ["stranger_one"]}[tuple(after)]
    assert data["applied"] == expected_applied, f"version table {after}, report {data['applied']}"
    assert ("stranger_one" in tables(db_url)) == (after == ["stranger_one"])


@pytest.mark.parametrize("how", ["garbage", "cell"])
def test_damaged_sqlite_page_is_exit_1_with_the_file_and_the_backup_folder_untouched(sqlite_url, tmp_path, how):
    db = _sqlite_at_70c(sqlite_url, tmp_path)
    sqlite_query(sqlite_url, "INSERT INTO tool (id, name) VALUES ('t1', 'hammer')")
    damage_page(db, "tool", how)
    before = file_digest(db)
    backups = tmp_path / "backups"
    report = tmp_path / "report.json"
    result, _ = migrate(sqlite_url, tmp_path, BACKUP_DIR=backups, REPORT_FILE=report)
    assert result.code == 1, result.out
    assert "verification passed" not in result.out
    assert file_digest(db) == before, "the damaged file was written to"
    assert not Path(f"{db}-journal").exists() and not Path(f"{db}-wal").exists()
    assert not backups.exists() or not list(backups.iterdir()), list(backups.iterdir())
    message = report_of(report)["message"]
    assert any(word in message for word in ("damaged", "malformed", "quick_check")), message


# --- log lines and the termination message -------------------------------------------------------------


def test_every_log_line_starts_with_an_iso_8601_utc_timestamp_in_text_and_json(db_url, tmp_path):
    code, _stdout, stderr = run_split(env=stranger_env(db_url, tmp_path))
    assert code == 0, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) > 5, stderr
    assert all(ISO_UTC.match(line) for line in lines), [line for line in lines if not ISO_UTC.match(line)]
    code, _stdout, stderr = run_split("verify", env=stranger_env(db_url, tmp_path, LOG_FORMAT="json"))
    assert code == 0, stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert records, stderr
    assert all(ISO_UTC.match(record.get("time", "")) for record in records), records


def test_termination_message_is_cut_by_bytes_and_stays_valid_json(sqlite_url, tmp_path):
    chain = Chain(tmp_path / "long_error")
    chain.add("stranger_long", 'raise RuntimeError("Fehler: Datenbank überlastet, äöü ß " * 400)')
    env = stranger_env(sqlite_url, tmp_path, **chain.env(), ENABLE_FALLBACK_CREATE="false")
    env.pop("REPORT_FILE")  # unset: /dev/termination-log, as in a Kubernetes container
    code, out, message = run_with_termination_log(migrate_argv(), env=env, folder=tmp_path)
    assert code == 1, out
    assert message, f"nothing was written to /dev/termination-log:\n{out}"
    assert len(message) <= 4096, f"{len(message)} bytes: the kubelet cuts at 4096"
    data = json.loads(message.decode("utf-8"))
    assert data["exit_code"] == 1 and "stranger_long" in json.dumps(data), data
