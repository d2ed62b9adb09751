"""The migration lock, so that replicas never race: one protocol, on the bare driver.

A run that finds the database behind waits on this lock, the real one, and
the run that then migrates keeps holding the same lock object: the cheap path
and the full path never disagree about who is first.  It is taken with the
bare driver (stdlib ``fcntl``, psycopg2, pymysql), never SQLAlchemy, because
the no-op fast path must not pay for that import.

SQLite: ``flock`` on a lock file beside the database, on the shared volume.
The kernel drops it when the holder's process dies.  The file records who
holds it, so a waiter that gives up can say.  Locks on network filesystems
cannot be trusted, so those are refused unless SQLITE_ALLOW_NETWORK_FS=true.

PostgreSQL: a transaction-level advisory lock, taken by polling
``pg_try_advisory_xact_lock`` in a transaction that stays open for as long
as the lock is held; release is ROLLBACK.  Not a session lock: behind
PgBouncer in transaction pooling, the next transaction of a session may run
on another server connection, where a session lock taken in the previous one
is not held (issue 23).  An open transaction keeps its server connection,
whatever the pooler; when the client dies the transaction ends and the lock
with it (PgBouncer closes a server connection whose client left mid-
transaction).  Each poll that fails ends its transaction at once, so a
waiter holds no server connection between polls.  A blocked
``pg_advisory_xact_lock`` waiter would sit in the lock queue and make the
holder's ``CREATE INDEX CONCURRENTLY`` wait for it.  Nothing in that session
may end the transaction: the reader's reads under the lock run in savepoints
(:class:`probe.PostgresqlReader`).

MySQL: ``GET_LOCK(name, 0)``, polled the same way on a connection of its
own; it too dies with the session.

Every wait is :func:`migrate_init.retry.poll`, bounded by LOCK_TIMEOUT, and
honours the caller's checkpoint (SIGTERM, MIGRATION_TIMEOUT) within a
quarter of a second.  Imported on the fast path: cheap stdlib only at the top.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time

from . import retry
from .errors import (
    AccessDenied,
    DatabaseUnreachable,
    DiskFull,
    LockTimeout,
    MigrateInitError,
    ReadOnlyStandby,
)
from .wait import check_filesystem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Any, Self

#: Polling starts fast and slows down gently: a waiter notices a released lock (or finished work)
#: within 0.1 s during the first second of its wait, when most migrations end, and within 1 s of
#: a long one, which it then polls about twice a second.  No two polls of one waiter come less
#: than 0.05 s apart: 15 waiters polling in bursts cost the one migrator its CPU (issue 14: the
#: last of 16 runners used to exit up to 0.25 s after the work was done).
BACKOFF = retry.Backoff(initial=0.1, maximum=1.0, multiplier=1.1, floor=0.05)
#: statement_timeout of the PostgreSQL lock connection: no polling query may hang.
STATEMENT_TIMEOUT_MS = 5000
_NOBODY_RECORDED = (
    "a process that has not recorded its name in {path} (not yet, or it runs as a user that cannot write that file)"
)


class MigrationLock:
    """The migration lock: ``with lock:`` or ``acquire()`` / ``release()``.  Made by the factories.

    ``acquire()`` waits up to ``timeout`` seconds (LOCK_TIMEOUT), then raises
    LockTimeout naming the lock and its holder.  While it waits it calls
    ``checkpoint()`` at least every quarter second (whatever that raises
    ends the wait, the lock released), and the first time it finds the lock
    busy it calls ``on_wait(sentence)`` once, with a sentence that names the
    lock and its holder, for the caller to log.  Acquiring a lock already
    held returns at once: the full path reuses the lock the fast path took.

    ``release()`` is idempotent and never raises.  A failed ``acquire()``
    releases everything it took before it raises.  The PostgreSQL and MySQL
    locks close their connection on release: they serve once.
    """

    def __init__(
        self,
        description: str,
        *,
        timeout: float,
        checkpoint: Callable[[], None] | None,
        on_wait: Callable[[str], None] | None,
    ) -> None:
        self._description = description
        self.timeout = timeout
        self._checkpoint = checkpoint
        self._on_wait = on_wait
        self._held = False
        self._waited = False

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._held

    @property
    def description(self) -> str:
        """The lock, for messages: "the migration lock /data/webui.db.migrate.lock"."""
        return self._description

    @property
    def waited(self) -> bool:
        """Whether the last ``acquire()`` found the lock busy at least once."""
        return self._waited

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._description} held={self._held}>"

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()

    def acquire(self, until: Callable[[], bool] | None = None) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds; LockTimeout after that.

        ``until``, asked between attempts while the lock is busy, ends the
        wait early when it answers True (the holder did the work meanwhile):
        then nothing is held and this returns False.  Otherwise True.
        """
        if self._held:
            return True
        self._waited = False
        deadline = time.monotonic() + self.timeout

        def attempt() -> bool | None:
            if self._try_lock():
                return True
            return False if until is not None and until() else None

        def waiting(_number: int, _remaining: float) -> None:
            if self._waited:
                return
            self._waited = True
            if self._on_wait is not None:
                self._on_wait(f"Waiting for {self._description}, held by {self._holder()}.")

        try:
            self._open()
            if not retry.poll(
                attempt,
                deadline=deadline,
                backoff=BACKOFF,
                on_wait=waiting,
                checkpoint=self._checkpoint,
                on_timeout=self._timed_out,
            ):
                self.release()
                return False
            self._held = True
            self._acquired()
        except BaseException:
            self.release()
            raise
        return True

    def release(self) -> None:
        """Let the lock go and close what it opened.  Idempotent; never raises."""
        try:
            if self._held:
                self._unlock()
        except Exception:  # closing, below, releases it anyway
            pass
        finally:
            self._held = False
            with contextlib.suppress(Exception):
                self._close()

    def _timed_out(self) -> LockTimeout:
        return LockTimeout(
            f"Another migrator held {self._description} for longer than "
            f"LOCK_TIMEOUT={self.timeout:g}s; it is {self._holder()}. Nothing was "
            "changed. Wait for it to finish, or raise LOCK_TIMEOUT."
        )

    def _holder(self) -> str:
        try:
            return self._describe_holder()
        except MigrateInitError:
            raise
        except Exception as exc:  # who holds it is a courtesy; the wait goes on
            return f"a holder that could not be looked up ({type(exc).__name__})"

    # What each kind of lock provides.

    def _open(self) -> None:
        """Prepare for the first attempt (open the file, set the session up)."""

    def _try_lock(self) -> bool:
        """One attempt that never blocks: True when the lock is now held."""
        raise NotImplementedError

    def _describe_holder(self) -> str:
        """Who holds the lock, in words (read while this object does not hold it)."""
        raise NotImplementedError

    def _acquired(self) -> None:
        """Just taken: record who holds it, where that is possible."""

    def _unlock(self) -> None:
        """Let go of the lock (may raise: ``_close`` releases it anyway)."""

    def _close(self) -> None:
        """Close what ``_open`` opened; releases the lock if still held."""


# -- SQLite ------------------------------------------------------------------


def lock_path(database_path: str | os.PathLike[str]) -> str:
    """The lock file beside the database: ``<database>.migrate.lock``."""
    return os.fspath(database_path) + ".migrate.lock"


def sqlite_lock(
    database_path: str | os.PathLike[str],
    *,
    timeout: float,
    allow_network_fs: bool = False,
    checkpoint: Callable[[], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> MigrationLock:
    """The flock on ``<database>.migrate.lock``.  Nothing is opened until ``acquire()``.

    The database's folder must exist.  The lock file is created group-writable
    (0o664: the next run may be another UID in the same group, as on OpenShift);
    one left by another UID that this one cannot write is locked through a
    read-only descriptor (flock needs no more), and then records no holder.
    """
    return _SqliteLock(
        os.fspath(database_path),
        timeout=timeout,
        allow_network_fs=allow_network_fs,
        checkpoint=checkpoint,
        on_wait=on_wait,
    )


def holder_sqlite(database_path: str | os.PathLike[str]) -> str | None:
    """Who holds the SQLite migration lock now, or None when nobody does.  Read-only.

    Takes a shared flock for an instant to know (an acquirer that tries in
    that instant finds it busy and tries again).
    """
    path = lock_path(database_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"unknown: the lock file {path} cannot be read by UID {os.getuid()} ({exc.strerror})"
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(path)
        return None
    finally:
        os.close(fd)  # drops the shared flock, if taken


class _SqliteLock(MigrationLock):
    def __init__(
        self,
        database_path: str,
        *,
        timeout: float,
        allow_network_fs: bool,
        checkpoint: Callable[[], None] | None,
        on_wait: Callable[[str], None] | None,
    ) -> None:
        self.database_path = database_path
        self.path = lock_path(database_path)
        self.allow_network_fs = allow_network_fs
        self._fd: int | None = None
        self._writable = False
        super().__init__(f"the migration lock {self.path}", timeout=timeout, checkpoint=checkpoint, on_wait=on_wait)

    def _open(self) -> None:
        check_filesystem(self.database_path, self.allow_network_fs)
        if self._fd is None:
            self._fd, self._writable = _open_lock_file(self.path)

    def _try_lock(self) -> bool:
        assert self._fd is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:  # ENOLCK: a filesystem without locks
            raise _lock_file_error(self.path, exc) from None
        return True

    def _describe_holder(self) -> str:
        return _read_holder(self.path)

    def _acquired(self) -> None:
        if not self._writable or self._fd is None:
            return
        import json

        try:
            # Unbuffered writes: nothing is left to flush (and fail) at close.
            _overwrite(self._fd, (json.dumps(_me()) + "\n").encode())
        except OSError as exc:
            raise _lock_file_error(self.path, exc) from None

    def _unlock(self) -> None:
        if self._writable and self._fd is not None:
            # Still held: no waiter reads a finished holder's name as the next one's (a holder
            # that cannot write the file records none).
            _overwrite(self._fd, b"{}\n")

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock


def _overwrite(fd: int, record: bytes) -> None:
    """Replace the file's record in place, padded with spaces to its current size.

    Never truncated: freeing the file's page would leave a full disk unable to
    give it back, and the next holder could not say who it is.
    """
    size = os.fstat(fd).st_size
    os.pwrite(fd, record.ljust(size, b" "), 0)


def _open_lock_file(path: str) -> tuple[int, bool]:
    """Open (or create) the lock file: (descriptor, whether it is writable)."""
    failure: OSError = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    for _ in range(3):  # another run may create or delete it in between
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o664)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _lock_file_error(path, exc) from None
        else:
            try:
                # Group-writable whatever the umask: the next run may be another
                # UID in the same group (OpenShift).  Only a file made here is changed.
                os.fchmod(fd, 0o664)
            except OSError:
                pass
            return fd, True
        try:
            return os.open(path, os.O_RDWR | os.O_CLOEXEC), True
        except FileNotFoundError as exc:
            failure = exc
            continue
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                # Left by another UID: flock needs only a read descriptor.
                try:
                    return os.open(path, os.O_RDONLY | os.O_CLOEXEC), False
                except OSError:
                    pass
            raise _lock_file_error(path, exc) from None
    raise _lock_file_error(path, failure)


def _lock_file_error(path: str, exc: OSError) -> MigrateInitError:
    """Why the lock file cannot be used, as an error that says what to do."""
    uid = os.getuid()
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(
            f"The disk that holds the lock file {path} is full, so the migration lock "
            "cannot be recorded. Nothing was changed. Free space on that volume and run again."
        )
    if exc.errno == errno.EROFS:
        return AccessDenied(
            f"The lock file {path} is on a read-only filesystem, so UID {uid} cannot "
            "migrate the database beside it. Nothing was changed. Mount that volume read-write."
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        try:
            info = os.stat(path)
        except OSError:
            info = None
        if info is not None:
            return AccessDenied(
                f"The lock file {path} is not usable by UID {uid}: it is owned by UID "
                f"{info.st_uid}, GID {info.st_gid}, mode {oct(info.st_mode & 0o777)}, left by a "
                f"run as another user. Nothing was changed. Delete it while no migrator runs, "
                f"or chown it to UID {uid}."
            )
        return AccessDenied(
            f"Cannot create the lock file {path} as UID {uid}: {exc.strerror}. Nothing was "
            "changed. Make the database folder writable by this user."
        )
    if exc.errno == errno.ENOENT:
        return MigrateInitError(
            f"Cannot create the lock file {path}: the folder {os.path.dirname(path) or '.'} does "
            "not exist. Nothing was changed. Create it, or fix the path in DATABASE_URL."
        )
    return MigrateInitError(
        f"Cannot use the lock file {path} as UID {uid}: {exc.strerror}. Nothing was "
        "changed. Check the volume that holds the database."
    )


def _me() -> dict[str, object]:
    import datetime
    import socket

    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _read_holder(path: str) -> str:
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.loads(handle.read(4096) or "{}")
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict) or not data:
        return _NOBODY_RECORDED.format(path=path)
    return f"PID {data.get('pid')} on host {data.get('host')}, since {data.get('started')}"


# -- PostgreSQL ----------------------------------------------------------------


def advisory_key(database: str, version_table: str) -> int:
    """A stable signed 64-bit key for this database and version table.

    The recipe must never change: a replica of an older release and a newer
    one must exclude each other during a rolling update.
    """
    import hashlib

    digest = hashlib.sha256(f"migrate-init:{database}:{version_table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def postgresql_lock(
    connection: Any,
    database: str,
    *,
    version_table: str = "alembic_version",
    timeout: float,
    checkpoint: Callable[[], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
    shared: bool = False,
) -> MigrationLock:
    """The advisory lock ``advisory_key(database, version_table)`` on ``connection``.

    ``connection`` is an open psycopg2 connection dedicated to the lock (it is
    put in autocommit mode; the lock opens and ends its own transactions);
    ``release()`` rolls the lock's transaction back and closes it.
    ``database`` is the database's name, as in the URL.

    ``shared``: the connection is the run's reader (:class:`probe.PostgresqlReader`,
    autocommit), used between its reads: one session per runner instead of two
    (issue 14: 16 runners start at once; behind PgBouncer in session pooling,
    a second one each would exhaust the default pool of 20).  While the lock is
    held the reader reads in savepoints of the lock's transaction.
    ``release()`` ends that transaction and leaves the connection open.

    A server in recovery (a hot standby) cannot take the lock: ``acquire()``
    raises :class:`ReadOnlyStandby` at once, whatever LOCK_TIMEOUT says.
    """
    return _PostgresqlLock(
        connection,
        advisory_key(database, version_table),
        timeout=timeout,
        checkpoint=checkpoint,
        on_wait=on_wait,
        shared=shared,
    )


_HOLDER_SQL = (
    "SELECT l.pid, a.application_name, a.client_addr, a.backend_start "
    "FROM pg_catalog.pg_locks AS l LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.classid = CAST(%s AS oid) AND l.objid = CAST(%s AS oid) "
    "AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) "
    "LIMIT 1"
)
#: Opens each transaction of the lock's session.  SET LOCAL, not SET: behind PgBouncer in
#: transaction pooling a session setting lands on whichever server connection ran it, and
#: stays there for the next client.  The server's idle_in_transaction_session_timeout (or the
#: role's) would otherwise end the held transaction, and the lock with it, mid-migration.
_BEGIN = (
    f"BEGIN; SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}; SET LOCAL idle_in_transaction_session_timeout = 0; "
)
#: NULL on a server in recovery, where taking the lock would be an error that aborts the poll.
_TRY_SQL = _BEGIN + "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_try_advisory_xact_lock(%s) END"


def holder_postgresql(connection: Any, database: str, version_table: str = "alembic_version") -> str | None:
    """Who holds the advisory lock now, or None when nobody does.  Read-only.

    Reads pg_locks and pg_stat_activity on ``connection`` (any psycopg2
    connection; a transaction this opens is rolled back).
    """
    import psycopg2.extensions

    started_here = (
        not connection.autocommit and connection.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(_HOLDER_SQL, _key_parts(advisory_key(database, version_table)))
            row = cursor.fetchone()
    finally:
        if started_here:
            connection.rollback()
    return None if row is None else _describe_backend(row)


class _PostgresqlLock(MigrationLock):
    def __init__(
        self,
        connection: Any,
        key: int,
        *,
        timeout: float,
        checkpoint: Callable[[], None] | None,
        on_wait: Callable[[str], None] | None,
        shared: bool = False,
    ) -> None:
        self.connection = connection
        self.key = key
        self.shared = shared
        super().__init__(f"the advisory lock {key}", timeout=timeout, checkpoint=checkpoint, on_wait=on_wait)

    def _execute(self, statement: str, parameters: tuple[object, ...] = ()) -> Any:
        """Run statements; return the last one's first row.  A lost connection is DatabaseUnreachable."""
        import psycopg2
        import psycopg2.extensions

        try:
            with self.connection.cursor() as cursor:
                cursor.execute(statement, parameters)
                return cursor.fetchone() if cursor.description else None
        except psycopg2.extensions.QueryCanceledError:
            raise  # statement_timeout, or a stop request: the caller decides
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            raise _unreachable(self._description, _where_postgresql(self.connection), exc) from None

    def _in_transaction(self) -> bool:
        import psycopg2.extensions

        return bool(self.connection.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE)

    def _open(self) -> None:
        if self.connection.closed:
            raise RuntimeError(
                f"The connection for {self._description} is closed; a PostgreSQL "
                "lock serves once: make a new one with its own connection."
            )
        if not self.shared and not self.connection.autocommit:
            self.connection.autocommit = True  # the lock opens and ends its transactions itself

    def _try_lock(self) -> bool:
        import psycopg2.extensions

        try:
            row = self._execute(_TRY_SQL, (self.key,))
        except psycopg2.extensions.QueryCanceledError:
            # A server too busy to answer in statement_timeout, or a stop request
            # that cancelled the query: the checkpoint, next, tells them apart.
            self._execute("ROLLBACK")
            return False
        if row is None or row[0] is None:
            self._execute("ROLLBACK")
            raise _standby(self._description, _where_postgresql(self.connection))
        if not row[0]:
            self._execute("ROLLBACK")  # a waiter keeps no transaction, so no server connection, between polls
        return bool(row[0])

    def _describe_holder(self) -> str:
        try:
            row = self._execute(_BEGIN + _HOLDER_SQL, _key_parts(self.key))
        finally:
            if not self.connection.closed and self._in_transaction():
                self._execute("ROLLBACK")
        return "a session that has just released it" if row is None else _describe_backend(row)

    def _unlock(self) -> None:
        self._execute("ROLLBACK")  # a transaction-level lock ends with its transaction

    def _close(self) -> None:
        if self.connection.closed:
            return
        if self.shared:
            # The session goes on (the reader's): end the lock's transaction, if a failed
            # acquire() or a lost unlock left it open.
            if self._in_transaction():
                self._execute("ROLLBACK")
            return
        self.connection.close()  # the session ends: its transaction and the lock with it


def _standby(description: str, where: str) -> ReadOnlyStandby:
    return ReadOnlyStandby(
        f"The PostgreSQL server at {where} is a read-only standby (in recovery), so {description} "
        "cannot be taken and nothing can be migrated there. Nothing was changed. Point DATABASE_URL "
        "at the primary, or list every host with target_session_attrs=read-write "
        "(postgresql://user:password@host1:5432,host2:5432/db?target_session_attrs=read-write)."
    )


def _describe_backend(row: tuple[Any, ...]) -> str:
    pid, app, addr, since = row
    started = since.isoformat(timespec="seconds") if hasattr(since, "isoformat") else since
    return (
        f"backend PID {pid}, application_name '{app or ''}', client address "
        f"{addr or 'local socket'}, connected since {started or 'an unknown time'}"
    )


def _where_postgresql(connection: Any) -> str:
    try:
        info = connection.info
        return f"{info.host}:{info.port}/{info.dbname}"
    except Exception:
        return "the database"


def _key_parts(key: int) -> tuple[int, int]:
    """pg_locks shows a bigint advisory key as two oids: high and low 32 bits."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def _unreachable(description: str, where: str, exc: BaseException) -> DatabaseUnreachable:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    return DatabaseUnreachable(
        f"The connection for {description} at {where} failed: {reason}. Nothing more was "
        "changed. Check that the database is up and reachable, then run again."
    )


# -- MySQL (written with care, but not exercised by the test suite) ----------------


def mysql_lock_name(database: str, version_table: str) -> str:
    """The GET_LOCK name for this database and version table: 53 characters (MySQL allows 64).

    Lock names are server-wide, so the database is part of it; hashed, so
    that no name is ever too long.
    """
    import hashlib

    digest = hashlib.sha256(f"migrate-init:{database}:{version_table}".encode()).hexdigest()
    return f"migrate-init:{digest[:40]}"


def mysql_lock(
    connection: Any,
    database: str,
    *,
    version_table: str = "alembic_version",
    timeout: float,
    checkpoint: Callable[[], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
    shared: bool = False,
) -> MigrationLock:
    """``GET_LOCK(mysql_lock_name(...), 0)`` polled on ``connection`` (pymysql, dedicated to it).

    ``release()`` runs ``RELEASE_LOCK`` and closes the connection.  ``shared``: the
    connection is the run's reader (:class:`probe.MysqlReader`, autocommit, its own
    statement bounds), as for :func:`postgresql_lock`; ``release()`` then runs
    ``RELEASE_ALL_LOCKS()`` and leaves it open.
    """
    return _MysqlLock(
        connection,
        mysql_lock_name(database, version_table),
        timeout=timeout,
        checkpoint=checkpoint,
        on_wait=on_wait,
        shared=shared,
    )


def holder_mysql(connection: Any, database: str, version_table: str = "alembic_version") -> str | None:
    """Who holds the MySQL lock now, or None when nobody does.  Read-only."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT IS_USED_LOCK(%s)", (mysql_lock_name(database, version_table),))
        row = cursor.fetchone()
        if row is None or row[0] is None:
            return None
        return _describe_mysql_session(cursor, row[0])


class _MysqlLock(MigrationLock):
    def __init__(
        self,
        connection: Any,
        name: str,
        *,
        timeout: float,
        checkpoint: Callable[[], None] | None,
        on_wait: Callable[[str], None] | None,
        shared: bool = False,
    ) -> None:
        self.connection = connection
        self.name = name
        self.shared = shared
        self._closed = False
        super().__init__(f"the MySQL lock '{name}'", timeout=timeout, checkpoint=checkpoint, on_wait=on_wait)

    def _execute(self, statement: str, parameters: tuple[object, ...] = ()) -> Any:
        return self._on_cursor(lambda cursor: (cursor.execute(statement, parameters), cursor.fetchone())[1])

    def _on_cursor(self, work: Callable[[Any], Any]) -> Any:
        try:
            with self.connection.cursor() as cursor:
                return work(cursor)
        except Exception as exc:
            # DB-API names, whichever driver (pymysql, mysqlclient) made the connection.
            if {cls.__name__ for cls in type(exc).__mro__} & {"OperationalError", "InterfaceError"}:
                raise _unreachable(self._description, "the MySQL server", exc) from None
            raise

    def _open(self) -> None:
        if self._closed:
            raise RuntimeError(
                f"The connection for {self._description} is closed; a MySQL lock "
                "serves once: make a new one with its own connection."
            )
        if self.shared:
            return  # the reader's session, bounded by the reader
        # GET_LOCK(name, 0) never waits; this only bounds the holder lookups.
        from .probe import bound_statements

        self._on_cursor(lambda cursor: bound_statements(cursor, STATEMENT_TIMEOUT_MS / 1000))

    def _try_lock(self) -> bool:
        row = self._execute("SELECT GET_LOCK(%s, 0)", (self.name,))
        if row is None or row[0] is None:
            raise MigrateInitError(
                f"The MySQL server returned NULL for GET_LOCK('{self.name}', 0): an error, such as "
                "a killed thread or no memory. Nothing was changed. Check the server's log, then "
                "run again."
            )
        return bool(row[0])

    def _describe_holder(self) -> str:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT IS_USED_LOCK(%s)", (self.name,))
            row = cursor.fetchone()
            if row is None or row[0] is None:
                return "a session that has just released it"
            return _describe_mysql_session(cursor, row[0])

    def _unlock(self) -> None:
        self._execute("SELECT RELEASE_LOCK(%s)", (self.name,))

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.shared:
                # The session goes on (the reader's): end every GET_LOCK lock it holds instead.
                self._execute("SELECT RELEASE_ALL_LOCKS()")
                return
            self.connection.close()  # the session ends: GET_LOCK locks go with it


def _describe_mysql_session(cursor: Any, connection_id: object) -> str:
    try:
        cursor.execute("SELECT USER, HOST FROM information_schema.PROCESSLIST WHERE ID = %s", (connection_id,))
        row = cursor.fetchone()
    except Exception:
        row = None
    if row is None:
        return f"connection ID {connection_id}"
    return f"connection ID {connection_id}, user '{row[0]}' from {row[1]}"
