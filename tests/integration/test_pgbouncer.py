"""Issue 23: the migration lock holds behind PgBouncer, in transaction and in session pooling.

Debian's pgbouncer (tests/support/pgbouncer.py) sits in front of the test
PostgreSQL server with the packaged settings (default_pool_size 20), and
sixteen real migrate.py processes start at once on a fresh database through
it.  A session advisory lock used to be lost between pooled transactions
(4 runners exited 0, 7 exited 1, 5 exited 7); the lock is now a
transaction-level one held in an open transaction, which keeps its server
connection whatever the pooler does.  Runners SIGKILLed inside a migration,
between two, or while waiting leave no lock behind: PgBouncer drops a server
connection whose client left mid-transaction, and the lock goes with it.

What the database holds is read directly on the server, not through PgBouncer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_concurrency import RUNNERS, upgrade_counts
from tests.support.chains import REVISIONS, build_chain, marker_says
from tests.support.dbstate import assert_at_head, database_name, pg_query
from tests.support.locks import advisory_locks
from tests.support.pgbouncer import POOL_MODES, PgBouncer, in_front_of
from tests.support.pgserver import PgServer
from tests.support.process import Runner, migrate_env, wait_until

pytestmark = pytest.mark.postgres

ROUNDS = 3
WAITING = "Waiting for the advisory lock"


@pytest.fixture(autouse=True)
def _no_runner_left_behind() -> Iterator[None]:
    yield
    Runner.kill_all()


@pytest.fixture(scope="module", params=POOL_MODES)
def bouncer(request: pytest.FixtureRequest, pg_server: PgServer) -> Iterator[PgBouncer]:
    """PgBouncer in transaction, then in session pooling, in front of the session's server."""
    started = in_front_of(pg_server, request.param)
    yield started
    started.stop()


@pytest.fixture
def fresh(pg_server: PgServer) -> Iterator[list[str]]:
    """Fresh databases a test creates (direct URLs), dropped at the end."""
    made: list[str] = []
    yield made
    for url in made:
        pg_server.drop_database(database_name(url))


def lock_released(direct: str) -> bool:
    """No advisory lock on the migration key, and no server session of this database left
    inside a transaction (a pooled server connection may stay open, idle, for the next client)."""
    open_transactions = pg_query(
        direct,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL",
    )[0][0]
    return advisory_locks(direct) == 0 and open_transactions == 0


def assert_no_lock_left(direct: str) -> None:
    # Within seconds: PgBouncer closes the server connection of a client that left mid-transaction.
    wait_until(lambda: lock_released(direct), 15, "the lock and every transaction of the runners to end")


def new_database(pg_server: PgServer, made: list[str]) -> str:
    url = pg_server.create_database(f"t_{uuid.uuid4().hex[:16]}")
    made.append(url)
    return url


def test_sixteen_runners_through_pgbouncer_apply_each_revision_once_three_rounds_in_a_row(
    bouncer: PgBouncer, pg_server: PgServer, fresh: list[str], tmp_path: Path
) -> None:
    migrations = build_chain(tmp_path / "migrations", ("robust_slow", "slow"))
    expected = (*(step[0] for step in REVISIONS), "robust_slow")
    for round_number in range(1, ROUNDS + 1):
        direct = new_database(pg_server, fresh)
        # robust_slow holds the lock for 1 s, so the other fifteen queue behind it.
        env = migrate_env(bouncer.through(direct), migrations, ROBUST_SLOW_SECONDS=1, LOCK_TIMEOUT=120)
        runners = [Runner(env, tmp_path / f"round-{round_number}-runner-{i:02}.log") for i in range(RUNNERS)]
        try:
            codes = [runner.wait(180) for runner in runners]
        finally:
            for runner in runners:
                runner.kill()
        outs = [runner.out for runner in runners]
        context = f"PgBouncer pool_mode={bouncer.pool_mode}, round {round_number}"

        assert codes == [0] * RUNNERS, (
            context
            + "\n\n"
            + "\n\n".join(o for c, o in zip(codes, outs, strict=True) if c != 0)
            + "\n\n"
            + bouncer.log()
        )
        counts = upgrade_counts(outs)
        assert {rev: counts[rev] for rev in expected} == {rev: 1 for rev in expected}, context
        assert sum(counts.values()) == len(expected), context
        assert any(WAITING in out for out in outs), f"no runner waited for another ({context})"
        # What the database holds, read on the server itself: each revision's work once.
        assert_at_head(direct, ["robust_slow"], slow_tables=("robust_slow",))
        assert_no_lock_left(direct)


def _next_run_is_not_held(direct: str, url: str, migrations: Path, log: Path) -> None:
    assert_no_lock_left(direct)
    clean = Runner(migrate_env(url, migrations, LOCK_TIMEOUT=60, ROBUST_SLOW_SECONDS=0), log)
    code = clean.wait(120)
    assert code == 0, clean.out
    assert WAITING not in clean.out, f"the killed runner's lock held the next run up:\n{clean.out}"
    assert_at_head(direct, ["robust_slow_b"], slow_tables=("robust_slow_a", "robust_slow_b"))
    assert_no_lock_left(direct)


def _two_slow(tmp_path: Path) -> Path:
    return build_chain(tmp_path / "migrations", ("robust_slow_a", "slow"), ("robust_slow_b", "slow"))


def test_a_runner_killed_inside_a_migration_through_pgbouncer_leaves_no_lock(
    bouncer: PgBouncer, pg_server: PgServer, fresh: list[str], tmp_path: Path
) -> None:
    direct = new_database(pg_server, fresh)
    url = bouncer.through(direct)
    migrations = _two_slow(tmp_path)
    marker = tmp_path / "marker"
    holder = Runner(migrate_env(url, migrations, ROBUST_SLOW_SECONDS=60, ROBUST_MARKER=marker), tmp_path / "holder.log")
    wait_until(marker_says(marker, "robust_slow_a"), 60, "the holder to be inside robust_slow_a", holder)
    holder.kill()

    _next_run_is_not_held(direct, url, migrations, tmp_path / "next.log")


def test_a_runner_killed_between_two_migrations_through_pgbouncer_leaves_no_lock(
    bouncer: PgBouncer, pg_server: PgServer, fresh: list[str], tmp_path: Path
) -> None:
    direct = new_database(pg_server, fresh)
    url = bouncer.through(direct)
    migrations = _two_slow(tmp_path)
    holder = Runner(migrate_env(url, migrations, ROBUST_SLOW_SECONDS=0.5), tmp_path / "holder.log")
    # Killed the moment Alembic announces the second revision: the first is done, the second not begun.
    wait_until(lambda: "-> robust_slow_b," in holder.out, 60, "the holder to finish robust_slow_a", holder)
    holder.kill()

    _next_run_is_not_held(direct, url, migrations, tmp_path / "next.log")


def test_a_runner_killed_while_waiting_for_the_lock_through_pgbouncer_leaves_no_lock(
    bouncer: PgBouncer, pg_server: PgServer, fresh: list[str], tmp_path: Path
) -> None:
    direct = new_database(pg_server, fresh)
    url = bouncer.through(direct)
    migrations = _two_slow(tmp_path)
    marker = tmp_path / "marker"
    holder = Runner(migrate_env(url, migrations, ROBUST_SLOW_SECONDS=60, ROBUST_MARKER=marker), tmp_path / "holder.log")
    wait_until(marker_says(marker, "robust_slow_a"), 60, "the holder to be inside robust_slow_a", holder)
    waiter = Runner(migrate_env(url, migrations, LOCK_TIMEOUT=60), tmp_path / "waiter.log")
    wait_until(lambda: WAITING in waiter.out, 60, "the waiter to queue for the lock", waiter)
    waiter.kill()
    holder.kill()  # the holder too: then nobody holds anything

    _next_run_is_not_held(direct, url, migrations, tmp_path / "next.log")


def test_a_server_idle_in_transaction_timeout_does_not_end_the_held_lock(
    bouncer: PgBouncer, pg_server: PgServer, fresh: list[str], tmp_path: Path
) -> None:
    """The lock's transaction sits idle while the migration runs on another connection; a database
    default idle_in_transaction_session_timeout would end it, and the lock, half-way (not SET LOCAL to 0)."""
    direct = new_database(pg_server, fresh)
    pg_server.psql(f'ALTER DATABASE "{database_name(direct)}" SET idle_in_transaction_session_timeout = 1500')
    migrations = build_chain(tmp_path / "migrations", ("robust_slow", "slow"))
    env = migrate_env(bouncer.through(direct), migrations, ROBUST_SLOW_SECONDS=4, LOCK_TIMEOUT=120)
    runners = [Runner(env, tmp_path / f"runner-{i}.log") for i in range(4)]
    codes = [runner.wait(180) for runner in runners]
    outs = [runner.out for runner in runners]

    assert codes == [0] * len(runners), "\n\n".join(outs)
    assert upgrade_counts(outs)["robust_slow"] == 1, "\n\n".join(outs)
    assert_at_head(direct, ["robust_slow"], slow_tables=("robust_slow",))
    assert_no_lock_left(direct)


def test_ddl_lock_timeout_is_set_per_transaction_and_leaves_no_pooled_server_connection_changed(
    bouncer: PgBouncer, pg_server: PgServer, fresh: list[str], tmp_path: Path
) -> None:
    """DDL_LOCK_TIMEOUT bounds each migration's lock waits; a session SET behind transaction pooling
    would land on one pooled server connection and stay there for the next client's transactions."""
    import psycopg2

    direct = new_database(pg_server, fresh)
    migrations = build_chain(tmp_path / "migrations")
    run = Runner(migrate_env(bouncer.through(direct), migrations, DDL_LOCK_TIMEOUT=3), tmp_path / "run.log")
    assert run.wait(120) == 0, run.out
    assert_at_head(direct, [REVISIONS[-1][0]])

    # Every server connection the pool keeps for this database, each held by a client of its own in an
    # open transaction (so no two share one): none may carry the run's lock_timeout.
    servers = pg_query(
        direct,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )[0][0]
    clients = [psycopg2.connect(bouncer.through(direct)) for _ in range(max(servers, 1) + 1)]
    try:
        seen = []
        for client in clients:
            with client.cursor() as cursor:  # psycopg2 opens a transaction, which keeps its server connection
                cursor.execute("SHOW lock_timeout")
                seen.append(cursor.fetchone()[0])
    finally:
        for client in clients:
            client.close()
    assert set(seen) == {"0"}, f"pooled server connections kept a lock_timeout: {seen} ({bouncer.pool_mode})"
