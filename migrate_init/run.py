"""The init sequence, in order, returning what happened (:class:`report.Summary`).

1. dependencies; 2. wait for the database (bare driver); 3. check: where does
it stand, read through :mod:`probe` against what the scripts and MODELS
expect (from the manifest when it is fresh, so SQLAlchemy and Alembic are
not even imported), and answer a database with nothing to do; 4. only when
there is work, :mod:`upgrade`: the migration lock and the check again, the
heavy imports, the backup, the upgrade, the fallback, verification, seeding.

Every answer about where the database stands comes from
:func:`state.standing_of`, on every path (issue 10: one reader).  Nothing here maps outcomes to exit
codes or prints: the CLI does.
"""

from __future__ import annotations

import sys
import time

from . import report, wait
from .lock import migration_lock
from .probe import Reader
from .state import (
    Run,
    Standing,
    at_target,
    cache_manifest,
    expected_for,
    fast_path_taken,
    refuse_odd_revision,
    schema_ahead,
    standing_of,
)
from .url import ASYNC_DRIVERS

TYPE_CHECKING = False  # typing is not imported on the way to a run with nothing to do (issue 14)
if TYPE_CHECKING:
    from .config import Config
    from .watchdog import Watchdog


# -- the one check ----------------------------------------------------------------


# -- the init sequence -------------------------------------------------------------


def run(cfg: Config, watchdog: Watchdog, summary: report.Summary, *, revision: str | None = None) -> report.Summary:
    """The init sequence (``revision`` None) or ``upgrade REV``, recorded in ``summary`` as it goes.

    ``summary`` is the caller's: when this raises, it holds what was done before.
    """
    if revision is not None:
        refuse_odd_revision(revision)  # before anything is waited for, locked or read (issue 12)
    _install_dependencies(cfg, summary)
    # The whole run's bound starts once pip is done: an install is bounded by nothing we set.
    limits = (cfg.db_wait_timeout, cfg.lock_timeout, cfg.migration_timeout)
    if all(limits):
        watchdog.bound_run(sum(limits) + 30, "DB_WAIT_TIMEOUT + LOCK_TIMEOUT + MIGRATION_TIMEOUT + 30")
    path = cfg.database.sqlite_path
    if path is not None:
        # Before the database is first opened: nothing is created on a refused volume.
        wait.check_filesystem(path, cfg.sqlite_allow_network_fs)
        wait.prepare_sqlite(path)
    watchdog.phase = "waiting for the database"
    started = time.monotonic()
    reader = wait.connect(cfg.database, timeout=cfg.db_wait_timeout, read_only=False, watchdog=watchdog)
    summary.timed("wait", started)
    try:
        return _run(cfg, watchdog, summary, reader, revision)
    finally:
        reader.close()


def _run(
    cfg: Config, watchdog: Watchdog, summary: report.Summary, reader: Reader, revision: str | None
) -> report.Summary:
    watchdog.phase = "checking the database"
    started = time.monotonic()
    why_not = ""
    if revision is not None:
        why_not = f"upgrade {revision}"
    elif cfg.extra_pip_packages or cfg.pip_requirements:
        why_not = "EXTRA_PIP_PACKAGES or PIP_REQUIREMENTS is set"
    expected = expected_for(cfg, why_not=why_not)
    if revision is not None and expected.loaded is not None:
        # An odd REV is refused before anything is locked or read (issue 12).
        revision = expected.loaded.glue.resolve_destination(expected.loaded.script, revision)
    if cfg.models is None:
        summary.warnings.append(
            "MODELS is not set for this MIGRATIONS_DIR: verification checks the revision "
            "only and the create_all fallback is unavailable."
        )
        report.warning("no_models", summary.warnings[-1])
    standing = Standing(reader.first_snapshot(expected.version_table), expected)
    summary.from_revisions = list(standing.current)
    summary.timed("check", started)
    if standing.edited or (standing.vanished and not standing.unknown):
        from . import history

        history.edited_revisions(cfg, summary, standing)  # a warning, or refused before anything runs
    if (
        revision is None
        and standing.at_heads
        and not standing.owed
        and not standing.interrupted
        and not standing.unrecorded
        and (standing.complete or not (cfg.repair_missing_columns or cfg.empty_database == "models"))
    ):
        fast_path_taken(expected, standing)
        at_target(summary, reader, expected, standing, after="the check")
        if expected.loaded is not None:
            cache_manifest(cfg, expected.loaded)  # the next run with nothing to do needs no imports
        return summary
    if standing.unknown:
        return schema_ahead(cfg, summary, reader, expected, standing)
    if not cfg.enable_auto_migration:
        from . import upgrade  # the heavy half: not on the way to "nothing to do"

        return upgrade.auto_migration_off(Run(cfg, watchdog, summary, reader, expected, revision), standing)

    def done_meanwhile() -> bool:
        # The version rows first (one small query); the whole snapshot only once they are the heads.
        return (
            revision is None
            and reader.versions(expected.version_table) == expected.heads
            and standing_of(reader, expected).done
        )

    while True:
        watchdog.phase = "waiting for the migration lock"
        hold = migration_lock(cfg, expected, watchdog, until=done_meanwhile, reader=reader)
        with hold as held:
            watchdog.phase = "checking the database under the lock" if held else "checking the database"
            standing = standing_of(reader, expected)
            if revision is None and standing.done:
                fast_path_taken(expected, standing)
                at_target(summary, reader, expected, standing, after="the check", after_lock=True)
                if expected.loaded is not None:
                    cache_manifest(cfg, expected.loaded)
                return summary
            if held:
                # There is work: what runs under the lock loads now, not on the way to "nothing to do".
                from . import upgrade

                return upgrade.under_lock(
                    Run(cfg, watchdog, summary, reader, expected, revision, hold.lock.verify), standing
                )
        # Done, then not done again by the time it was read twice: wait for the lock itself.


def _install_dependencies(cfg: Config, summary: report.Summary) -> None:
    async_driver = cfg.database.driver.lower() in ASYNC_DRIVERS  # checked without importing deps (packaging)
    if not cfg.extra_pip_packages and not cfg.pip_requirements and not async_driver:
        return
    from . import deps

    wanted = list(cfg.extra_pip_packages)
    if async_driver:
        # An async env.py needs the app's async driver and greenlet, which the image does not ship.
        wanted += deps.async_driver_requirements(cfg.database.driver, str(cfg.deps_target))
    installed: list[str] = []
    if wanted or cfg.pip_requirements:
        report.use_logging()  # deps logs through logging
        started = time.monotonic()
        installed = deps.ensure(
            wanted, cfg.pip_requirements, str(cfg.deps_target), find_links=cfg.pip_find_links, no_index=cfg.pip_no_index
        )
        summary.timed("dependencies", started)
    if str(cfg.deps_target) not in sys.path:
        sys.path.insert(0, str(cfg.deps_target))
    if installed:
        report.event(
            "deps_installed",
            f"Installed {', '.join(installed)} into {cfg.deps_target}.",
            packages=installed,
            target=str(cfg.deps_target),
        )
