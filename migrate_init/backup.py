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

A backup is copied under one read transaction of the database, so it is one
consistent state whatever another process writes meanwhile: a rollback-journal
database (SQLite's default) byte for byte, in the kernel (``copy_file_range``: a
copy-on-write clone where the filesystem has one), its SHARED lock keeping other
writers from committing until the copy is done; a WAL database with SQLite's
backup API (issue 27).  It is written as ``<name>.partial`` (the backup API adds
``.partial-journal``) and renamed when complete and checked: SQLite opens it and
finds the database's pages and schema (the database itself passed ``PRAGMA
quick_check`` just before, upgrade.QuickCheck).  These files of this database
left by an interrupted run (kill -9) are removed by the next one (the caller
holds the migration lock, so no other run is writing them; N33).  The copy runs
some megabytes at a time and asks the watchdog between steps, so SIGTERM and
MIGRATION_TIMEOUT end it within a moment and leave no partial file (N26).
"""

from __future__ import annotations

import datetime
import errno
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
#: Bytes per step of a byte copy: some 10 ms from the page cache, so a stop is seen within a moment.
_CHUNK = 16 * 1024 * 1024
#: Seconds SQLite waits for another writer's lock before the watchdog is asked again.
_BUSY_WAIT = 0.2
#: What copy_file_range says where it cannot copy between these two files; sendfile then does.
_NO_COPY_RANGE = frozenset({errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


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
    """Copy ``database`` into ``folder`` (one consistent state, checked); prune; return the backup.

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
                f"The backup of {database} failed its check ({problem}); no migration was applied. "
                f"Check the database with PRAGMA integrity_check, and the disk of BACKUP_DIR={folder}."
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
    """Copy ``database`` to ``partial`` under one read transaction; return what the copy's check says.

    A rollback-journal database (SQLite's default) is copied byte for byte: the read
    transaction's SHARED lock keeps every other writer from committing until the copy is
    done, so the bytes are one consistent state (issue 27: 0.1 s for 193 MB where the
    backup API took a second).  A WAL database is copied with the backup API: a
    checkpoint may rewrite its main file under a reader, so its bytes alone are not a state.
    """
    source = sqlite3.connect(
        sqlite_uri(str(database), "ro"),
        uri=True,
        isolation_level=None,
        timeout=_BUSY_WAIT if watchdog is not None else 5.0,
    )
    try:
        shape = _begin_read(source, watchdog)
        if source.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            return _copy_pages(source, partial, shape, watchdog)
        _copy_bytes(database, partial, watchdog)
        copy = sqlite3.connect(sqlite_uri(str(partial), "ro"), uri=True)
        try:
            return _check(copy, partial, shape)
        finally:
            copy.close()
    finally:
        source.close()  # ends the read transaction: writers go on


def _begin_read(source: sqlite3.Connection, watchdog: Watchdog | None) -> tuple[int, int]:
    """Open a read transaction on ``source`` (it lasts until the connection closes); its pages and schema objects.

    A writer committing just now holds the file for a moment: wait for it, asking the
    watchdog between two short waits, so a stop still ends the wait.
    """
    while True:
        try:
            source.execute("BEGIN")
            return _shape(source)
        except sqlite3.OperationalError as exc:
            if source.in_transaction:
                source.execute("ROLLBACK")
            if watchdog is None or exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            watchdog.checkpoint()


def _copy_bytes(database: Path, partial: Path, watchdog: Watchdog | None) -> None:
    """The file's bytes, a chunk at a time, in the kernel (a copy-on-write clone where the filesystem has one)."""
    with open(database, "rb") as src, open(partial, "xb") as dst:
        size = os.fstat(src.fileno()).st_size
        done = 0
        copy = getattr(os, "copy_file_range", None)
        while done < size:
            count = min(_CHUNK, size - done)
            try:
                copied = (
                    copy(src.fileno(), dst.fileno(), count)
                    if copy
                    else os.sendfile(dst.fileno(), src.fileno(), None, count)
                )
            except OSError as exc:
                # copy_file_range between two kinds of filesystem (a tmpfs BACKUP_DIR, an overlay
                # database) says EXDEV or EINVAL: sendfile copies between any two files.
                if copy is None or exc.errno not in _NO_COPY_RANGE:
                    raise
                copy = None
                continue
            if copied == 0:
                raise OSError(errno.EIO, f"{database} ended at byte {done} of {size} while it was copied")
            done += copied
            if watchdog is not None:
                watchdog.checkpoint()
        # On the disk before the first migration may commit: a power cut after that commit must not
        # leave the migrated database with an empty backup (the backup API's copy was fsynced too).
        # It is most of the backup's cost on a slow disk (0.3-0.45 s for 193 MB here, issue 27).
        os.fdatasync(dst.fileno())


def _copy_pages(source: sqlite3.Connection, partial: Path, shape: tuple[int, int], watchdog: Watchdog | None) -> str:
    # The copy is a WAL database too: checked on its own read-write connection, whose close
    # removes the -wal and -shm that a read-only one would leave behind.
    target = sqlite3.connect(partial)
    try:
        if watchdog is None:
            source.backup(target)
        else:
            # One step, then Python again: the watchdog's stop is raised between two steps
            # (SQLite's one-call backup of a 1.5 GB file outlived SIGTERM by seconds, N26).
            source.backup(target, pages=_STEP_PAGES, progress=lambda *_: watchdog.checkpoint())
        return _check(target, partial, shape)
    finally:
        target.close()


def _shape(connection: sqlite3.Connection) -> tuple[int, int]:
    """How many pages the database has, and how many tables, indexes, views and triggers its schema names."""
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    return int(pages), int(connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])


def _check(copy: sqlite3.Connection, partial: Path, shape: tuple[int, int]) -> str:
    """``"ok"`` when SQLite reads the database's pages and schema in the copy, and its file holds those pages.

    Not ``PRAGMA quick_check``, which reads the whole copy (346 ms for 193 MB, issue 27): the
    database passed it just before (upgrade.QuickCheck), and these are its pages, taken in one
    read transaction.  This check catches a copy cut short, or one SQLite cannot read.
    """
    found = _shape(copy)
    size = found[0] * int(copy.execute("PRAGMA page_size").fetchone()[0])
    if found != shape:
        return f"the copy has {found[0]} pages and {found[1]} schema objects, the database {shape[0]} and {shape[1]}"
    if partial.stat().st_size < size:
        return f"the copy's {found[0]} pages need {size} bytes, its file has {partial.stat().st_size}"
    return "ok"


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
