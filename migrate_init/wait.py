"""Wait for the database to answer, within DB_WAIT_TIMEOUT, with the bare driver.

A refused connection, a DNS failure, a server that is starting up, a
database not created yet or a SQLite file locked by another process is
retried with backoff (:mod:`retry`); a refused password or permission and a
damaged file are final at once, since retrying cannot fix them.  Each try is
bounded by what is left of the deadline, so the wait ends when it says.
"""

from __future__ import annotations

import os
import stat
import time

from . import report, retry
from .errors import (
    AccessDenied,
    ConfigError,
    CorruptDatabase,
    DatabaseMissing,
    DatabaseUnreachable,
    classify,
)
from .probe import Reader

TYPE_CHECKING = False  # typing is not imported on the way to a run with nothing to do (issue 14)
if TYPE_CHECKING:
    from .url import Url
    from .watchdog import Watchdog

_BACKOFF = retry.Backoff(initial=0.1, maximum=2.0)
#: Where file locks cannot be trusted: a SQLite database there is refused (SQLITE_ALLOW_NETWORK_FS).
_NETWORK_FILESYSTEMS = {
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ncpfs",
    "afs",
    "9p",
    "ceph",
    "glusterfs",
    "lustre",
    "gpfs",
    "fuse.sshfs",
    "sshfs",
    "fuse.glusterfs",
    "fuse.cephfs",
    "fuse.s3fs",
    "fuse.gcsfuse",
    "fuse.rclone",
    "davfs",
    "fuse.davfs2",
}


def connect(
    database: Url,
    *,
    timeout: float,
    read_only: bool,
    watchdog: Watchdog,
    statement_timeout: float = 30.0,
    missing_is_transient: bool = False,
) -> Reader:
    """A reader on a database that answered one snapshot; raise DatabaseUnreachable, AccessDenied or CorruptDatabase.

    ``missing_is_transient`` (``wait``): a SQLite file that does not exist yet
    is waited for, as another migrator may be about to create it.
    """
    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    attempts = [0]
    # The heartbeat says how long this wait has lasted, against which bound, and why (issue 24).
    watchdog.limit_phase(timeout, "DB_WAIT_TIMEOUT")
    watchdog.detail = lambda: f"{database.safe}, last error: {last['reason']}" if last else database.safe

    def attempt() -> Reader | None:
        attempts[0] += 1
        left = max(deadline - time.monotonic(), 0.5)
        reader = None
        try:
            reader = database.engine.reader(
                database,
                read_only=read_only,
                connect_timeout=left,
                statement_timeout=min(statement_timeout, max(left, 1.0)),
                checkpoint=watchdog.checkpoint,
                track=watchdog.track,
            )
            reader.busy_timeout = left  # a file locked by another process is waited for here, not longer
            # Reading the catalog parses the schema: a damaged SQLite file is
            # found here, before anything is locked or written.
            reader.answered("alembic_version", reader.snapshot("alembic_version"))
            reader.busy_timeout = timeout  # each later read waits for a writer at most DB_WAIT_TIMEOUT
        except DatabaseMissing as exc:
            if not missing_is_transient:
                raise
            if last.get("reason") != str(exc):
                report.event("db_waiting", f"Waiting for the database: {exc}", attempt=attempts[0])
            last["reason"], last["kind"] = str(exc), "missing_file"
            return None
        except (ConfigError, AccessDenied, DatabaseUnreachable):
            raise
        except ImportError:
            raise  # this installation's fault, not the database's: waiting would not help
        except Exception as exc:
            if reader is not None:
                reader.close()
            watchdog.checkpoint()
            kind = classify(exc)
            reason = report.first_line(exc)
            if kind == "access":
                raise AccessDenied(
                    f"The database at {database.safe} refused access: {reason}. Check the user and "
                    "password in DATABASE_URL (or DATABASE_PASSWORD / their _FILE variants) and the "
                    "database's grants; this is not retried."
                ) from None
            if kind == "corrupt":
                raise CorruptDatabase(
                    f"The SQLite file {database.sqlite_path} is not a usable database: {reason}. It "
                    "was left untouched. Restore it from a backup, or move it aside to start fresh."
                ) from None
            if last.get("reason") != reason:
                report.event(
                    "db_waiting",
                    f"Waiting for the database at {database.safe}: {reason}.",
                    attempt=attempts[0],
                    remaining=round(deadline - time.monotonic(), 1),
                )
            last["reason"], last["kind"] = reason, kind
            return None
        if attempts[0] > 1:
            report.event("db_ready", f"The database answered after {attempts[0]} attempts.", attempts=attempts[0])
        return reader

    def timed_out() -> BaseException:
        blocked = last.get("kind") in ("lock_not_available", "query_canceled")
        what = "could not be read" if blocked else "did not answer"  # it answered, a lock held the read
        return DatabaseUnreachable(
            f"The database at {database.safe} {what} within DB_WAIT_TIMEOUT={timeout:g}s "
            f"after {attempts[0]} attempt(s) (last error: {last.get('reason', 'none')}). "
            f"{_advice(database, last.get('kind', ''), last.get('reason', ''))}"
        )

    return retry.poll(
        attempt, deadline=deadline, backoff=_BACKOFF, checkpoint=watchdog.checkpoint, on_timeout=timed_out
    )


def _advice(database: Url, kind: str, reason: str) -> str:
    if kind == "missing_file":
        return "Is the migration (the Job, or the init container) running, and is the volume the same?"
    if kind == "busy":
        return (
            f"Another process holds the write lock of {database.sqlite_path} (a long transaction, "
            "or a stuck writer): find it (fuser, lsof), or raise DB_WAIT_TIMEOUT."
        )
    if kind == "missing_database":
        # Retried rather than final: a server's init scripts or an operator may
        # create the database after the server accepts connections.
        return (
            f"The server answers, but the database '{database.database}' does not exist on it: "
            "create it, or fix the database name in DATABASE_URL."
        )
    if kind in ("lock_not_available", "query_canceled"):
        where = database.engine.activity_view
        return (
            "The server answers, but reading where the database stands waited on a lock another "
            f"session holds (LOCK TABLES or LOCK TABLE, a long ALTER): find it ({where}), or raise "
            "DB_WAIT_TIMEOUT."
        )
    if database.engine.file_based:
        return f"Check the SQLite file {database.sqlite_path} and its volume, or raise DB_WAIT_TIMEOUT."
    return "Check the host, port and database name in DATABASE_URL, or raise DB_WAIT_TIMEOUT."


def filesystem_type(path: str | os.PathLike[str]) -> str | None:
    """The type of the filesystem that holds ``path``, from /proc/self/mounts.  Read-only."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as handle:
            mounts = [line.split() for line in handle]
    except OSError:
        return None
    best, fstype = "", None
    resolved = os.path.realpath(os.fspath(path))
    for fields in mounts:
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, fields[2]
    return fstype


def check_filesystem(database_path: str | os.PathLike[str], allow_network_fs: bool) -> None:
    """Refuse a SQLite database on a network filesystem, unless allowed.  Touches nothing.

    Called before the database is first opened (here, on the way to a run with
    nothing to do), so that nothing is created there, and again by :mod:`lock`
    before the lock file is opened.
    """
    database = os.fspath(database_path)
    fstype = filesystem_type(os.path.dirname(os.path.abspath(database)))
    if fstype in _NETWORK_FILESYSTEMS and not allow_network_fs:
        raise ConfigError(
            f"The SQLite database {database} is on a '{fstype}' network filesystem, "
            "where file locks cannot be trusted and concurrent migrators could "
            "corrupt it. Nothing was changed. Use a local volume, or set "
            "SQLITE_ALLOW_NETWORK_FS=true if only one migrator ever runs."
        )


def prepare_sqlite(path: str) -> None:
    """Create the database's folder and check that this user can write both (``run`` only).

    ``path`` is absolute (``Url.sqlite_path``).  Plain ``os.path``, no ``pathlib``: this runs on
    the way to a run with nothing to do (issue 14).
    """
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise ConfigError(
            f"DATABASE_URL points at {path}, which is a folder, not a SQLite database "
            "file. Name a file, e.g. sqlite:////data/app.db."
        )
    try:
        os.makedirs(folder, exist_ok=True)
    except PermissionError:
        raise AccessDenied(
            f"Cannot create the folder {folder} for the SQLite database as UID {os.getuid()}: "
            "permission denied. Create it, or mount a volume there that this user can write."
        ) from None
    except OSError as exc:
        if not os.path.isdir(folder) and os.path.exists(folder):
            raise ConfigError(f"DATABASE_URL points into {folder}, which is not a folder.") from None
        raise AccessDenied(
            f"Cannot create the folder {folder}: {exc.strerror}. Make it writable, or mount a volume there."
        ) from None
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        raise AccessDenied(
            f"The SQLite database {path} is not writable by UID {os.getuid()} (GID {os.getgid()}); it "
            f"is {_owner(path)}. Make it writable (chown/chmod) or run the container as its owner."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise AccessDenied(
            f"The folder {folder} is not writable by UID {os.getuid()} (GID {os.getgid()}); it is "
            f"{_owner(folder)}. SQLite must create its journal there: make the folder writable or "
            "run as its owner."
        )


def _owner(path: str) -> str:
    info = os.stat(path)
    return f"owned by UID {info.st_uid}, GID {info.st_gid}, mode {stat.filemode(info.st_mode)}"


def share_with_group(path: str) -> None:
    """Let the file's group write it too, when this user owns it.

    SQLite creates files mode 0644 whatever the umask; OpenShift runs the next
    pod as another UID in group 0, which must still be able to migrate.
    """
    try:
        info = os.stat(path)
        if info.st_uid == os.getuid() and info.st_mode & 0o060 != 0o060:
            os.chmod(path, stat.S_IMODE(info.st_mode) | 0o060)
    except OSError:
        pass  # not ours to change; prepare_sqlite already checked that we can write it
