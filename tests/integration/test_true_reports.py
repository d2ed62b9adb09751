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
from pathlib import Path

from tests.integration.test_env_shapes import write_revision
from tests.support import FIXTURES, myserver
from tests.support.dbstate import versions
from tests.support.process import Runner, operator_env, report_of, summary_line, wait_until


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
