"""A migration lock lost while held, attacked from the sides the first test of it did not cover.

Every test runs migrate.py as a real process against a real SQLite file or the
real PostgreSQL/MariaDB test server; a revision takes the run's lock away from
outside the run (the lock file deleted, the lock session terminated or killed),
as an administrator, a pooler's timeout or an operator's clean-up would.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_faults import run
from tests.integration.test_seed import SEEDS
from tests.support.chains import TARGET, Chain
from tests.support.dbstate import count, database_name, is_sqlite, tables, versions
from tests.support.locks import TAKE_THE_LOCK_AWAY_ONCE, lock_away_env
from tests.support.pgbouncer import POOL_MODES, PgBouncer, in_front_of
from tests.support.pgserver import PgServer
from tests.support.process import operator_env, run_migrate, summary_line

#: Takes the run's migration lock away and fails, once: the next run's migration succeeds.
_TAKE_THE_LOCK_AWAY_THEN_FAIL = (
    TAKE_THE_LOCK_AWAY_ONCE
    + """
if took:
    op.execute("INSERT INTO lost_no_such_table (id) VALUES (1)")
op.execute("CREATE TABLE lost_model (id INTEGER PRIMARY KEY)")
"""
)

_LOST_MODEL = """
class LostModel(Base):
    __tablename__ = "lost_model"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
"""


def test_a_migration_that_fails_after_the_lock_was_lost_runs_no_fallback_and_exits_5(any_url, tmp_path):
    """The create_all fallback writes to the database too: without the lock another migrator may
    be running beside it, so a failure found with the lock gone stops there (exit 5; exit 3 on a
    server, whose lock session is the reader's)."""
    chain = Chain(tmp_path / "lost")
    chain.add("lost_one", 'op.execute("CREATE TABLE lost_one (id INTEGER)")')
    chain.add("lost_two", _TAKE_THE_LOCK_AWAY_THEN_FAIL, idempotent=True)  # MySQL records it as interrupted
    chain.append_models(_LOST_MODEL)
    extra = lock_away_env(any_url, tmp_path / "lost.marker")
    first = run(any_url, tmp_path, chain.path, name="lost", **extra)
    if is_sqlite(any_url):
        assert first.proc.returncode == 5, first.out
        assert "lost the migration lock" in first.out and "no create_all fallback" in first.out, first.out
        assert "lost_two" in summary_line(first.out), first.out
    else:
        # On a server the lock is held in the reader's session: the reader finds it gone first.
        assert first.proc.returncode == 3, first.out
        assert "Nothing more was done" in first.out, first.out
    assert "FALLBACK USED" not in first.out, first.out
    assert "lost_model" not in tables(any_url), "the fallback ran without the lock"
    assert versions(any_url) == ["lost_one"], first.out
    second = run(any_url, tmp_path, chain.path, name="again", **extra)
    assert second.proc.returncode == 0, second.out
    assert versions(any_url) == ["lost_two"]
    assert {"lost_one", "lost_model"} <= tables(any_url)


#: MODELS whose create_all takes the run's lock away (the lock file deleted) before its first table, once.
_MODELS_TAKE_THE_LOCK_AWAY = """
import os as _os
from pathlib import Path as _Path


@sa.event.listens_for(Base.metadata, "before_create")
def _take_the_lock_away(target, connection, **kw):
    if not _Path(_os.environ["LOST_MARKER"]).exists():
        _Path(_os.environ["LOST_MARKER"]).write_text("taken")
        _os.remove(_os.environ["LOST_TARGET"])
"""


def test_a_sqlite_lock_file_deleted_during_empty_database_models_create_all_rolls_it_back_exit_5(sqlite_url, tmp_path):
    """EMPTY_DATABASE=models commits create_all and the stamp with no migration to check the lock
    before: a lock lost meanwhile must stop the run before create_all commits, the database left empty."""
    chain = Chain(tmp_path / "lost")
    chain.append_models(_MODELS_TAKE_THE_LOCK_AWAY)
    extra = {**lock_away_env(sqlite_url, tmp_path / "lost.marker"), "EMPTY_DATABASE": "models"}
    first = run(sqlite_url, tmp_path, chain.path, name="lost", **extra)
    assert (tmp_path / "lost.marker").exists(), first.out
    assert first.proc.returncode == 5, first.out
    assert "lost the migration lock" in first.out, first.out
    assert tables(sqlite_url) == set(), "create_all ran without the lock"
    second = run(sqlite_url, tmp_path, chain.path, name="again", **extra)
    assert second.proc.returncode == 0, second.out
    assert "EMPTY_DATABASE=models" in summary_line(second.out), second.out
    assert versions(sqlite_url) != []


@pytest.fixture(scope="module", params=POOL_MODES)
def bouncer(request: pytest.FixtureRequest, pg_server: PgServer) -> Iterator[PgBouncer]:
    """PgBouncer in transaction, then in session pooling, in front of the session's server."""
    started = in_front_of(pg_server, request.param)
    yield started
    started.stop()


@pytest.mark.postgres
def test_a_lock_session_ended_behind_pgbouncer_stops_the_run_before_that_migration_commits(
    bouncer: PgBouncer, pg_server: PgServer, tmp_path: Path
) -> None:
    """Behind a pooler the client's connection is not the server's session: ending the server
    session that holds the lock must still reach the run as a lost lock, not pass unnoticed."""
    direct = pg_server.create_database(f"t_{uuid.uuid4().hex[:16]}")
    try:
        chain = Chain(tmp_path / "lost")
        chain.add("lost_one", 'op.execute("CREATE TABLE lost_one (id INTEGER)")')
        chain.add("lost_two", 'op.execute("CREATE TABLE lost_two (id INTEGER)")\n' + TAKE_THE_LOCK_AWAY_ONCE)
        chain.add("lost_three", 'op.execute("CREATE TABLE lost_three (id INTEGER)")')
        url = bouncer.through(direct)
        extra = lock_away_env(direct, tmp_path / "lost.marker")
        first = run(url, tmp_path, chain.path, name="lost", **extra)
        assert first.proc.returncode == 3, first.out  # the server ended the session: a lost connection
        assert "The session that held the migration lock (the advisory lock" in first.out, first.out
        assert versions(direct) == ["lost_one"], first.out
        assert not {"lost_two", "lost_three"} & tables(direct), "a migration committed without the lock"
        second = run(url, tmp_path, chain.path, name="again", **extra)
        assert second.proc.returncode == 0, second.out
        assert versions(direct) == ["lost_three"]
    finally:
        pg_server.drop_database(database_name(direct))


def test_a_lock_lost_before_an_autocommit_block_stops_the_run_before_that_block_commits(db_url, tmp_path):
    """``autocommit_block()`` commits what ran before it and runs its statements on their own, with
    no migration's commit to check the lock: a lock lost before it must stop the run there."""
    chain = Chain(tmp_path / "lost")
    chain.add("lost_one", 'op.execute("CREATE TABLE lost_one (id INTEGER)")')
    auto = """
op.execute("CREATE TABLE lost_before (id INTEGER)")
with op.get_context().autocommit_block():
    op.execute("CREATE TABLE lost_auto (id INTEGER)")
op.execute("CREATE TABLE lost_two (id INTEGER)")
"""
    chain.add("lost_two", TAKE_THE_LOCK_AWAY_ONCE + auto)
    extra = lock_away_env(db_url, tmp_path / "lost.marker")
    first = run(db_url, tmp_path, chain.path, name="lost", **extra)
    # A deleted lock file is exit 5; a session the server ended is a lost connection, exit 3.
    assert first.proc.returncode == (5 if is_sqlite(db_url) else 3), first.out
    assert "lost_two" in summary_line(first.out), first.out
    assert versions(db_url) == ["lost_one"], first.out
    assert not {"lost_before", "lost_auto", "lost_two"} & tables(db_url), "committed without the lock"
    second = run(db_url, tmp_path, chain.path, name="again", **extra)
    assert second.proc.returncode == 0, second.out
    assert versions(db_url) == ["lost_two"]
    assert {"lost_before", "lost_auto", "lost_two"} <= tables(db_url)


def test_a_sqlite_lock_file_deleted_while_the_seeds_run_stops_before_they_commit_and_a_rerun_seeds(
    sqlite_url, tmp_path
):
    """Seeds commit after the last migration's check: a lock lost while they run must stop the run
    before their commit (exit 5), the seeds still owed, not seed beside another migrator."""
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    (seeds / "03-take-the-lock-away.py").write_text(
        "import os\nfrom pathlib import Path\n\n"
        'if not Path(os.environ["LOST_MARKER"]).exists():\n'
        '    Path(os.environ["LOST_MARKER"]).write_text("taken")\n'
        '    os.remove(os.environ["LOST_TARGET"])\n'
    )
    extra = {k: str(v) for k, v in lock_away_env(sqlite_url, tmp_path / "lost.marker").items()}
    env = operator_env(sqlite_url, tmp_path, SEED_DIR=seeds, **extra)
    first = run_migrate(env=env)
    assert first.code == 5, first.out
    assert "lost the migration lock" in first.out and "before its next commit" in first.out, first.out
    assert versions(sqlite_url) == [TARGET]  # the migrations committed under the lock
    assert count(sqlite_url, "user", "WHERE role = 'admin'") == 0, "the seeds committed without the lock"
    second = run_migrate(env=env)
    assert second.code == 0, second.out
    assert count(sqlite_url, "user", "WHERE role = 'admin'") == 1


@pytest.mark.mysql
def test_a_mysql_migration_that_takes_and_releases_named_locks_of_its_own_keeps_the_run_s_lock(mysql_url, tmp_path):
    """A migration's GET_LOCK / RELEASE_ALL_LOCKS run in its own session: the run's lock, in another
    session, stays held, and verify() must not call it lost."""
    chain = Chain(tmp_path / "own")
    chain.add(
        "own_one",
        "op.execute(\"SELECT GET_LOCK('app-maintenance', 0)\")\n"
        'op.execute("SELECT RELEASE_ALL_LOCKS()")\n'
        'op.execute("CREATE TABLE own_one (id INTEGER)")',
    )
    chain.add("own_two", 'op.execute("CREATE TABLE own_two (id INTEGER)")')
    result = run(mysql_url, tmp_path, chain.path, name="own")
    assert result.proc.returncode == 0, result.out
    assert versions(mysql_url) == ["own_two"]
