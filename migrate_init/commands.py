"""The verbs besides ``run``: they read, plan or record, and return data; the CLI prints and exits.

Read-only verbs (``status``, ``current``, ``verify``, ``check``, ``wait``)
open the database read-only (SQLite ``mode=ro``, PostgreSQL read-only
transactions): they create nothing, work on a read-only mount, and a SQLite
file that does not exist is exit 3.  ``plan`` and ``lint`` run migrations
inside one transaction that is rolled back (:func:`alembic_glue.dry_run`).
``stamp`` adopts an existing database.
"""

from __future__ import annotations

import ast
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import graph as graph_module
from . import guard, libraries, manifest, progress, report, retry, wait
from . import history as history_module
from . import lint as lint_module
from .effects import effect_guard
from .errors import (
    ConfigError,
    DatabaseMissing,
    EditedRevision,
    LockTimeout,
    MigrateInitError,
    MigrationTimeout,
    PreviewRefused,
    UnknownRevision,
    VerificationFailed,
)
from .lock import migration_lock
from .probe import describe_missing
from .state import Loaded, at_target, expected_for, fast_path_taken, manifest_of, revs, standing_of, verified

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
    return wait.connect(
        cfg.database,
        timeout=cfg.db_wait_timeout,
        read_only=True,
        watchdog=watchdog,
        missing_is_transient=missing_is_transient,
    )


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
        if state.target_exists
        else f"target:   every head (MIGRATION_TARGET={cfg.migration_target} is not in these scripts)"
        if cfg.migration_target_set
        else "target:   every head",
    ]
    if standing.interrupted:
        lines.append(
            f"interrupted: {', '.join(standing.interrupted)} (began on an earlier run and "
            "never finished; MySQL/MariaDB keep what it applied: see `migrate.py resolve`)"
        )
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
        if standing.edited or standing.vanished:
            from .history import describe_edits

            raise EditedRevision(describe_edits(cfg, standing.edited, standing.vanished))
    summary.outcome = "verified"
    if cfg.models is None:
        summary.message = (
            f"The database is at the heads {revs(summary.to_revisions)}; MODELS is not set, so "
            "tables and columns were not checked."
        )
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
        watchdog.limit_phase(budget, "LOCK_TIMEOUT + MIGRATION_TIMEOUT")
        announced: list[bool] = []

        def attempt() -> Any:
            standing = standing_of(reader, expected)
            # At the heads but short of MODELS: no migrator will add those columns, so waiting on
            # would only end in a misleading timeout; verification says what is missing (exit 7).
            if standing.unknown or standing.reached or (standing.at_heads and not standing.complete):
                if standing.reached:
                    fast_path_taken(expected, standing)
                return standing
            if not announced:
                behind = len([r for r in expected.heads if r not in standing.current]) or 1
                report.event(
                    "wait_target",
                    f"Waiting for another migrator: the database is at "
                    f"{revs(standing.current)}, not {revs(expected.heads)}, for up to {budget:g}s "
                    "(LOCK_TIMEOUT + MIGRATION_TIMEOUT).",
                    pending=behind,
                )
                announced.append(True)
            return None

        def timed_out() -> BaseException:
            holder = _holder(cfg, expected)
            if holder is not None:
                return LockTimeout(
                    f"The database is still not at its target after {budget:g}s (LOCK_TIMEOUT + "
                    f"MIGRATION_TIMEOUT); a migrator holds the lock: {holder}."
                )
            return MigrationTimeout(
                f"The database is still not at its target after {budget:g}s (LOCK_TIMEOUT + "
                "MIGRATION_TIMEOUT) and no migrator holds the lock. Is the migration Job "
                "running?"
            )

        standing = retry.poll(
            attempt,
            deadline=deadline,
            backoff=retry.Backoff(initial=0.2, maximum=2.0),
            checkpoint=watchdog.checkpoint,
            on_timeout=timed_out,
        )
        if standing.unknown:
            raise UnknownRevision(
                f"The database is at revision {revs(standing.unknown)}, which these "
                "migration scripts do not know. Deploy the image that has that revision."
            )
        return at_target(summary, reader, expected, standing, after="the check", command="wait")


def _holder(cfg: Config, expected: Any) -> str | None:
    return cfg.database.engine.holder(cfg.database, expected.version_table)


def check(cfg: Config, watchdog: Watchdog) -> Listing:
    """Compare the database with the models (Alembic's compare_metadata), in words.  Read-only."""
    if cfg.models is None:
        raise ConfigError("check needs MODELS (module:attribute of your MetaData or Base) for this MIGRATIONS_DIR.")
    loaded = Loaded(cfg)
    assert loaded.metadata is not None  # MODELS is set
    _reader(cfg, watchdog).close()  # waits for the database, and a missing SQLite file is exit 3
    engine = loaded.glue.create_engine(
        cfg.database, busy_timeout=cfg.lock_timeout, read_only=True, checkpoint=watchdog.checkpoint
    )
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


def plan(cfg: Config, watchdog: Watchdog, sql_file: str | None = None) -> Listing:
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
            raise UnknownRevision(
                f"The database is at revision {revs(state.unknown)}, unknown to these "
                "scripts; there is nothing to plan."
            )
        # Every line that is not SQL is an SQL comment: `plan > plan.sql` and `plan --sql FILE` give a
        # file that sqlite3 or psql can run (issue 24).
        lines = [f"-- database: {cfg.database.safe}", f"-- current:  {revs(state.current)}"]
        if not state.pending:
            lines.append("-- Nothing to apply: the database is at its target.")
            return _planned(lines, sql_file)
        if not cfg.database.engine.transactional_ddl:  # a rehearsal would commit each statement
            return _planned(_plan_without_running(lines, loaded.script, state).lines, sql_file)
        destinations = [cfg.migration_target, "heads"] if state.target_exists else ["heads"]
        effects = effect_guard(cfg, expected.version_table, loaded.script, record=True)
        progress = glue.Progress(
            loaded.script, len(state.pending), guard=effects, dry_run=True, checkpoint=watchdog.checkpoint
        )
        watchdog.phase = "waiting for the migration lock"
        with migration_lock(cfg, expected, watchdog):
            engine = glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout, checkpoint=watchdog.checkpoint)
            watchdog.track_sqlalchemy()
            watchdog.phase = "planning (a dry run, rolled back)"
            unpreviewed: PreviewRefused | None = None
            try:
                glue.dry_run(
                    loaded.config, loaded.script, engine, destinations, progress, prepare=_ddl_lock_timeout(cfg)
                )
            except PreviewRefused as exc:
                # Stopped before it could commit (issue 25 N1): the plan up to there, and why.
                unpreviewed = exc
            finally:
                engine.dispose()
    steps = progress.begun
    lines.append(f"-- pending:  {len(steps)} migration(s); the SQL below ran in a transaction that was rolled back.")
    lines.append("BEGIN;")
    if not state.current:
        # Alembic creates its version table before the first migration, outside any step.
        table = expected.version_table
        lines.append(
            f"CREATE TABLE IF NOT EXISTS {table} (version_num VARCHAR(32) NOT NULL, "
            f"CONSTRAINT {table}_pkc PRIMARY KEY (version_num));"
        )
    refused: list[str] = []
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
            lines.append(
                _runnable(statement) + ("  -- ROWS DELETED? (a text rule; the guard judges the schema)" if hint else "")
            )
        allowed = effects.allowed(step.revision, glue.reviewed(step))
        lines.extend(
            f"-- DESTRUCTIVE: {loss.describe()}; "
            + (
                "allowed by ALLOW_DESTRUCTIVE or its module"
                if allowed
                else f"refused unless ALLOW_DESTRUCTIVE={step.revision}"
            )
            for loss in losses
        )
        lines.extend(
            f"-- NOTE: {loss.describe()} (no value lost; code still running may break)"
            for f in effects.hints
            if f.revision == step.revision
            for loss in f.losses
        )
        if losses and not allowed:
            refused.append(step.revision)
    # What env.py ran on the connection outside any migration is judged too (issue 25 N11).
    outside = [loss for f in effects.findings if f.revision == "env.py" for loss in f.losses]
    if outside:
        lines.append("\n-- env.py, outside any migration")
        lines.extend(f"-- DESTRUCTIVE: {loss.describe()}; refused: move it into a migration" for loss in outside)
        refused.append("env.py's statement")
    if unpreviewed is not None:
        # An incomplete plan must not run as a whole: its SQL file ends in ROLLBACK.
        lines.append(f"-- {str(unpreviewed).replace(chr(10), ' ')}")
        lines.append("ROLLBACK;")
    else:
        lines.append("COMMIT;")
    if refused:
        # plan exits with the code run would exit with (issue 24): a gate, like terraform plan.
        lines.append(f"-- run would refuse {', '.join(refused)} with exit 8 (see the losses above).")
        return _planned(lines, sql_file, "destructive")
    if unpreviewed is not None:
        # run would get past what was previewed; what it would do next is unknown, so the gate stays shut.
        return _planned(lines, sql_file, "preview_refused")
    return _planned(lines, sql_file)


def _planned(lines: list[str], sql_file: str | None, outcome: str = "ok") -> Listing:
    """The plan's listing; with ``--sql FILE``, the same text written to FILE too."""
    if sql_file:
        try:
            with open(sql_file, "w", encoding="utf-8") as out:
                out.write("\n".join(lines) + "\n")
        except OSError as exc:
            raise ConfigError(
                f"plan --sql {sql_file}: cannot write it ({exc.strerror}). Name a file in a writable folder."
            ) from None
    return Listing(lines, outcome)


def _runnable(statement: str) -> str:
    """A captured statement as SQL a database's own CLI runs: its bound parameters written in as literals.

    The dry run records ``SQL  -- parameters: (...)``; what cannot be written as a literal stays
    a comment, and the line says so.
    """

    sql, marker, shown = statement.partition("  -- parameters: ")
    if not marker:
        return f"{sql};"
    try:
        parameters = ast.literal_eval(shown)
        if isinstance(parameters, dict):
            names = {f"%({name})s": _literal(value) for name, value in parameters.items()}
            names.update({f":{name}": _literal(value) for name, value in parameters.items()})
            for placeholder in sorted(names, key=len, reverse=True):
                sql = sql.replace(placeholder, names[placeholder])
        else:
            for value in parameters:
                mark = "?" if "?" in sql else "%s"
                if mark not in sql:
                    raise ValueError("more parameters than placeholders")
                sql = sql.replace(mark, _literal(value), 1)
        return f"{sql};"
    except (ValueError, SyntaxError, TypeError):
        return f"-- NOT WRITTEN AS SQL (parameters that are not plain literals): {statement}"


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(type(value).__name__)


def _plan_without_running(lines: list[str], script: Any, state: Any) -> Listing:
    """MySQL/MariaDB: the pending migrations, not run: DDL there commits at once, so no dry run can be undone."""
    pending = list(state.pending)
    lines.append(
        f"-- pending:  {len(pending)} migration(s), not run: MySQL/MariaDB commit each DDL statement at "
        "once, so plan cannot run them in a transaction and roll it back. `run` judges each "
        "statement before it runs (the destructive guard); `migrate.py lint` shows the SQL of the "
        "chain as it runs on a throw-away SQLite file."
    )
    for index, revision in enumerate(pending, 1):
        found = script.get_revision(revision)
        lines.append(f"-- [{index}/{len(pending)}] {revision} ({found.doc or ''})  {found.path}")
    return Listing(lines)


def _ddl_lock_timeout(cfg: Config) -> Any:
    def prepare(connection: Any) -> None:
        if cfg.ddl_lock_timeout > 0:
            cfg.database.engine.ddl_transaction(connection, cfg.ddl_lock_timeout)

    return prepare


def lint(cfg: Config, watchdog: Watchdog) -> Listing:
    """Destructive and non-idempotent patterns in the scripts and the SQL they send.  Changes nothing."""
    loaded = Loaded(cfg)
    findings = [
        finding
        for folder in manifest.version_dirs(loaded.script)  # every version location
        for finding in lint_module.scan_sources(Path(folder))
    ]
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
    order = {severity: rank for rank, severity in enumerate(lint_module.SEVERITIES)}
    lines.extend(str(finding) for finding in sorted(findings, key=lambda f: order[f.severity]))
    if not findings:
        lines.append(f"No findings in {cfg.migrations_dir}: every migration is additive and idempotent.")
        return Listing(lines)
    counted = ", ".join(f"{sum(f.severity == s for f in findings)} {s}(s)" for s in lint_module.SEVERITIES)
    errors = any(f.severity == "error" for f in findings)
    # Only errors fail lint (exit 1): what run would refuse or fail on (issue 24).
    lines.append(
        f"{len(findings)} finding(s) in {cfg.migrations_dir}: {counted}"
        + ("." if errors else "; no error, so lint passes.")
    )
    return Listing(lines, "findings" if errors else "ok")


def stamp(cfg: Config, watchdog: Watchdog, revision: str) -> report.Summary:
    """Adopt an existing database: under the lock, check it against MODELS, then record REV.

    A database made by ``create_all``, by the app itself or by another tool
    has the tables but no version row.  A mismatch is exit 7 with nothing
    written (Flyway's ``baseline``, Alembic's ``stamp``).
    """
    if cfg.models is None:
        raise ConfigError(
            "stamp needs MODELS (module:attribute of your MetaData or Base) to check the "
            "database before it records a revision."
        )
    summary = report.Summary(command="stamp", database=cfg.database.safe)
    loaded = Loaded(cfg)
    glue = loaded.glue
    found = glue.lookup(loaded.script, revision)
    if (found is None or revision in ("head", "heads")) and revision not in ("head", "heads"):
        raise ConfigError(
            f"stamp {revision}: no such revision in {cfg.migrations_dir}. Run "
            "`migrate.py history --graph` to list them."
        )
    expected = loaded.expected()
    with _reader(cfg, watchdog) as reader, migration_lock(cfg, expected, watchdog, reader=reader):
        standing = standing_of(reader, expected)
        summary.from_revisions = list(standing.current)
        if not standing.complete:
            raise VerificationFailed(
                "stamp: the database does not match MODELS, so no revision was recorded: "
                f"{_missing(standing)}. Bring the schema level first (`migrate.py check` shows how it differs)."
            )
        if standing.unknown:
            # Alembic's stamp starts from the row it finds, and cannot place this one (issue 25 N35).
            raise UnknownRevision(
                f"stamp {revision}: the version table holds {revs(standing.unknown)}, which is not a revision "
                f"of {cfg.migrations_dir}, so it cannot be moved to {revision}; nothing was recorded. The "
                f"database matches MODELS: if it really is at {revision}, replace that row with `migrate.py "
                f"alembic stamp --purge {revision}`; if {revs(standing.unknown)} comes from newer scripts, "
                "deploy those scripts instead."
            )
        engine = glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout, checkpoint=watchdog.checkpoint)
        try:
            from .history import Recorder, applied_revisions

            recorder = Recorder(cfg, loaded.checksums)
            recorder.ensure(engine, loaded.script, standing.current)
            before = set(applied_revisions(loaded.script, standing.current))
            glue.stamp(loaded.config, loaded.script, engine, revision)
            standing = standing_of(reader, expected)
            with engine.begin() as connection:
                for stamped in applied_revisions(loaded.script, standing.current):
                    if stamped not in before:
                        recorder.write(
                            connection,
                            stamped,
                            "stamped",
                            detail=f"migrate.py stamp {revision}: "
                            "recorded without running, after the database matched MODELS.",
                        )
        finally:
            engine.dispose()
        summary.to_revisions = list(standing.current)
    summary.outcome = "stamped"
    summary.message = (
        f"Stamped {revs(summary.from_revisions)} -> {revs(summary.to_revisions)}: the database "
        "matched MODELS; no migration was run."
    )
    return summary


def resolve(cfg: Config, watchdog: Watchdog, revision: str) -> report.Summary:
    """MySQL/MariaDB: forget that REV was interrupted, under the lock; the next run applies it whole.

    For an operator who has undone what an interrupted, non-idempotent
    migration left behind (see :mod:`migrate_init.progress`).
    """
    if cfg.database.engine.transactional_ddl:
        raise ConfigError(
            f"resolve {revision}: only MySQL/MariaDB record interrupted migrations. "
            f"{cfg.database.engine.label} rolls an interrupted migration back whole, so there "
            "is nothing to resolve."
        )

    with _recording(cfg, watchdog, "resolve") as (summary, loaded, standing):
        recorded = standing.snapshot.in_progress or ()
        if revision not in recorded:
            raise ConfigError(
                f"resolve {revision}: no interrupted migration {revision} is recorded in "
                f"{cfg.database.safe} (recorded: {', '.join(recorded) or 'none'})."
            )
        engine = loaded.glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout, checkpoint=watchdog.checkpoint)
        try:
            with engine.connect() as connection:
                progress.resolve(connection, revision)
            from .history import Recorder

            Recorder(cfg, loaded.checksums).best_effort(
                engine,
                revision,
                "resolved",
                outcome="ok",
                detail="migrate.py resolve: no longer recorded as interrupted; the next run applies it from its start.",
            )
        finally:
            engine.dispose()
    summary.outcome = "resolved"
    summary.message = (
        f"Resolved {revision}: it is no longer recorded as interrupted; the next run applies "
        f"it from its start (the database is at {revs(summary.to_revisions)})."
    )
    return summary


@contextlib.contextmanager
def _recording(cfg: Config, watchdog: Watchdog, command: str) -> Iterator[tuple[report.Summary, Loaded, Any]]:
    """A verb that records something (``resolve``, ``accept``): the scripts loaded, the lock held, the standing read."""
    summary = report.Summary(command=command, database=cfg.database.safe)
    loaded = Loaded(cfg)
    expected = loaded.expected()
    with _reader(cfg, watchdog) as reader, migration_lock(cfg, expected, watchdog, reader=reader):
        standing = standing_of(reader, expected)
        summary.from_revisions = summary.to_revisions = list(standing.current)
        yield summary, loaded, standing


def _missing(standing: Any) -> str:
    return describe_missing(standing.missing_tables, standing.missing_columns)


def history(cfg: Config, command: str) -> Listing:
    """``history`` and ``heads``, as Alembic prints them: the scripts only; the database is not touched."""
    loaded = Loaded(cfg)
    return Listing(loaded.glue.print_scripts(loaded.config, command))


def history_of(cfg: Config, watchdog: Watchdog, *, as_json: bool) -> Listing:
    """``history``: what was applied, newest first, with durations and checksum states, then what is pending.

    Read-only.  ``history --graph`` is Alembic's view of the scripts (:func:`history`).
    """

    loaded = Loaded(cfg)
    expected = loaded.expected()
    with _reader(cfg, watchdog) as reader:
        standing = standing_of(reader, expected)
        rows = history_module.read(reader, standing.snapshot)
    state = loaded.glue.state(loaded.script, standing.current, cfg.migration_target, expected.version_table)
    return Listing(
        history_module.listing(
            cfg.database.safe,
            rows,
            scripts=expected.checksums,
            revisions=expected.revisions,
            pending=list(state.pending),
            edited=standing.edited,
            vanished=standing.vanished,
            interrupted=tuple(standing.snapshot.in_progress or ()),
            describe=lambda rev: loaded.glue.describe(loaded.script, rev),
            as_json=as_json,
        )
    )


def graph(cfg: Config, watchdog: Watchdog, fmt: str) -> Listing:
    """``graph``: the revision graph in Mermaid or DOT, the database's revisions marked.  Read-only.

    A SQLite file that does not exist yet is an empty database: every revision is pending.
    """

    loaded = Loaded(cfg)
    try:
        with _reader(cfg, watchdog) as reader:
            current = standing_of(reader, loaded.expected()).current
    except DatabaseMissing:
        current = ()
    state = loaded.glue.state(loaded.script, current, cfg.migration_target)
    return Listing(graph_module.render(loaded.script, state.current, state.pending, fmt))


def accept(cfg: Config, watchdog: Watchdog, revision: str) -> report.Summary:
    """Record REV's script as it is now, after a review of its change (or that its script is gone), under the lock.

    Writes a history row of kind ``accepted`` whose checksum is the script's
    now: ``verify`` and the runs stop naming REV.
    """

    with _recording(cfg, watchdog, "accept") as (summary, loaded, standing):
        expected = loaded.expected()
        recorded = (standing.snapshot.checksums or {}).get(revision)
        if recorded is None:
            raise ConfigError(
                f"accept {revision}: {cfg.database.safe} has no checksum recorded for {revision} "
                "(it was not applied by migrate-init, or not at all). `migrate.py history` lists "
                "what was."
            )
        now = (
            expected.checksums.get(revision, history_module.REMOVED)
            if revision in expected.revisions
            else history_module.REMOVED
        )
        if now == recorded:
            summary.outcome = "accepted"
            summary.message = f"Nothing to accept: {revision}'s script matches the checksum recorded for it."
            return summary
        engine = loaded.glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout, checkpoint=watchdog.checkpoint)
        try:
            with engine.begin() as connection:
                gone = now == history_module.REMOVED
                history_module.Recorder(cfg, expected.checksums).write(
                    connection,
                    revision,
                    "accepted",
                    checksum=now,
                    detail=(
                        f"migrate.py accept: the script is gone from {cfg.migrations_dir}/versions; "
                        "accepted after a review."
                        if gone
                        else f"migrate.py accept: checksum {history_module.short_sum(recorded)} -> "
                        f"{history_module.short_sum(now)}, accepted after a review."
                    ),
                )
        finally:
            engine.dispose()
    summary.outcome = "accepted"
    summary.message = (
        f"Accepted {revision}: its script as it is now is recorded in {history_module.TABLE}; verify and "
        "the next runs no longer name it. The database was not changed otherwise."
    )
    return summary


def write_manifest(cfg: Config) -> report.Summary:
    """``manifest``: reads the scripts and models, writes ``MIGRATIONS_DIR/.manifest.marshal``; no database."""
    data = manifest_of(cfg, Loaded(cfg))
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

    libraries.check()  # as Loaded does, before Alembic is imported
    from alembic.config import CommandLine
    from alembic.util import CommandError

    line = CommandLine(prog="migrate.py alembic")
    try:
        options = line.parser.parse_args(arguments)
    except SystemExit as exc:  # --help, --version (0), or arguments Alembic refused (2; its usage is above)
        if not exc.code:
            return Listing([])
        raise ConfigError(
            f"migrate.py alembic {' '.join(arguments)}: Alembic's command line refused these "
            "arguments (its message is above). Run `migrate.py alembic --help`."
        ) from None
    if not hasattr(options, "cmd"):
        raise ConfigError(
            "migrate.py alembic: name an Alembic command, e.g. `migrate.py alembic current` "
            "(`migrate.py alembic --help` lists them)."
        )
    if options.config or options.name != "alembic":
        raise ConfigError(
            "migrate.py alembic: -c/--config and -n/--name are not taken: migrate-init gives Alembic "
            "the alembic.ini of MIGRATIONS_DIR (or one level up) and DATABASE_URL. Set "
            "MIGRATIONS_DIR instead, or run the plain `alembic` CLI."
        )
    loaded = Loaded(cfg)
    config = loaded.config
    # Alembic's own Config carries the parsed options: -x for context.get_x_argument(), -q for its messages.
    config.cmd_opts = options
    raise_error, options.raiseerr = options.raiseerr, True
    try:
        line.run_cmd(config, options)
    except CommandError as exc:
        if raise_error:  # --raiseerr: the whole traceback, through our handler (masked)
            import logging

            logging.getLogger(report.LOGGER).error("Alembic raised", exc_info=exc)
        raise MigrateInitError(f"migrate.py alembic {' '.join(arguments)}: {report.first_line(exc)}.") from exc
    return Listing([])
