"""The init sequence, in order, returning what happened (:class:`report.Summary`).

1. dependencies; 2. wait for the database (bare driver); 3. check: where does
it stand, read through :mod:`probe` against what the scripts and MODELS
expect (from the manifest when it is fresh, so SQLAlchemy and Alembic are
not even imported); 4. the migration lock, taken with the bare driver, and
the check again; 5. only then the heavy imports, the backup, the upgrade on
migrate-init's own connection, the fallback when a named revision failed;
6. the version table read back, verification, seeding.

Every answer about where the database stands comes from :func:`_check`, on
every path (issue 10: one reader).  Nothing here maps outcomes to exit codes
or prints: the CLI does.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from . import lock, manifest, report, wait
from .errors import (
    AccessDenied,
    ConfigError,
    DiskFull,
    Interrupted,
    MigrateInitError,
    MigrationFailed,
    MigrationTimeout,
    ScriptError,
    SeedFailed,
    UnknownRevision,
    VerificationFailed,
    classify,
    first_line,
    undone,
)
from .probe import Reader, Snapshot, describe_missing, format_counts

TYPE_CHECKING = False  # typing is not imported on the way to a run with nothing to do (issue 14)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from .config import Config
    from .watchdog import Watchdog

VERSION_TABLE = "alembic_version"


class Expected:
    """What the scripts and MODELS expect: from a fresh manifest, or from loading them."""

    __slots__ = ("counted", "heads", "loaded", "revisions", "schema", "seeds", "version_table")

    def __init__(self, heads: list[str], revisions: set[str], schema: dict[str, list[str]],
                 counted: list[str], version_table: str, loaded: Loaded | None = None) -> None:
        self.heads = tuple(sorted(heads))
        self.revisions = revisions
        self.schema = schema
        self.counted = counted
        self.version_table = version_table
        #: The scripts and models themselves, when they were imported.
        self.loaded = loaded
        #: The files in SEED_DIR, by name.
        self.seeds: tuple[str, ...] = ()

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> Expected:
        return cls(data["heads"], set(data["revisions"]), data["schema"], data["counted_tables"],
                   data.get("version_table") or VERSION_TABLE)


class Loaded:
    """The heavy half: Alembic's config and graph, and the models' MetaData."""

    def __init__(self, cfg: Config) -> None:
        # The heavy-import boundary: SQLAlchemy and Alembic load here, and only here.  They,
        # env.py and the models may log through logging: from here on, so do our lines.
        report.use_logging()
        from pathlib import Path

        from . import alembic_glue as glue
        from . import schema

        before = set(sys.modules)
        self.glue = glue
        self.schema = schema
        self.config = glue.alembic_config(Path(cfg.migrations_dir), cfg.database, models=cfg.models)
        self.script = glue.load_script(self.config)
        self.metadata = schema.load(cfg.models, [Path(cfg.migrations_dir)]) if cfg.models else None
        self.files = manifest.local_files(cfg.migrations_dir, before)
        self.version_table = VERSION_TABLE
        self.seeds = _seed_names(cfg)

    def expected(self) -> Expected:
        from . import schema

        metadata = self.metadata
        expected = Expected(
            list(self.script.get_heads()),
            {rev.revision for rev in self.script.walk_revisions()},
            {t: sorted(c) for t, c in schema.expected_schema(metadata).items()} if metadata is not None else {},
            schema.counted_tables(metadata) if metadata is not None else [],
            self.version_table, loaded=self,
        )
        expected.seeds = self.seeds
        return expected


# -- the one check ----------------------------------------------------------------

class Standing:
    """Where the database stands: the answer every path gives from the same reads."""

    __slots__ = ("at_heads", "current", "interrupted", "missing_columns", "missing_tables", "owed", "snapshot",
                 "unknown")

    def __init__(self, snapshot: Snapshot, expected: Expected) -> None:
        self.snapshot = snapshot
        self.current = snapshot.versions or ()
        self.unknown = tuple(r for r in self.current if r not in expected.revisions)
        self.at_heads = not self.unknown and self.current == expected.heads
        self.missing_tables, self.missing_columns = snapshot.missing(expected.schema)
        #: Seed files a database migrate-init created has not had yet (an interrupted run's).
        seeded = snapshot.seeded
        self.owed = [n for n in expected.seeds if n not in seeded] if seeded is not None else []
        #: Revisions of these scripts an earlier run began and never finished (MySQL/MariaDB).  One
        #: these scripts do not know belongs to a newer image: like "schema ahead of code", it is
        #: left to that image, and does not keep this one from answering.
        self.interrupted = tuple(r for r in snapshot.in_progress or () if r in expected.revisions)

    @property
    def complete(self) -> bool:
        return not self.missing_tables and not self.missing_columns

    @property
    def done(self) -> bool:
        # A revision recorded as interrupted (MySQL) is never "nothing to do": the full path decides.
        return self.at_heads and self.complete and not self.owed and not self.interrupted


def standing_of(reader: Reader, expected: Expected) -> Standing:
    return Standing(reader.snapshot(expected.version_table), expected)


def revs(revisions: Any) -> str:
    revisions = list(revisions)
    return ", ".join(revisions) if revisions else "base (empty)"


def expected_for(cfg: Config, *, why_not: str = "") -> Expected:
    """From a fresh manifest (no SQLAlchemy, no Alembic) when nothing says otherwise; else load them.

    ``why_not``: the caller's reason to load them anyway (``upgrade REV``, dependencies to install).
    """
    if not why_not and not cfg.fast_path:
        why_not = "FAST_PATH=false"
    if not why_not:
        data, why_not = manifest.load_fresh(_manifest_places(cfg), cfg.migrations_dir, cfg.models)
        if data is not None:
            expected = Expected.from_manifest(data)
            expected.seeds = _seed_names(cfg)
            return expected
    return load(cfg, why_not)


def load(cfg: Config, why: str) -> Expected:
    """The heavy half, saying why the fast path could not answer."""
    report.event("fast_path_declined", f"Fast path not taken: {why}; loading the scripts and models.",
                 level=10, reason=why)
    return Loaded(cfg).expected()


def fast_path_taken(expected: Expected, standing: Standing) -> None:
    if expected.loaded is None:
        where = ("revisions the manifest does not know (schema ahead of code)" if standing.unknown
                 else "the heads of the manifest")
        report.event("fast_path", f"Fast path: the database is at {revs(standing.current)}, {where}; "
                     "SQLAlchemy and Alembic were not loaded.", level=10, revisions=list(standing.current))


def _why_loaded(standing: Standing, expected: Expected) -> str:
    if not standing.at_heads:
        return f"the database is at {revs(standing.current)}, not the heads of the manifest ({revs(expected.heads)})"
    if standing.owed:
        return f"the database owes the seed file(s) {', '.join(standing.owed)}"
    return "REPAIR_MISSING_COLUMNS=true and the database lacks columns of MODELS"


def _seed_names(cfg: Config) -> tuple[str, ...]:
    if not os.path.isdir(cfg.seed_dir):
        return ()  # what seed.files() answers, without importing seed (runpy, typing) on every run (issue 14)
    from pathlib import Path

    from . import seed

    return tuple(p.name for p in seed.files(Path(cfg.seed_dir)))


def _manifest_places(cfg: Config) -> list[str]:
    """The baked manifest, then the caches: beside a SQLite database (the shared volume), DATA_DIR, the folder."""
    folders = [os.path.dirname(cfg.database.sqlite_path)] if cfg.database.sqlite_path else []
    folders += [cfg.data_dir, cfg.migrations_dir]
    places = [manifest.baked_path(cfg.migrations_dir)]
    for folder in folders:
        path = manifest.cache_path(folder, cfg.migrations_dir, cfg.models)
        if path not in places:
            places.append(path)
    return places


def _cache_manifest(cfg: Config, loaded: Loaded) -> None:
    """The first full run leaves the manifest behind, so the next run with nothing to do needs no imports."""
    if not cfg.fast_path:
        return
    data = manifest.build(loaded.script, loaded.metadata, models=cfg.models, version_table=loaded.version_table,
                          migrations_dir=cfg.migrations_dir, files=loaded.files)
    for path in _manifest_places(cfg)[1:]:
        if manifest.write(path, data, required=False):
            report.event("manifest_cached", f"Cached the manifest in {path} for the fast path.",
                         level=10, path=str(path))
            return


def verified(summary: report.Summary, reader: Reader, expected: Expected, standing: Standing, *,
             after: str) -> None:
    """The integrity check's verdict and lines, the same on every path."""
    if not standing.complete:
        raise VerificationFailed(
            f"Verification failed after {after}: "
            f"{describe_missing(standing.missing_tables, standing.missing_columns)}. Fix the migration "
            "that should create them, or set REPAIR_MISSING_COLUMNS=true to add missing columns as nullable."
        )
    if not expected.schema:
        return
    report.event("verified", f"Verified {len(expected.schema)} tables and their columns against MODELS.",
                 tables=len(expected.schema))
    counts = reader.counts(expected.counted)
    summary.row_counts = {t: n for t, n in counts.items() if n is not None}
    if counts:
        report.event("row_counts", "Existing rows: " + format_counts(counts), rows=counts)


# -- the init sequence -------------------------------------------------------------

def run(cfg: Config, watchdog: Watchdog, *, revision: str | None = None) -> report.Summary:
    """The init sequence (``revision`` None) or ``upgrade REV``."""
    summary = report.Summary(command="upgrade" if revision else "run", database=cfg.database.safe)
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
        lock.check_filesystem(path, cfg.sqlite_allow_network_fs)
        wait.prepare_sqlite(path)
    watchdog.phase = "waiting for the database"
    started = time.monotonic()
    reader = wait.connect(cfg.database, timeout=cfg.db_wait_timeout, read_only=False, watchdog=watchdog)
    summary.timed("wait", started)
    try:
        return _run(cfg, watchdog, summary, reader, revision)
    except MigrateInitError as exc:
        exc.summary = summary  # type: ignore[attr-defined]  # the CLI reports what was done before it
        raise
    finally:
        reader.close()


def _run(cfg: Config, watchdog: Watchdog, summary: report.Summary, reader: Reader,
         revision: str | None) -> report.Summary:
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
        summary.warnings.append("MODELS is not set for this MIGRATIONS_DIR: verification checks the revision "
                                "only and the create_all fallback is unavailable.")
        report.warning("no_models", summary.warnings[-1])
    standing = standing_of(reader, expected)
    summary.from_revisions = list(standing.current)
    summary.timed("check", started)
    if revision is None and standing.at_heads and not standing.owed and not standing.interrupted and \
            (standing.complete or not cfg.repair_missing_columns):
        fast_path_taken(expected, standing)
        at_target(summary, reader, expected, standing, after="the check")
        if expected.loaded is not None:
            _cache_manifest(cfg, expected.loaded)  # the next run with nothing to do needs no imports
        return summary
    if standing.unknown:
        return _schema_ahead(cfg, summary, reader, expected, standing)
    if not cfg.enable_auto_migration:
        return _auto_migration_off(cfg, summary, reader, expected, standing)

    def done_meanwhile() -> bool:
        # The version rows first (one small query); the whole snapshot only once they are the heads.
        return (revision is None and reader.versions(expected.version_table) == expected.heads
                and standing_of(reader, expected).done)

    while True:
        watchdog.phase = "waiting for the migration lock"
        with migration_lock(cfg, expected, watchdog, until=done_meanwhile) as held:
            watchdog.phase = "checking the database under the lock" if held else "checking the database"
            standing = standing_of(reader, expected)
            if revision is None and standing.done:
                fast_path_taken(expected, standing)
                at_target(summary, reader, expected, standing, after="the check", after_lock=True)
                if expected.loaded is not None:
                    _cache_manifest(cfg, expected.loaded)
                return summary
            if held:
                return _under_lock(cfg, watchdog, summary, reader, expected, standing, revision)
        # Done, then not done again by the time it was read twice: wait for the lock itself.


def _under_lock(cfg: Config, watchdog: Watchdog, summary: report.Summary, reader: Reader, expected: Expected,
                standing: Standing, revision: str | None) -> report.Summary:
    """The lock is held and there is work: load the heavy half if needed, then migrate."""
    # SQLite's quick_check reads the whole file; it runs while the scripts and models load.
    check = QuickCheck.start(cfg, watchdog)
    if expected.loaded is None:
        watchdog.phase = "loading the migration scripts and MODELS"
        watchdog.checkpoint()  # before a second of imports that nothing can interrupt
        expected = load(cfg, _why_loaded(standing, expected))
        standing = standing_of(reader, expected)
        if standing.unknown:
            return _schema_ahead(cfg, summary, reader, expected, standing)
    loaded = expected.loaded
    assert loaded is not None
    return _migrate(cfg, watchdog, summary, reader, expected, loaded, standing, revision, check)


def at_target(summary: report.Summary, reader: Reader, expected: Expected, standing: Standing, *,
               after: str, after_lock: bool = False, command: str = "run") -> report.Summary:
    summary.to_revisions = list(standing.current)
    verified(summary, reader, expected, standing, after=after)
    report.at_target(summary, revs(standing.current), command=command, after_lock=after_lock)
    return summary


def _schema_ahead(cfg: Config, summary: report.Summary, reader: Reader, expected: Expected,
                  standing: Standing) -> report.Summary:
    """A revision these scripts do not know: exit 0 when the models' schema is all there, else 6."""
    unknown = revs(standing.unknown)
    summary.to_revisions = list(standing.current)
    if cfg.models is None:
        raise UnknownRevision(
            f"The database is at revision {unknown}, which these migration scripts do not know, and "
            "MODELS is not set, so the schema cannot be checked. Deploy the image that has that "
            "revision, or set MODELS."
        )
    if not standing.complete:
        raise UnknownRevision(
            f"The database is at revision {unknown}, which these migration scripts do not know, and the "
            f"models' schema is not all there ({describe_missing(standing.missing_tables, standing.missing_columns)}). "
            "Deploy the image that has that revision; nothing was changed."
        )
    verified(summary, reader, expected, standing, after="the check")
    fast_path_taken(expected, standing)
    warning = (f"Schema ahead of code: the database is at revision {unknown}, unknown to these scripts, "
               "and every table and column the models define exists. Nothing was changed; no fallback, "
               "no downgrade.")
    summary.warnings.append(warning)
    report.warning("schema_ahead", warning, revisions=list(standing.unknown))
    summary.outcome = "schema_ahead"
    summary.message = warning
    return summary


def _auto_migration_off(cfg: Config, summary: report.Summary, reader: Reader, expected: Expected,
                        standing: Standing) -> report.Summary:
    if expected.loaded is None:
        expected = load(cfg, "ENABLE_AUTO_MIGRATION=false, with migrations pending")
    loaded = expected.loaded
    assert loaded is not None
    state = loaded.glue.state(loaded.script, standing.current, cfg.migration_target, expected.version_table)
    summary.to_revisions = list(standing.current)
    report.event("auto_migration_off", f"ENABLE_AUTO_MIGRATION=false: {len(state.pending)} pending "
                 "migration(s) not applied; verifying only.", pending=list(state.pending))
    verified(summary, reader, expected, standing, after="the check (ENABLE_AUTO_MIGRATION=false)")
    summary.message = (f"ENABLE_AUTO_MIGRATION=false; {len(state.pending)} migration(s) pending; "
                       "verification passed.")
    return summary


@contextlib.contextmanager
def migration_lock(cfg: Config, expected: Expected, watchdog: Watchdog,
                   until: Callable[[], bool] | None = None) -> Iterator[bool]:
    """The one migration lock, with the bare driver: replicas that find work wait here, not elsewhere.

    Yields True once the lock is held.  With ``until``, a waiter asks it
    between attempts, and when it answers True (another replica finished
    the work meanwhile) yields False without the lock: waiters then need
    not take the lock one after the other just to find nothing to do.
    """
    database = cfg.database

    def waiting(sentence: str) -> None:
        report.event("lock_waiting", sentence)

    held: lock.MigrationLock
    if database.sqlite_path is not None:
        held = lock.sqlite_lock(database.sqlite_path, timeout=cfg.lock_timeout,
                                allow_network_fs=cfg.sqlite_allow_network_fs,
                                checkpoint=watchdog.checkpoint, on_wait=waiting)
    elif database.backend == "postgresql":
        from .probe import connect_postgresql

        connection = connect_postgresql(database, min(cfg.db_wait_timeout, 10), watchdog.checkpoint)
        watchdog.track(connection)
        held = lock.postgresql_lock(connection, database.database or "", version_table=expected.version_table,
                                    timeout=cfg.lock_timeout, checkpoint=watchdog.checkpoint, on_wait=waiting)
    elif database.backend == "mysql":
        from .probe import connect_mysql

        connection = connect_mysql(database, min(cfg.db_wait_timeout, 10), watchdog.checkpoint)
        watchdog.track(connection)
        held = lock.mysql_lock(connection, database.database or "", version_table=expected.version_table,
                               timeout=cfg.lock_timeout, checkpoint=watchdog.checkpoint, on_wait=waiting)
    else:
        raise ConfigError(f"DATABASE_URL={database.safe}: no migration lock for '{database.backend}'.")
    try:
        if not held.acquire(until):
            yield False
            return
        # MIGRATION_TIMEOUT runs from the moment the lock is held, before any line is logged:
        # a stalled log reader cannot hold the run past it.
        watchdog.arm(cfg.migration_timeout)
        watchdog.phase = "holding the migration lock"
        try:
            report.event("lock_acquired", f"Acquired {held.description}.")
            watchdog.checkpoint()  # a stop recorded while that line waited for a stalled reader
            yield True
        finally:
            watchdog.disarm()
    finally:
        held.release()


# -- the work, under the lock ------------------------------------------------------

def _migrate(cfg: Config, watchdog: Watchdog, summary: report.Summary, reader: Reader, expected: Expected,
             loaded: Loaded, standing: Standing, revision: str | None,
             check: QuickCheck | None = None) -> report.Summary:
    glue = loaded.glue
    script = loaded.script
    state = glue.state(script, standing.current, cfg.migration_target, expected.version_table)
    summary.from_revisions = list(state.current)
    if revision is not None:
        revision = glue.resolve_destination(script, revision)
    if len(state.heads) > 1:
        _explain_branches(cfg, state, summary)
    was_empty = standing.snapshot.empty
    if standing.interrupted:
        _interrupted_earlier(cfg, loaded, standing)
    if revision is None and standing.at_heads:
        return _at_heads(cfg, watchdog, summary, reader, expected, loaded)

    destinations = _destinations(glue, script, cfg, state, revision)
    total = len(glue.pending_revisions(script, state.current, destinations[-1:] if revision else list(state.heads)))
    report.event("pending", f"Database at {revs(state.current)}; {total} migration(s) to apply.",
                 current=list(state.current), pending=list(state.pending))
    watchdog.phase = "checking the SQLite file"
    check = check or QuickCheck.start(cfg, watchdog)
    if check is not None:
        check.verdict(watchdog)
    summary.backup = _backup(cfg, state, watchdog)
    started = time.monotonic()
    failure: MigrationFailed | None = None
    engine = glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout, checkpoint=watchdog.checkpoint)
    watchdog.track_sqlalchemy()
    try:
        if was_empty and expected.seeds:
            from . import seed

            seed.owe(engine)  # committed first: a run stopped after the migrations still owes the seeds
        progress = glue.Progress(script, total, guard=_effect_guard(cfg, expected.version_table),
                                 checkpoint=watchdog.checkpoint, in_step=watchdog.set_interruptible)
        watchdog.phase = "migrating"
        try:
            try:
                _upgrade(cfg, watchdog, loaded, engine, progress, destinations, summary)
            finally:
                watchdog.set_interruptible(False)
        except MigrationFailed as exc:
            watchdog.checkpoint()  # a cancelled statement is the stop, not a failed migration
            failure = exc
        except BaseException as exc:
            running = progress.failed_revision
            summary.failed_revision = running
            _record_where_left(summary, reader, expected, script, state)
            if isinstance(exc, (Interrupted, MigrationTimeout)):
                raise _stopped(exc, running, summary, total, cfg.database.backend) from None
            if isinstance(exc, ScriptError) and summary.applied:
                exc.args = (f"{exc} The database is at {revs(summary.to_revisions)} "
                            f"({len(summary.applied)} of {total} applied).",)
            raise
        summary.timed("upgrade", started)
        expected.version_table = loaded.version_table  # what env.py asked Alembic for
        if cfg.database.sqlite_path is not None:
            wait.share_with_group(cfg.database.sqlite_path)
        watchdog.phase = "reading back the version table"
        watchdog.checkpoint()
        after = standing_of(reader, expected)
        summary.to_revisions = list(after.current)
        summary.applied = _applied(glue, script, state.current, after.current)
        if failure is not None:
            return _failed(cfg, watchdog, summary, reader, expected, loaded, engine, failure)
        if revision is None and not state.target_exists and cfg.migration_target_set:
            summary.warnings.append(f"MIGRATION_TARGET={cfg.migration_target} is not a revision of these "
                                    "scripts; upgraded to every head instead.")
            report.warning("target_missing", summary.warnings[-1], target=cfg.migration_target)
        if summary.applied != progress.applied:
            summary.warnings.append(
                f"Alembic reported {', '.join(progress.applied) or 'nothing'} applied, but the version table "
                f"says {', '.join(summary.applied) or 'nothing'}; the version table is what counts."
            )
            report.warning("applied_mismatch", summary.warnings[-1])
        if cfg.repair_missing_columns and loaded.metadata is not None and not after.complete:
            _repair(engine, loaded)
            after = standing_of(reader, expected)
        if revision is not None and not after.at_heads:
            summary.message = (f"Upgraded to {revision}: {len(summary.applied)} migration(s) applied; not at "
                               "the heads, so table verification was skipped.")
            _cache_manifest(cfg, loaded)
            return summary
        watchdog.phase = "verifying"
        watchdog.checkpoint()
        verified(summary, reader, expected, after, after="the upgrade")
        _cache_manifest(cfg, loaded)
        _seed(cfg, watchdog, engine, loaded, summary, after.owed)
        summary.outcome = "upgraded" if summary.applied else "at_target"
        summary.message = (f"Upgraded {revs(summary.from_revisions)} -> {revs(after.current)}: "
                           f"{len(summary.applied)} migration(s) applied ({summary.layers_tried[-1]}); "
                           "verification passed.")
        return summary
    finally:
        engine.dispose()


def _interrupted_earlier(cfg: Config, loaded: Loaded, standing: Standing) -> None:
    """Revisions an earlier run began and never finished (MySQL/MariaDB): run again, clear, or stop (exit 1)."""
    from . import progress

    def rerun(revision: str) -> None:
        report.warning("rerun_interrupted", f"Migration {revision} was interrupted on an earlier run "
                       "(MySQL/MariaDB commit DDL at once, so part of it may be applied); its module "
                       "declares idempotent = True, so it runs again.", revision=revision)

    def stale(revision: str) -> None:
        report.event("progress_cleared", f"Cleared the record of {revision} as in progress: the version "
                     "table already has it.", revision=revision)

    engine = loaded.glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout)
    try:
        with engine.connect() as connection:
            progress.decide(connection, loaded.script, standing.interrupted, standing.current,
                            on_rerun=rerun, on_stale=stale)
    finally:
        engine.dispose()


def _stopped(exc: Interrupted | MigrationTimeout, running: str | None, summary: report.Summary,
             total: int, backend: str) -> MigrateInitError:
    """The stop, saying only what happened: which migration ran, and where the version table says we are."""
    what = (f"Migration {running} was cancelled. {undone(backend)}" if running is not None
            else "No migration was running")
    where = f"the database is at {revs(summary.to_revisions)} ({len(summary.applied)} of {total} applied)"
    if isinstance(exc, Interrupted):
        return Interrupted(exc.signum, message=f"Stopped by {exc.signal_name} while {exc.phase}. {what}; "
                                               f"{where}. Run again to finish the job.")
    return MigrationTimeout(f"{exc} {what}; {where}. Raise MIGRATION_TIMEOUT (0 means no limit) or make "
                            "the migration faster.")


def refuse_odd_revision(revision: str) -> None:
    """``upgrade REV``: relative forms and ranges are refused (exit 2), not guessed at."""
    if (":" in revision or revision.startswith(("+", "-")) or "@+" in revision or "@-" in revision
            or any(c.isspace() for c in revision) or not revision):
        raise ConfigError(
            f"upgrade {revision}: relative revisions and ranges are not accepted; name a revision id, "
            "'heads', or a branch head such as 'mybranch@head'. Run `migrate.py history`."
        )


def _destinations(glue: Any, script: Any, cfg: Config, state: Any, revision: str | None) -> list[str]:
    """The layered strategy, chosen against the graph before anything runs.

    Layer 1: MIGRATION_TARGET is a revision of these scripts: to it, then on
    to every head (a merge point is a waypoint, not a ceiling).  Layer 2:
    otherwise every head.  The seed's third layer (the single head) is gone:
    "heads" resolves whenever "head" would, so it could only ever be reached
    by a failed migration, which the next layer would run again; a failed
    migration goes to the fallback instead (issue 11).
    """
    if revision is not None:
        return [revision]
    return [cfg.migration_target, "heads"] if state.target_exists else ["heads"]


def _layer_name(destinations: list[str], revision: str | None) -> str:
    if revision is not None:
        return f"upgrade {revision}"
    return "layer 1" if len(destinations) == 2 else "layer 2"


def _upgrade(cfg: Config, watchdog: Watchdog, loaded: Loaded, engine: Any, progress: Any,
             destinations: list[str], summary: report.Summary) -> None:
    """Run env.py on our connection through ``destinations``; retry a migration that lost a lock wait."""
    from . import retry

    glue = loaded.glue
    name = _layer_name(destinations, None if summary.command == "run" else destinations[0])
    summary.layers_tried.append(name)
    report.event("layer", f"{name}: upgrading to {' then '.join(destinations)}.", layer=name,
                 destinations=destinations)
    delays = retry.Backoff(initial=0.5, maximum=5.0).delays()
    retries = 0
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql" and cfg.ddl_lock_timeout > 0:
            # A queued ALTER would block every reader of the table behind it; give up quickly and retry.
            connection.exec_driver_sql(f"SET lock_timeout = {max(1, int(cfg.ddl_lock_timeout * 1000))}")
            connection.commit()
        elif connection.dialect.name in ("mysql", "mariadb") and cfg.ddl_lock_timeout > 0:
            # The same for MySQL's metadata locks (whole seconds; error 1205 when it runs out).
            connection.exec_driver_sql(f"SET SESSION lock_wait_timeout = {max(1, round(cfg.ddl_lock_timeout))}")
            connection.commit()
        for destination in destinations:
            while True:
                if connection.in_transaction():
                    connection.commit()
                try:
                    asked = glue.run_env(loaded.config, loaded.script, connection, destination, progress)
                    loaded.version_table = asked.get("version_table") or loaded.version_table
                    break
                except MigrationFailed as exc:
                    watchdog.checkpoint()
                    kind = classify(exc)
                    if kind not in ("lock_not_available", "busy") or retries >= cfg.ddl_lock_retries:
                        raise
                    if not _may_run_again(connection, loaded.script, exc.revision):
                        exc.retries_refused = True  # type: ignore[attr-defined]
                        raise
                    retries += 1
                    delay = next(delays)
                    report.warning("ddl_lock_retry",
                                   f"Migration {exc.revision} timed out waiting for a table lock "
                                   f"(DDL_LOCK_TIMEOUT); retry {retries}/{cfg.ddl_lock_retries} "
                                   f"in {delay:.1f}s.", revision=exc.revision, retry=retries)
                    progress.count -= 1  # the same migration runs again: same [k/N]
                    progress.running = None
                    retry.sleep(delay, checkpoint=watchdog.checkpoint)
            if connection.in_transaction():
                connection.commit()


def _may_run_again(connection: Any, script: Any, revision: str | None) -> bool:
    """Whether a failed migration can simply run again: always where DDL rolls back, else only if idempotent."""
    from . import progress

    return not progress.needed(connection) or progress.idempotent(script, revision)


def _applied(glue: Any, script: Any, before: tuple[str, ...], after: tuple[str, ...]) -> list[str]:
    """What the version table says was applied: the revisions between its rows before and after."""
    if set(after) == set(before) or not after:
        return []
    try:
        return list(glue.pending_revisions(script, before, after))
    except Exception:  # rows these scripts cannot place: report none rather than guess
        return []


def _record_where_left(summary: report.Summary, reader: Reader, expected: Expected, script: Any,
                       state: Any) -> None:
    """A failed run's summary says where it left the database, read back.  Best effort, bounded."""
    try:
        after = standing_of(reader, expected)
    except Exception:  # the failure itself is what the summary must report
        return
    summary.to_revisions = list(after.current)
    from . import alembic_glue as glue

    summary.applied = _applied(glue, script, state.current, after.current)


def _failed(cfg: Config, watchdog: Watchdog, summary: report.Summary, reader: Reader, expected: Expected,
            loaded: Loaded, engine: Any, failure: MigrationFailed) -> report.Summary:
    """A named revision failed and was rolled back: stop, or run the create_all fallback."""
    summary.failed_revision = failure.revision
    kind = classify(failure)
    where = f" while applying {failure.revision}" if failure.revision else ""
    if kind == "disk_full":
        path = cfg.database.sqlite_path
        disk = (f"The disk that holds the SQLite database {path} is full: SQLite could not write the database "
                f"or its journal{where}" if path else
                f"The database server at {cfg.database.safe} ran out of disk space{where}")
        raise DiskFull(
            f"{disk} ({first_line(failure.__cause__ or failure)}). {undone(cfg.database.backend, 'The migration')}; the database "
            f"is at {revs(summary.to_revisions)}; the create_all fallback was not tried. Free space on that "
            "volume (or grow it) and run again."
        ) from failure
    if kind == "access":
        raise AccessDenied(
            f"The database refused a statement of migration {failure.revision}: "
            f"{first_line(failure.__cause__ or failure)}. {undone(cfg.database.backend)}; it is not retried; grant the "
            "user what the migration needs (e.g. CREATE on the schema) and run again."
        ) from failure
    if kind in ("lock_not_available", "busy"):
        # create_all cannot make an ALTER happen: the fallback would only turn
        # this into a misleading verification failure.
        if getattr(failure, "retries_refused", False):
            how = (f"past DDL_LOCK_TIMEOUT={cfg.ddl_lock_timeout:g}s; it was not retried, since MySQL/MariaDB "
                   "keep what it applied before and its module does not declare idempotent = True")
        else:
            how = (f"through DDL_LOCK_RETRIES={cfg.ddl_lock_retries} retries of "
                   f"DDL_LOCK_TIMEOUT={cfg.ddl_lock_timeout:g}s")
        where = "SHOW PROCESSLIST" if cfg.database.backend == "mysql" else "pg_stat_activity"
        raise MigrationFailed(
            f"{failure} Another transaction kept its lock on the table {how}; the fallback was not tried, "
            f"since it cannot apply this change. End the long transaction (see {where}) or raise "
            "DDL_LOCK_TIMEOUT, and run again.",
            revision=failure.revision,
        ) from failure
    report.error("migration_failed", str(failure), revision=failure.revision)
    if not cfg.enable_fallback_create:
        raise MigrationFailed(f"{failure} The fallback is off (ENABLE_FALLBACK_CREATE=false).",
                              revision=failure.revision)
    if loaded.metadata is None:
        raise MigrationFailed(f"{failure} The fallback is unavailable: MODELS is not set.",
                              revision=failure.revision)
    from . import schema

    report.warning("fallback", "Alembic could not bring the database to its target; running the create_all "
                   "fallback from MODELS.", revision=failure.revision)
    watchdog.phase = "running the create_all fallback"
    started = time.monotonic()
    try:
        schema.create_missing_tables(engine, loaded.metadata)
    except Exception as exc:
        watchdog.checkpoint()
        raise MigrationFailed(f"{failure} The create_all fallback failed too: {type(exc).__name__}: "
                              f"{first_line(exc)}.", revision=failure.revision) from exc
    summary.timed("fallback", started)
    summary.fallback_used = True
    if cfg.repair_missing_columns:
        _repair(engine, loaded)
    watchdog.phase = "verifying"
    watchdog.checkpoint()
    after = standing_of(reader, expected)
    summary.to_revisions = list(after.current)
    verified(summary, reader, expected, after, after="the create_all fallback")
    _seed(cfg, watchdog, engine, loaded, summary, after.owed)
    summary.outcome = "fallback"
    summary.message = (f"FALLBACK USED: migration {failure.revision} failed, and create_all created the missing "
                       f"tables; verification passed. The version table stays at {revs(summary.to_revisions)}: "
                       "fix the migration and run again.")
    return summary


def _at_heads(cfg: Config, watchdog: Watchdog, summary: report.Summary, reader: Reader, expected: Expected,
              loaded: Loaded) -> report.Summary:
    """At the heads, with work left: missing columns (REPAIR_MISSING_COLUMNS=true) or seeds owed."""
    engine = loaded.glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout, checkpoint=watchdog.checkpoint)
    try:
        repaired: list[str] = []
        if cfg.repair_missing_columns and not standing_of(reader, expected).complete:
            watchdog.phase = "adding missing columns"
            repaired = _repair(engine, loaded)
        after = standing_of(reader, expected)
        at_target(summary, reader, expected, after, after="the check")
        _seed(cfg, watchdog, engine, loaded, summary, after.owed)
    finally:
        engine.dispose()
    if repaired:
        summary.message = (f"Database is at its target {revs(after.current)}; added {len(repaired)} missing "
                           f"column(s) as nullable (REPAIR_MISSING_COLUMNS=true): {', '.join(repaired)}.")
    elif summary.seeded:
        summary.message = (f"Database is at its target {revs(after.current)}; seeded what an interrupted run "
                           f"owed: {', '.join(summary.seeded)}.")
    return summary


def _repair(engine: Any, loaded: Loaded) -> list[str]:
    from . import schema

    return schema.add_missing_columns(engine, loaded.metadata) if loaded.metadata is not None else []


def _effect_guard(cfg: Config, version_table: str) -> Any:
    from .catalog import EffectGuard

    return EffectGuard(cfg.allow_destructive, version_table=version_table)


class QuickCheck:
    """``PRAGMA quick_check`` of a SQLite file, on a read-only connection of its own, in a thread.

    A damaged file is exit 1 with nothing written (issue 12).  The check reads
    the whole file, so it starts as soon as the lock is held and runs while
    the scripts and models load (SQLite releases the GIL while it reads); its
    verdict is awaited before the backup and the first migration (issue 13).
    The watchdog interrupts it like any statement.
    """

    def __init__(self, cfg: Config, watchdog: Watchdog) -> None:
        import threading

        from .probe import SqliteReader

        self.path = cfg.database.sqlite_path
        self._outcome: list[Any] = []
        self._connection: Any = None

        def track(connection: Any) -> None:
            self._connection = connection
            watchdog.track(connection)

        self._reader = SqliteReader(cfg.database, read_only=True, checkpoint=None, track=track)
        self._watchdog = watchdog
        self._thread = threading.Thread(target=self._run, name="quick_check", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, cfg: Config, watchdog: Watchdog) -> QuickCheck | None:
        """A running check, or None when there is nothing to check (not SQLite, or no file yet)."""
        path = cfg.database.sqlite_path
        if path is None or not os.path.isfile(path) or os.stat(path).st_size == 0:
            return None
        return cls(cfg, watchdog)

    def _run(self) -> None:
        from .watchdog import block_stop_signals

        block_stop_signals()
        try:
            self._outcome.append(self._reader.quick_check())
        except BaseException as exc:  # handed to verdict(), in the main thread
            self._outcome.append(exc)
        finally:
            if self._connection is not None:
                self._watchdog.untrack(self._connection)
            self._reader.close()

    def verdict(self, watchdog: Watchdog) -> None:
        """Wait for the check (a stop ends the wait); CorruptDatabase when the file is damaged."""
        from .errors import CorruptDatabase

        while self._thread.is_alive():
            self._thread.join(0.1)
            watchdog.checkpoint()
        outcome = self._outcome[0]
        if isinstance(outcome, BaseException):
            watchdog.checkpoint()  # an interrupted check is the stop, not a failure
            raise outcome
        if outcome is not None:
            raise CorruptDatabase(
                f"The SQLite file {self.path} is damaged (PRAGMA quick_check: {outcome}); nothing was "
                "written. Restore it from a backup (BACKUP_DIR), or check it with PRAGMA integrity_check."
            )


def _backup(cfg: Config, state: Any, watchdog: Watchdog) -> str | None:
    """SQLite: back up before applying pending migrations, and only then."""
    path = cfg.database.sqlite_path
    if path is None or not state.pending or cfg.backup_keep == 0:
        return None
    from pathlib import Path

    from . import backup

    watchdog.phase = "backing up the database"
    folder = Path(cfg.backup_dir) if cfg.backup_dir else backup.default_folder(Path(path))
    label = "-".join(state.current) or "base"
    taken = backup.take(Path(path), folder, keep=cfg.backup_keep, label=label[:60])
    return str(taken) if taken else None


def _seed(cfg: Config, watchdog: Watchdog, engine: Any, loaded: Loaded, summary: report.Summary,
          owed: list[str]) -> None:
    if not owed:
        return
    from . import seed

    watchdog.phase = "seeding"
    watchdog.checkpoint()
    try:
        from pathlib import Path

        seeded = seed.run(engine, Path(cfg.seed_dir), owed, loaded.metadata)
    except SeedFailed:
        watchdog.checkpoint()  # a statement cancelled by the stop is the stop, not a seed to fix
        raise
    watchdog.checkpoint()
    if seeded:
        summary.seeded = seeded
        report.event("seeded", f"Seeded the database from {cfg.seed_dir}: {', '.join(seeded)}.", files=seeded)


def _explain_branches(cfg: Config, state: Any, summary: report.Summary) -> None:
    heads = " ".join(state.heads)
    command = f"migrate.py alembic merge -m \"merge heads\" {heads}"
    summary.branches = list(state.heads)
    summary.merge_command = command
    how = (f"after MIGRATION_TARGET={cfg.migration_target}, every head is applied (layer 1)"
           if state.target_exists else
           f"MIGRATION_TARGET={cfg.migration_target} is not among the revisions; every head is applied (layer 2)")
    text = (f"The scripts have {len(state.heads)} heads ({', '.join(state.heads)}) and no merge: {how}. "
            f"Join the branches with: {command}")
    summary.warnings.append(text)
    report.warning("several_heads", text, heads=list(state.heads), merge_command=command)


def _install_dependencies(cfg: Config, summary: report.Summary) -> None:
    if not cfg.extra_pip_packages and not cfg.pip_requirements:
        return
    report.use_logging()  # deps logs through logging
    from . import deps

    started = time.monotonic()
    installed = deps.ensure(list(cfg.extra_pip_packages), cfg.pip_requirements, str(cfg.deps_target),
                            find_links=cfg.pip_find_links, no_index=cfg.pip_no_index)
    summary.timed("dependencies", started)
    if str(cfg.deps_target) not in sys.path:
        sys.path.insert(0, str(cfg.deps_target))
    if installed:
        report.event("deps_installed", f"Installed {', '.join(installed)} into {cfg.deps_target}.",
                     packages=installed, target=str(cfg.deps_target))
