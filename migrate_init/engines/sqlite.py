"""SQLite: a file on a shared volume, read with stdlib ``sqlite3``, locked with ``flock`` beside it.

The reader opens the file with ``mode=ro`` or ``mode=rw`` (never ``rwc``: a
fresh deploy's file appears with its first migration), in short busy-wait
slices that a stop can interrupt.  The migration lock is a ``flock`` on
``<database>.migrate.lock``: the kernel drops it when the holder's process
dies; the file records who holds it, so a waiter that gives up can say.  Locks
on network filesystems cannot be trusted, so those are refused unless
SQLITE_ALLOW_NETWORK_FS=true.  DDL is transactional: SQLAlchemy's engine opens
every transaction itself (``BEGIN IMMEDIATE``), so a failed or killed
migration leaves nothing half-applied.  Imported on the fast path: stdlib only
at the top.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from ..errors import AccessDenied, DatabaseMissing, DiskFull, MigrateInitError
from ..lock import MigrationLock
from ..probe import ESTIMATE_ABOVE, SEED_TABLE, Reader, Snapshot, quote, version_source, versions_and_checksums
from ..wait import check_filesystem
from . import Engine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from ..catalog import CatalogRead, Column
    from ..catalog import Snapshot as CatalogSnapshot
    from ..errors import LockLost
    from ..url import Url


def sqlite_driver() -> Any:
    """The sqlite3 driver, without the Python half of the ``sqlite3`` package when it can.

    ``sqlite3`` re-exports the C module ``_sqlite3`` and, in ``sqlite3.dbapi2``,
    registers date and datetime adapters that this reader never uses; importing
    it (with ``datetime``) costs about 1.5 ms of a run with nothing to do (issue
    14).  The connection, cursor and exception classes are the same objects
    either way, so SQLAlchemy's ``sqlite3`` later shares them.
    """
    try:
        import _sqlite3
    except ImportError:  # an interpreter that builds sqlite3 otherwise
        import sqlite3

        return sqlite3
    return _sqlite3


#: SQLite's own busy wait per try; nothing can interrupt it, so it stays short.
_SQLITE_SLICE = 0.2


class SqliteReader(Reader):
    backend = "sqlite"

    def __init__(
        self,
        database: Url,
        *,
        read_only: bool,
        checkpoint: Callable[[], None] | None,
        track: Callable[[Any], None] | None,
    ) -> None:
        self.safe_url = database.safe
        path = database.sqlite_path
        assert path is not None  # url.parse refuses in-memory databases
        self.path = os.path.abspath(path)
        self.checkpoint = checkpoint
        self.connection = None
        if os.path.isdir(self.path):
            from ..errors import ConfigError

            raise ConfigError(
                f"DATABASE_URL points at {self.path}, which is a folder, not a SQLite "
                "database file. Name a file, e.g. sqlite:////data/app.db."
            )
        self.read_only = read_only
        self.track = track
        if not os.path.exists(self.path) and read_only:
            raise DatabaseMissing(
                f"The SQLite database {self.path} does not exist. Nothing was created; check "
                "DATABASE_URL (or the volume mounted there), or run the migration first."
            )
        self._open()

    def _open(self) -> bool:
        """Connect when the file exists (a fresh deploy's file appears with its first migration)."""
        if self.connection is not None:
            return True
        if not os.path.exists(self.path):
            return False  # reads as empty; nothing is created here
        uri = sqlite_uri(self.path, "ro" if self.read_only else "rw")
        self.connection = sqlite_driver().connect(
            uri, uri=True, timeout=_SQLITE_SLICE, isolation_level=None, check_same_thread=False
        )
        if self.track is not None:
            self.track(self.connection)
        return True

    def _retrying(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(connection)`` in one read transaction, retrying while the file is busy.

        Until :attr:`busy_timeout` has passed: then the driver's "database is
        locked" error goes to the caller, which classifies it (``busy``).
        """
        assert self.connection is not None
        give_up = time.monotonic() + self.busy_timeout
        while True:
            try:
                self.connection.execute("BEGIN")
                try:
                    return work(self.connection)
                finally:
                    self.connection.execute("ROLLBACK")
            except sqlite_driver().OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= give_up:
                    raise
            if self.checkpoint is not None:
                self.checkpoint()  # the caller's deadline or signal ends the wait
            time.sleep(0.02)

    def snapshot(self, version_table: str) -> Snapshot:
        if not self._open():
            return Snapshot(None, {})

        def read(connection: Any) -> Snapshot:
            # table_xinfo, not table_info: generated columns are columns too (issue 11).
            rows = connection.execute(
                "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_xinfo(m.name) AS p "
                "WHERE m.type = 'table' AND p.hidden != 1"
            ).fetchall()
            live: dict[str, set[str]] = {}
            for table, column in rows:
                live.setdefault(table, set()).add(column)
            versions, checksums = versions_and_checksums(
                lambda sql: connection.execute(sql).fetchall(),
                live,
                version_source(
                    version_table,
                    live,
                    quote,
                    lambda schema, table: bool(
                        connection.execute(
                            f"SELECT 1 FROM {quote(schema)}.sqlite_master WHERE type = 'table' AND name = ?", (table,)
                        ).fetchall()
                    ),
                ),
            )
            seeded = None
            if SEED_TABLE in live:
                seeded = frozenset(r[0] for r in connection.execute(f"SELECT name FROM {SEED_TABLE}"))
            return Snapshot(versions, live, seeded, checksums=checksums)

        result: Snapshot = self._retrying(read)
        return result

    def counts(self, tables: Iterable[str]) -> dict[str, int | None]:
        if not self._open():
            return {}
        wanted = list(tables)

        def read(connection: Any) -> dict[str, int | None]:
            live = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            return {
                t: connection.execute(f"SELECT COUNT(*) FROM {quote(t)}").fetchone()[0] for t in wanted if t in live
            }

        result: dict[str, int | None] = self._retrying(read)
        return result

    def estimates(self, tables: Iterable[str]) -> dict[str, int]:
        if not self._open():
            return {}
        wanted = list(tables)

        def read(connection: Any) -> dict[str, int]:
            found: dict[str, int] = {}
            for table in wanted:
                # The largest rowid: one b-tree descent, whatever the size; an upper bound of the rows.
                try:
                    largest = connection.execute(f"SELECT max(rowid) FROM {quote(table)}").fetchone()[0]
                except sqlite_driver().OperationalError as exc:
                    if "locked" in str(exc) or "busy" in str(exc):
                        raise
                    continue  # no such table, or WITHOUT ROWID: counted exactly
                if isinstance(largest, int) and largest >= ESTIMATE_ABOVE:
                    found[table] = largest
            return found

        result: dict[str, int] = self._retrying(read)
        return result

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if not self._open():
            return []
        result: list[tuple[Any, ...]] = self._retrying(lambda c: c.execute(sql).fetchall())
        return result

    def quick_check(self) -> str | None:
        """``PRAGMA quick_check``: None when the file is sound, else SQLite's first complaint."""
        if not self._open():
            return None
        rows = self._retrying(lambda c: c.execute("PRAGMA quick_check").fetchall())
        first = str(rows[0][0]) if rows else "ok"
        return None if first == "ok" else first

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def sqlite_uri(path: str, mode: str) -> str:
    """SQLite's URI for the file ``path`` opened with ``mode`` (ro, rw, rwc): the one way every module
    builds it. The path is percent-quoted, so a folder named ``odd#dir`` or ``a?b`` stays a path and is
    not read as the URI's fragment or query (issue 21: an unquoted backup copied an empty ``/srv/odd``)."""
    from ..url import quote  # urllib.parse's quote, imported only when it would change the path (issue 14)

    return "file:" + quote(os.path.abspath(path), safe="/") + "?mode=" + mode


_NOBODY_RECORDED = (
    "a process that has not recorded its name in {path} (not yet, or it runs as a user that cannot write that file)"
)


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
        if self._lost() is not None:
            # The file was deleted or replaced since it was opened: a lock on it keeps no one
            # out.  Let it go and open the file that is there now, for the next attempt.
            self._close()
            self._fd, self._writable = _open_lock_file(self.path)
            return False
        return True

    def _lost(self) -> LockLost | None:
        if self._fd is None:
            return self._let_go("its lock file was closed")
        try:
            there = os.stat(self.path)
        except FileNotFoundError:
            return self._let_go(f"the lock file {self.path} was deleted")
        except OSError as exc:
            return self._let_go(f"the lock file {self.path} cannot be looked up ({exc.strerror})")
        mine = os.fstat(self._fd)
        if (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
            return self._let_go(f"the lock file {self.path} was replaced by another file")
        return None

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


def _sqlite_events(engine: Any, begin: str, busy_timeout: float, checkpoint: Callable[[], None] | None) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let the engine, not the driver, decide where transactions begin.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(_SQLITE_SLICE * 1000)}")
        dbapi_connection.execute("PRAGMA foreign_keys = OFF")

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        dbapi: Any = connection.connection.driver_connection
        deadline = time.monotonic() + max(busy_timeout, _SQLITE_SLICE)
        while True:
            try:
                dbapi.execute(begin)
                return
            except sqlite_driver().OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            if checkpoint is not None:
                checkpoint()


# SQLAlchemy's reading of SQLite declared types (sqlalchemy/dialects/sqlite/base.py,
# ischema_names and _resolve_type_affinity), which is also what Alembic's batch
# mode writes back when it rebuilds a table.  Affinity rules:
# https://www.sqlite.org/datatype3.html#determination_of_column_affinity
_TYPE_NAMES = {
    "BIGINT": "BIGINT", "BLOB": "BLOB", "BOOL": "BOOLEAN", "BOOLEAN": "BOOLEAN",
    "CHAR": "CHAR", "DATE": "DATE", "DATE_CHAR": "DATE", "DATETIME": "DATETIME",
    "DATETIME_CHAR": "DATETIME", "DOUBLE": "DOUBLE", "DECIMAL": "DECIMAL",
    "FLOAT": "FLOAT", "INT": "INTEGER", "INTEGER": "INTEGER", "JSON": "JSON",
    "JSONB": "JSONB", "NUMERIC": "NUMERIC", "REAL": "REAL", "SMALLINT": "SMALLINT",
    "TEXT": "TEXT", "TIME": "TIME", "TIME_CHAR": "TIME", "TIMESTAMP": "TIMESTAMP",
    "VARCHAR": "VARCHAR", "NVARCHAR": "NVARCHAR", "NCHAR": "NCHAR",
}  # fmt: skip


class SQLite(Engine):
    name = "sqlite"
    label = "SQLite"
    transactional_ddl = True
    placeholder = "?"
    history_id = "id INTEGER PRIMARY KEY AUTOINCREMENT"
    read_only_session = "PRAGMA query_only = ON"
    folds_table_names = True
    folds_column_names = True
    file_based = True
    alters_by_rebuild = True
    internal_prefix = "sqlite_"
    order_tells_rebuilds = True
    default_schema = "main"
    sqlglot_dialect = "sqlite"
    one_statement_per_call = True

    def reader(
        self,
        database: Url,
        *,
        read_only: bool,
        connect_timeout: float,
        statement_timeout: float,
        checkpoint: Callable[[], None] | None,
        track: Callable[[Any], None] | None,
    ) -> Reader:
        return SqliteReader(database, read_only=read_only, checkpoint=checkpoint, track=track)

    def lock(
        self,
        database: Url,
        *,
        connection: Any,
        version_table: str,
        timeout: float,
        checkpoint: Callable[[], None] | None,
        on_wait: Callable[[str], None] | None,
        shared: bool,
        allow_network_fs: bool,
    ) -> MigrationLock:
        assert database.sqlite_path is not None  # url.parse refuses in-memory databases
        return sqlite_lock(
            database.sqlite_path,
            timeout=timeout,
            allow_network_fs=allow_network_fs,
            checkpoint=checkpoint,
            on_wait=on_wait,
        )

    def holder(self, database: Url, version_table: str) -> str | None:
        return holder_sqlite(database.sqlite_path or "")

    def run_script(self, dbapi_connection: Any, script: str) -> None:
        # executescript would COMMIT first; run statement by statement inside our transaction.
        import sqlite3

        buffer = ""
        for line in script.splitlines(keepends=True):
            buffer += line
            if sqlite3.complete_statement(buffer):
                dbapi_connection.execute(buffer)
                buffer = ""
        if buffer.strip():
            dbapi_connection.execute(buffer)

    def read_catalog(
        self, connection: Any, schema: str | None, watched: Callable[[str, str], bool], previous: CatalogSnapshot | None
    ) -> CatalogRead:
        from ..catalog import CatalogRead

        tables, ids, marks = _sqlite(connection, schema or "main", watched, previous)
        return CatalogRead(tables, ids=ids, marks=marks)

    def canonical_type(self, declared: str) -> object:
        """SQLAlchemy's reading of a declared type, which is also what Alembic's batch mode writes back."""
        import re

        text = " ".join(declared.split()).upper()
        match = re.match(r"([\w ]+)(\(.*?\))?", text)
        name, args = (match.group(1).strip(), match.group(2)) if match else ("", None)
        if name in _TYPE_NAMES:
            name = _TYPE_NAMES[name]
        elif "INT" in name:
            name = "INTEGER"
        elif "CHAR" in name or "CLOB" in name or "TEXT" in name:
            name = "TEXT"
        elif "BLOB" in name or not name:
            name = "BLOB" if name else ""
        elif "REAL" in name or "FLOA" in name or "DOUB" in name:
            name = "REAL"
        else:
            name = "NUMERIC"
        return (name, tuple(int(n) for n in re.findall(r"\d+", args or "")))

    def string_class(self, canonical: object) -> tuple[str, int | None] | None:
        assert isinstance(canonical, tuple)
        name, args = canonical
        if name in ("VARCHAR", "NVARCHAR") or (name == "TEXT" and args):
            return ("varchar", args[0] if args else None)
        return ("text", None) if name == "TEXT" else None

    def engine_options(
        self, database: Url, *, busy_timeout: float, connect_timeout: float, read_only: bool
    ) -> dict[str, Any]:
        options: dict[str, Any] = {"connect_args": {"timeout": _SQLITE_SLICE, "check_same_thread": False}}
        if read_only:
            # Read-only means opened read-only: nothing is created, and a read-only mount works.
            uri = sqlite_uri(database.sqlite_path or "", "ro")
            options["creator"] = lambda: sqlite_driver().connect(
                uri, uri=True, timeout=_SQLITE_SLICE, check_same_thread=False
            )
        return options

    def configure_engine(
        self, engine: Any, *, read_only: bool, busy_timeout: float, checkpoint: Callable[[], None] | None
    ) -> None:
        _sqlite_events(engine, "BEGIN" if read_only else "BEGIN IMMEDIATE", busy_timeout, checkpoint)


ENGINE = SQLite()


# The columns of a table come from its CREATE text alone (SQLite parses it at
# each schema load; ADD, DROP and RENAME COLUMN rewrite it), and its identity is
# its root page: an unchanged (rootpage, sql) pair means unchanged columns.
_SQLITE_MASTER = "SELECT name, rootpage, sql FROM {master} WHERE type = 'table' ORDER BY name"


_SQLITE_COLUMNS = """
SELECT m.name, p.name, p.type, p."notnull", p.dflt_value IS NOT NULL, p.pk, p.hidden
FROM {master} AS m JOIN pragma_table_xinfo(m.name, ?) AS p
WHERE m.type = 'table' AND m.sql NOT LIKE 'CREATE VIRTUAL TABLE %'{only}
ORDER BY m.name, p.cid
"""


# Names per query when only some tables are read (SQLite's default limit on parameters is 999).
_SQLITE_BATCH = 500


def _sqlite(
    connection: Any, schema: str, watched: Callable[[str, str], bool], previous: CatalogSnapshot | None
) -> tuple[dict[str, dict[str, Column]], dict[str, int], dict[str, object]]:
    from ..catalog import known_columns, query_rows

    master = f"{quote(schema)}.sqlite_master"
    # The root page is the table's identity: a batch rebuild (or a DROP and
    # CREATE) gives the table a new one, ALTER TABLE ... RENAME keeps it.
    ids: dict[str, int] = {}
    marks: dict[str, object] = {}
    known: dict[str, dict[str, Column]] = {}
    plain: list[str] = []
    virtual: list[str] = []
    watched_plain = 0
    cached = known_columns(previous)
    for name, rootpage, sql in query_rows(connection, _SQLITE_MASTER.format(master=master)):
        if sql is None or not watched(name, name):  # (the column query never read a table without sql)
            continue
        # SQLite normalises the stored text to start "CREATE VIRTUAL TABLE ".
        is_virtual = sql[:21].upper() == "CREATE VIRTUAL TABLE "
        if not is_virtual:  # a virtual table has no b-tree of its own (root page 0)
            ids[name] = int(rootpage or 0)
            watched_plain += 1
        marks[name] = (rootpage, sql)
        columns = cached.get(marks[name])
        if columns is not None:
            known[name] = columns
        else:
            (virtual if is_virtual else plain).append(name)
    read: dict[str, dict[str, Column]] = {}
    if plain:
        # Everything (the first snapshot): one query; otherwise only the tables that changed.
        batches: list[list[str]] = (
            [[]]
            if len(plain) == watched_plain
            else [plain[i : i + _SQLITE_BATCH] for i in range(0, len(plain), _SQLITE_BATCH)]
        )
        for batch in batches:
            only = f" AND m.name IN ({', '.join('?' * len(batch))})" if batch else ""
            for row in query_rows(connection, _SQLITE_COLUMNS.format(master=master, only=only), (schema, *batch)):
                _sqlite_column(read.setdefault(row[0], {}), row[1:])
    # A virtual table is read on its own: when its module is not loaded, its
    # pragma fails, and that must not blind the guard to the other tables.
    for table in virtual:
        columns = read.setdefault(table, {})
        try:
            infos = query_rows(
                connection,
                'SELECT name, type, "notnull", dflt_value IS NOT NULL, pk, hidden '
                "FROM pragma_table_xinfo(?, ?) ORDER BY cid",
                (table, schema),
            )
        except Exception as exc:
            if "no such module" not in str(exc):
                raise
            continue  # its columns cannot be read; it is still watched as a table
        for info in infos:
            _sqlite_column(columns, info)
    # In sqlite_master's order of names, as a full read gives them.
    tables = {name: known[name] if name in known else read[name] for name in marks if name in known or name in read}
    return tables, ids, marks


def _sqlite_column(columns: dict[str, Column], info: tuple[Any, ...]) -> None:
    from ..catalog import Column

    name, declared, notnull, has_default, pk, hidden = info
    if hidden == 1:  # a virtual table's hidden column (fts5's rank, the table-name column)
        return
    columns[name] = Column(
        name=name,
        type=str(declared or "").upper(),
        # A primary-key column cannot take a NULL the application could rely
        # on (INTEGER PRIMARY KEY fills it in), so re-declaring it NOT NULL,
        # as a batch rebuild does, takes nothing away.
        nullable=not notnull and not pk,
        default_present=bool(has_default),
        generated=hidden in (2, 3),
    )
