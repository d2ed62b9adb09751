"""The verbs: run (the init sequence), upgrade REV, status, current, wait.

Order of one run: dependencies, wait for the database, check, lock, check
again, layered upgrade (or fallback), verify.  A database already at its
target needs no lock.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from . import db, report, scripts
from .config import Config
from .errors import (
    ConfigError,
    Interrupted,
    LockTimeout,
    MigrateInitError,
    MigrationFailed,
    MigrationTimeout,
    UnknownRevision,
    VerificationFailed,
)


@dataclass
class _Session:
    """What a verb needs once the database answers."""

    cfg: Config
    target: db.Target
    engine: object
    read_engine: object
    alembic_config: object
    script: object | None
    metadata: object | None
    script_error: MigrationFailed | None = None
    tracker: object | None = None
    guard: object | None = None


def _install_dependencies(cfg: Config, summary: report.Summary) -> None:
    if not cfg.extra_pip_packages and not cfg.pip_requirements:
        return
    from . import deps

    started = time.monotonic()
    installed = deps.ensure(
        list(cfg.extra_pip_packages),
        cfg.pip_requirements,
        str(cfg.deps_target),
        find_links=cfg.pip_find_links,
        no_index=cfg.pip_no_index,
    )
    summary.timed("dependencies", started)
    if str(cfg.deps_target) not in sys.path:
        sys.path.insert(0, str(cfg.deps_target))
    if installed:
        report.event("deps_installed", f"Installed {', '.join(installed)} into {cfg.deps_target}.",
                     packages=installed, target=str(cfg.deps_target))


def _connect(cfg: Config, summary: report.Summary, watchdog, target: db.Target | None = None) -> _Session:
    from . import metadata as metadata_module
    from . import wait

    target = target or db.parse(cfg.database_url)
    summary.database = target.safe
    engine = db.create_engine(target, lock_timeout=cfg.lock_timeout)
    read_engine = db.create_engine(target, lock_timeout=cfg.lock_timeout, write=False)
    watchdog.track_sqlalchemy()
    acfg = scripts.alembic_config(cfg.migrations_dir, target, models=cfg.models)
    metadata = metadata_module.load(cfg.models, [cfg.migrations_dir]) if cfg.models else None
    script, script_error = None, None
    try:
        script = scripts.load(acfg)
    except MigrationFailed as exc:
        script_error = exc
    started = time.monotonic()
    # The probe reads only: on SQLite it must not queue for the write lock (BEGIN IMMEDIATE).
    wait.wait_for(read_engine, target, cfg.db_wait_timeout)
    summary.timed("wait", started)
    session = _Session(cfg, target, engine, read_engine, acfg, script, metadata, script_error)
    from .guard import Guard

    session.guard = Guard(cfg.allow_destructive, lambda: session.tracker.current() if session.tracker else None)
    session.guard.install(engine)
    return session


def _state(session: _Session) -> scripts.State:
    with session.read_engine.connect() as connection:
        return scripts.state(session.script, connection, session.cfg.migration_target)


def run(cfg: Config, summary: report.Summary, watchdog, revision: str | None = None) -> None:
    """The init sequence (``revision`` None) or ``upgrade REV``."""
    from . import lock

    _install_dependencies(cfg, summary)
    target = db.parse(cfg.database_url)
    if target.sqlite_path is not None:
        # Before the database is first opened: nothing is created on a refused volume.
        lock.check_filesystem(target.sqlite_path, cfg.sqlite_allow_network_fs)
    session = _connect(cfg, summary, watchdog, target)
    if cfg.models is None:
        summary.warnings.append(
            "MODELS is not set for this MIGRATIONS_DIR: verification checks the revision "
            "only and the create_all fallback is unavailable."
        )
        report.warning("no_models", summary.warnings[-1])

    if revision is not None and session.script is not None and not _resolvable(session.script, revision):
        raise ConfigError(f"upgrade {revision}: no such revision in {cfg.migrations_dir}. "
                          "Run `migrate.py history` to list them.")
    if session.script is not None:
        state = _state(session)
        summary.from_revisions = list(state.current)
        if state.unknown:
            _schema_ahead(session, state, summary)
            return
        if revision is None and state.at_target and not _repair_needed(session):
            _done_nothing(session, state, summary)
            return
        if len(state.heads) > 1:
            _explain_branches(cfg, state, summary)
        if not cfg.enable_auto_migration:
            summary.to_revisions = list(state.current)
            report.event("auto_migration_off", f"ENABLE_AUTO_MIGRATION=false: {len(state.pending)} "
                         "pending migration(s) not applied; verifying only.", pending=list(state.pending))
            _verify(session, summary, after="the check (ENABLE_AUTO_MIGRATION=false)")
            summary.message = (f"ENABLE_AUTO_MIGRATION=false; {len(state.pending)} migration(s) pending; "
                               "verification passed.")
            return

    with lock.migration_lock(session.engine, session.target, timeout=cfg.lock_timeout,
                             allow_network_fs=cfg.sqlite_allow_network_fs):
        watchdog.arm(cfg.migration_timeout)
        try:
            _migrate_locked(session, summary, watchdog, revision)
        except (MigrationTimeout, Interrupted):
            raise  # the database may still be busy: exit now, without reading it again
        except MigrateInitError:
            _record_where_left(session, summary)
            raise
        finally:
            watchdog.disarm()


def _record_where_left(session: _Session, summary: report.Summary) -> None:
    """A failed run's summary says what it applied and where it left the database.  Read-only, best effort."""
    if session.tracker is not None:
        summary.applied = summary.applied or list(session.tracker.applied)
        summary.failed_revision = summary.failed_revision or session.tracker.failed_revision
    try:
        with session.read_engine.connect() as connection:
            summary.to_revisions = list(scripts.current_revisions(connection))
    except Exception:  # the failure itself is what the summary must report
        pass


def _migrate_locked(session: _Session, summary: report.Summary, watchdog, revision: str | None) -> None:
    from . import runner

    cfg = session.cfg
    was_empty = _is_empty(session)
    failure: MigrationFailed | None = session.script_error
    state = None
    if failure is None:
        # Check again: another replica may have finished while we waited.
        state = _state(session)
        if state.unknown:
            _schema_ahead(session, state, summary)
            return
        if revision is None and state.at_target:
            # REPAIR_MISSING_COLUMNS also levels a database that is at its target (issue 5).
            repaired = _repair(session)
            _done_nothing(session, state, summary, after_lock=not repaired)
            if repaired:
                summary.message = (f"Database is at its target {_revs(state.current)}; added "
                                   f"{len(repaired)} missing column(s) as nullable "
                                   f"(REPAIR_MISSING_COLUMNS=true): {', '.join(repaired)}.")
            return
        started = time.monotonic()
        total = len(state.pending)
        if revision is not None:
            total = len(scripts.pending_revisions(session.script, state.current, [revision]))
        report.event("pending", f"Database at {_revs(state.current)}; {total} migration(s) to apply.",
                     current=list(state.current), pending=list(state.pending))
        _backup(session, summary, state)
        session.tracker = runner.StepTracker(total)
        with session.engine.connect() as connection:
            if session.target.is_postgresql and cfg.ddl_lock_timeout > 0:
                # A queued ALTER would block every reader of the table behind
                # it; give up quickly and retry instead (runner.upgrade).
                connection.exec_driver_sql(f"SET lock_timeout = {int(cfg.ddl_lock_timeout * 1000)}")
                connection.commit()
            session.alembic_config.attributes["connection"] = connection
            try:
                summary.applied = runner.upgrade(
                    session.alembic_config,
                    target_name=cfg.migration_target,
                    target_exists=state.target_exists,
                    total=total,
                    tried=summary.layers_tried,
                    watchdog=watchdog,
                    explicit=revision,
                    lock_retries=cfg.ddl_lock_retries,
                    tracker=session.tracker,
                )
            except MigrationFailed as exc:
                failure = exc
            finally:
                session.alembic_config.attributes["connection"] = None
        summary.timed("upgrade", started)
        if failure is None and not state.target_exists and revision is None and cfg.migration_target_set:
            summary.warnings.append(f"MIGRATION_TARGET={cfg.migration_target} is not a revision of "
                                    "these scripts; upgraded to every head instead.")
            report.warning("target_missing", summary.warnings[-1], target=cfg.migration_target)
    if failure is not None:
        summary.failed_revision = failure.revision
        from .wait import storage_error

        disk_full = storage_error(session.target, failure, failure.revision)
        if disk_full is not None:
            raise disk_full from failure
        if _ddl_lock_timed_out(failure):
            # create_all cannot make an ALTER happen: the fallback would only
            # turn this into a misleading verification failure.
            raise MigrationFailed(
                f"{failure} Another transaction kept its lock on the table through "
                f"DDL_LOCK_RETRIES={cfg.ddl_lock_retries} retries of DDL_LOCK_TIMEOUT="
                f"{cfg.ddl_lock_timeout:g}s; the fallback was not tried, since it cannot apply "
                "this change. End the long transaction (see pg_stat_activity) or raise "
                "DDL_LOCK_TIMEOUT, and run again.",
                revision=failure.revision,
            ) from failure
        report.error("migration_failed", str(failure), revision=failure.revision)
        _fallback(session, summary, failure)
        _seed(session, summary, was_empty)
        return
    _repair(session)
    state = _state(session)
    summary.to_revisions = list(state.current)
    if revision is not None and not state.at_target:
        summary.message = (f"Upgraded to {revision}: {len(summary.applied)} migration(s) applied; "
                           "not at the heads, so table verification was skipped.")
        return
    _verify(session, summary, after="the upgrade")
    _seed(session, summary, was_empty)
    summary.outcome = "upgraded" if summary.applied else "at_target"
    summary.message = (f"Upgraded {_revs(summary.from_revisions)} -> {_revs(state.current)}: "
                       f"{len(summary.applied)} migration(s) applied ({summary.layers_tried[-1]}); "
                       "verification passed.")


def _ddl_lock_timed_out(failure: MigrationFailed) -> bool:
    """Whether the migration gave up waiting for a table lock (PostgreSQL lock_timeout, 55P03)."""
    orig = getattr(failure.__cause__, "orig", None)
    return (getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)) == "55P03"


def _fallback(session: _Session, summary: report.Summary, failure: MigrationFailed) -> None:
    from . import fallback

    cfg = session.cfg
    if not cfg.enable_fallback_create:
        raise MigrationFailed(f"{failure} The fallback is off (ENABLE_FALLBACK_CREATE=false).",
                              revision=failure.revision)
    if session.metadata is None:
        raise MigrationFailed(f"{failure} The fallback is unavailable: MODELS is not set.",
                              revision=failure.revision)
    report.warning("fallback", "Alembic could not bring the database to its target; running the "
                   "create_all fallback from MODELS.", revision=failure.revision)
    started = time.monotonic()
    try:
        fallback.create_missing_tables(session.engine, session.metadata)
    except Exception as exc:
        raise MigrationFailed(
            f"{failure} The create_all fallback failed too: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}.",
            revision=failure.revision,
        ) from exc
    summary.timed("fallback", started)
    summary.fallback_used = True
    _repair(session)
    _verify(session, summary, after="the create_all fallback")
    with session.read_engine.connect() as connection:
        summary.to_revisions = list(scripts.current_revisions(connection))
    summary.outcome = "fallback"
    where = f"migration {failure.revision}" if failure.revision else "Alembic"
    summary.message = (f"FALLBACK USED: {where} failed, and create_all created the missing tables; "
                       f"verification passed. The version table stays at {_revs(summary.to_revisions)}: "
                       "fix the migration and run again.")


def _is_empty(session: _Session) -> bool:
    """No tables at all: a fresh deploy, which SEED_DIR seeds."""
    from sqlalchemy import inspect

    with session.read_engine.connect() as connection:
        return not inspect(connection).get_table_names()


def _backup(session: _Session, summary: report.Summary, state: scripts.State) -> None:
    """SQLite: back up before applying pending migrations, and only then."""
    cfg = session.cfg
    path = session.target.sqlite_path
    if path is None or not state.pending or cfg.backup_keep == 0:
        return
    from . import backup

    folder = cfg.backup_dir or backup.default_folder(path)
    label = "-".join(state.current) or "base"
    taken = backup.take(path, folder, keep=cfg.backup_keep, label=label[:60])
    summary.backup = str(taken) if taken else None


def _seed(session: _Session, summary: report.Summary, was_empty: bool) -> None:
    if not was_empty:
        return
    from . import seed

    seeded = seed.run(session.engine, session.cfg.seed_dir, session.metadata)
    if seeded:
        summary.seeded = seeded
        report.event("seeded", f"Seeded the new database from {session.cfg.seed_dir}: {', '.join(seeded)}.",
                     files=seeded)


def _repair(session: _Session) -> list[str]:
    if not session.cfg.repair_missing_columns or session.metadata is None:
        return []
    from . import repair

    return repair.add_missing_columns(session.engine, session.metadata)


def _repair_needed(session: _Session) -> bool:
    """REPAIR_MISSING_COLUMNS is on and a model column is missing: the run must take the lock.  Read-only."""
    if not session.cfg.repair_missing_columns or session.metadata is None:
        return False
    from . import metadata as metadata_module
    from . import verify

    with session.read_engine.connect() as connection:
        findings = verify.compare(connection, metadata_module.expected_schema(session.metadata))
    return bool(findings.missing_columns)


def _explain_branches(cfg: Config, state: scripts.State, summary: report.Summary) -> None:
    heads = " ".join(state.heads)
    # The shipped alembic.ini points at the shipped folder; a custom folder has its own ini.
    ini = "-c alembic.ini " if cfg.shipped_migrations else ""
    command = f"alembic {ini}merge -m \"merge heads\" {heads}"
    summary.branches = list(state.heads)
    summary.merge_command = command
    # Branches after MIGRATION_TARGET are unmerged too: layer 1 goes on to every head (issue 5).
    how = (f"after MIGRATION_TARGET={cfg.migration_target}, every head is applied (layer 1)"
           if state.target_exists else
           f"MIGRATION_TARGET={cfg.migration_target} is not among the revisions; every head is "
           "applied (layer 2)")
    text = (f"The scripts have {len(state.heads)} heads ({', '.join(state.heads)}) and no merge: "
            f"{how}. Join the branches with: {command}")
    summary.warnings.append(text)
    report.warning("several_heads", text, heads=list(state.heads), merge_command=command)


def _done_nothing(session: _Session, state: scripts.State, summary: report.Summary, *,
                  command: str = "run", after_lock: bool = False) -> None:
    summary.to_revisions = list(state.current)
    _verify(session, summary, after="the check")
    report.at_target(summary, _revs(state.current), command=command, after_lock=after_lock)


def _schema_ahead(session: _Session, state: scripts.State, summary: report.Summary) -> None:
    """A revision these scripts do not know: exit 0 when the models' schema is all there, else 6."""
    unknown = _revs(state.unknown)
    summary.to_revisions = list(state.current)
    if session.metadata is None:
        raise UnknownRevision(
            f"The database is at revision {unknown}, which these migration scripts do not "
            "know, and MODELS is not set, so the schema cannot be checked. Deploy the image "
            "that has that revision, or set MODELS."
        )
    try:
        _verify(session, summary, after="the check")
    except VerificationFailed as exc:
        raise UnknownRevision(
            f"The database is at revision {unknown}, which these migration scripts do not "
            f"know, and the models' schema is not all there ({str(exc).split(': ', 1)[-1]}) "
            "Deploy the image that has that revision; nothing was changed."
        ) from None
    warning = (f"Schema ahead of code: the database is at revision {unknown}, unknown to these "
               "scripts, and every table and column the models define exists. Nothing was "
               "changed; no fallback, no downgrade.")
    summary.warnings.append(warning)
    report.warning("schema_ahead", warning, revisions=list(state.unknown))
    summary.outcome = "schema_ahead"
    summary.message = warning


def _verify(session: _Session, summary: report.Summary, *, after: str) -> None:
    from . import metadata as metadata_module
    from . import verify

    if session.metadata is None:
        return
    expected = metadata_module.expected_schema(session.metadata)
    with session.read_engine.connect() as connection:
        verify.check(connection, expected, after=after)
        counts = verify.row_counts(connection, metadata_module.counted_tables(session.metadata))
    summary.row_counts = counts
    report.verified(len(expected), counts)


def status(cfg: Config, watchdog) -> int:
    """Print current revisions, heads and pending migrations.  Read-only.  0 at target, 1 pending."""
    summary = report.Summary(command="status")
    session = _connect(cfg, summary, watchdog)
    if session.script is None:
        raise session.script_error
    state = _state(session)
    out = sys.stdout
    print(f"database: {session.target.safe}", file=out)
    print(f"current:  {_revs(state.current)}", file=out)
    print(f"heads:    {_revs(state.heads)}", file=out)
    print(f"target:   {cfg.migration_target}"
          + ("" if state.target_exists else " (not in these scripts; every head is the goal)"), file=out)
    if state.unknown:
        print(f"unknown:  {_revs(state.unknown)} (not in these scripts)", file=out)
        return UnknownRevision.exit_code
    if state.pending:
        print(f"pending:  {len(state.pending)}", file=out)
        for rev in state.pending:
            print(f"  {scripts.describe(session.script, rev)}", file=out)
        return 1
    print("pending:  none (at target)", file=out)
    return 0


def current(cfg: Config, watchdog) -> int:
    """Print the database's revision(s).  Read-only."""
    summary = report.Summary(command="current")
    session = _connect(cfg, summary, watchdog)
    with session.read_engine.connect() as connection:
        print(_revs(scripts.current_revisions(connection)))
    return 0


def wait_for_target(cfg: Config, summary: report.Summary, watchdog) -> None:
    """Wait until another migrator brought the database to its target.  Never migrates."""
    from . import lock, wait

    session = _connect(cfg, summary, watchdog)
    if session.script is None:
        raise session.script_error
    budget = cfg.lock_timeout + cfg.migration_timeout
    deadline = time.monotonic() + budget
    delays = wait.Backoff(initial=0.2, maximum=2.0).delays()
    announced = False
    while True:
        state = _state(session)
        if state.unknown:
            _schema_ahead(session, state, summary)
            return
        if state.at_target:
            _done_nothing(session, state, summary, command="wait")
            return
        if not announced:
            report.event("wait_target", f"Waiting for another migrator: {len(state.pending)} migration(s) "
                         f"pending, for up to {budget:g}s (LOCK_TIMEOUT + MIGRATION_TIMEOUT).",
                         pending=list(state.pending))
            announced = True
        if time.monotonic() >= deadline:
            holder = lock.holder(session.engine, session.target)
            if holder is not None:
                raise LockTimeout(
                    f"The database is still {len(state.pending)} migration(s) behind after {budget:g}s "
                    f"(LOCK_TIMEOUT + MIGRATION_TIMEOUT); a migrator holds the lock: {holder}."
                )
            raise MigrationTimeout(
                f"The database is still {len(state.pending)} migration(s) behind after {budget:g}s "
                "(LOCK_TIMEOUT + MIGRATION_TIMEOUT) and no migrator holds the lock. Is the "
                "migration Job running?"
            )
        time.sleep(min(next(delays), max(deadline - time.monotonic(), 0.0)))


def verify_only(cfg: Config, summary: report.Summary, watchdog) -> None:
    """The integrity check alone: tables and columns against MODELS, plus row counts.  Read-only."""
    if cfg.models is None:
        raise ConfigError("verify needs MODELS (module:attribute of your MetaData or Base) "
                          "for this MIGRATIONS_DIR.")
    session = _connect(cfg, summary, watchdog)
    with session.read_engine.connect() as connection:
        summary.to_revisions = list(scripts.current_revisions(connection))
    _verify(session, summary, after="the check")
    summary.outcome = "verified"
    summary.message = f"Every table and column of MODELS exists (revision {_revs(summary.to_revisions)})."


def check(cfg: Config, watchdog) -> int:
    """Compare the database with the models (Alembic's compare_metadata).  Read-only.  0 clean, 1 drift."""
    from . import verify

    if cfg.models is None:
        raise ConfigError("check needs MODELS (module:attribute of your MetaData or Base) "
                          "for this MIGRATIONS_DIR.")
    session = _connect(cfg, report.Summary(command="check"), watchdog)
    with session.read_engine.connect() as connection:
        differences = verify.drift(connection, session.metadata)
    if not differences:
        print(f"No drift: {session.target.safe} matches MODELS={cfg.models}.")
        return 0
    print(f"{len(differences)} difference(s) between {session.target.safe} and MODELS={cfg.models}:")
    for line in differences:
        print(f"  - {line}")
    return 1


def plan(cfg: Config, watchdog) -> int:
    """List the pending migrations and the SQL they would run.  Changes nothing, not even the version."""
    from . import lock
    from . import plan as plan_module

    session = _connect(cfg, report.Summary(command="plan"), watchdog)
    if session.script is None:
        raise session.script_error
    state = _state(session)
    if state.unknown:
        raise UnknownRevision(f"The database is at revision {_revs(state.unknown)}, unknown to these "
                              "scripts; there is nothing to plan.")
    print(f"database: {session.target.safe}")
    print(f"current:  {_revs(state.current)}")
    if not state.pending:
        print("Nothing to apply: the database is at its target.")
        return 0
    destinations = [cfg.migration_target, "heads"] if state.target_exists else ["heads"]
    recorded: list = []
    session.guard.record = recorded
    with lock.migration_lock(session.engine, session.target, timeout=cfg.lock_timeout,
                             allow_network_fs=cfg.sqlite_allow_network_fs):
        steps = plan_module.dry_run(session.engine, session.alembic_config, destinations)
    flagged = {text for *_, text in recorded}
    print(f"pending:  {len(steps)} migration(s); the SQL below ran in a transaction that was rolled back.")
    for index, step in enumerate(steps, 1):
        print(f"\n-- [{index}/{len(steps)}] {step.revision} ({step.name})  {step.path}")
        for statement in step.statements or ["-- (no SQL)"]:
            mark = "  -- DESTRUCTIVE: refused unless ALLOW_DESTRUCTIVE=true" if statement in flagged else ""
            print(f"{statement};{mark}" if not statement.startswith("--") else statement)
    return 0


def lint(cfg: Config) -> int:
    """Scan the scripts and the SQL they send for destructive and non-idempotent patterns.  0 clean, 1 findings."""
    from . import lint as lint_module

    scripts._check_folder(cfg.migrations_dir)
    findings = lint_module.scan_sources(cfg.migrations_dir / "versions")
    sql_findings, steps, where = lint_module.scan_sql(cfg.migrations_dir, cfg.models, db.parse(cfg.database_url))
    findings += sql_findings
    print(f"SQL pass: the whole chain from an empty database on {where}.")
    if not where.startswith("PostgreSQL"):
        print("squawk: skipped; its rules read PostgreSQL SQL: set DATABASE_URL to a PostgreSQL database.")
    else:
        advice = lint_module.squawk(steps)
        if advice is None:
            print("squawk: not installed; its PostgreSQL rules were skipped.")
        for line in advice or []:
            print(f"squawk (advice): {line}")
    for finding in findings:
        print(finding)
    if findings:
        print(f"{len(findings)} finding(s) in {cfg.migrations_dir}.")
        return 1
    print(f"No findings in {cfg.migrations_dir}: every migration is additive and idempotent.")
    return 0


def _resolvable(script, revision: str) -> bool:
    try:
        script.revision_map.get_revisions(revision)
        return True
    except Exception:
        return False


def _revs(revisions) -> str:
    revisions = list(revisions)
    return ", ".join(revisions) if revisions else "base (empty)"


__all__ = ["run", "status", "current", "wait_for_target", "ConfigError"]
