"""Issue 2, the exit-code table: every code a run can produce, on real databases.

0, 1, 6 and 7 after a fallback are proved in test_upgrade.py, 2 in
test_config.py; here are 3 (unreachable), 4 (refused, never retried), 7
(verification without an upgrade) and 10 (MIGRATION_TIMEOUT), each with the
state the database is left in, on SQLite, PostgreSQL and MariaDB (``any_url``).
The rest of the MariaDB wait (a server starting up, a bad password, a missing
grant, an unknown database) is in test_error_kinds.py.
"""

from __future__ import annotations

import time

import pytest

from migrate_init.url import parse as parse_url
from tests.support.chains import TARGET, Chain
from tests.support.dbstate import (
    in_progress,
    is_sqlite,
    schema,
    sqlite_path,
    still_running,
    tables,
    versions,
)
from tests.support.locks import migration_lock_free
from tests.support.network import free_port
from tests.support.process import Result, give_away, run_migrate, run_unprivileged, summary_line


def timed_migrate(*args: str, env: dict) -> tuple[Result, float]:
    started = time.monotonic()
    result = run_migrate(*args, env=env)
    return result, time.monotonic() - started


# -- 3: unreachable within DB_WAIT_TIMEOUT --------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "host"),
    [
        ("postgresql", "127.0.0.1:{port}"),
        ("postgresql", "nonexistent.invalid"),
        ("mysql", "127.0.0.1:{port}"),
        ("mariadb", "nonexistent.invalid"),
    ],
    ids=["connection-refused", "dns-failure", "mysql-connection-refused", "mariadb-dns-failure"],
)
def test_unreachable_database_exits_3_after_db_wait_timeout(scheme, host):
    url = f"{scheme}://app:secret@{host.format(port=free_port())}/app"

    result, elapsed = timed_migrate(env={"DATABASE_URL": url, "DB_WAIT_TIMEOUT": "1"})

    assert result.code == 3, result.out
    assert "DB_WAIT_TIMEOUT=1s" in summary_line(result.out)
    assert "Waiting for the database" in result.out  # it was retried, not given up on
    # Generous: one DNS lookup may take a few seconds on a machine without a resolver.
    assert elapsed < 30, f"took {elapsed:.1f}s with DB_WAIT_TIMEOUT=1"
    assert "secret" not in result.out


# -- 4: read-only SQLite folder or file, never retried ---------------------------------------
# migrate.py runs as an ordinary user (run_unprivileged), since root ignores file modes.


def test_read_only_sqlite_folder_exits_4_and_creates_nothing(shared_tmp):
    folder = shared_tmp / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    url = f"sqlite:///{folder / 'webui.db'}"

    started = time.monotonic()
    result = run_unprivileged(env={"DATABASE_URL": url, "DB_WAIT_TIMEOUT": "30"})

    assert result.code == 4, result.out
    assert str(folder) in summary_line(result.out)
    assert time.monotonic() - started < 15, "a permission error must not be retried"
    assert list(folder.iterdir()) == []


def test_sqlite_folder_that_cannot_be_created_exits_4(shared_tmp):
    parent = shared_tmp / "readonly"
    parent.mkdir()
    parent.chmod(0o555)
    url = f"sqlite:///{parent / 'data' / 'webui.db'}"

    result = run_unprivileged(env={"DATABASE_URL": url, "DB_WAIT_TIMEOUT": "30"})

    assert result.code == 4, result.out
    assert str(parent / "data") in summary_line(result.out)
    assert not (parent / "data").exists()


def test_read_only_sqlite_file_exits_4_and_is_left_unchanged(shared_tmp):
    folder = shared_tmp / "data"
    folder.mkdir()
    give_away(folder)  # the run may write here; only the database file is read-only
    url = f"sqlite:///{folder / 'webui.db'}"
    built = run_unprivileged("upgrade", "70c7b727736e", env={"DATABASE_URL": url})
    assert built.code == 0, built.out
    database = sqlite_path(url)
    database.chmod(0o444)
    content = database.read_bytes()

    result = run_unprivileged(env={"DATABASE_URL": url, "DB_WAIT_TIMEOUT": "30"})

    assert result.code == 4, result.out
    assert str(database) in summary_line(result.out)
    assert database.read_bytes() == content
    assert versions(url) == ["70c7b727736e"]


# -- 7: verification fails ----------------------------------------------------------------


def test_auto_migration_off_on_an_empty_database_exits_7_and_migrates_nothing(any_url):
    result = run_migrate(env={"DATABASE_URL": any_url, "ENABLE_AUTO_MIGRATION": "false", "DB_WAIT_TIMEOUT": "5"})

    assert result.code == 7, result.out
    assert "missing tables" in summary_line(result.out)
    assert "user" in summary_line(result.out)
    assert "Running upgrade" not in result.out
    if not is_sqlite(any_url) or sqlite_path(any_url).exists():
        assert tables(any_url) == set()


def test_auto_migration_off_with_a_pending_column_exits_7_naming_it(any_url):
    built = run_migrate("upgrade", "70c7b727736e", env={"DATABASE_URL": any_url})
    assert built.code == 0, built.out

    result = run_migrate(env={"DATABASE_URL": any_url, "ENABLE_AUTO_MIGRATION": "false"})

    assert result.code == 7, result.out
    assert "phone" in summary_line(result.out)
    assert versions(any_url) == ["70c7b727736e"]
    assert "phone" not in schema(any_url)["user"]


def test_auto_migration_off_at_target_exits_0(any_url):
    built = run_migrate(env={"DATABASE_URL": any_url})
    assert built.code == 0, built.out

    result = run_migrate(env={"DATABASE_URL": any_url, "ENABLE_AUTO_MIGRATION": "false"})

    assert result.code == 0, result.out
    assert versions(any_url) == [TARGET]


# -- 10: MIGRATION_TIMEOUT -------------------------------------------------------------------

SLOW_REVISION = "c0ffee005105"
CREATE_SLOW_TABLE = """
ops.create_table_if_missing("slow_table", sa.Column("id", sa.Integer, primary_key=True))
"""
# Each takes far longer than the test allows: only a cancel ends them in time.  Sent while SLOW is set,
# so that the run after the timeout applies the revision.
SLOW_STATEMENT = {
    "postgresql": 'op.execute("SELECT pg_sleep(60)")',
    "mysql": 'op.execute("SELECT SLEEP(60)")',
    "sqlite": 'op.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c '
    'WHERE x < 100000000000) SELECT count(*) FROM c")',
}
ONLY_WHILE_SLOW = 'if os.environ.get("SLOW"):\n    '
MARK_INSIDE = 'Path(os.environ["SLOW"]).write_text("inside")\n'

#: What each statement's text holds, to find it on the server.
SLOW_TEXT = {"postgresql": "pg_sleep(60)", "mysql": "SLEEP(60)"}


def test_migration_timeout_cancels_the_running_statement_and_rolls_back_what_the_engine_can(any_url, tmp_path):
    """Where DDL is not transactional (MySQL/MariaDB) the statement is cancelled too (KILL QUERY), but the
    table the migration created before it stays committed: the revision is recorded as interrupted."""
    engine = parse_url(any_url).engine
    migrations = Chain(tmp_path / "core_slow_migrations")
    body = CREATE_SLOW_TABLE + ONLY_WHILE_SLOW + MARK_INSIDE + "    " + SLOW_STATEMENT[engine.name]
    migrations.add(SLOW_REVISION, body, down=TARGET, name="slow_migration")
    built = run_migrate(env={"DATABASE_URL": any_url})
    assert built.code == 0, built.out
    env = {"DATABASE_URL": any_url, "MIGRATIONS_DIR": migrations.path, "MODELS": "models:Base"}
    inside = tmp_path / "inside"

    result, elapsed = timed_migrate(
        # 3 s, not 1: the timeout must fall in the slow statement, after the table was created; on a
        # loaded CI machine 1 s ran out before CREATE TABLE on MariaDB (no slow_table to find).
        env={**env, "MIGRATION_TIMEOUT": "3", "SLOW": str(inside)}
    )

    assert result.code == 10, result.out
    assert inside.read_text() == "inside"  # the timeout struck inside the slow revision
    summary = summary_line(result.out)
    assert "MIGRATION_TIMEOUT=3s" in summary, summary
    assert elapsed < 20, f"took {elapsed:.1f}s: the statement was not cancelled"
    assert versions(any_url) == [TARGET]
    assert migration_lock_free(any_url), "MIGRATION_TIMEOUT must release the migration lock"
    if not engine.file_based:
        # The server stopped the statement (a cancel, KILL QUERY): it does not run on after the process
        # left (nor hold its session, and with it the migration lock, until the server notices).
        assert still_running(any_url, SLOW_TEXT[engine.name]) == 0, "the cancel did not reach the server"
    if engine.transactional_ddl:
        assert "slow_table" not in tables(any_url)
        # Nothing was left half-done: the next run applies the revision whole.
        again = run_migrate(env={**env, "LOCK_TIMEOUT": "3"})
        assert again.code == 0, again.out
        assert versions(any_url) == [SLOW_REVISION]
        assert "slow_table" in tables(any_url)
    else:  # the next run stops and names `migrate.py resolve` (test_mysql_engine.py)
        assert "slow_table" in tables(any_url)
        assert in_progress(any_url) == [SLOW_REVISION]
        assert "rolled back" not in summary, result.out
