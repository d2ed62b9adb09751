"""Online backups of a SQLite database before migrations are applied, and pruning that touches only its own.

A backup is named ``<database file>.<UTC time>.at-<revision>.migrate-init-backup``
(``webui.db.20261129T105301123456Z.at-70c7b727736e.migrate-init-backup``): a
name no user file has, that says which database it belongs to.  Pruning
deletes only files of exactly that shape for this database, oldest first,
never the one just written; a shared BACKUP_DIR, or the database's own folder,
keeps every other file (issue 13).  A backup is written as ``<name>.partial``
and renamed when complete and checked (``PRAGMA quick_check``); a ``.partial``
of this database left by an interrupted run is removed by the next one (the
caller holds the migration lock, so no other run is writing it).
"""

from __future__ import annotations

import datetime
import re
import shutil
import sqlite3
from pathlib import Path

from . import report
from .errors import BackupFailed

SUFFIX = ".migrate-init-backup"
_LABEL = re.compile(r"[^A-Za-z0-9_.,-]+")


def default_folder(database: Path) -> Path:
    return database.parent / "backups"


def _pattern(database: Path) -> re.Pattern[str]:
    return re.compile(re.escape(database.name) + r"\.(\d{8}T\d{12}Z)\.at-[A-Za-z0-9_.,-]{1,60}"
                      + re.escape(SUFFIX) + r"(\.partial)?")


def take(database: Path, folder: Path, *, keep: int, label: str) -> Path | None:
    """Copy ``database`` into ``folder`` with SQLite's online backup API; prune; return the backup.

    None when there is nothing to back up (a new, empty database).
    """
    if not database.exists() or database.stat().st_size == 0:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupFailed(f"Cannot create BACKUP_DIR={folder}: {exc.strerror}. Make it writable, or set "
                           "BACKUP_KEEP=0 to migrate without a backup.") from None
    _remove_partials(folder, database)
    needed = _size(database)
    free = shutil.disk_usage(folder).free
    if free < needed * 1.1:
        raise BackupFailed(
            f"Not enough free space in BACKUP_DIR={folder} for a backup of {database}: {_mb(needed * 1.1)} "
            f"needed, {_mb(free)} free. Free some space, point BACKUP_DIR elsewhere, or set BACKUP_KEEP=0. "
            "No migration was applied."
        )
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    label = _LABEL.sub("_", label)[:60] or "base"
    path = folder / f"{database.name}.{stamp}.at-{label}{SUFFIX}"
    partial = path.with_name(path.name + ".partial")
    try:
        source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            target = sqlite3.connect(partial)
            try:
                source.backup(target)
                problem = target.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                target.close()
        finally:
            source.close()
        if problem != "ok":
            raise BackupFailed(f"The backup of {database} failed its check (PRAGMA quick_check: {problem}); "
                               "no migration was applied. Check the database with PRAGMA integrity_check.")
        partial.rename(path)
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise BackupFailed(f"The backup of {database} into {folder} failed: {exc}. No migration was "
                           "applied.") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    report.event("backup", f"Backed up {database} to {path}.", backup=str(path), bytes=path.stat().st_size)
    _prune(folder, database, keep, path)
    return path


def _remove_partials(folder: Path, database: Path) -> None:
    pattern = _pattern(database)
    for candidate in folder.iterdir():
        match = pattern.fullmatch(candidate.name)
        if match and match.group(2) and candidate.is_file():
            candidate.unlink(missing_ok=True)
            report.event("backup_partial_removed", f"Removed {candidate}, left by an interrupted backup.",
                         backup=str(candidate))


def _prune(folder: Path, database: Path, keep: int, newest: Path) -> None:
    """Delete this database's oldest backups beyond ``keep``; never ``newest``, never another file."""
    pattern = _pattern(database)
    backups = []
    for candidate in folder.iterdir():
        match = pattern.fullmatch(candidate.name)
        if match and not match.group(2) and candidate != newest and candidate.is_file():
            backups.append((match.group(1), candidate))
    backups.sort()
    excess = len(backups) + 1 - keep
    for _stamp, old in backups[:max(excess, 0)]:
        old.unlink(missing_ok=True)
        report.event("backup_pruned", f"Removed old backup {old} (BACKUP_KEEP={keep}).", backup=str(old))


def _size(database: Path) -> int:
    total = database.stat().st_size
    wal = database.with_name(database.name + "-wal")
    return total + (wal.stat().st_size if wal.exists() else 0)


def _mb(size: float) -> str:
    return f"{size / 1_000_000:.1f} MB"
