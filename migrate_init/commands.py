"""The verbs besides ``run``: they read, plan or record, and return data; the CLI prints and exits.

Read-only verbs (``status``, ``current``, ``verify``, ``check``, ``wait``)
open the database read-only (SQLite ``mode=ro``, PostgreSQL read-only
transactions): they create nothing, work on a read-only mount, and a SQLite
file that does not exist is exit 3.  ``plan`` and ``lint`` run migrations
inside one transaction that is rolled back (:func:`alembic_glue.dry_run`).
``stamp`` adopts an existing database.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import guard, lock, manifest, report, retry, wait
from . import lint as lint_module
from .errors import ConfigError, LockTimeout, MigrationTimeout, UnknownRevision, VerificationFailed
from .probe import connect_mysql, connect_postgresql, describe_missing
from .run import Loaded, at_target, expected_for, fast_path_taken, revs, standing_of, verified
from .upgrade import effect_guard, migration_lock

if TYPE_CHECKING:
    from .config import Config
    from .watchdog import Watchdog


class Listing:
    """What a verb prints on stdout, and how it came out (``ok``, ``pending``, ``drift``, ``findings``)."""

    def __init__(self, lines: list[str], outcome: str = "ok") -> None:
        self.lines = lines
        self.outcome = outcome


def _reader(cfg: Config, watchdog: Watchdog, *, missing_is_transient: bool = False) -> Any:
    watchdog.phase = "waiting for the database"
    return wait.connect(cfg.database, timeout=cfg.db_wait_timeout, read_only=True, watchdog=watchdog,
                        missing_is_transient=missing_is_transient)


def status(cfg: Config, watchdog: Watchdog) -> Listing:
    """Current revisions, heads and pending migrations.  Read-only."""
    loaded = Loaded(cfg)
    glue = loaded.glue
    with _reader(cfg, watchdog) as reader:
        standing = standing_of(reader, loaded.expected())
    state = glue.state(loaded.script, standing.current, cfg.migration_target)
    lines = [
        f"database: {cfg.database.safe}",
        f"current:  {revs(state.current)}",
        f"heads:    {revs(state.heads)}",
        f"target:   {cfg.migration_target}"
        + ("" if state.target_exists else " (not in these scripts; every head is the goal)"),
    ]
    if standing.interrupted:
        lines.append(f"interrupted: {', '.join(standing.interrupted)} (began on an earlier run and "
                     "never finished; MySQL/MariaDB keep what it applied: see `migrate.py resolve`)")
    foreign = [r for r in standing.snapshot.in_progress or () if r not in standing.interrupted]
    if foreign:
        lines.append(f"interrupted: {', '.join(foreign)} (not in these scripts: left to the image that has it)")
    if state.unknown:
        lines.append(f"unknown:  {revs(state.unknown)} (not in these scripts)")
        return Listing(lines, "unknown_revision")
    if state.pending:
        lines.append(f"pending:  {len(state.pending)}")
        lines.extend(f"  {glue.describe(loaded.script, rev)}" for rev in state.pending)
        return Listing(lines, "pending")
    lines.append("pending:  none (at target)")
    return Listing(lines)


def current(cfg: Config, watchdog: Watchdog) -> Listing:
    """The database's revision(s).  Read-only; needs neither the scripts nor the models."""
    with _reader(cfg, watchdog) as reader:
        snapshot = reader.snapshot("alembic_version")
    return Listing([revs(snapshot.versions or ())])


def verify(cfg: Config, watchdog: Watchdog) -> report.Summary:
    """The integrity check alone: tables and columns against MODELS, plus row counts.  Read-only."""
    summary = report.Summary(command="verify", database=cfg.database.safe)
    expected = expected_for(cfg)
    with _reader(cfg, watchdog) as reader:
        watchdog.phase = "verifying"
        standing = standing_of(reader, expected)
        summary.from_revisions = summary.to_revisions = list(standing.current)
        if cfg.models is None and not standing.at_heads:
            raise VerificationFailed(
                f"The database is at {revs(standing.current)}, not at the heads {revs(expected.heads)}; MODELS is "
                "not set, so only the revision was checked. Run the migration, or set MODELS."
            )
        verified(summary, reader, expected, standing, after="the check")
        fast_path_taken(expected, standing)
    summary.outcome = "verified"
    if cfg.models is None:
        summary.message = (f"The database is at the heads {revs(summary.to_revisions)}; MODELS is not set, so "
                           "tables and columns were not checked.")
    else:
        summary.message = f"Every table and column of MODELS exists (revision {revs(summary.to_revisions)})."
    return summary


def wait_for_target(cfg: Config, watchdog: Watchdog) -> report.Summary:
    """Wait until another migrator brought the database to its target.  Never migrates; read-only."""
    summary = report.Summary(command="wait", database=cfg.database.safe)
    expected = expected_for(cfg)
    budget = cfg.lock_timeout + cfg.migration_timeout
    # A SQLite file the migrator has not created yet is waited for (DB_WAIT_TIMEOUT), not refused.
    with _reader(cfg, watchdog, missing_is_transient=True) as reader:
        deadline = time.monotonic() + budget
        watchdog.phase = "waiting for another migrator"
        announced: list[bool] = []

        def attempt() -> Any:
            standing = standing_of(reader, expected)
            # At the heads but short of MODELS: no migrator will add those columns, so waiting on
            # would only end in a misleading timeout; verification says what is missing (exit 7).
            if standing.unknown or standing.done or (standing.at_heads and not standing.complete):
                if standing.done:
                    fast_path_taken(expected, standing)
                return standing
            if not announced:
                behind = len([r for r in expected.heads if r not in standing.current]) or 1
                report.event("wait_target", f"Waiting for another migrator: the database is at "
                             f"{revs(standing.current)}, not {revs(expected.heads)}, for up to {budget:g}s "
                             "(LOCK_TIMEOUT + MIGRATION_TIMEOUT).", pending=behind)
                announced.append(True)
            return None

        def timed_out() -> BaseException:
            holder = _holder(cfg, expected)
            if holder is not None:
                return LockTimeout(f"The database is still not at its target after {budget:g}s (LOCK_TIMEOUT + "
                                   f"MIGRATION_TIMEOUT); a migrator holds the lock: {holder}.")
            return MigrationTimeout(f"The database is still not at its target after {budget:g}s (LOCK_TIMEOUT + "
                                    "MIGRATION_TIMEOUT) and no migrator holds the lock. Is the migration Job "
                                    "running?")

        standing = retry.poll(attempt, deadline=deadline, backoff=retry.Backoff(initial=0.2, maximum=2.0),
                              checkpoint=watchdog.checkpoint, on_timeout=timed_out)
        if standing.unknown:
            raise UnknownRevision(f"The database is at revision {revs(standing.unknown)}, which these "
                                  "migration scripts do not know. Deploy the image that has that revision.")
        return at_target(summary, reader, expected, standing, after="the check", command="wait")


def _holder(cfg: Config, expected: Any) -> str | None:
    path = cfg.database.sqlite_path
    if path is not None:
        return lock.holder_sqlite(path)
    if cfg.database.backend == "postgresql":
        connection = connect_postgresql(cfg.database, 5, None)
        try:
            connection.autocommit = True
            return lock.holder_postgresql(connection, cfg.database.database or "", expected.version_table)
        finally:
            connection.close()
    if cfg.database.backend == "mysql":
        connection = connect_mysql(cfg.database, 5, None)
        try:
            return lock.holder_mysql(connection, cfg.database.database or "", expected.version_table)
        finally:
            connection.close()
    return None


def check(cfg: Config, watchdog: Watchdog) -> Listing:
    """Compare the database with the models (Alembic's compare_metadata), in words.  Read-only."""
    if cfg.models is None:
        raise ConfigError("check needs MODELS (module:attribute of your MetaData or Base) for this "
                          "MIGRATIONS_DIR.")
    loaded = Loaded(cfg)
    assert loaded.metadata is not None  # MODELS is set
    _reader(cfg, watchdog).close()  # waits for the database, and a missing SQLite file is exit 3
    engine = loaded.glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout, read_only=True,
                                       checkpoint=watchdog.checkpoint)
    watchdog.track_sqlalchemy()
    try:
        with engine.connect() as connection:
            differences = loaded.schema.drift(connection, loaded.metadata)
    finally:
        engine.dispose()
    if not differences:
        return Listing([f"No drift: {cfg.database.safe} matches MODELS={cfg.models}."])
    lines = [f"{len(differences)} difference(s) between {cfg.database.safe} and MODELS={cfg.models}:"]
    lines.extend(f"  - {line}" for line in differences)
    return Listing(lines, "drift")


def plan(cfg: Config, watchdog: Watchdog) -> Listing:
    """The pending migrations and the SQL they run, in a transaction that is rolled back.

    It takes the migration lock, and while it runs it takes the locks the
    migrations take (DDL_LOCK_TIMEOUT and MIGRATION_TIMEOUT apply).
    """
    loaded = Loaded(cfg)
    glue = loaded.glue
    expected = loaded.expected()
    with _reader(cfg, watchdog) as reader:
        standing = standing_of(reader, expected)
        state = glue.state(loaded.script, standing.current, cfg.migration_target)
        if state.unknown:
            raise UnknownRevision(f"The database is at revision {revs(state.unknown)}, unknown to these "
                                  "scripts; there is nothing to plan.")
        lines = [f"database: {cfg.database.safe}", f"current:  {revs(state.current)}"]
        if not state.pending:
            lines.append("Nothing to apply: the database is at its target.")
            return Listing(lines)
        if cfg.database.backend == "mysql":
            return _plan_without_running(lines, loaded.script, state)
        destinations = [cfg.migration_target, "heads"] if state.target_exists else ["heads"]
        effects = effect_guard(cfg, expected.version_table, loaded.script, record=True)
        progress = glue.Progress(loaded.script, len(state.pending), guard=effects, dry_run=True,
                                 checkpoint=watchdog.checkpoint)
        watchdog.phase = "waiting for the migration lock"
        with migration_lock(cfg, expected, watchdog):
            engine = glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout, checkpoint=watchdog.checkpoint)
            watchdog.track_sqlalchemy()
            watchdog.phase = "planning (a dry run, rolled back)"
            try:
                glue.dry_run(loaded.config, loaded.script, engine, destinations, progress,
                             prepare=_ddl_lock_timeout(cfg))
            finally:
                engine.dispose()
    steps = progress.begun
    lines.append(f"pending:  {len(steps)} migration(s); the SQL below ran in a transaction that was rolled back.")
    for index, step in enumerate(steps, 1):
        lines.append(f"\n-- [{index}/{len(steps)}] {step.revision} ({step.doc or ''})  {step.path}")
        losses = [loss for f in effects.findings if f.revision == step.revision for loss in f.losses]
        for statement in progress.statements.get(step.revision) or ["-- (no SQL)"]:
            if statement.startswith("--"):
                lines.append(statement)
                continue
            # The guard's verdict is what `run` acts on; a text rule only points at what
            # the guard does not judge (a TRUNCATE of rows), never at a drop it judged.
            found = guard.classify(statement)
            hint = not losses and found and found[0] == "truncate"
            lines.append(f"{statement};" + ("  -- ROWS DELETED? (a text rule; the guard judges the schema)"
                                            if hint else ""))
        allowed = effects.allowed(step.revision, glue.reviewed(step))
        lines.extend(f"-- DESTRUCTIVE: {loss.describe()}; "
                     + ("allowed by ALLOW_DESTRUCTIVE or its module" if allowed
                        else f"refused unless ALLOW_DESTRUCTIVE={step.revision}") for loss in losses)
        lines.extend(f"-- NOTE: {loss.describe()} (no value lost; code still running may break)"
                     for f in effects.hints if f.revision == step.revision for loss in f.losses)
    return Listing(lines)


def _plan_without_running(lines: list[str], script: Any, state: Any) -> Listing:
    """MySQL/MariaDB: the pending migrations, not run: DDL there commits at once, so no dry run can be undone."""
    pending = list(state.pending)
    lines.append(f"pending:  {len(pending)} migration(s), not run: MySQL/MariaDB commit each DDL statement at "
                 "once, so plan cannot run them in a transaction and roll it back. `run` judges each "
                 "statement before it runs (the destructive guard); `migrate.py lint` shows the SQL of the "
                 "chain as it runs on a throw-away SQLite file.")
    for index, revision in enumerate(pending, 1):
        found = script.get_revision(revision)
        lines.append(f"-- [{index}/{len(pending)}] {revision} ({found.doc or ''})  {found.path}")
    return Listing(lines)


def _ddl_lock_timeout(cfg: Config) -> Any:
    def prepare(connection: Any) -> None:
        if connection.dialect.name == "postgresql" and cfg.ddl_lock_timeout > 0:
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, int(cfg.ddl_lock_timeout * 1000))}")
    return prepare


def lint(cfg: Config, watchdog: Watchdog) -> Listing:
    """Destructive and non-idempotent patterns in the scripts and the SQL they send.  Changes nothing."""
    loaded = Loaded(cfg)
    findings = [finding for folder in manifest.version_dirs(loaded.script)  # every version location
                for finding in lint_module.scan_sources(Path(folder))]
    sql_findings, steps, where = lint_module.scan_sql(loaded, cfg)
    findings += sql_findings
    lines = [f"SQL pass: the whole chain from an empty database on {where}."]
    if not where.startswith("PostgreSQL"):
        lines.append("squawk: skipped; its rules read PostgreSQL SQL: set DATABASE_URL to a PostgreSQL database.")
    else:
        advice = lint_module.squawk(steps)
        if advice is None:
            lines.append("squawk: not installed; its PostgreSQL rules were skipped.")
        lines.extend(f"squawk (advice): {line}" for line in advice or [])
    lines.extend(str(finding) for finding in findings)
    findings = [finding for finding in findings if finding.kind != "hint"]  # a text rule's hint is no verdict
    if findings:
        lines.append(f"{len(findings)} finding(s) in {cfg.migrations_dir}.")
        return Listing(lines, "findings")
    lines.append(f"No findings in {cfg.migrations_dir}: every migration is additive and idempotent.")
    return Listing(lines)


def stamp(cfg: Config, watchdog: Watchdog, revision: str) -> report.Summary:
    """Adopt an existing database: under the lock, check it against MODELS, then record REV.

    A database made by ``create_all``, by the app itself or by another tool
    has the tables but no version row.  A mismatch is exit 7 with nothing
    written (Flyway's ``baseline``, Alembic's ``stamp``).
    """
    if cfg.models is None:
        raise ConfigError("stamp needs MODELS (module:attribute of your MetaData or Base) to check the "
                          "database before it records a revision.")
    summary = report.Summary(command="stamp", database=cfg.database.safe)
    loaded = Loaded(cfg)
    glue = loaded.glue
    found = glue.lookup(loaded.script, revision)
    if (found is None or revision in ("head", "heads")) and revision not in ("head", "heads"):
        raise ConfigError(f"stamp {revision}: no such revision in {cfg.migrations_dir}. Run "
                          "`migrate.py history` to list them.")
    expected = loaded.expected()
    with _reader(cfg, watchdog) as reader, migration_lock(cfg, expected, watchdog, reader=reader):
        standing = standing_of(reader, expected)
        summary.from_revisions = list(standing.current)
        if not standing.complete:
            raise VerificationFailed(
                "stamp: the database does not match MODELS, so no revision was recorded: "
                f"{_missing(standing)}. Bring the schema level first (`migrate.py check` shows how it differs)."
            )
        engine = glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout, checkpoint=watchdog.checkpoint)
        try:
            glue.stamp(loaded.config, loaded.script, engine, revision)
        finally:
            engine.dispose()
        standing = standing_of(reader, expected)
        summary.to_revisions = list(standing.current)
    summary.outcome = "stamped"
    summary.message = (f"Stamped {revs(summary.from_revisions)} -> {revs(summary.to_revisions)}: the database "
                       "matched MODELS; no migration was run.")
    return summary


def resolve(cfg: Config, watchdog: Watchdog, revision: str) -> report.Summary:
    """MySQL/MariaDB: forget that REV was interrupted, under the lock; the next run applies it whole.

    For an operator who has undone what an interrupted, non-idempotent
    migration left behind (see :mod:`migrate_init.progress`).
    """
    if cfg.database.backend != "mysql":
        raise ConfigError(f"resolve {revision}: only MySQL/MariaDB record interrupted migrations. "
                          f"{cfg.database.backend} rolls an interrupted migration back whole, so there "
                          "is nothing to resolve.")
    from . import progress

    summary = report.Summary(command="resolve", database=cfg.database.safe)
    loaded = Loaded(cfg)
    expected = loaded.expected()
    with _reader(cfg, watchdog) as reader, migration_lock(cfg, expected, watchdog, reader=reader):
        standing = standing_of(reader, expected)
        summary.from_revisions = summary.to_revisions = list(standing.current)
        recorded = standing.snapshot.in_progress or ()
        if revision not in recorded:
            raise ConfigError(f"resolve {revision}: no interrupted migration {revision} is recorded in "
                              f"{cfg.database.safe} (recorded: {', '.join(recorded) or 'none'}).")
        engine = loaded.glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout,
                                           checkpoint=watchdog.checkpoint)
        try:
            with engine.connect() as connection:
                progress.resolve(connection, revision)
        finally:
            engine.dispose()
    summary.outcome = "resolved"
    summary.message = (f"Resolved {revision}: it is no longer recorded as interrupted; the next run applies "
                       f"it from its start (the database is at {revs(summary.to_revisions)}).")
    return summary


def _missing(standing: Any) -> str:
    return describe_missing(standing.missing_tables, standing.missing_columns)


def history(cfg: Config, command: str) -> Listing:
    """``history`` and ``heads``, as Alembic prints them: the scripts only; the database is not touched."""
    loaded = Loaded(cfg)
    return Listing(loaded.glue.print_scripts(loaded.config, command))


def write_manifest(cfg: Config) -> report.Summary:
    """``manifest``: reads the scripts and models, writes ``MIGRATIONS_DIR/.manifest.marshal``; no database."""
    loaded = Loaded(cfg)
    data = manifest.build(loaded.script, loaded.metadata, models=cfg.models, version_table=loaded.version_table,
                          migrations_dir=cfg.migrations_dir, files=loaded.files)
    path = manifest.baked_path(cfg.migrations_dir)
    manifest.write(path, data, required=True)
    summary = report.Summary(command="manifest", database=cfg.database.safe)
    summary.outcome = "manifest"
    summary.message = f"Wrote {path}: heads {', '.join(data['heads'])}, {len(data['schema'])} tables."
    return summary


def alembic(cfg: Config, watchdog: Watchdog, arguments: list[str]) -> Listing:
    """The plain ``alembic`` CLI on MIGRATIONS_DIR and DATABASE_URL (``merge``, ``revision``, ``history``...).

    Alembic runs as it is here: env.py builds its own connection from
    ``sqlalchemy.url``, without migrate-init's lock, guard or verification.
    For upgrades, use ``run`` or ``upgrade REV``.
    """
    loaded = Loaded(cfg)
    loaded.glue.alembic_cli(loaded.config, arguments, prog="migrate.py alembic")
    return Listing([])
