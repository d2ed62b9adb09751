"""Issue 25 "Reports that lie": the summary and REPORT_FILE say what the database holds.

Each shape is the one the stranger found, on the engine where it lies: a stop
right after a MySQL/MariaDB migration committed (N19), a failed seed after an
earlier one's DDL committed (N20), a stop during a ``.py`` seed (N21), a full
disk (N22), an unknown version row under ``stamp`` and a session the server
ends (N35).  Real databases, migrate.py as a real process, real signals; each
test asserts the exit code and the database's state, then the words.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.test_env_shapes import write_revision
from tests.integration.test_stops_and_bounds import _backend_running
from tests.support import FIXTURES, MIGRATE, mounts, myserver
from tests.support.chains import TARGET
from tests.support.dbstate import count, query, sqlite_path, versions
from tests.support.pgserver import execute as pg_execute
from tests.support.process import (
    Runner,
    child_env,
    kill_group,
    operator_env,
    report_of,
    run_migrate,
    summary_line,
    wait_until,
)


def project(tmp_path: Path, *revisions: tuple[str, str]) -> Path:
    """Plain ``alembic init``'s project (tests/fixtures/generic_env/) with ``revisions`` chained in order."""
    shutil.copytree(FIXTURES / "generic_env", tmp_path / "generic")
    folder = tmp_path / "generic" / "alembic"
    shutil.rmtree(folder / "versions")
    (folder / "versions").mkdir()
    down = None
    for revision, body in revisions:
        write_revision(folder / "versions", revision, down, body)
        down = revision
    return folder


_A1 = 'op.create_table("item", sa.Column("id", sa.Integer, primary_key=True))'
_B2_SLOW = 'time.sleep(60)\nop.add_column("item", sa.Column("b", sa.Integer))'
_C3 = 'op.add_column("item", sa.Column("c", sa.Integer))'


# -- N19: a stop after a MySQL/MariaDB migration committed -------------------------------------


def start_slow_chain(url: str, tmp_path: Path) -> tuple[Runner, Path]:
    """A run of a1, a b2 that sleeps a minute, c3, writing REPORT_FILE; and that report's path."""
    folder = project(tmp_path, ("a1", _A1), ("b2", _B2_SLOW), ("c3", _C3))
    report = tmp_path / "report.json"
    env = operator_env(url, tmp_path, MIGRATIONS_DIR=folder, REPORT_FILE=report)
    return Runner(env, tmp_path / "run.log"), report


def test_sigterm_after_a1_committed_on_mariadb_says_the_database_is_at_a1(mysql_url, tmp_path):
    """Issue 25 N19: the summary and REPORT_FILE said "at base (0 of 3)" while the database held a1."""
    runner, report = start_slow_chain(mysql_url, tmp_path)
    wait_until(lambda: "Applied a1" in runner.out, 60, "a1 applied", runner)
    wait_until(lambda: "Applying a1 -> b2" in runner.out, 30, "b2 started", runner)

    runner.signal(signal.SIGTERM)
    code = runner.wait(30)

    assert code == 143, runner.out
    assert versions(mysql_url) == ["a1"]
    summary = summary_line(runner.out)
    assert "at a1 (1 of 3 applied)" in summary, summary
    data = report_of(report)
    assert data["to_revisions"] == ["a1"], data


def test_sigterm_when_the_version_table_cannot_be_read_back_says_unknown_not_base(mysql_url, tmp_path):
    """Issue 25 N19: a read-back that fails (here a session holds the version table) is "unknown", not base."""
    runner, report = start_slow_chain(mysql_url, tmp_path)
    wait_until(lambda: "Applying a1 -> b2" in runner.out, 60, "b2 started", runner)
    holder = myserver.connect(mysql_url)
    try:
        holder.cursor().execute("LOCK TABLES alembic_version WRITE")

        runner.signal(signal.SIGTERM)
        code = runner.wait(90)
    finally:
        holder.close()

    assert code == 143, runner.out
    assert versions(mysql_url) == ["a1"]
    summary = summary_line(runner.out)
    assert "unknown" in summary and "at base" not in summary, summary
    assert report_of(report)["to_revisions"] is None


# -- N20, N21: what the seeds did ----------------------------------------------------------------


def test_a_failed_seed_after_one_whose_table_committed_on_mariadb_says_so_and_the_next_run_proceeds(
    mysql_url, tmp_path
):
    """Issue 25 N20: "every seed was rolled back" while seed 01's table stayed; every later run failed."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "01-table.sql").write_text("CREATE TABLE seeded_extra (id INT PRIMARY KEY);\n")
    (seeds / "02-broken.sql").write_text("INSERT INTO no_such_table (id) VALUES (1);\n")
    env = operator_env(mysql_url, tmp_path, SEED_DIR=seeds)

    failed = run_migrate(env=env)
    (seeds / "02-broken.sql").write_text("INSERT INTO seeded_extra (id) VALUES (1);\n")
    fixed = run_migrate(env=env)

    assert failed.code == 1, failed.out
    summary = summary_line(failed.out)
    assert "02-broken.sql" in summary and "Every seed was rolled back" not in summary, summary
    assert "01-table.sql" in summary, summary
    assert fixed.code == 0, fixed.out
    assert query(mysql_url, "SELECT id FROM seeded_extra") == [(1,)]
    assert sorted(r[0] for r in query(mysql_url, "SELECT name FROM migrate_init_seed")) == [
        "01-table.sql",
        "02-broken.sql",
    ]


def test_sigterm_during_a_py_seed_that_then_commits_names_the_seed_in_the_summary(any_url, tmp_path):
    """Issue 25 N21: the seed was committed and recorded, yet the summary said seeded []."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    started = tmp_path / "seed-started"
    (seeds / "01-slow.py").write_text(
        textwrap.dedent(f"""
        import time
        from pathlib import Path

        from sqlalchemy import text

        connection.execute(text("INSERT INTO config (data, version, created_at, updated_at) VALUES ('{{}}', 1, 0, 0)"))
        Path({str(started)!r}).write_text("started")
        time.sleep(3)
    """)
    )
    report = tmp_path / "report.json"
    runner = Runner(operator_env(any_url, tmp_path, SEED_DIR=seeds, REPORT_FILE=report), tmp_path / "run.log")
    wait_until(started.exists, 120, "the seed started", runner)

    runner.signal(signal.SIGTERM)
    code = runner.wait(60)

    assert code == 143, runner.out
    recorded = query(any_url, "SELECT name FROM migrate_init_seed")
    rows = count(any_url, "config")
    data = report_of(report)
    if recorded:  # the seed ran to its end and committed: the summary says so
        assert (recorded, rows) == ([("01-slow.py",)], 1)
        assert data["seeded"] == ["01-slow.py"], data
        assert "01-slow.py" in summary_line(runner.out), runner.out
    else:
        assert rows == 0 and data["seeded"] == [], data


# -- N22: a full disk ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["24k", "48k", "96k"])
def test_a_full_disk_during_the_first_migrations_is_reported_as_a_full_disk_with_what_was_applied(tmp_path, size):
    """Issue 25 N22: a commit that found the disk full read "env.py failed after Alembic had applied 7e5b..."

    The sizes put the full disk in a migration's statements (24k) and in a
    migration's commit, once with nothing committed before it (48k) and once
    with some (96k); where it falls depends on the pages SQLite writes, so each
    run is judged by what its database holds.
    """
    with mounts.tmpfs(tmp_path / "small", size) as volume:
        db = volume / "webui.db"
        url = f"sqlite:///{db}"
        report = tmp_path / "report.json"

        result = run_migrate(env=operator_env(url, tmp_path, BACKUP_KEEP=0, REPORT_FILE=report))

        assert result.code == 1, result.out
        summary = summary_line(result.out)
        assert f"The disk that holds the SQLite database {db} is full" in summary, summary
        assert "env.py" not in summary, summary
        held = versions(url)
        if held:
            assert f"the database is at {held[0]}" in summary, summary
        else:
            assert "nothing was applied" in summary, summary
        assert report_of(report)["outcome"] == "disk_full"


# -- N35: errors that had no name ----------------------------------------------------------------


def test_stamp_over_a_version_row_these_scripts_do_not_know_names_it_and_changes_nothing(db_url, tmp_path):
    """Issue 25 N35: ``stamp`` over an unknown version row was "Unexpected CommandError"."""
    env = operator_env(db_url, tmp_path)
    assert run_migrate(env=env).code == 0
    query(db_url, "UPDATE alembic_version SET version_num = 'feedface0001'")

    result = run_migrate("stamp", TARGET, env=env)

    assert result.code == 6, result.out
    summary = summary_line(result.out)
    assert "Unexpected" not in summary, summary
    assert "feedface0001" in summary and TARGET in summary and "--purge" in summary, summary
    assert versions(db_url) == ["feedface0001"]


def test_a_migration_session_the_server_ends_is_named_with_its_revision(pg_url, tmp_path):
    """Issue 25 N35: pg_terminate_backend of the migration's session names b2, in REPORT_FILE too."""
    folder = project(tmp_path, ("a1", _A1), ("b2", 'op.execute("SELECT pg_sleep(60)")'), ("c3", _C3))
    report = tmp_path / "report.json"
    runner = Runner(operator_env(pg_url, tmp_path, MIGRATIONS_DIR=folder, REPORT_FILE=report), tmp_path / "run.log")
    pid = wait_until(lambda: _backend_running(pg_url, "pg_sleep(60)"), 60, "b2's statement", runner)

    pg_execute(pg_url, "SELECT pg_terminate_backend(%s)", (pid,))
    code = runner.wait(60)

    assert code == 3, runner.out
    summary = summary_line(runner.out)
    assert "Unexpected" not in summary and "lost during revision b2" in summary, summary
    assert versions(pg_url) == ["a1"]
    assert report_of(report)["failed_revision"] == "b2"


def test_the_lock_session_ended_by_the_server_mid_migration_says_what_was_applied(pg_url, tmp_path):
    """Issue 25 N35: the session holding the lock ended mid-run: "check the host and port", nothing named.

    And the run went on without the lock until it read the version table back: it now notices
    before b2 commits, and stops there (b2 rolled back, c3 never begun).
    """
    started = tmp_path / "b2-started"
    b2 = (
        f'from pathlib import Path\nPath({str(started)!r}).write_text("x")\ntime.sleep(3)\n'
        'op.add_column("item", sa.Column("b", sa.Integer))'
    )
    folder = project(tmp_path, ("a1", _A1), ("b2", b2), ("c3", _C3))
    runner = Runner(operator_env(pg_url, tmp_path, MIGRATIONS_DIR=folder), tmp_path / "run.log")
    wait_until(started.exists, 60, "b2 started", runner)

    ended = pg_execute(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'")
    code = runner.wait(60)

    assert ended == [(True,)]
    assert code == 3, runner.out
    summary = summary_line(runner.out)
    held = versions(pg_url)
    assert "Check the host" not in summary and "Unexpected" not in summary, summary
    assert "session that held the migration lock" in summary, summary
    assert f"the database is at {', '.join(held)}" in summary, summary
    assert held == ["a1"] and "Migration b2 was stopped before its commit" in summary, summary


# -- N32: a stop before the watchdog ---------------------------------------------------------------


def _held_sigterm() -> None:
    """In the child before exec: SIGTERM blocked, as PID 1 without a handler would drop it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def test_a_sigterm_before_migrate_py_runs_its_first_line_ends_the_run_with_143_and_nothing_applied(
    sqlite_url, tmp_path
):
    """Issue 25 N32: an early SIGTERM was lost (PID 1) or ended the process with no summary.

    The SIGTERM is sent before migrate.py runs a line, while the launcher keeps
    it blocked (the one way a signal that early is not lost): it must be taken
    by migrate.py's first lines and honoured, not left pending while the run
    migrates to exit 0.
    """
    report = tmp_path / "report.json"
    env = child_env(operator_env(sqlite_url, tmp_path, REPORT_FILE=report))
    with open(tmp_path / "run.log", "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [sys.executable, str(MIGRATE)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_held_sigterm,
            start_new_session=True,
        )
    try:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    out = (tmp_path / "run.log").read_text()

    assert code == 143, out
    assert "SIGTERM" in summary_line(out), out
    assert report_of(report)["exit_code"] == 143
    assert not sqlite_path(sqlite_url).parent.exists()  # honoured before anything was touched
