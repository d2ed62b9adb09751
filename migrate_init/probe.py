"""The one reader: version rows, live columns and row counts, through the bare driver.

Every path that asks "where does the database stand?" reads through this
module: the no-op fast path, the full path's first check and its check once
the lock is held, the verification after an upgrade, ``wait``, ``status``,
``current`` and ``verify``.  So they cannot give different answers (issue
10).  It imports no SQLAlchemy: stdlib ``sqlite3``, ``psycopg2`` or ``pymysql``.

Read-only means opened read-only: SQLite through ``mode=ro`` (nothing is
created, and it works on a read-only mount), PostgreSQL and MySQL in ``READ ONLY``
transactions.  Every read is bounded: PostgreSQL reads run under
``statement_timeout`` and ``lock_timeout``; SQLite's busy wait is short and
retried here, with the caller's checkpoint between tries.  Row counts are
information, not a reason to wait: a count that cannot be had in time is
reported as unknown.
"""

from __future__ import annotations

import os
import time

from .errors import DatabaseMissing

TYPE_CHECKING = False  # typing is not imported on the way to a run with nothing to do (issue 14)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any

    from .url import Url


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
#: migrate-init's own bookkeeping of seeds (:mod:`seed`).
SEED_TABLE = "migrate_init_seed"
#: Revisions started and not yet finished, on engines whose DDL is not transactional (:mod:`progress`).
PROGRESS_TABLE = "migrate_init_progress"
#: A run with nothing to do counts a table's rows only below this estimate; above, it reports the
#: engine's estimate ("about 1.0M"): a COUNT(*) grows with the table (issue 27).
ESTIMATE_ABOVE = 10_000
#: One row per revision applied, stamped, refused... with its checksum (:mod:`history`).
HISTORY_TABLE = "migrate_init_history"
#: The checksum ``accept`` records for a revision whose script is gone: none can match it, and none is owed.
REMOVED_CHECKSUM = "removed"
#: The checksum each revision was last recorded with: folded into the version rows' query, so the
#: fast path learns of an edited revision without a query of its own (issue 26).
RECORDED_CHECKSUMS = (
    f"SELECT 'h', revision, checksum FROM {HISTORY_TABLE} WHERE id IN (SELECT MAX(id) FROM {HISTORY_TABLE} "
    "WHERE checksum IS NOT NULL AND kind IN ('applied', 'stamped', 'baseline', 'accepted') GROUP BY revision)"
)
#: How long one row count may wait for a table lock before it is reported unknown.
_COUNT_LOCK_WAIT = 1.0


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _version_source(
    version_table: str, live: Mapping[str, object], quote: Callable[[str], str], exists: Callable[[str, str], bool]
) -> str | None:
    """The quoted version table to read, or None when the database has none.

    ``version_table`` is ``schema.table`` when env.py passes version_table_schema
    (issue 25 N15): that table is not among the default schema's ``live`` ones,
    so ``exists(schema, table)`` asks the engine.
    """
    schema, dot, table = version_table.partition(".")
    if not dot:
        return quote(version_table) if version_table in live else None
    return _qualified(version_table, quote) if exists(schema, table) else None


def _qualified(version_table: str, quote: Callable[[str], str]) -> str:
    """``version_table`` quoted, with its schema when it has one (``schema.table``)."""
    return ".".join(quote(part) for part in version_table.split(".", 1))


class Snapshot:
    """What one read transaction saw."""

    __slots__ = ("checksums", "columns", "in_progress", "seeded", "versions")

    def __init__(
        self,
        versions: tuple[str, ...] | None,
        columns: dict[str, set[str]],
        seeded: frozenset[str] | None = None,
        in_progress: tuple[str, ...] | None = None,
        checksums: dict[str, str] | None = None,
    ) -> None:
        #: The version table's rows, sorted; None when there is no version table.
        self.versions = versions
        #: ``{table: {column, ...}}`` of every table in the default schema.
        self.columns = columns
        #: Seed files recorded as done (:mod:`seed`); None when the database is owed no seeds.
        self.seeded = seeded
        #: Revisions recorded as started and never finished (MySQL, :mod:`progress`); None without the table.
        self.in_progress = in_progress
        #: ``{revision: checksum}`` as the history recorded them (:mod:`history`); None without the table.
        self.checksums = checksums

    @property
    def empty(self) -> bool:
        return not self.columns

    def missing(self, expected: Mapping[str, Iterable[str]]) -> tuple[list[str], dict[str, list[str]]]:
        """Tables, and columns of existing tables, that ``expected`` has and the database lacks."""
        tables = sorted(t for t in expected if t not in self.columns)
        columns = {
            t: sorted(set(c) - self.columns[t])
            for t, c in sorted(expected.items())
            if t in self.columns and set(c) - self.columns[t]
        }
        return tables, columns


class Reader:
    """A bare-driver connection that reads.  Use :func:`open_reader`."""

    backend = ""
    safe_url = ""
    #: The driver's connection (sqlite3, psycopg2, PyMySQL); the migration lock may share it.
    connection: Any = None

    def snapshot(self, version_table: str) -> Snapshot:
        raise NotImplementedError

    def counts(self, tables: Iterable[str]) -> dict[str, int | None]:
        raise NotImplementedError

    def estimates(self, tables: Iterable[str]) -> dict[str, int]:
        """The tables among ``tables`` the engine's own figures put at ESTIMATE_ABOVE rows or more, with
        those figures: what a run with nothing to do reports instead of counting them (issue 27).

        A table left out (small, unknown, not a plain table) is counted exactly by the caller.
        """
        return {}

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows of one SELECT of migrate-init's own tables, in a read-only transaction (:mod:`history`)."""
        raise NotImplementedError

    def versions(self, version_table: str) -> tuple[str, ...] | None:
        """The version table's rows alone, sorted (None without the table): a cheap "anything new?"."""
        return self.snapshot(version_table).versions

    #: The snapshot the database answered the wait with (:func:`wait.connect`), until it is used.
    _answered: tuple[str, Snapshot] | None = None

    def answered(self, version_table: str, snapshot: Snapshot) -> None:
        """Keep the wait's snapshot for the check that follows it at once (:meth:`first_snapshot`)."""
        self._answered = (version_table, snapshot)

    def first_snapshot(self, version_table: str) -> Snapshot:
        """The wait's snapshot, once, when it read this version table; otherwise a new one.

        The run's first check follows the wait directly: the same read twice
        would only cost a transaction (issue 14).  Every later check reads anew.
        """
        answered, self._answered = self._answered, None
        if answered is not None and answered[0] == version_table:
            return answered[1]
        return self.snapshot(version_table)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_reader(
    database: Url,
    *,
    read_only: bool,
    connect_timeout: float = 10.0,
    statement_timeout: float = 30.0,
    checkpoint: Callable[[], None] | None = None,
    track: Callable[[Any], None] | None = None,
) -> Reader:
    """Connect once.  Errors are the driver's own; :mod:`errors` classifies them.

    ``read_only``: SQLite opens with ``mode=ro`` and a missing file is
    :class:`DatabaseMissing` (exit 3, path named); otherwise a missing file
    reads as an empty database and nothing is created.  ``track`` receives
    the driver connection, for the watchdog to cancel.
    """
    if database.backend == "sqlite":
        return SqliteReader(database, read_only=read_only, checkpoint=checkpoint, track=track)
    if database.backend == "postgresql":
        return PostgresqlReader(
            database,
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
            track=track,
            checkpoint=checkpoint,
        )
    if database.backend == "mysql":
        return MysqlReader(
            database,
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
            track=track,
            checkpoint=checkpoint,
        )
    from .errors import ConfigError

    raise ConfigError(
        f"DATABASE_URL={database.safe}: migrate-init reads SQLite, PostgreSQL and "
        f"MySQL/MariaDB databases, not '{database.backend}'."
    )


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
            from .errors import ConfigError

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

    #: How long one read waits for another process's write lock before it gives up (seconds).
    busy_timeout = 30.0

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
            versions, checksums = _versions_and_checksums(
                lambda sql: connection.execute(sql).fetchall(),
                live,
                _version_source(
                    version_table,
                    live,
                    _quote,
                    lambda schema, table: bool(
                        connection.execute(
                            f"SELECT 1 FROM {_quote(schema)}.sqlite_master WHERE type = 'table' AND name = ?", (table,)
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
                t: connection.execute(f"SELECT COUNT(*) FROM {_quote(t)}").fetchone()[0] for t in wanted if t in live
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
                    largest = connection.execute(f"SELECT max(rowid) FROM {_quote(table)}").fetchone()[0]
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
    from .url import quote  # urllib.parse's quote, imported only when it would change the path (issue 14)

    return "file:" + quote(os.path.abspath(path), safe="/") + "?mode=" + mode


class PostgresqlReader(Reader):
    backend = "postgresql"

    def __init__(
        self,
        database: Url,
        *,
        connect_timeout: float,
        statement_timeout: float,
        track: Callable[[Any], None] | None,
        checkpoint: Callable[[], None] | None = None,
    ) -> None:

        self.checkpoint = checkpoint
        self.safe_url = database.safe
        self.connection = connect_postgresql(database, connect_timeout, checkpoint)
        if track is not None:
            track(self.connection)
        self.connection.autocommit = True
        self.cursor = self.connection.cursor()
        timeout_ms = max(1, int(statement_timeout * 1000))
        # SET LOCAL in each read, not SET once: behind PgBouncer in transaction pooling a
        # session setting lands on whichever server connection ran it (and stays there for
        # the next client), not on the ones this session's later reads get (issue 23).
        self._bounds = f"SET LOCAL statement_timeout = {timeout_ms}; SET LOCAL lock_timeout = {timeout_ms}; "

    def _begin(self, statement: str, parameters: tuple[object, ...] | None = None) -> str:
        """Open one bounded read and run ``statement`` in it; return what ends the read.

        A transaction of its own (REPEATABLE READ READ ONLY), or, while the
        migration lock is held in this session, a savepoint of the lock's
        transaction (:func:`lock.postgresql_lock`): a ROLLBACK there would
        release the lock.  Rolling the savepoint back releases the table locks
        the read took, so a migration is never held up by them.  One round trip
        with the statements before it: psycopg2 returns the last statement's rows.
        """
        import psycopg2.extensions

        if self.connection.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            start, end = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; ", "ROLLBACK"
        else:
            # Read-only too: a savepoint may set it (not back), and its rollback undoes it.
            start = "SAVEPOINT migrate_init_read; SET LOCAL transaction_read_only = on; "
            end = "ROLLBACK TO SAVEPOINT migrate_init_read; RELEASE SAVEPOINT migrate_init_read"
        try:
            self.cursor.execute(start + self._bounds + statement, parameters)
        except BaseException:
            try:
                self._end(end)
            except Exception:  # the read's own error is the one to tell
                pass
            raise
        return end

    def _end(self, end: str) -> None:
        if not self.connection.closed:
            self.cursor.execute(end)

    def snapshot(self, version_table: str) -> Snapshot:
        cursor = self.cursor
        # What SQLAlchemy's inspector lists in the default schema: tables and
        # partitioned tables (relkind r, p), live columns (generated ones too).
        end = self._begin(
            "SELECT c.relname, a.attname FROM pg_catalog.pg_class AS c "
            "JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
            "JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
            "AND a.attnum > 0 AND NOT a.attisdropped"
        )
        try:
            live: dict[str, set[str]] = {}
            for table, column in cursor.fetchall():
                live.setdefault(table, set()).add(column)
            versions, checksums = _versions_and_checksums(
                lambda sql: (cursor.execute(sql), cursor.fetchall())[1],
                live,
                _version_source(version_table, live, _quote, self._exists),
            )
            seeded = None
            if SEED_TABLE in live:
                cursor.execute(f"SELECT name FROM {SEED_TABLE}")
                seeded = frozenset(row[0] for row in cursor.fetchall())
            return Snapshot(versions, live, seeded, checksums=checksums)
        finally:
            self._end(end)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        end = self._begin(sql)  # a savepoint while the lock's transaction is open in this session
        try:
            return list(self.cursor.fetchall())
        finally:
            self._end(end)

    def _exists(self, schema: str, table: str) -> bool:
        self.cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (_qualified(f"{schema}.{table}", _quote),))
        return bool(self.cursor.fetchone()[0])

    def versions(self, version_table: str) -> tuple[str, ...] | None:
        cursor = self.cursor
        quoted = _qualified(version_table, _quote)
        end = self._begin("SELECT to_regclass(%s) IS NOT NULL", (quoted,))
        try:
            if not cursor.fetchone()[0]:
                return None
            cursor.execute(f"SELECT version_num FROM {quoted}")
            return tuple(sorted(row[0] for row in cursor.fetchall()))
        finally:
            self._end(end)

    def counts(self, tables: Iterable[str]) -> dict[str, int | None]:
        import psycopg2

        cursor = self.cursor
        result: dict[str, int | None] = {}
        # Three round trips when no table is locked: the live tables, every count at once, the end.
        end = self._begin(
            f"SET LOCAL lock_timeout = {int(_COUNT_LOCK_WAIT * 1000)}; "
            "SELECT c.relname FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace "
            "AS n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND c.relkind IN ('r', 'p')"
        )
        try:
            live = {row[0] for row in cursor.fetchall()}
            wanted = [table for table in dict.fromkeys(tables) if table in live]
            if wanted:
                try:
                    cursor.execute(
                        "SAVEPOINT count_rows; SELECT "
                        + ", ".join(f"(SELECT COUNT(*) FROM {_quote(table)})" for table in wanted)
                    )
                    return dict(zip(wanted, cursor.fetchone(), strict=True))
                except (psycopg2.errors.LockNotAvailable, psycopg2.errors.QueryCanceled):
                    cursor.execute("ROLLBACK TO SAVEPOINT count_rows")  # one is locked: count them one by one
                if self.checkpoint is not None:
                    self.checkpoint()  # a cancelled count may be the stop: honour it here
            for table in wanted:
                cursor.execute("SAVEPOINT count_rows")
                try:
                    cursor.execute(f"SELECT COUNT(*) FROM {_quote(table)}")
                    result[table] = cursor.fetchone()[0]
                    cursor.execute("RELEASE SAVEPOINT count_rows")
                except (psycopg2.errors.LockNotAvailable, psycopg2.errors.QueryCanceled):
                    # Another session holds the table (LOCK TABLE ...): a count is not worth a wait.
                    cursor.execute("ROLLBACK TO SAVEPOINT count_rows")
                    result[table] = None
                if self.checkpoint is not None:
                    self.checkpoint()  # a cancelled count may be the stop: honour it here
        finally:
            self._end(end)
        return result

    def estimates(self, tables: Iterable[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(tables))
        if not wanted:
            return {}
        # ANALYZE's reltuples, or the statistics' live tuples when no ANALYZE ran yet: no table is read.
        end = self._begin(
            "SELECT c.relname, greatest(c.reltuples::bigint, coalesce(pg_stat_get_live_tuples(c.oid), 0)) "
            "FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY(%s)",
            (wanted,),
        )
        try:
            return {row[0]: int(row[1]) for row in self.cursor.fetchall() if int(row[1]) >= ESTIMATE_ABOVE}
        finally:
            self._end(end)

    def close(self) -> None:
        if not self.connection.closed:
            self.connection.close()


class MysqlReader(Reader):
    """MySQL and MariaDB through PyMySQL: one consistent, read-only snapshot per read.

    Reads are bounded by ``max_statement_time`` (MariaDB) or
    ``max_execution_time`` (MySQL, SELECT only) and by ``lock_wait_timeout``
    (metadata locks, which an ALTER in progress holds).
    """

    backend = "mysql"

    def __init__(
        self,
        database: Url,
        *,
        connect_timeout: float,
        statement_timeout: float,
        track: Callable[[Any], None] | None,
        checkpoint: Callable[[], None] | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.safe_url = database.safe
        # The handshake and every read: bounded by the same statement bound the server enforces.
        self.connection = connect_mysql(database, connect_timeout, checkpoint, io_timeout=statement_timeout)
        if track is not None:
            track(self.connection)
        self.cursor = self.connection.cursor()
        self.statement_timeout = statement_timeout
        bound_statements(self.cursor, statement_timeout)

    def _read(self, work: Callable[[Any], Any]) -> Any:
        """``work(cursor)`` in one consistent read-only snapshot, read again when a migration
        changed a table under it (error 1412: "Table definition has changed, please retry")."""
        import pymysql

        cursor = self.cursor
        give_up = time.monotonic() + self.statement_timeout
        while True:
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            try:
                return work(cursor)
            except pymysql.err.MySQLError as exc:
                if not exc.args or exc.args[0] != 1412 or time.monotonic() >= give_up:
                    raise
            finally:
                cursor.execute("ROLLBACK")
            if self.checkpoint is not None:
                self.checkpoint()
            time.sleep(0.02)

    def snapshot(self, version_table: str) -> Snapshot:
        def read(cursor: Any) -> Snapshot:
            cursor.execute(
                "SELECT c.TABLE_NAME, c.COLUMN_NAME FROM information_schema.COLUMNS AS c "
                "JOIN information_schema.TABLES AS t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA "
                "AND t.TABLE_NAME = c.TABLE_NAME WHERE c.TABLE_SCHEMA = DATABASE() "
                "AND t.TABLE_TYPE = 'BASE TABLE'"
            )
            live: dict[str, set[str]] = {}
            for table, column in cursor.fetchall():
                live.setdefault(_text(table), set()).add(_text(column))
            versions, checksums = _versions_and_checksums(
                lambda sql: (cursor.execute(sql), cursor.fetchall())[1],
                live,
                _version_source(
                    version_table,
                    live,
                    mysql_quote,
                    lambda schema, table: bool(
                        cursor.execute(
                            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                            (schema, table),
                        )
                    ),
                ),
            )
            seeded = None
            if SEED_TABLE in live:
                cursor.execute(f"SELECT name FROM {SEED_TABLE}")
                seeded = frozenset(_text(row[0]) for row in cursor.fetchall())
            progress = None
            if PROGRESS_TABLE in live:
                cursor.execute(f"SELECT revision FROM {PROGRESS_TABLE}")
                progress = tuple(sorted(_text(row[0]) for row in cursor.fetchall()))
            return Snapshot(versions, live, seeded, progress, checksums)

        result: Snapshot = self._read(read)
        return result

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        result: list[tuple[Any, ...]] = self._read(lambda cursor: (cursor.execute(sql), list(cursor.fetchall()))[1])
        return result

    def versions(self, version_table: str) -> tuple[str, ...] | None:
        import pymysql

        try:
            self.cursor.execute(f"SELECT version_num FROM {_qualified(version_table, mysql_quote)}")
        except pymysql.err.ProgrammingError as exc:
            if exc.args and exc.args[0] == 1146:  # no such table
                return None
            raise
        return tuple(sorted(_text(row[0]) for row in self.cursor.fetchall()))

    def counts(self, tables: Iterable[str]) -> dict[str, int | None]:
        import pymysql

        wanted = list(tables)
        result: dict[str, int | None] = {}
        self.cursor.execute(f"SET SESSION lock_wait_timeout = {max(1, int(_COUNT_LOCK_WAIT))}")
        try:

            def read(cursor: Any) -> None:
                cursor.execute(
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
                )
                live = {_text(row[0]) for row in cursor.fetchall()}
                for table in wanted:
                    if table not in live:
                        continue
                    try:
                        cursor.execute(f"SELECT COUNT(*) FROM {mysql_quote(table)}")
                        result[table] = int(cursor.fetchone()[0])
                    except pymysql.err.OperationalError as exc:
                        # 1205 lock wait, 1969/3024 statement time: a count is not worth a wait.
                        if exc.args[0] not in (1205, 1969, 3024, 1317):
                            raise
                        result[table] = None
                    if self.checkpoint is not None:
                        self.checkpoint()

            self._read(read)
        finally:
            self.cursor.execute(f"SET SESSION lock_wait_timeout = {max(1, int(self.statement_timeout))}")
        return result

    def estimates(self, tables: Iterable[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(tables))
        if not wanted:
            return {}

        def read(cursor: Any) -> dict[str, int]:
            # InnoDB's own estimate (information_schema.TABLES.TABLE_ROWS): no table is read.
            cursor.execute(
                "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                "DATABASE() AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME IN (" + ", ".join(["%s"] * len(wanted)) + ")",
                wanted,
            )
            return {
                _text(row[0]): int(row[1])
                for row in cursor.fetchall()
                if row[1] is not None and int(row[1]) >= ESTIMATE_ABOVE
            }

        result: dict[str, int] = self._read(read)
        return result

    def close(self) -> None:
        if self.connection.open:
            self.connection.close()


def _versions_and_checksums(
    fetch: Callable[[str], Any], live: Mapping[str, object], version_table: str | None
) -> tuple[tuple[str, ...] | None, dict[str, str] | None]:
    """The version rows and the recorded checksums, in one statement: one round trip, as before (issue 26).

    ``version_table`` is quoted, or None when the database has none.
    """
    parts = [f"SELECT 'v', version_num, NULL FROM {version_table}"] if version_table is not None else []
    if HISTORY_TABLE in live:
        parts.append(RECORDED_CHECKSUMS)
    if not parts:
        return None, None
    rows = fetch(" UNION ALL ".join(parts))
    versions = tuple(sorted(_text(r[1]) for r in rows if _text(r[0]) == "v")) if version_table is not None else None
    checksums = {_text(r[1]): _text(r[2]) for r in rows if _text(r[0]) == "h"} if HISTORY_TABLE in live else None
    return versions, checksums


def mysql_quote(identifier: str) -> str:
    """A MySQL identifier in backquotes (correct whatever sql_mode says)."""
    return "`" + identifier.replace("`", "``") + "`"


def bound_statements(cursor: Any, seconds: float) -> None:
    """Bound every statement of a MySQL/MariaDB session: run time and metadata-lock waits."""
    import pymysql

    whole = max(1, int(seconds + 0.999))
    cursor.execute(f"SET SESSION lock_wait_timeout = {whole}, innodb_lock_wait_timeout = {whole}")
    for setting in (
        f"SET SESSION max_statement_time = {seconds:.3f}",  # MariaDB 10.1+
        f"SET SESSION max_execution_time = {int(seconds * 1000)}",
    ):  # MySQL 5.7.8+
        try:
            cursor.execute(setting)
            break
        except pymysql.err.MySQLError:
            continue  # the other server's variable


def _text(value: Any) -> str:
    """information_schema values come as bytes from some servers and drivers."""
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def connect(database: Url, connect_timeout: float, checkpoint: Callable[[], None] | None) -> Any:
    """A bare-driver connection to a server database (psycopg2 or PyMySQL) that a stop can interrupt."""
    if database.backend == "mysql":
        return connect_mysql(database, connect_timeout, checkpoint)
    return connect_postgresql(database, connect_timeout, checkpoint)


def connect_postgresql(database: Url, connect_timeout: float, checkpoint: Callable[[], None] | None) -> Any:
    """``psycopg2.connect`` that a stop can interrupt (see :func:`_in_thread`).  libpq's minimum timeout is 2 s."""
    import psycopg2

    arguments = database.connect_kwargs_psycopg2()
    arguments["connect_timeout"] = max(2, int(connect_timeout + 0.999))
    arguments.setdefault("application_name", "migrate-init")
    return _in_thread(lambda: psycopg2.connect(**arguments), checkpoint)


#: Seconds a MySQL socket read or write may take beyond the statement bound the server enforces.
MYSQL_IO_MARGIN = 2


def mysql_io_timeout(seconds: float) -> int:
    """PyMySQL's ``read_timeout``/``write_timeout`` for a session whose waits are bounded by ``seconds``.

    A server that stops answering (SIGSTOP, a partition) or a port that is not
    MySQL's (PostgreSQL never greets first) blocks PyMySQL's socket read for
    ever: its default is no timeout (issue 25, N24).  The server ends a
    statement at ``seconds`` (max_statement_time); the margin is for the reply.
    """
    return max(1, int(seconds + 0.999)) + MYSQL_IO_MARGIN


def connect_mysql(
    database: Url, connect_timeout: float, checkpoint: Callable[[], None] | None, *, io_timeout: float | None = None
) -> Any:
    """``pymysql.connect`` (autocommit) that a stop can interrupt (see :func:`_in_thread`).

    Every socket read and write is bounded: by :func:`mysql_io_timeout` of
    ``io_timeout`` (the session's statement bound), or of ``connect_timeout``;
    a URL's own ``read_timeout``/``write_timeout`` win.
    """
    from .errors import ConfigError, missing_driver_error

    try:
        connection_class = mysql_connection_class()
    except ModuleNotFoundError as exc:
        raise missing_driver_error(database, exc) from None
    arguments = database.connect_kwargs_pymysql()
    arguments.setdefault("connect_timeout", max(1, int(connect_timeout + 0.999)))
    io = mysql_io_timeout(connect_timeout if io_timeout is None else io_timeout)
    arguments.setdefault("read_timeout", io)
    arguments.setdefault("write_timeout", io)
    arguments["autocommit"] = True
    arguments.setdefault("program_name", "migrate-init")

    def attempt() -> Any:
        try:
            return connection_class(**arguments)
        except TypeError as exc:  # an option PyMySQL does not take
            raise ConfigError(
                f"DATABASE_URL={database.safe}: PyMySQL refuses an option of the URL "
                f"({exc}). Remove it, or spell it as PyMySQL's connect() does."
            ) from None

    return _in_thread(attempt, checkpoint)


_MYSQL_CONNECTION: Any = None


def mysql_connection_class() -> Any:
    """PyMySQL's Connection, without its 20 ms of CA certificates that TLS "preferred" never reads.

    With no TLS option in the URL, PyMySQL (1.1+) tries TLS and falls back to
    a plain connection, with a context made by ``ssl.create_default_context``
    and then told not to verify anything (``CERT_NONE``, no hostname check).
    Loading the system's CA store for it costs about 20 ms per connection,
    a third of a run with nothing to do.  The same unverified context, built
    without that load, behaves the same on the wire.  A URL with TLS options
    (``ssl_ca``...) goes through PyMySQL's own code unchanged.
    """
    global _MYSQL_CONNECTION
    if _MYSQL_CONNECTION is None:
        import ssl

        import pymysql

        class Connection(pymysql.connections.Connection):
            def _create_ssl_ctx(self, sslp: Any) -> Any:
                if sslp != {}:
                    return super()._create_ssl_ctx(sslp)  # type: ignore[misc]
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                context.options |= ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3
                return context

        _MYSQL_CONNECTION = Connection
    return _MYSQL_CONNECTION


def _in_thread(connect_now: Callable[[], Any], checkpoint: Callable[[], None] | None) -> Any:
    """``connect_now()`` in a helper thread, waited for in short slices with ``checkpoint`` between them.

    The drivers wait in poll() and retry it when a signal arrives, so a server
    that accepts and never answers would hold SIGTERM until the connect
    timeout.  A stop leaves the attempt behind (the process is about to exit).
    """
    import _thread  # threading's C half: no threading module on the way to a run with nothing to do

    outcome: list[Any] = []
    running = _thread.allocate_lock()
    running.acquire()

    def attempt() -> None:
        from .watchdog import block_stop_signals

        try:
            block_stop_signals()
            outcome.append(connect_now())
        except BaseException as exc:  # handed to the waiting thread
            outcome.append(exc)
        finally:
            running.release()

    _thread.start_new_thread(attempt, ())
    while not running.acquire(timeout=0.1):
        if checkpoint is not None:
            checkpoint()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def describe_missing(tables: list[str], columns: dict[str, list[str]]) -> str:
    parts = []
    if tables:
        parts.append("missing tables: " + ", ".join(tables))
    for table, names in columns.items():
        parts.append(f"table '{table}' lacks columns: " + ", ".join(names))
    return "; ".join(parts)


def format_counts(counts: dict[str, int | None], estimated: Iterable[str] = ()) -> str:
    about = set(estimated)
    return ", ".join(f"{t}={'unknown' if n is None else _about(n) if t in about else n}" for t, n in counts.items())


def _about(rows: int) -> str:
    if rows >= 1_000_000:
        return f"about {rows / 1_000_000:.1f}M"
    return f"about {rows / 1_000:.0f}K"
