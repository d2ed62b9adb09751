"""The work under the migration lock: the upgrade, the fallback, verification and seeding.

:mod:`run` finds where the database stands and answers a run with nothing to
do; only when there is work does it import this module (issue 14: the way to
"nothing to do" loads neither the lock nor any of what follows).  Here: the
one migration lock, with the bare driver; the heavy half loaded under it;
the SQLite quick_check and backup; the layered upgrade on migrate-init's own
connection, retried only where that is safe; the create_all fallback when a
named revision failed; the version table read back, verification, seeding.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from . import backup, lock, progress, report, retry, seed, wait
from .effects import allowed_revisions_known, effect_guard
from .errors import (
    AccessDenied,
    CorruptDatabase,
    DatabaseUnreachable,
    DestructiveOperation,
    DiskFull,
    Interrupted,
    LockLost,
    MigrateInitError,
    MigrationFailed,
    MigrationTimeout,
    ScriptError,
    causes,
    classify,
    undone,
)
from .history import Recorder
from .probe import PROGRESS_TABLE, SEED_TABLE
from .state import (
    Expected,
    Loaded,
    Run,
    Standing,
    at_target,
    cache_manifest,
    load,
    revs,
    schema_ahead,
    standing_of,
    verified,
    why_loaded,
)
from .watchdog import block_stop_signals

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .config import Config
    from .watchdog import Watchdog


def under_lock(run: Run, standing: Standing) -> report.Summary:
    """The lock is held and there is work: load the heavy half if needed, then migrate."""
    cfg, watchdog, summary, reader, expected = run.cfg, run.watchdog, run.summary, run.reader, run.expected
    # SQLite's quick_check reads the whole file; it runs while the scripts and models load.
    check = QuickCheck.start(cfg, watchdog)
    if expected.loaded is None:
        watchdog.phase = "loading the migration scripts and MODELS"
        watchdog.checkpoint()  # before a second of imports that nothing can interrupt
        expected = run.expected = load(cfg, why_loaded(standing, expected), expected)
        standing = standing_of(reader, expected)
        if standing.unknown:
            return schema_ahead(cfg, summary, reader, expected, standing)
    loaded = expected.loaded
    assert loaded is not None
    return _migrate(run, loaded, standing, check)


def auto_migration_off(run: Run, standing: Standing) -> report.Summary:
    cfg, summary, reader, expected = run.cfg, run.summary, run.reader, run.expected
    if expected.loaded is None:
        expected = load(cfg, "ENABLE_AUTO_MIGRATION=false, with migrations pending")
    loaded = expected.loaded
    assert loaded is not None
    state = loaded.glue.state(loaded.script, standing.current, cfg.migration_target, expected.version_table)
    summary.to_revisions = list(standing.current)
    report.event(
        "auto_migration_off",
        f"ENABLE_AUTO_MIGRATION=false: {len(state.pending)} pending migration(s) not applied; verifying only.",
        pending=list(state.pending),
    )
    verified(summary, reader, expected, standing, after="the check (ENABLE_AUTO_MIGRATION=false)")
    summary.message = f"ENABLE_AUTO_MIGRATION=false; {len(state.pending)} migration(s) pending; verification passed."
    return summary


def _connection_lost(failure: MigrationFailed, transactional_ddl: bool) -> DatabaseUnreachable:
    """The server went away under a migration (a restart, a failover): exit 3, the revision named.

    Not the fallback: it would need the same server.  Nothing else is read or
    tried either: the migration lock went with the session (issue 23).
    """
    revision = failure.revision or "a migration"
    cause = next((link for link in causes(failure) if not isinstance(link, MigrateInitError)), failure)
    return DatabaseUnreachable(
        f"The connection to the database was lost during revision {revision} (the server restarted, "
        f"failed over or dropped the session): {report.first_line(cause)}. {undone(transactional_ddl, 'That revision')}, "
        "and the migration lock went with the connection. Nothing more was attempted. Run again once "
        "the database answers (at the primary); the next run applies that revision again."
    )


# -- the work, under the lock ------------------------------------------------------


def _migrate(run: Run, loaded: Loaded, standing: Standing, check: QuickCheck | None = None) -> report.Summary:
    cfg, watchdog, summary, reader, expected = run.cfg, run.watchdog, run.summary, run.reader, run.expected
    revision = run.revision
    glue = loaded.glue
    script = loaded.script
    allowed_revisions_known(cfg, script)
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
        return _at_heads(run, loaded)
    built = ""  # what was done before the first migration, for the summary
    if revision is None and not state.current:
        # No version row: build an empty database the project's way, or adopt one with tables (issue 22).
        from . import empty

        if empty.tables_held(standing, expected):
            built = empty.baseline(cfg, watchdog, standing, expected, loaded)
            if built:
                standing = standing_of(reader, expected)
                if standing.at_heads:
                    summary = _at_heads(run, loaded)
                    summary.message = built + summary.message
                    return summary
                state = glue.state(script, standing.current, cfg.migration_target, expected.version_table)
                summary.from_revisions = list(state.current)
        elif cfg.empty_database == "models":
            return empty.build_models(run, loaded)

    destinations = _destinations(glue, script, cfg, state, revision)
    total = len(glue.pending_revisions(script, state.current, destinations[-1:] if revision else list(state.heads)))
    report.event(
        "pending",
        f"Database at {_found(state.current, standing.snapshot, expected)}; {total} migration(s) to apply.",
        current=list(state.current),
        pending=list(state.pending),
    )
    watchdog.phase = "checking the SQLite file"
    check = check or QuickCheck.start(cfg, watchdog)
    if check is not None:
        check.verdict(watchdog)
    summary.backup = _backup(cfg, state, watchdog)
    started = time.monotonic()
    failure: MigrationFailed | None = None
    engine = glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout, checkpoint=watchdog.checkpoint)
    watchdog.track_sqlalchemy()
    progress: Any = None
    _verify_lock_at_commits(run, engine, lambda: progress)
    try:
        if was_empty and expected.seeds:
            seed.owe(engine)  # committed first: a run stopped after the migrations still owes the seeds
        if was_empty and revision is None and cfg.empty_database.startswith("initial:"):
            from . import empty

            built = empty.build_initial(cfg, watchdog, engine)
        recorder = _history(cfg, engine, loaded, state.current)
        progress = glue.Progress(
            script,
            total,
            guard=effect_guard(cfg, expected.version_table, script),
            checkpoint=watchdog.checkpoint,
            in_step=watchdog.set_interruptible,
            history=recorder,
            lock_check=run.lock_check,
        )
        watchdog.phase = "migrating"
        watchdog.detail = lambda: f"applying {progress.running.revision}" if progress.running is not None else None
        try:
            try:
                _upgrade(run, loaded, engine, progress, destinations)
            finally:
                watchdog.set_interruptible(False)
        except MigrationFailed as exc:
            watchdog.checkpoint()  # a cancelled statement is the stop, not a failed migration
            if not cfg.database.engine.file_based and classify(exc) == "unreachable":
                summary.failed_revision = exc.revision
                raise _connection_lost(exc, cfg.database.engine.transactional_ddl) from exc
            failure = exc
        except BaseException as exc:
            running = progress.failed_revision
            summary.failed_revision = running
            _record_where_left(run, loaded, state)
            if isinstance(exc, DestructiveOperation):
                recorder.best_effort(engine, running, "refused", outcome=_left(cfg), detail=report.first_line(exc))
            if isinstance(exc, (Interrupted, MigrationTimeout, LockLost)):
                raise _stopped(exc, running, summary, total, cfg.database.engine.transactional_ddl) from None
            if isinstance(exc, ScriptError) and summary.applied:
                exc.args = (
                    f"{exc} The database is at {revs(summary.to_revisions)} "
                    f"({len(summary.applied)} of {total} applied).",
                )
            raise
        summary.timed("upgrade", started)
        expected.version_table = loaded.version_table  # what env.py asked Alembic for
        if cfg.database.sqlite_path is not None:
            wait.share_with_group(cfg.database.sqlite_path)
        watchdog.phase = "reading back the version table"
        watchdog.checkpoint()
        try:
            after = standing_of(reader, expected)
        except Exception as exc:
            if classify(exc) != "unreachable":
                raise
            raise _reader_lost(run, exc, loaded, state, progress.applied) from exc
        summary.to_revisions = list(after.current)
        summary.applied = _applied(loaded.glue, loaded.script, state.current, after.current)
        if failure is not None:
            return _failed(run, loaded, engine, failure)
        if revision is None and not state.target_exists and cfg.migration_target_set:
            summary.warnings.append(
                f"MIGRATION_TARGET={cfg.migration_target} is not a revision of these "
                "scripts; upgraded to every head instead."
            )
            report.warning("target_missing", summary.warnings[-1], target=cfg.migration_target)
        if summary.applied != progress.applied:
            summary.warnings.append(
                f"Alembic reported {', '.join(progress.applied) or 'nothing'} applied, but the version table "
                f"says {', '.join(summary.applied) or 'nothing'}; the version table is what counts."
            )
            report.warning("applied_mismatch", summary.warnings[-1])
        if revision is None and after.at_heads:
            from . import empty

            if empty.complete_from_models(cfg, engine, loaded, after):
                after = standing_of(reader, expected)
        if cfg.repair_missing_columns and loaded.metadata is not None and not after.complete:
            _repair(engine, loaded)
            after = standing_of(reader, expected)
        if revision is not None and not after.at_heads:
            summary.message = (
                f"Upgraded to {revision}: {len(summary.applied)} migration(s) applied; not at "
                "the heads, so table verification was skipped."
            )
            cache_manifest(cfg, loaded)
            return summary
        watchdog.phase = "verifying"
        watchdog.checkpoint()
        verified(summary, reader, expected, after, after="the upgrade")
        cache_manifest(cfg, loaded)
        seed.apply(cfg, watchdog, engine, loaded.metadata, summary, after.owed)
        summary.outcome = "upgraded" if summary.applied else "at_target"
        summary.message = (
            f"Upgraded {_found(summary.from_revisions, standing.snapshot, expected)} -> "
            f"{revs(after.current)}: "
            f"{len(summary.applied)} migration(s) applied ({summary.layers_tried[-1]}); "
            "verification passed."
        )
        summary.message = built + summary.message
        return summary
    finally:
        engine.dispose()


def _interrupted_earlier(cfg: Config, loaded: Loaded, standing: Standing) -> None:
    """Revisions an earlier run began and never finished (MySQL/MariaDB): run again, clear, or stop (exit 1)."""

    def rerun(revision: str) -> None:
        report.warning(
            "rerun_interrupted",
            f"Migration {revision} was interrupted on an earlier run "
            "(MySQL/MariaDB commit DDL at once, so part of it may be applied); its module "
            "declares idempotent = True, so it runs again.",
            revision=revision,
        )

    def stale(revision: str) -> None:
        report.event(
            "progress_cleared",
            f"Cleared the record of {revision} as in progress: the version table already has it.",
            revision=revision,
        )

    engine = loaded.glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout)
    recorder = _history(cfg, engine, loaded, standing.current)

    def rerun_recorded(revision: str) -> None:
        rerun(revision)
        recorder.best_effort(
            engine,
            revision,
            "interrupted",
            outcome="partial",
            detail="Interrupted on an earlier run (recorded in migrate_init_progress); its "
            "module declares idempotent = True, so this run applies it again.",
        )

    try:
        with engine.connect() as connection:
            progress.decide(
                connection,
                loaded.script,
                standing.interrupted,
                standing.current,
                on_rerun=rerun_recorded,
                on_stale=stale,
            )
    finally:
        engine.dispose()


def _reader_lost(run: Run, exc: Exception, loaded: Loaded, state: Any, applied: list[str]) -> DatabaseUnreachable:
    """The session that held the lock and reads was ended under the run (a restart, pg_terminate_backend).

    The migrations ran on their own connection, so they may all have
    committed: say which, and where a new connection finds the database
    (issue 25 N35), not "check the host and port" of a server that answers.
    """
    summary = run.summary
    _record_where_left(run, loaded, state)
    where = (
        f"the database is at {revs(summary.to_revisions)}"
        if summary.to_revisions is not None
        else "where the database stands could not be read back (run 'migrate.py status' to see)"
    )
    return DatabaseUnreachable(
        f"The session that held the migration lock was ended by the server while the migrations ran (a "
        f"restart, a failover or pg_terminate_backend): {report.first_line(exc)}. Alembic had applied "
        f"{', '.join(applied) or 'nothing'} on its own connection; {where}. Nothing more was done "
        "(verification, seeds). Run again: it verifies and applies what is left under a new lock."
    )


def _stopped(
    exc: Interrupted | MigrationTimeout | LockLost,
    running: str | None,
    summary: report.Summary,
    total: int,
    transactional_ddl: bool,
) -> MigrateInitError:
    """The stop, saying only what happened: which migration ran, and where the version table says we are."""
    what = (
        f"Migration {running} was {'stopped before its commit' if isinstance(exc, LockLost) else 'cancelled'}. "
        f"{undone(transactional_ddl)}"
        if running is not None
        else "No migration was running"
    )
    where = (
        f"the database is at {revs(summary.to_revisions)} ({len(summary.applied)} of {total} applied)"
        if summary.to_revisions is not None
        else "where the database stands is unknown: its version table could not be read back (run "
        "'migrate.py status' to see)"
    )
    if isinstance(exc, Interrupted):
        return Interrupted(
            exc.signum,
            message=f"Stopped by {exc.signal_name} while {exc.phase}. {what}; {where}. Run again to finish the job.",
        )
    if isinstance(exc, LockLost):
        return lock.stopped(exc, f"it stopped. {what}; {where}")
    return MigrationTimeout(
        f"{exc} {what}; {where}. Raise MIGRATION_TIMEOUT (0 means no limit) or make the migration faster."
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


def _layer_name(cfg: Config, destinations: list[str], revision: str | None) -> str:
    if revision is not None:
        return f"upgrade {revision}"
    if len(destinations) == 2:
        return "layer 1"
    # A project with no merge_heads_final of its own never asked for layers: "layer 2"
    # would read as a fallback (issue 24).  It stays for a MIGRATION_TARGET that was set.
    return "layer 2" if cfg.migration_target_set else "every head"


def _upgrade(run: Run, loaded: Loaded, engine: Any, progress: Any, destinations: list[str]) -> None:
    """Run env.py on our connection through ``destinations``; retry a migration that lost a lock wait."""
    cfg, watchdog, summary = run.cfg, run.watchdog, run.summary
    glue = loaded.glue
    name = _layer_name(cfg, destinations, None if summary.command == "run" else destinations[0])
    summary.layers_tried.append(name)
    text = (
        f"{name}: upgrading to {' then '.join(destinations)}."
        if name != "every head"
        else "Upgrading to every head of the scripts."
    )
    report.event("layer", text, layer=name, destinations=destinations)
    delays = retry.Backoff(initial=0.5, maximum=5.0).delays()
    retries = 0
    with engine.connect() as connection:
        if cfg.ddl_lock_timeout > 0:
            cfg.database.engine.ddl_session(connection, cfg.ddl_lock_timeout)
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
                        exc.retries_refused = True
                        raise
                    retries += 1
                    delay = next(delays)
                    report.warning(
                        "ddl_lock_retry",
                        f"Migration {exc.revision} timed out waiting for a table lock "
                        f"(DDL_LOCK_TIMEOUT); retry {retries}/{cfg.ddl_lock_retries} "
                        f"in {delay:.1f}s.",
                        revision=exc.revision,
                        retry=retries,
                    )
                    progress.rolled_back()  # the same migration runs again: same [k/N], the catalog read anew
                    retry.sleep(delay, checkpoint=watchdog.checkpoint)
            if connection.in_transaction():
                connection.commit()


def _may_run_again(connection: Any, script: Any, revision: str | None) -> bool:
    """Whether a failed migration can simply run again: always where DDL rolls back, else only if idempotent."""

    return not progress.needed(connection) or progress.idempotent(script, revision)


def _applied(glue: Any, script: Any, before: tuple[str, ...], after: tuple[str, ...]) -> list[str]:
    """What the version table says was applied: the revisions between its rows before and after."""
    if set(after) == set(before) or not after:
        return []
    try:
        return list(glue.pending_revisions(script, before, after))
    except Exception:  # rows these scripts cannot place: report none rather than guess
        return []


def _record_where_left(run: Run, loaded: Loaded, state: Any) -> None:
    """A failed run's summary says where it left the database, read back.  Best effort, bounded.

    A stop cancels the run's connections, the reader's too: on MySQL/MariaDB
    the watchdog's KILL QUERY can land on this very read (1317), and the
    summary then said "at base" over a committed a1 (issue 25 N19).  So a
    failed read is tried once more on a new connection the watchdog does not
    track, bounded by a few seconds; failing that, the summary says the
    revision is unknown (``to_revisions`` None) rather than a wrong one.
    """
    summary, expected, database = run.summary, run.expected, run.cfg.database
    try:
        after = standing_of(run.reader, expected)
    except Exception:  # the failure itself is what the summary must report
        reopen = database.engine.reader
        try:
            with reopen(
                database, read_only=True, connect_timeout=2, statement_timeout=2, checkpoint=None, track=None
            ) as fresh:
                after = standing_of(fresh, expected)
        except Exception:
            summary.to_revisions = None
            return
    summary.to_revisions = list(after.current)

    summary.applied = _applied(loaded.glue, loaded.script, state.current, after.current)


def _disk_full_left(summary: report.Summary) -> str:
    """Where a full disk left the database, read back: "nothing was applied" when nothing was (issue 25 N22)."""
    if not summary.applied:
        return f"nothing was applied: the database is at {revs(summary.to_revisions)}"
    return f"the database is at {revs(summary.to_revisions)} ({len(summary.applied)} applied by this run)"


def _failed(run: Run, loaded: Loaded, engine: Any, failure: MigrationFailed) -> report.Summary:
    """A named revision failed and was rolled back: stop, or run the create_all fallback."""
    cfg, watchdog, summary, reader, expected = run.cfg, run.watchdog, run.summary, run.reader, run.expected
    summary.failed_revision = failure.revision
    kind = classify(failure)
    where = f" while applying {failure.revision}" if failure.revision else ""
    if kind == "disk_full":
        path = cfg.database.sqlite_path
        disk = (
            f"The disk that holds the SQLite database {path} is full: SQLite could not write the database "
            f"or its journal{where}"
            if path
            else f"The database server at {cfg.database.safe} ran out of disk space{where}"
        )
        raise DiskFull(
            f"{disk} ({report.first_line(failure.__cause__ or failure)}). {undone(cfg.database.engine.transactional_ddl, 'The migration')}; "
            f"{_disk_full_left(summary)}; the create_all fallback was not tried. Free space on that "
            "volume (or grow it) and run again."
        ) from failure
    if kind == "access":
        raise AccessDenied(
            f"The database refused a statement of migration {failure.revision}: "
            f"{report.first_line(failure.__cause__ or failure)}. {undone(cfg.database.engine.transactional_ddl)}; it is not retried; grant the "
            "user what the migration needs (e.g. CREATE on the schema) and run again."
        ) from failure
    if kind in ("lock_not_available", "busy"):
        # create_all cannot make an ALTER happen: the fallback would only turn
        # this into a misleading verification failure.
        if failure.retries_refused:
            how = (
                f"past DDL_LOCK_TIMEOUT={cfg.ddl_lock_timeout:g}s; it was not retried, since MySQL/MariaDB "
                "keep what it applied before and its module does not declare idempotent = True"
            )
        else:
            how = (
                f"through DDL_LOCK_RETRIES={cfg.ddl_lock_retries} retries of DDL_LOCK_TIMEOUT={cfg.ddl_lock_timeout:g}s"
            )
        where = cfg.database.engine.activity_view
        raise MigrationFailed(
            f"{failure} Another transaction kept its lock on the table {how}; the fallback was not tried, "
            f"since it cannot apply this change. End the long transaction (see {where}) or raise "
            "DDL_LOCK_TIMEOUT, and run again.",
            revision=failure.revision,
        ) from failure
    _still_locked(run, failure)
    report.error("migration_failed", str(failure), revision=failure.revision)

    fallback = cfg.enable_fallback_create and loaded.metadata is not None
    Recorder(cfg, loaded.checksums).best_effort(
        engine,
        failure.revision,
        "fallback" if fallback else "failed",
        outcome=_left(cfg),
        detail=report.first_line(failure) + (" The create_all fallback ran." if fallback else ""),
    )
    if not cfg.enable_fallback_create:
        raise MigrationFailed(
            f"{failure} The fallback is off (ENABLE_FALLBACK_CREATE=false).", revision=failure.revision
        )
    if loaded.metadata is None:
        raise MigrationFailed(f"{failure} The fallback is unavailable: MODELS is not set.", revision=failure.revision)
    now = standing_of(reader, expected)
    if now.complete:
        # create_all would create nothing, so it would rescue nothing: a data migration that
        # failed, or tables that were there before any version row (issue 24).  Exit 1, the
        # revision still pending, never "FALLBACK USED".
        raise MigrationFailed(
            f"{failure} {_nothing_to_rescue(failure.revision, now, expected, loaded)}", revision=failure.revision
        )

    report.warning(
        "fallback",
        "Alembic could not bring the database to its target; running the create_all fallback from MODELS.",
        revision=failure.revision,
    )
    watchdog.phase = "running the create_all fallback"
    started = time.monotonic()
    try:
        created = loaded.schema.create_missing_tables(engine, loaded.metadata)
    except Exception as exc:
        watchdog.checkpoint()
        raise MigrationFailed(
            f"{failure} The create_all fallback failed too: {type(exc).__name__}: {report.first_line(exc)}.",
            revision=failure.revision,
        ) from exc
    summary.timed("fallback", started)
    summary.fallback_used = True
    if cfg.repair_missing_columns:
        _repair(engine, loaded)
    watchdog.phase = "verifying"
    watchdog.checkpoint()
    after = standing_of(reader, expected)
    summary.to_revisions = list(after.current)
    verified(summary, reader, expected, after, after="the create_all fallback")
    seed.apply(cfg, watchdog, engine, loaded.metadata, summary, after.owed)
    summary.outcome = "fallback"
    made = f"created {len(created)} missing table(s) ({', '.join(created)})" if created else "created no table"
    summary.message = (
        f"FALLBACK USED: migration {failure.revision} failed, and create_all {made}; verification "
        f"passed. The version table stays at {revs(summary.to_revisions)}, so {failure.revision} "
        "is still pending: fix the migration and run again."
    )
    return summary


def _verify_lock_at_commits(run: Run, engine: Any, progress_now: Callable[[], Any]) -> None:
    """Verify the migration lock before every commit of the migration engine, not only a migration's own.

    Progress checks each migration just before its commit; an ``autocommit_block()`` commits what
    ran before it (then runs its statements on their own), and the seeds and history rows commit
    on their own.  A lost lock stops the run before any of those commits: what it held is rolled
    back.  Inside a migration the stop is worded by :func:`_stopped`, which names it.  A
    migration's own commit, which Progress has just checked, is not asked again.
    """
    lock_check = run.lock_check
    if lock_check is None:
        return
    import sqlalchemy

    def verify(connection: Any) -> None:
        progress = progress_now()
        if progress is not None and progress.lock_checked_on is connection:
            progress.lock_checked_on = None
            return
        try:
            lock_check()
        except LockLost as lost:
            if progress is not None and progress.running is not None:
                raise
            raise lock.stopped(lost, "it stopped before its next commit, which was rolled back") from None

    sqlalchemy.event.listen(engine, "commit", verify)


def _still_locked(run: Run, failure: MigrationFailed) -> None:
    """The fallback and its history row write too: not once the lock is gone (another migrator may run beside)."""
    if run.lock_check is None:
        return
    try:
        run.lock_check()
    except LockLost as lost:
        raise lock.stopped(
            type(lost)(f"{failure} {lost}"),
            f"nothing more was done (no create_all fallback); the database is at {revs(run.summary.to_revisions)}",
        ) from failure


def _tables_of(snapshot: Any, expected: Expected) -> list[str]:
    """The tables a snapshot holds, without the version table and migrate-init's bookkeeping."""

    ours = {expected.version_table, PROGRESS_TABLE, SEED_TABLE}
    return sorted(t for t in snapshot.columns if t not in ours)


def _found(current: Any, snapshot: Any, expected: Expected) -> str:
    """Where the database stands, in words: never "base (empty)" for tables without a version row."""
    held = _tables_of(snapshot, expected)
    if current or not held:
        return revs(current)
    shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
    return f"base (no version row, but {len(held)} table(s): {shown})"


def _nothing_to_rescue(revision: str | None, now: Standing, expected: Expected, loaded: Loaded) -> str:
    """Why the create_all fallback was not run, and what to do instead."""
    if not now.current and _tables_of(now.snapshot, expected):
        heads = list(loaded.script.get_heads())
        target = heads[0] if len(heads) == 1 else "heads"
        return (
            f"The database is at {_found(now.current, now.snapshot, expected)}: it was made by create_all or "
            "another tool, so the first migration meets tables that already exist. The create_all fallback "
            "was not run, since every table and column of MODELS exists: it would rescue nothing. Adopt the "
            f"database instead: `migrate.py stamp {target}` checks it against MODELS and records that "
            "revision (`migrate.py check` shows how it differs); the next run then has nothing to do."
        )
    return (
        f"Every table and column of MODELS exists, so the schema is complete and the create_all fallback "
        f"would create nothing: it was not run. The version table stays at {revs(now.current)}, so "
        f"{revision} is still pending: fix it and run again."
    )


def _at_heads(run: Run, loaded: Loaded) -> report.Summary:
    """At the heads, with work left: missing columns (REPAIR_MISSING_COLUMNS=true) or seeds owed."""
    cfg, watchdog, summary, reader, expected = run.cfg, run.watchdog, run.summary, run.reader, run.expected
    engine = loaded.glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout, checkpoint=watchdog.checkpoint)
    try:
        _history(cfg, engine, loaded, standing_of(reader, expected).current)  # a baseline, if none was recorded
        from . import empty

        created = empty.complete_from_models(cfg, engine, loaded, standing_of(reader, expected))
        repaired: list[str] = []
        if cfg.repair_missing_columns and not standing_of(reader, expected).complete:
            watchdog.phase = "adding missing columns"
            repaired = _repair(engine, loaded)
        after = standing_of(reader, expected)
        at_target(summary, reader, expected, after, after="the check")
        seed.apply(cfg, watchdog, engine, loaded.metadata, summary, after.owed)
    finally:
        engine.dispose()
    if created:
        summary.message = (
            f"Database is at its target {revs(after.current)}; created {len(created)} table(s) "
            f"MODELS defines and no migration makes (EMPTY_DATABASE=models): {', '.join(created)}."
        )
    elif repaired:
        summary.message = (
            f"Database is at its target {revs(after.current)}; added {len(repaired)} missing "
            f"column(s) as nullable (REPAIR_MISSING_COLUMNS=true): {', '.join(repaired)}."
        )
    elif summary.seeded:
        summary.message = (
            f"Database is at its target {revs(after.current)}; seeded what an interrupted run "
            f"owed: {', '.join(summary.seeded)}."
        )
    return summary


def _repair(engine: Any, loaded: Loaded) -> list[str]:
    return loaded.schema.add_missing_columns(engine, loaded.metadata) if loaded.metadata is not None else []


def _history(cfg: Config, engine: Any, loaded: Loaded, current: tuple[str, ...]) -> Any:
    """The history table, created (and a migrated database's baseline recorded) before anything runs."""

    recorder = Recorder(cfg, loaded.checksums)
    recorder.ensure(engine, loaded.script, current)
    return recorder


def _left(cfg: Config) -> str:
    """What a failed migration left: nothing where DDL is transactional, maybe part of it on MySQL/MariaDB."""
    return "rolled_back" if cfg.database.engine.transactional_ddl else "partial"


class QuickCheck:
    """``PRAGMA quick_check`` of a SQLite file, on a read-only connection of its own, in a thread.

    A damaged file is exit 1 with nothing written (issue 12).  The check reads
    the whole file, so it starts as soon as the lock is held and runs while
    the scripts and models load (SQLite releases the GIL while it reads); its
    verdict is awaited before the backup and the first migration (issue 13).
    The watchdog interrupts it like any statement.
    """

    def __init__(self, cfg: Config, watchdog: Watchdog) -> None:
        self.path = cfg.database.sqlite_path
        self._outcome: list[Any] = []
        self._connection: Any = None

        def track(connection: Any) -> None:
            self._connection = connection
            watchdog.track(connection)

        self._reader = cfg.database.engine.reader(
            cfg.database, read_only=True, connect_timeout=10, statement_timeout=30, checkpoint=None, track=track
        )
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

    watchdog.phase = "backing up the database"
    folder = Path(cfg.backup_dir) if cfg.backup_dir else backup.default_folder(Path(path))
    label = "-".join(state.current) or "base"
    taken = backup.take(Path(path), folder, keep=cfg.backup_keep, label=label[:60], watchdog=watchdog)
    return str(taken) if taken else None


def _explain_branches(cfg: Config, state: Any, summary: report.Summary) -> None:
    heads = " ".join(state.heads)
    command = f'migrate.py alembic merge -m "merge heads" {heads}'
    summary.branches = list(state.heads)
    summary.merge_command = command
    how = (
        f"after MIGRATION_TARGET={cfg.migration_target}, every head is applied (layer 1)"
        if state.target_exists
        else f"MIGRATION_TARGET={cfg.migration_target} is not among the revisions; every head is applied (layer 2)"
        if cfg.migration_target_set
        else "every head is applied"
    )
    text = (
        f"The scripts have {len(state.heads)} heads ({', '.join(state.heads)}) and no merge: {how}. "
        f"Join the branches with: {command}"
    )
    summary.warnings.append(text)
    report.warning("several_heads", text, heads=list(state.heads), merge_command=command)
