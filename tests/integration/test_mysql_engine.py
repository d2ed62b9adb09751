"""Issue 15: what only MySQL/MariaDB do, on the real MariaDB test server.

MySQL commits each DDL statement on its own, so a migration stopped half-way
stays half-applied.  migrate-init records the revision under way in
``migrate_init_progress`` (migrate_init/progress.py) and the next run acts on
the record: it runs an idempotent revision again, clears a stale record, or
stops (exit 1) naming ``migrate.py resolve REV``.  Here: that cycle with a
migrator killed inside a revision, both ways out of it (``resolve`` and
``alembic stamp``), the GET_LOCK migration lock being per database, and
DDL_LOCK_TIMEOUT as lock_wait_timeout.

What MariaDB shares with SQLite and PostgreSQL runs through ``any_url`` in the
other files (test_upgrade.py, test_commands.py, test_fastpath.py, a held lock in
test_faults.py, ``stamp`` adopting a database in test_any_project.py...).
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.chains import TARGET, Chain
from tests.support.dbstate import (
    PROGRESS_TABLE,
    columns,
    database_name,
    in_progress,
    my_query,
    running_upgrade_lines,
    schema,
    tables,
    versions,
)
from tests.support.locks import my_lock_held
from tests.support.myserver import connect as my_connect
from tests.support.process import operator_env, run_migrate, summary_line

HALF = "c0ffee00dead"
#: Creates its table (committed at once on MySQL), then the migrator dies: SIGKILL, no cleanup.
DIES_HALF_WAY = """
ops.create_table_if_missing("half_done", sa.Column("id", sa.Integer, primary_key=True))
if os.environ.get("DIE_HALF_WAY"):
    os.kill(os.getpid(), 9)
ops.add_column_if_missing("half_done", sa.Column("note", sa.Text, nullable=True))
"""


def migrate(url, tmp_path, *args, **extra):
    return run_migrate(*args, env=operator_env(url, tmp_path, REPORT_FILE="-", **extra))


# --- a migrator killed inside a revision that is not idempotent ---------------------------------


def _killed_inside(url: str, tmp_path) -> Chain:
    chain = Chain(tmp_path / "migrations")
    chain.add(HALF, DIES_HALF_WAY, name="half_done")
    killed = migrate(url, tmp_path, **chain.env(), DIE_HALF_WAY="1")
    assert killed.code == -signal.SIGKILL, killed.out
    assert versions(url) == [TARGET]
    assert in_progress(url) == [HALF]
    assert "half_done" in tables(url) and columns(url, "half_done") == {"id"}
    return chain


@pytest.mark.parametrize("way_out", ["resolve", "alembic stamp"])
def test_a_killed_migration_that_is_not_idempotent_stops_the_next_run_until_an_operator_resolves_it(
    mysql_url, tmp_path, way_out
):
    chain = _killed_inside(mysql_url, tmp_path)

    stopped = migrate(mysql_url, tmp_path, **chain.env())

    assert stopped.code == 1, stopped.out
    summary = summary_line(stopped.out)
    assert f"Migration {HALF} ({chain.file_of(HALF)}) was interrupted on an earlier run" in summary, summary
    assert f"'migrate.py resolve {HALF}'" in summary and f"'migrate.py alembic stamp {HALF}'" in summary
    assert running_upgrade_lines(stopped.out) == []
    assert in_progress(mysql_url) == [HALF] and versions(mysql_url) == [TARGET]

    if way_out == "resolve":
        my_query(mysql_url, "DROP TABLE half_done")  # the operator undoes the part that was applied
        resolved = migrate(mysql_url, tmp_path, "resolve", HALF, **chain.env())
        assert resolved.code == 0, resolved.out
        assert f"Resolved {HALF}: it is no longer recorded as interrupted" in summary_line(resolved.out)
        assert in_progress(mysql_url) == [] and versions(mysql_url) == [TARGET]
        result = migrate(mysql_url, tmp_path, **chain.env())
        assert result.code == 0, result.out
        assert f"Running upgrade {TARGET} -> {HALF}, half_done" in result.out  # applied whole
    else:
        my_query(mysql_url, "ALTER TABLE half_done ADD COLUMN note TEXT")  # the operator finishes it by hand
        stamped = migrate(mysql_url, tmp_path, "alembic", "stamp", HALF, **chain.env())
        assert stamped.code == 0, stamped.out
        result = migrate(mysql_url, tmp_path, **chain.env())
        assert result.code == 0, result.out
        assert f"Cleared the record of {HALF} as in progress: the version table already has it." in result.out
        assert running_upgrade_lines(result.out) == []
    assert versions(mysql_url) == [HALF]
    assert in_progress(mysql_url) == []
    assert columns(mysql_url, "half_done") == {"id", "note"}


def test_resolve_refuses_a_revision_that_is_not_recorded_and_an_engine_that_records_none(
    mysql_url, sqlite_url, tmp_path
):
    assert migrate(mysql_url, tmp_path).code == 0

    unknown = migrate(mysql_url, tmp_path, "resolve", "ef6fab585ac1")
    on_sqlite = migrate(sqlite_url, tmp_path, "resolve", "ef6fab585ac1")

    assert unknown.code == 2, unknown.out
    assert "no interrupted migration ef6fab585ac1 is recorded" in summary_line(unknown.out)
    assert "(recorded: none)" in summary_line(unknown.out)
    assert on_sqlite.code == 2, on_sqlite.out
    assert "only MySQL/MariaDB record interrupted migrations" in summary_line(on_sqlite.out)
    assert versions(mysql_url) == [TARGET]


def test_a_successful_run_leaves_no_revision_recorded_as_under_way(mysql_url, tmp_path):
    result = migrate(mysql_url, tmp_path)

    assert result.code == 0, result.out
    # The bookkeeping table stays, empty; it is migrate-init's, like alembic_version.
    assert PROGRESS_TABLE in tables(mysql_url)
    assert in_progress(mysql_url) == []


# --- the GET_LOCK migration lock ----------------------------------------------------------------------


def test_the_lock_is_per_database_so_two_databases_migrate_side_by_side(mysql_server, mysql_url, tmp_path):
    other = mysql_server.create_database(f"{database_name(mysql_url)}_b")
    try:
        with my_lock_held(other):
            result = migrate(mysql_url, tmp_path, LOCK_TIMEOUT=1)
        assert result.code == 0, result.out
        assert versions(mysql_url) == [TARGET]
    finally:
        mysql_server.drop_database(f"{database_name(mysql_url)}_b")


# --- DDL_LOCK_TIMEOUT is lock_wait_timeout ---------------------------------------------------------------


def test_an_alter_behind_an_open_transaction_gives_up_after_ddl_lock_timeout_and_its_retries(mysql_url, tmp_path):
    """lock_wait_timeout bounds each try; an idempotent revision is tried again DDL_LOCK_RETRIES
    times, then the run gives up (exit 1, no fallback) and the next run, the table free, applies it."""
    chain = Chain(tmp_path / "migrations")
    chain.add(
        "a1te40000001",
        'ops.add_column_if_missing("user", sa.Column("nick", sa.String(20), nullable=True))',
        name="add_nick",
        idempotent=True,
    )
    assert migrate(mysql_url, tmp_path).code == 0
    reader = my_connect(mysql_url, autocommit=False)
    try:
        with reader.cursor() as cursor:
            cursor.execute("START TRANSACTION")
            cursor.execute("SELECT COUNT(*) FROM user")  # an application's transaction holds its metadata lock
        started = time.monotonic()
        result = migrate(
            mysql_url, tmp_path, **chain.env(), DDL_LOCK_TIMEOUT=1, DDL_LOCK_RETRIES=1, MIGRATION_TIMEOUT=60
        )
        took = time.monotonic() - started
    finally:
        reader.rollback()
        reader.close()

    assert result.code == 1, result.out
    summary = summary_line(result.out)
    assert "DDL_LOCK_TIMEOUT=1s" in summary and "DDL_LOCK_RETRIES=1" in summary, summary
    assert "a1te40000001" in summary, summary
    assert "FALLBACK" not in result.out
    assert result.out.count("Running upgrade merge_heads_final -> a1te40000001") == 2, result.out
    assert 2 <= took < 20, f"took {took:.1f}s with DDL_LOCK_TIMEOUT=1 and one retry"
    assert "nick" not in schema(mysql_url)["user"]
    assert versions(mysql_url) == [TARGET]

    again = migrate(mysql_url, tmp_path, **chain.env())

    assert again.code == 0, again.out
    assert "nick" in schema(mysql_url)["user"]
    assert versions(mysql_url) == ["a1te40000001"] and in_progress(mysql_url) == []
