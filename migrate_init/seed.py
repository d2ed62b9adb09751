"""Seed a new database from SEED_DIR: the seed's "insert default data", recorded so it is never lost.

A database that is empty when a run starts is *owed* its seeds: before the
first migration, migrate-init creates its bookkeeping table
``migrate_init_seed`` (committed on its own).  After the upgrade, every seed
file not yet recorded there runs, and its name is recorded in the SAME
transaction as its statements.  So a run stopped by SIGTERM, MIGRATION_TIMEOUT
or kill -9 after the migrations committed leaves the seeds owed, and the next
run (which finds the database at its target) seeds it (issue 13).  A database
that already had tables and no bookkeeping table (one migrate-init did not
create) is never seeded.

All files run in one transaction, in name order: a failing file rolls every
seed back, and they are all owed again.  Not on MySQL/MariaDB: there a
CREATE, ALTER or DROP commits at once, with everything before it, so "every
seed rolled back" would be false and the next run would fail on what stayed
(issue 25 N20).  There each file runs in its own transaction with its record:
a failing file rolls back its own statements (not its DDL), and the files
before it stay applied and recorded.  ``*.sql`` files go to the driver
as they are, statement by statement (on MySQL/MariaDB cut at their
delimiters like the mysql client does, ``DELIMITER`` lines included), with
no parameter interpolation (a ``%`` is a ``%``); ``*.py`` files run with ``connection`` (a SQLAlchemy
Connection in that transaction) and ``metadata`` (the models' MetaData, or
None) in their globals.
"""

from __future__ import annotations

import datetime
import runpy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import engines, report
from .errors import Interrupted, SeedFailed
from .probe import SEED_TABLE

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from .config import Config
    from .watchdog import Watchdog

TABLE = SEED_TABLE  # the reader's name for it: one spelling


def files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".sql", ".py"))


def owe(engine: Engine) -> None:
    """Mark a new database as owed its seeds: the bookkeeping table, committed before any migration."""
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (name VARCHAR(255) PRIMARY KEY, seeded_at VARCHAR(40) NOT NULL)"
        )


def run(engine: Engine, folder: Path, owed: list[str], metadata: Any = None) -> list[str]:
    """Run the ``owed`` seed files of ``folder`` in name order, recording each; return their names."""

    seeds = [p for p in files(folder) if p.name in set(owed)]
    if not seeds:
        return []
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    # MySQL/MariaDB commit DDL at once: one file, one transaction, one record.
    units = [seeds] if engines.of_connection(engine).transactional_ddl else [[path] for path in seeds]
    done: list[str] = []
    for unit in units:
        with engine.begin() as connection:
            for path in unit:
                _run_one(connection, path, metadata, now, done, per_file=len(units) > 1)
        done.extend(p.name for p in unit)
    return done


def _run_one(connection: Connection, path: Path, metadata: Any, now: str, done: list[str], *, per_file: bool) -> None:
    """One seed file and its record, in the caller's transaction; a failure says what stayed."""
    report.event("seeding", f"Seeding from {path}.", file=str(path))
    try:
        if path.suffix == ".sql":
            _run_sql(connection, path.read_text(encoding="utf-8"))
        else:
            runpy.run_path(str(path), init_globals={"connection": connection, "metadata": metadata})
        _record(connection, path.name, now)
    except Exception as exc:
        if not per_file:
            stayed = (
                "Every seed was rolled back and stays owed: the next run seeds again. The migrations "
                "stay applied; fix the file and run again."
            )
        else:
            before = (
                f"The seed file(s) before it ({', '.join(done)}) committed and are recorded in {TABLE}; "
                if done
                else ""
            )
            stayed = (
                f"{before}{'its' if done else 'Its'} own statements were rolled back, except what a CREATE, ALTER or DROP in it "
                "committed (MySQL/MariaDB commit DDL at once), and it stays owed. Fix the file (make "
                "its DDL safe to run again, e.g. CREATE TABLE IF NOT EXISTS) and run again: the next "
                "run runs only the seed files still owed."
            )
        raise SeedFailed(
            f"The seed file {path} failed: {type(exc).__name__}: {report.first_line(exc)}. {stayed}", seeded=list(done)
        ) from exc


def _record(connection: Connection, name: str, when: str) -> None:
    dbapi: Any = connection.connection.driver_connection
    marker = engines.of_connection(connection).placeholder
    cursor = dbapi.cursor()
    try:
        cursor.execute(f"INSERT INTO {TABLE} (name, seeded_at) VALUES ({marker}, {marker})", (name, when))
    finally:
        cursor.close()


def _run_sql(connection: Connection, script: str) -> None:
    """The statements of one seed file, in ``connection``'s transaction, as the engine's own client would."""
    engines.of_connection(connection).run_script(connection.connection.driver_connection, script)


def apply(
    cfg: Config, watchdog: Watchdog, engine: Any, metadata: Any, summary: report.Summary, owed: list[str]
) -> None:
    """Run the seed files ``owed`` (SEED_DIR) on ``engine``, record them, and say so in ``summary``."""
    if not owed:
        return
    watchdog.phase = "seeding"
    watchdog.checkpoint()
    try:
        from pathlib import Path

        seeded = run(engine, Path(cfg.seed_dir), owed, metadata)
    except SeedFailed as exc:
        summary.seeded = exc.seeded  # the files that committed before it (MySQL/MariaDB: issue 25 N20)
        watchdog.checkpoint()  # a statement cancelled by the stop is the stop, not a seed to fix
        raise
    if seeded:
        # Before the checkpoint: a stop that came while they ran finds them committed (issue 25 N21).
        summary.seeded = seeded
        report.event("seeded", f"Seeded the database from {cfg.seed_dir}: {', '.join(seeded)}.", files=seeded)
    try:
        watchdog.checkpoint()
    except Interrupted as exc:
        if not seeded:
            raise
        raise Interrupted(
            exc.signum,
            message=(
                f"Stopped by {exc.signal_name} while seeding, after the seed file(s) {', '.join(seeded)} had "
                f"committed; they are recorded in {TABLE} and will not run again. Run again to finish the "
                "job."
            ),
        ) from None
