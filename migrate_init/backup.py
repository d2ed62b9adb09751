"""Online backups of a SQLite database before migrations are applied."""

from __future__ import annotations

import datetime
import shutil
import sqlite3
from pathlib import Path

from . import report
from .errors import BackupFailed


def default_folder(database: Path) -> Path:
    return database.parent / "backups"


def take(database: Path, folder: Path, *, keep: int, label: str) -> Path | None:
    """Copy ``database`` into ``folder`` with SQLite's online backup API.

    Checks the free space first and keeps the newest ``keep`` backups of this
    database.  Returns the backup's path, or None when there is nothing to
    back up (a new, empty database).
    """
    if not database.exists() or database.stat().st_size == 0:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupFailed(
            f"Cannot create BACKUP_DIR={folder}: {exc.strerror}. Make it writable, "
            "or set BACKUP_KEEP=0 to migrate without a backup."
        ) from None
    needed = _size(database)
    free = shutil.disk_usage(folder).free
    if free < needed * 1.1:
        raise BackupFailed(
            f"Not enough free space in BACKUP_DIR={folder} for a backup of {database}: "
            f"{_mb(needed * 1.1)} needed, {_mb(free)} free. Free some space, point "
            "BACKUP_DIR elsewhere, or set BACKUP_KEEP=0. No migration was applied."
        )
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{database.stem}-{stamp}-{label}{database.suffix or '.db'}"
    partial = path.with_name(path.name + ".partial")
    try:
        source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            target = sqlite3.connect(partial)
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
        partial.rename(path)
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise BackupFailed(
            f"The backup of {database} into {folder} failed: {exc}. No migration was applied."
        ) from None
    report.event("backup", f"Backed up {database} to {path}.", backup=str(path), bytes=path.stat().st_size)
    _prune(folder, database, keep)
    return path


def _prune(folder: Path, database: Path, keep: int) -> None:
    backups = sorted(folder.glob(f"{database.stem}-*{database.suffix or '.db'}"))
    for old in backups[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
        report.event("backup_pruned", f"Removed old backup {old} (BACKUP_KEEP={keep}).", backup=str(old))


def _size(database: Path) -> int:
    total = database.stat().st_size
    wal = database.with_name(database.name + "-wal")
    return total + (wal.stat().st_size if wal.exists() else 0)


def _mb(size: float) -> str:
    return f"{size / 1_000_000:.1f} MB"
