"""The migration lock, so that replicas never race.

PostgreSQL: a session-level advisory lock on a dedicated connection, taken by
polling ``pg_try_advisory_lock``.  A blocked ``pg_advisory_lock`` waiter would
sit in the lock queue and make the holder's ``CREATE INDEX CONCURRENTLY``
wait for it.  The lock dies with the connection, so a killed holder never
leaves it behind.

SQLite: ``flock`` on a lock file beside the database, on the shared volume.
The kernel drops it when the holder's process dies.  The file records who
holds it, so a waiter that gives up can say.  Locks on network filesystems
cannot be trusted, so those are refused unless SQLITE_ALLOW_NETWORK_FS=true.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import socket
import time
from pathlib import Path

from . import report
from .db import Target
from .errors import AccessDenied, ConfigError, DiskFull, LockTimeout, MigrateInitError
from .wait import Backoff

_NETWORK_FILESYSTEMS = {
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs",
    "lustre", "gpfs", "fuse.sshfs", "sshfs", "fuse.glusterfs", "fuse.cephfs",
    "fuse.s3fs", "fuse.gcsfuse", "fuse.rclone", "davfs", "fuse.davfs2",
}
_BACKOFF = Backoff(initial=0.05, maximum=1.0)


@contextlib.contextmanager
def migration_lock(engine, target: Target, *, timeout: float, allow_network_fs: bool = False,
                   version_table: str = "alembic_version"):
    """Hold the lock for the body of the ``with`` block."""
    if target.sqlite_path is not None:
        with _sqlite_lock(target.sqlite_path, timeout, allow_network_fs):
            yield
    elif target.is_postgresql:
        with _postgres_lock(engine, target, timeout, version_table):
            yield
    else:
        report.warning(
            "lock_unsupported",
            f"No migration lock for the '{target.backend}' backend; run a single migrator.",
        )
        yield


def holder(engine, target: Target, version_table: str = "alembic_version") -> str | None:
    """Who holds the migration lock now, or None when nobody does.  Read-only."""
    if target.sqlite_path is not None:
        path = lock_path(target.sqlite_path)
        if not path.exists():
            return None
        with open(path, encoding="utf-8") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_holder(path)
        return None
    if target.is_postgresql:
        from sqlalchemy import text

        key = advisory_key(target.url.database or "", version_table)
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                     "AND objsubid = 1 AND classid = CAST(:hi AS oid) AND objid = CAST(:lo AS oid)"),
                _key_parts(key),
            ).scalar()
            return _postgres_holder(connection, key) if found else None
    return None


# -- SQLite ------------------------------------------------------------------

def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".migrate.lock")


def filesystem_type(path: Path) -> str | None:
    """The type of the filesystem that holds ``path``, from /proc/self/mounts."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as handle:
            mounts = [line.split() for line in handle]
    except OSError:
        return None
    best, fstype = "", None
    resolved = str(path.resolve())
    for fields in mounts:
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, fields[2]
    return fstype


def check_filesystem(database: Path, allow_network_fs: bool) -> None:
    """Refuse a SQLite database on a network filesystem, unless allowed.  Touches nothing.

    Called before the database is first opened, so that nothing is created
    there, and again when the lock is taken.
    """
    fstype = filesystem_type(database.parent)
    if fstype in _NETWORK_FILESYSTEMS and not allow_network_fs:
        raise ConfigError(
            f"The SQLite database {database} is on a '{fstype}' network filesystem, "
            "where file locks cannot be trusted and concurrent migrators could "
            "corrupt it. Nothing was changed. Use a local volume, or set "
            "SQLITE_ALLOW_NETWORK_FS=true if only one migrator ever runs."
        )


@contextlib.contextmanager
def _sqlite_lock(database: Path, timeout: float, allow_network_fs: bool):
    check_filesystem(database, allow_network_fs)
    path = lock_path(database)
    try:
        # Unbuffered: nothing is left to flush (and fail) when it is closed.
        # Group-writable: the next run may be another UID in the same group (OpenShift).
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o664)
    except OSError as exc:
        raise _lock_file_error(path, exc) from None
    try:
        deadline = time.monotonic() + timeout
        delays = _BACKOFF.delays()
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read_holder(path)
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"Another migrator held the lock {path} for longer than "
                        f"LOCK_TIMEOUT={timeout:g}s; it is {holder}. Nothing was "
                        "changed. Wait for it to finish, or raise LOCK_TIMEOUT."
                    ) from None
                if not announced:
                    report.event("lock_waiting", f"Waiting for the migration lock {path}, held by {holder}.",
                                 lock=str(path))
                    announced = True
                time.sleep(min(next(delays), max(deadline - time.monotonic(), 0.0)))
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(_me()) + "\n").encode(), 0)
        except OSError as exc:
            raise _lock_file_error(path, exc) from None
        report.event("lock_acquired", f"Acquired the migration lock {path}.", lock=str(path))
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _lock_file_error(path: Path, exc: OSError) -> MigrateInitError:
    """Why the lock file cannot be used, as an error that says what to do."""
    uid = os.getuid()
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(
            f"The disk that holds the lock file {path} is full, so the migration lock "
            "cannot be recorded. Nothing was changed. Free space on that volume and run again."
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        if path.exists():
            info = path.stat()
            return AccessDenied(
                f"The lock file {path} is not writable by UID {uid}: it is owned by UID "
                f"{info.st_uid}, GID {info.st_gid}, mode {oct(info.st_mode & 0o777)}, left by a "
                f"run as another user. Nothing was changed. Delete it while no migrator runs, "
                f"or chown it to UID {uid}."
            )
        return AccessDenied(
            f"Cannot create the lock file {path} as UID {uid}: {exc.strerror}. Nothing was "
            "changed. Make the database folder writable by this user."
        )
    return MigrateInitError(
        f"Cannot use the lock file {path} as UID {uid}: {exc.strerror}. Nothing was "
        "changed. Check the volume that holds the database."
    )


def _me() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _read_holder(path: Path) -> str:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        data = {}
    if not data:
        return "a process that has not written its name yet"
    return f"PID {data.get('pid')} on host {data.get('host')}, since {data.get('started')}"


# -- PostgreSQL ----------------------------------------------------------------

def advisory_key(database: str, version_table: str, label: str = "") -> int:
    """A stable signed 64-bit key for this database and version table.

    ``label`` gives another lock on the same database a key of its own (the
    fast path's "first" lock).
    """
    scope = f"{label}:" if label else ""
    digest = hashlib.sha256(f"migrate-init:{scope}{database}:{version_table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def _postgres_lock(engine, target: Target, timeout: float, version_table: str):
    from sqlalchemy import text

    key = advisory_key(target.url.database or "", version_table)
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        deadline = time.monotonic() + timeout
        delays = _BACKOFF.delays()
        announced = False
        while not connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            if time.monotonic() >= deadline:
                holder = _postgres_holder(connection, key)
                raise LockTimeout(
                    f"Another migrator held the advisory lock {key} for longer than "
                    f"LOCK_TIMEOUT={timeout:g}s; it is {holder}. Nothing was changed. "
                    "Wait for it to finish, or raise LOCK_TIMEOUT."
                )
            if not announced:
                report.event("lock_waiting", f"Waiting for the advisory lock {key}, held by "
                             f"{_postgres_holder(connection, key)}.", lock=key)
                announced = True
            time.sleep(min(next(delays), max(deadline - time.monotonic(), 0.0)))
        report.event("lock_acquired", f"Acquired the advisory lock {key}.", lock=key)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        with contextlib.suppress(Exception):
            connection.close()


def _postgres_holder(connection, key: int) -> str:
    from sqlalchemy import text

    row = connection.execute(
        text(
            "SELECT a.pid, a.application_name, a.client_addr, a.backend_start "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid = CAST(:hi AS oid) AND l.objid = CAST(:lo AS oid) LIMIT 1"
        ),
        _key_parts(key),
    ).first()
    if row is None:
        return "a session that has just released it"
    pid, app, addr, since = row
    return (f"backend PID {pid}, application_name '{app or ''}', client address "
            f"{addr or 'local socket'}, connected since {since}")


def _key_parts(key: int) -> dict:
    """pg_locks shows a bigint advisory key as two oids: high and low 32 bits."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF}
