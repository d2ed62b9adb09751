"""Seed a fresh database from SEED_DIR, once: the seed's "insert default data".

Runs only when the database held no tables before this run, inside the
migration lock, after the upgrade, in one transaction: a failing file rolls
every seed back.  ``*.sql`` files are executed as scripts; ``*.py`` files
run with ``connection`` (a SQLAlchemy Connection in that transaction) and
``metadata`` (the models' MetaData, or None) in their globals.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from . import report
from .errors import SeedFailed


def files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".sql", ".py"))


def run(engine, folder: Path, metadata=None) -> list[str]:
    """Run every seed file in name order; return their names."""
    seeds = files(folder)
    if not seeds:
        return []
    with engine.begin() as connection:
        for path in seeds:
            report.event("seeding", f"Seeding from {path}.", file=str(path))
            try:
                if path.suffix == ".sql":
                    _run_sql(connection, path.read_text(encoding="utf-8"))
                else:
                    runpy.run_path(str(path), init_globals={"connection": connection, "metadata": metadata})
            except Exception as exc:
                raise SeedFailed(
                    f"The seed file {path} failed: {type(exc).__name__}: "
                    f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}. "
                    "Every seed was rolled back; the migrations stay applied. Fix the file "
                    "and seed by hand, or start from an empty database."
                ) from exc
    return [p.name for p in seeds]


def _run_sql(connection, script: str) -> None:
    dbapi = connection.connection.driver_connection
    if connection.dialect.name == "sqlite":
        # executescript would COMMIT first; run statement by statement inside our transaction.
        import sqlite3

        buffer = ""
        for line in script.splitlines(keepends=True):
            buffer += line
            if sqlite3.complete_statement(buffer):
                dbapi.execute(buffer)
                buffer = ""
        if buffer.strip():
            dbapi.execute(buffer)
    else:
        connection.exec_driver_sql(script)
