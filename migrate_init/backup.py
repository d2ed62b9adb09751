"""Online backups of a SQLite database before migrations are applied, and pruning that touches only its own.

A backup is named ``<database file>.<path hash>.<UTC time>.at-<revision>.migrate-init-backup``
(``webui.db.3f2a9c41d07b.20261129T105301123456Z.at-70c7b727736e.migrate-init-backup``):
a name no user file has, that says which database it belongs to.  The path hash
(of the database's absolute path) tells ``/t1/webui.db`` from ``/t2/webui.db``
in one shared BACKUP_DIR (issue 25, N13); a file name too long for the rest to
fit in 255 bytes is shortened, the hash still telling it apart (N34).  Pruning
deletes only files of exactly that shape for this database, oldest first,
never the one just written; a shared BACKUP_DIR, or the database's own folder,
keeps every other file (issue 13).  Backups named before the hash (0.3 and
earlier) cannot be told apart from another database's of the same name, so
they are never pruned.

A backup is written as ``<name>.partial`` (SQLite adds ``.partial-journal``
while it writes) and renamed when complete and checked (``PRAGMA quick_check``);
these files of this database left by an interrupted run (kill -9) are removed
by the next one (the caller holds the migration lock, so no other run is
writing them; N33).  The copy runs a few megabytes at a time and asks the
watchdog between steps, so SIGTERM and MIGRATION_TIMEOUT end it within a
moment and leave no partial file (N26).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import shutil
import sqlite3
from pathlib import Path

from . import report
from .engines.sqlite import sqlite_uri
from .errors import BackupFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .watchdog import Watchdog

SUFFIX = ".migrate-init-backup"
_LABEL = re.compile(r"[^A-Za-z0-9_.,-]+")
#: The longest file name most filesystems take (NAME_MAX, in bytes).
_NAME_MAX = 255
#: What follows the database's name at most: ".<hash>.<stamp>.at-<60>" + SUFFIX + ".partial-journal".
_TAIL_MAX = 1 + 12 + 1 + 23 + 4 + 60 + len(SUFFIX) + len(".partial-journal")
#: Pages copied per backup step: about 4 MB with SQLite's default page size, a few milliseconds.
_STEP_PAGES = 1024
#: SQLite virtual-machine instructions between two looks at the watchdog during quick_check.
_CHECK_EVERY = 100_000


def default_folder(database: Path) -> Path:
    return database.parent / "backups"


def _stem(database: Path) -> str:
    """The database's file name and its path's hash: what every backup name of this database starts with."""
    digest = hashlib.sha256(os.fsencode(os.path.abspath(database))).hexdigest()[:12]
    name = database.name
    while len(os.fsencode(name)) > _NAME_MAX - _TAIL_MAX:
        name = name[:-1]  # one character at a time: a multi-byte one is never cut in half
    return f"{name}.{digest}"


def _pattern(database: Path) -> re.Pattern[str]:
    return re.compile(
        re.escape(_stem(database))
        + r"\.(\d{8}T\d{12}Z)\.at-[A-Za-z0-9_.,-]{1,60}"
        + re.escape(SUFFIX)
        + r"(\.partial(?:-journal|-wal|-shm)?)?"
    )


def take(database: Path, folder: Path, *, keep: int, label: str, watchdog: Watchdog | None = None) -> Path | None:
    """Copy ``database`` into ``folder`` with SQLite's online backup API; prune; return the backup.

    None when there is nothing to back up (a new, empty database).  With a
    ``watchdog``, a stop (SIGTERM, MIGRATION_TIMEOUT) ends the copy or its
    check within a step and is raised, the partial file removed.
    """
    if not database.exists() or database.stat().st_size == 0:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupFailed(
            f"Cannot create BACKUP_DIR={folder}: {exc.strerror}. Make it writable, or set "
            "BACKUP_KEEP=0 to migrate without a backup."
        ) from None
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
    path = folder / f"{_stem(database)}.{stamp}.at-{label}{SUFFIX}"
    partial = path.with_name(path.name + ".partial")
    try:
        problem = _copy(database, partial, watchdog)
        if problem != "ok":
            raise BackupFailed(
                f"The backup of {database} failed its check (PRAGMA quick_check: {problem}); "
                "no migration was applied. Check the database with PRAGMA integrity_check."
            )
        partial.rename(path)
    except (sqlite3.Error, OSError) as exc:
        _unlink_partial(partial)
        if watchdog is not None:
            watchdog.checkpoint()  # interrupted by a stop: that is the outcome, not a failed backup
        raise BackupFailed(f"The backup of {database} into {folder} failed: {exc}. No migration was applied.") from None
    except BaseException:
        _unlink_partial(partial)
        raise
    report.event("backup", f"Backed up {database} to {path}.", backup=str(path), bytes=path.stat().st_size)
    _prune(folder, database, keep, path)
    return path


def _copy(database: Path, partial: Path, watchdog: Watchdog | None) -> str:
    """Copy ``database`` to ``partial`` step by step; return what ``PRAGMA quick_check`` says of the copy."""
    source = sqlite3.connect(sqlite_uri(str(database), "ro"), uri=True)
    try:
        target = sqlite3.connect(partial)
        try:
            if watchdog is None:
                source.backup(target)
            else:
                # One step, then Python again: the watchdog's stop is raised between two steps
                # (SQLite's one-call backup of a 1.5 GB file outlived SIGTERM by seconds, N26).
                source.backup(target, pages=_STEP_PAGES, progress=lambda *_: watchdog.checkpoint())
                # quick_check reads the whole copy: SQLite asks the handler, which stops it on a stop.
                target.set_progress_handler(lambda: watchdog.stopped, _CHECK_EVERY)
            return str(target.execute("PRAGMA quick_check").fetchone()[0])
        finally:
            target.close()
    finally:
        source.close()


def _unlink_partial(partial: Path) -> None:
    for side in ("", "-journal", "-wal", "-shm"):
        partial.with_name(partial.name + side).unlink(missing_ok=True)


def _remove_partials(folder: Path, database: Path) -> None:
    pattern = _pattern(database)
    for candidate in folder.iterdir():
        match = pattern.fullmatch(candidate.name)
        if match and match.group(2) and candidate.is_file():
            candidate.unlink(missing_ok=True)
            report.event(
                "backup_partial_removed", f"Removed {candidate}, left by an interrupted backup.", backup=str(candidate)
            )


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
    for _stamp, old in backups[: max(excess, 0)]:
        old.unlink(missing_ok=True)
        report.event("backup_pruned", f"Removed old backup {old} (BACKUP_KEEP={keep}).", backup=str(old))


def _size(database: Path) -> int:
    total = database.stat().st_size
    wal = database.with_name(database.name + "-wal")
    return total + (wal.stat().st_size if wal.exists() else 0)


def _mb(size: float) -> str:
    return f"{size / 1_000_000:.1f} MB"
