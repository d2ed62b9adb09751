"""What a run does with a database that has no version row: build it the project's way, or adopt it.

Called by :mod:`upgrade` under the migration lock, with the scripts and
models loaded, before the backup and the first migration.  Not every project
builds a fresh database by replaying its chain (issue 22):

- ``EMPTY_DATABASE=replay`` (the default): every migration from the base.
- ``EMPTY_DATABASE=models``: ``create_all`` from MODELS, then the heads are
  stamped; no migration runs.  Alembic's cookbook "building an up to date
  database from scratch"; what optuna and jupyterhub do (jupyterhub's chain
  cannot start from an empty database at all); the fast way for long chains.
- ``EMPTY_DATABASE=initial:module:attribute``: ``create_all`` from that
  MetaData (the tables the chain's first revision expects to find), then
  every migration from the base, as mlflow does with
  ``mlflow.store.tracking.dbmodels.initial_models``.

With ``EMPTY_DATABASE=models`` the models are the schema's source, so a
table they define and no migration makes is created after every upgrade, as
the project's own start-up does (jupyterhub and optuna call ``create_all`` on
every start): :func:`complete_from_models`.  Only whole tables, never a
change to an existing one.

A database with tables but no version row is not empty, whatever the
setting: it was made by ``create_all`` or another tool.  With
``BASELINE_ON_MIGRATE=REV`` (Flyway's ``baselineOnMigrate``) the run stamps
REV first and applies what follows it; without, it says what it found and
how to adopt it, and replays as before.
"""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa

from . import lock, report, schema, seed
from .errors import ConfigError, LockLost, MigrationFailed
from .probe import PROGRESS_TABLE, SEED_TABLE
from .state import cache_manifest, revs, standing_of, verified

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .config import Config
    from .state import Expected, Loaded, Run, Standing
    from .watchdog import Watchdog


def tables_held(standing: Standing, expected: Expected) -> list[str]:
    """The tables a snapshot holds, without the version table and migrate-init's own bookkeeping."""

    ours = {expected.version_table, PROGRESS_TABLE, SEED_TABLE}
    return sorted(t for t in standing.snapshot.columns if t not in ours)


def build_models(run: Run, loaded: Loaded) -> report.Summary:
    """EMPTY_DATABASE=models: create_all from MODELS, stamp the heads, verify, seed."""
    cfg, watchdog, summary, reader, expected = run.cfg, run.watchdog, run.summary, run.reader, run.expected

    assert loaded.metadata is not None  # config refuses EMPTY_DATABASE=models without MODELS
    heads = sorted(loaded.script.get_heads())
    report.event(
        "empty_database",
        "The database is empty and EMPTY_DATABASE=models: creating the schema from "
        f"MODELS ({cfg.models}) and stamping {revs(heads)}; no migration runs.",
        mode="models",
        heads=heads,
    )
    watchdog.phase = "creating the schema from MODELS"
    started = time.monotonic()
    engine = loaded.glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout, checkpoint=watchdog.checkpoint)
    watchdog.track_sqlalchemy()
    try:
        if expected.seeds:
            seed.owe(engine)
        try:
            created = _create_all(engine, loaded.metadata, f"MODELS={cfg.models}", run.lock_check)
        except LockLost as lost:
            raise lock.stopped(
                lost, "create_all from MODELS was rolled back and nothing was stamped: the database is still empty"
            ) from None
        watchdog.checkpoint()
        watchdog.phase = "stamping the heads"
        # Through env.py, like `migrate.py stamp`: its version_table is the one that counts.
        loaded.glue.stamp(loaded.config, loaded.script, engine, "heads")
        expected.version_table = loaded.version_table
        summary.timed("upgrade", started)
        watchdog.phase = "verifying"
        watchdog.checkpoint()
        after = standing_of(reader, expected)
        summary.to_revisions = list(after.current)
        verified(summary, reader, expected, after, after="create_all from MODELS (EMPTY_DATABASE=models)")
        cache_manifest(cfg, loaded)
        seed.apply(cfg, watchdog, engine, loaded.metadata, summary, after.owed)
    finally:
        engine.dispose()
    summary.outcome = "created"
    summary.message = (
        f"Built the empty database from MODELS (EMPTY_DATABASE=models): create_all made "
        f"{len(created)} table(s) and {revs(after.current)} was stamped; no migration ran; "
        "verification passed."
    )
    return summary


def build_initial(cfg: Config, watchdog: Watchdog, engine: Any) -> str:
    """EMPTY_DATABASE=initial:module:attribute: create_all from that metadata; the chain runs next.

    Returns the start of the summary's sentence.
    """

    spec = cfg.empty_database.partition(":")[2]
    try:
        metadata = schema.load(spec, [Path(cfg.migrations_dir)])
    except ConfigError as exc:
        raise ConfigError(f"EMPTY_DATABASE=initial:{spec}: {exc}") from None
    report.event(
        "empty_database",
        f"The database is empty and EMPTY_DATABASE=initial: creating the initial "
        f"schema from {spec}, then running every migration.",
        mode="initial",
        models=spec,
    )
    watchdog.phase = "creating the initial schema"
    created = _create_all(engine, metadata, f"EMPTY_DATABASE=initial:{spec}")
    watchdog.checkpoint()
    return f"Built the initial schema from {spec} ({len(created)} table(s), EMPTY_DATABASE=initial), then: "


def complete_from_models(cfg: Config, engine: Any, loaded: Loaded, standing: Standing) -> list[str]:
    """EMPTY_DATABASE=models: the tables MODELS defines that the database lacks, made by create_all.

    Nothing for another setting, or when no table is missing: a missing column stays
    verification's (or REPAIR_MISSING_COLUMNS') business.
    """
    if cfg.empty_database != "models" or loaded.metadata is None or not standing.missing_tables:
        return []
    return _create_all(
        engine, loaded.metadata, f"MODELS={cfg.models} (EMPTY_DATABASE=models: tables no migration makes)"
    )


def _create_all(engine: Any, metadata: Any, source: str, lock_check: Callable[[], None] | None = None) -> list[str]:
    """create_all in one transaction (rolled back whole if it fails); the tables it made, logged.

    ``lock_check`` (the migration lock's ``verify``), asked just before the commit: no
    migration's commit checks the lock on this path.
    """

    try:
        with engine.begin() as connection:
            before = set(sa.inspect(connection).get_table_names())
            metadata.create_all(connection, checkfirst=True)
            if lock_check is not None:
                lock_check()
    except LockLost:
        raise
    except Exception as exc:
        raise MigrationFailed(
            f"create_all from {source} failed: {type(exc).__name__}: {report.first_line(exc)}. "
            "It was rolled back; fix the models, or unset EMPTY_DATABASE to replay the "
            "migrations."
        ) from exc
    created = [t.name for t in metadata.sorted_tables if t.name not in before]
    report.event(
        "empty_created", f"create_all from {source} made {len(created)} table(s): {', '.join(created)}.", tables=created
    )
    return created


def baseline(cfg: Config, watchdog: Watchdog, standing: Standing, expected: Expected, loaded: Loaded) -> str:
    """Tables and no version row: stamp BASELINE_ON_MIGRATE, or say how to adopt.

    Returns the start of the summary's sentence when it stamped, else "".
    """
    held = tables_held(standing, expected)
    shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
    heads = sorted(loaded.script.get_heads())
    target = heads[0] if len(heads) == 1 else "heads"
    revision = cfg.baseline_on_migrate
    if revision is None:
        report.warning(
            "unversioned",
            f"The database has {len(held)} table(s) ({shown}) and no version row in "
            f"{expected.version_table}: it was made by create_all or another tool, not by these migrations. "
            f"Replaying them from the base. If its schema is already at a revision, adopt it instead: "
            f"`migrate.py stamp {target}` (checked against MODELS), or BASELINE_ON_MIGRATE=REV to stamp REV "
            "and apply what follows it.",
            tables=held,
        )
        return ""
    if revision not in ("head", "heads") and loaded.glue.lookup(loaded.script, revision) is None:
        raise ConfigError(
            f"BASELINE_ON_MIGRATE={revision}: no such revision in {cfg.migrations_dir}. "
            "Run `migrate.py history` to list them."
        )
    report.event(
        "baseline",
        f"The database has {len(held)} table(s) ({shown}) and no version row: stamping "
        f"{revision} (BASELINE_ON_MIGRATE), then applying what follows it.",
        revision=revision,
        tables=held,
    )
    watchdog.phase = "stamping the baseline"
    engine = loaded.glue.create_engine(cfg.database, busy_timeout=cfg.lock_timeout, checkpoint=watchdog.checkpoint)
    try:
        loaded.glue.stamp(loaded.config, loaded.script, engine, revision)
    finally:
        engine.dispose()
    expected.version_table = loaded.version_table
    watchdog.checkpoint()
    return f"Stamped the baseline {revision} on {len(held)} existing table(s) (BASELINE_ON_MIGRATE), then: "
