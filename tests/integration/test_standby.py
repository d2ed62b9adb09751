"""Issue 23: a hot standby, a multi-host URL, and a primary restarted under a migration.

A primary of this module's own (it is restarted here; the session's server
is left alone) and a real streaming replica of it, made with
``pg_basebackup -R`` (tests/support/pgserver.py).  Every command that would
write exits 11 on the standby, at once, saying to point at the primary; the
read-only verbs work there; a libpq multi-host URL that lists the standby
first migrates the primary.  A fast restart of the primary under a slow
migration ends the run with exit 3 naming the revision, leaves nothing half
applied and no lock, and the next run finishes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.chains import TARGET, build_chain, marker_says
from tests.support.dbstate import assert_at_head, tables, versions
from tests.support.locks import advisory_locks
from tests.support.pgserver import PgServer, execute
from tests.support.process import Runner, migrate_env, run_migrate, wait_until

pytestmark = pytest.mark.postgres

#: Far longer than any test waits for a run: a run that waited for the lock would show.
LOCK_TIMEOUT = 600


@pytest.fixture(autouse=True)
def _no_runner_left_behind() -> Iterator[None]:
    yield
    Runner.kill_all()


@pytest.fixture(scope="module")
def primary() -> Iterator[PgServer]:
    server = PgServer(external_url="").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def standby(primary: PgServer) -> Iterator[PgServer]:
    replica = primary.start_standby()
    yield replica
    replica.stop()


@pytest.fixture
def database(primary: PgServer) -> Iterator[str]:
    """A fresh database on the primary (its name; the standby replays it)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    primary.create_database(name)
    yield name
    primary.drop_database(name)


def _replayed(standby: PgServer, name: str, heads: list[str] | None = None) -> str:
    """The standby's URL of database ``name``, once it has replayed it (and ``heads``, if given)."""
    url = standby.url(database=name)

    def there() -> bool:
        try:
            found = versions(url)
        except Exception:  # not replayed yet: the database does not exist there
            return False
        return heads is None or found == heads

    wait_until(there, 30, f"the standby to replay database {name}")
    return url


def test_the_standby_is_a_real_replica_in_recovery(standby: PgServer, primary: PgServer, database: str) -> None:
    url = _replayed(standby, database)
    assert execute(url, "SELECT pg_is_in_recovery()") == [(True,)]
    assert execute(primary.url(database=database), "SELECT pg_is_in_recovery()") == [(False,)]


@pytest.mark.parametrize(
    "command", [("run",), ("upgrade", "heads"), ("stamp", "head"), ("plan",)], ids=lambda argv: argv[0]
)
def test_every_command_that_would_write_exits_11_on_a_standby_saying_to_point_at_the_primary(
    standby: PgServer, primary: PgServer, database: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    url = _replayed(standby, database)
    migrations = build_chain(tmp_path / "migrations")

    result = run_migrate(*command, env=migrate_env(url, migrations, LOCK_TIMEOUT=LOCK_TIMEOUT), timeout=120)

    assert result.code == 11, result.out
    assert "read-only standby" in result.out and "Point DATABASE_URL at the primary" in result.out, result.out
    assert make_url(url).password not in result.out
    assert versions(primary.url(database=database)) == []  # nothing was written anywhere
    assert advisory_locks(primary.url(database=database)) == 0


@pytest.mark.parametrize(
    "command", [("status",), ("current",), ("verify",), ("check",), ("history",), ("run",)], ids=lambda argv: argv[0]
)
def test_read_only_verbs_work_on_a_standby_of_a_migrated_primary(
    standby: PgServer, primary: PgServer, database: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """``run`` too: at the target, it has nothing to write, and exits 0 as on the primary."""
    migrations = build_chain(tmp_path / "migrations")
    migrated = run_migrate(env=migrate_env(primary.url(database=database), migrations))
    assert migrated.code == 0, migrated.out
    url = _replayed(standby, database, heads=[TARGET])

    result = run_migrate(*command, env=migrate_env(url, migrations), timeout=120)

    assert result.code == 0, result.out
    assert versions(url) == [TARGET]


def test_a_multi_host_url_listing_the_standby_first_migrates_the_primary_and_never_prints_the_password(
    standby: PgServer, primary: PgServer, database: str, tmp_path: Path
) -> None:
    _replayed(standby, database)
    first, second = make_url(standby.url(database=database)), make_url(primary.url(database=database))
    password = second.password
    assert password
    url = (
        f"postgresql://{second.username}:{password}@127.0.0.1:{first.port},127.0.0.1:{second.port}"
        f"/{database}?target_session_attrs=read-write"
    )
    migrations = build_chain(tmp_path / "migrations")

    result = run_migrate(env=migrate_env(url, migrations, LOCK_TIMEOUT=LOCK_TIMEOUT, LOG_LEVEL="DEBUG"), timeout=180)

    assert result.code == 0, result.out
    assert password not in result.out
    assert_at_head(primary.url(database=database), [TARGET])
    # And through the same URL, the read-only verbs read the primary.
    status = run_migrate("current", env=migrate_env(url, migrations))
    assert status.code == 0 and TARGET in status.out, status.out


def test_a_primary_restarted_under_a_slow_migration_exits_3_naming_the_revision_and_the_next_run_finishes(
    primary: PgServer, database: str, tmp_path: Path
) -> None:
    url = primary.url(database=database)
    migrations = build_chain(tmp_path / "migrations", ("robust_slow", "slow"))
    marker = tmp_path / "marker"
    runner = Runner(
        migrate_env(url, migrations, ROBUST_SLOW_SECONDS=60, ROBUST_MARKER=marker, DB_WAIT_TIMEOUT=5),
        tmp_path / "failover.log",
    )
    wait_until(marker_says(marker, "robust_slow"), 120, "the run to be inside robust_slow", runner)

    primary.restart("fast")
    code = runner.wait(60)

    out = runner.out
    assert code == 3, out
    failed = [line for line in out.splitlines() if "FAILED (exit 3)" in line]
    assert failed and "connection to the database was lost during revision robust_slow" in failed[0], out
    # Nothing half-applied: robust_slow's table and version row went with its transaction.
    assert "robust_slow" not in tables(url)
    assert "robust_slow" not in versions(url)
    assert advisory_locks(url) == 0

    again = run_migrate(env=migrate_env(url, migrations, ROBUST_SLOW_SECONDS=0, LOCK_TIMEOUT=60), timeout=180)
    assert again.code == 0, again.out
    assert "Waiting for the" not in again.out
    assert_at_head(url, ["robust_slow"], slow_tables=("robust_slow",))
