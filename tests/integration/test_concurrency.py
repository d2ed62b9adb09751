"""Issue 4: replicas that race and die never break the database.

Sixteen migrate.py processes start at once on one database (SQLite,
PostgreSQL and MariaDB); runners are SIGKILLed at random moments ("chaos"),
then one clean run follows.  The migrations are the shipped ones plus slow
fixture revisions after merge_heads_final (tests/support/chains.py), so that
the runners overlap and the kills land inside migrations, between them and
while waiting for the lock.

Chaos runs on SQLite and PostgreSQL, whose migrations are transactions.  On
MariaDB a killed migration stays partly applied by design (its DDL committed)
and is recorded as interrupted: the killed-holder test proves that the lock
goes with the dead session and that the next runner runs an idempotent
revision again; test_mysql_engine.py covers a revision that is not.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from migrate_init.engines.mysql import mysql_lock_name
from tests.support.chains import REVISIONS, build_chain, marker_says
from tests.support.dbstate import (
    assert_at_head,
    database_name,
    in_progress,
    integrity,
    is_mysql,
    is_sqlite,
    my_query,
    sqlite_path,
)
from tests.support.locks import advisory_locks, flock_free, migrator_backends
from tests.support.process import Runner, migrate_env, wait_until

RUNNERS = 16
#: Seconds of chaos per engine.  The issue's example is 60 s; CI uses 20 by default
#: (ROBUST_CHAOS_SECONDS=60 for the long version).
CHAOS_SECONDS = float(os.environ.get("ROBUST_CHAOS_SECONDS", "20"))
#: ROBUST_CHAOS_SEED replays a failed run's kill schedule (the seed is in the failure).
CHAOS_SEED = int(os.environ.get("ROBUST_CHAOS_SEED") or random.SystemRandom().randrange(10**6))
SLOW_CHAIN = tuple(f"robust_slow_{i:02}" for i in range(1, 41))
#: What a runner logs while another holds the lock: PostgreSQL's advisory lock, MariaDB's GET_LOCK.
WAITING = {"postgresql": "Waiting for the advisory lock", "mysql": "Waiting for the MySQL lock"}


@pytest.fixture(autouse=True)
def _no_runner_left_behind():
    """A test that fails half-way must not leave migrate.py processes running."""
    yield
    Runner.kill_all()


@pytest.fixture
def database(request, tmp_path: Path) -> str:
    """One PostgreSQL or MariaDB database, or one SQLite file in a folder all runners share."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    if request.param == "mysql":
        return request.getfixturevalue("mysql_url")
    shared = tmp_path / "shared-volume"
    return f"sqlite:///{shared / 'webui.db'}"


both_engines = pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
all_engines = pytest.mark.parametrize(
    "database",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)],
    indirect=True,
)
servers = pytest.mark.parametrize(
    "database",
    [pytest.param("postgresql", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)],
    indirect=True,
)


def upgrade_counts(outs: list[str]) -> Counter:
    """How often each revision's "Running upgrade ... -> REV," line appears across all logs."""
    counts: Counter = Counter()
    for out in outs:
        for line in out.splitlines():
            if "Running upgrade" in line and " -> " in line:
                counts[line.split(" -> ", 1)[1].split(",", 1)[0]] += 1
    return counts


def mysql_sessions(url: str) -> int:
    """Server sessions, other than this one, connected to this MariaDB database."""
    return my_query(
        url, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
    )[0][0]


def assert_no_lock_left(url: str) -> None:
    if is_sqlite(url):
        assert flock_free(sqlite_path(url))
        db = sqlite_path(url)
        assert not db.with_name(db.name + "-journal").exists()
    elif is_mysql(url):
        name = mysql_lock_name(database_name(url), "alembic_version")
        assert my_query(url, "SELECT IS_USED_LOCK(%s)", (name,)) == [(None,)]
        assert in_progress(url) == []
        wait_until(lambda: mysql_sessions(url) == 0, 15, "every migrate-init session to end")
    else:
        assert advisory_locks(url) == 0
        wait_until(lambda: migrator_backends(url) == 0, 15, "every migrate-init session to end")


@all_engines
def test_sixteen_runners_at_once_apply_each_revision_exactly_once(database, tmp_path):
    migrations = build_chain(tmp_path / "migrations", ("robust_slow", "slow"))
    # robust_slow waits 1 s holding the lock, so the other fifteen queue behind it.
    env = migrate_env(database, migrations, ROBUST_SLOW_SECONDS=1, LOCK_TIMEOUT=120)
    runners = [Runner(env, tmp_path / f"runner-{i:02}.log") for i in range(RUNNERS)]
    try:
        codes = [runner.wait(180) for runner in runners]
    finally:
        for runner in runners:
            runner.kill()
    outs = [runner.out for runner in runners]

    assert codes == [0] * RUNNERS, "\n\n".join(o for c, o in zip(codes, outs, strict=True) if c != 0)
    counts = upgrade_counts(outs)
    expected = (*(step[0] for step in REVISIONS), "robust_slow")
    assert {rev: counts[rev] for rev in expected} == {rev: 1 for rev in expected}
    assert sum(counts.values()) == len(expected)
    waited = sum("another migrator finished while this one waited" in out for out in outs)
    assert waited >= 1, "no runner overlapped another; the test proved nothing"
    assert_at_head(database, ["robust_slow"], slow_tables=("robust_slow",))
    assert_no_lock_left(database)


class _Victim:
    """A chaos runner and the moment it dies: after a random time, or a random
    time after its k-th "Running upgrade" line, so that kills land inside
    migrations however fast or loaded the machine is."""

    def __init__(self, runner: Runner, rng: random.Random):
        self.runner = runner
        now = time.monotonic()
        self.kill_at = now + rng.uniform(0.1, 3.0)
        self.after_upgrades = rng.randint(1, 3) if rng.random() < 0.75 else None
        self.delay = rng.uniform(0.0, 0.3)
        if self.after_upgrades is not None:
            self.kill_at = now + 8.0  # unless it gets there first

    def due(self, now: float) -> bool:
        if self.after_upgrades is not None and self.runner.out.count("Running upgrade") >= self.after_upgrades:
            self.kill_at = min(self.kill_at, now + self.delay)
            self.after_upgrades = None
        return now >= self.kill_at


@both_engines
def test_chaos_random_kills_then_one_clean_run_reaches_the_head(database, tmp_path):
    migrations = build_chain(tmp_path / "migrations", *((rev, "slow") for rev in SLOW_CHAIN))
    rng = random.Random(CHAOS_SEED)
    deadline = time.monotonic() + CHAOS_SECONDS
    started = killed = 0
    live: list[_Victim] = []
    try:
        while time.monotonic() < deadline or live:
            now = time.monotonic()
            for victim in list(live):
                if not victim.runner.alive() or victim.due(now) or now >= deadline:
                    if victim.runner.alive():
                        victim.runner.kill()
                        killed += 1
                    live.remove(victim)
            if now < deadline and len(live) < 3:
                # Each slow revision waits 0.05-0.3 s: a full pass lasts a few
                # seconds, so kills land while starting, waiting for the lock,
                # inside and between migrations, and while verifying.
                env = migrate_env(
                    database, migrations, LOCK_TIMEOUT=60, ROBUST_SLOW_SECONDS=round(rng.uniform(0.05, 0.25), 2)
                )
                live.append(_Victim(Runner(env, tmp_path / f"chaos-{started:03}.log"), rng))
                started += 1
            time.sleep(rng.uniform(0.02, 0.2))
    finally:
        for victim in live:
            victim.runner.kill()
    logs = [p.read_text() for p in sorted(tmp_path.glob("chaos-*.log"))]
    mid_migration = sum("Running upgrade" in out and "(exit " not in out for out in logs)
    context = (
        f"(ROBUST_CHAOS_SEED={CHAOS_SEED}; {started} runners started, {killed} killed, "
        f"{mid_migration} of them mid-migration)"
    )
    print(f"chaos {context}")
    assert started >= 10 and killed >= 5 and mid_migration >= 3, f"chaos too tame {context}"

    clean = Runner(migrate_env(database, migrations, LOCK_TIMEOUT=60), tmp_path / "clean.log")
    code = clean.wait(180)

    assert code == 0, f"{context}\n{clean.out}"
    # Nothing half-applied: each slow table exists once with all its rows.
    assert_at_head(database, [SLOW_CHAIN[-1]], slow_tables=SLOW_CHAIN)
    assert "Waiting for the" not in clean.out, f"a killed runner left its lock {context}"
    assert_no_lock_left(database)
    if is_sqlite(database):
        assert integrity(database) == [("ok",)]


@servers
def test_killed_runner_never_leaves_a_stale_lock_for_the_waiting_ones(database, tmp_path):
    """A holder SIGKILLed while fifteen others wait: one of them takes over at once.

    On MariaDB the holder dies inside robust_slow after its CREATE TABLE
    committed: the runner that takes over finds it recorded as interrupted
    and, the revision being idempotent, runs it again.
    """
    kind = "slow_idempotent" if is_mysql(database) else "slow"
    migrations = build_chain(tmp_path / "migrations", ("robust_slow", kind))
    marker = tmp_path / "marker"
    holder = Runner(
        migrate_env(database, migrations, ROBUST_SLOW_SECONDS=60, ROBUST_MARKER=marker), tmp_path / "holder.log"
    )
    wait_until(marker_says(marker, "robust_slow"), 60, "the holder to be inside robust_slow", holder)
    env = migrate_env(database, migrations, ROBUST_SLOW_SECONDS=0, LOCK_TIMEOUT=60)
    waiters = [Runner(env, tmp_path / f"waiter-{i:02}.log") for i in range(RUNNERS - 1)]
    waiting = WAITING["mysql" if is_mysql(database) else "postgresql"]
    try:
        wait_until(lambda: all(waiting in w.out for w in waiters), 60, "every waiter to queue for the lock")
        holder.kill()
        codes = [w.wait(120) for w in waiters]
    finally:
        holder.kill()
        for w in waiters:
            w.kill()
    outs = [w.out for w in waiters]

    assert codes == [0] * len(waiters), "\n\n".join(outs)
    assert upgrade_counts(outs)["robust_slow"] == 1
    if is_mysql(database):
        rerun = [out for out in outs if "Migration robust_slow was interrupted on an earlier run" in out]
        assert len(rerun) == 1, "\n\n".join(outs)
        assert "declares idempotent = True, so it runs again" in rerun[0], rerun[0]
    assert_at_head(database, ["robust_slow"], slow_tables=("robust_slow",))
    assert_no_lock_left(database)
