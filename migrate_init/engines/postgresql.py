"""PostgreSQL: psycopg2 on the bare driver, a transaction-level advisory lock, cancel through libpq.

The lock is ``pg_try_advisory_xact_lock``, polled in a transaction that stays
open for as long as the lock is held; release is ROLLBACK.  Not a session
lock: behind PgBouncer in transaction pooling, the next transaction of a
session may run on another server connection, where a session lock taken in
the previous one is not held (issue 23).  An open transaction keeps its server
connection, whatever the pooler; when the client dies the transaction ends and
the lock with it.  Each poll that fails ends its transaction at once, so a
waiter holds no server connection between polls.  A blocked
``pg_advisory_xact_lock`` waiter would sit in the lock queue and make the
holder's ``CREATE INDEX CONCURRENTLY`` wait for it.  Nothing in that session
may end the transaction: the reader's reads under the lock run in savepoints
(:class:`PostgresqlReader`).  Every setting is ``SET LOCAL``, never a
session's: a session setting behind PgBouncer lands on a pooled server
connection and stays there for the next client.
"""

from __future__ import annotations

import os

from ..errors import ReadOnlyStandby
from ..lock import STATEMENT_TIMEOUT_MS, MigrationLock, reason_of, unreachable
from ..probe import (
    COUNT_LOCK_WAIT,
    ESTIMATE_ABOVE,
    SEED_TABLE,
    Reader,
    Snapshot,
    in_thread,
    qualified,
    quote,
    version_source,
    versions_and_checksums,
)
from . import ServerEngine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from ..catalog import CatalogRead, Column
    from ..catalog import Snapshot as CatalogSnapshot
    from ..errors import LockLost
    from ..url import Url


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
        transaction (:func:`postgresql_lock`): a ROLLBACK there would
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
            versions, checksums = versions_and_checksums(
                lambda sql: (cursor.execute(sql), cursor.fetchall())[1],
                live,
                version_source(version_table, live, quote, self._exists),
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
        self.cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified(f"{schema}.{table}", quote),))
        return bool(self.cursor.fetchone()[0])

    def versions(self, version_table: str) -> tuple[str, ...] | None:
        cursor = self.cursor
        quoted = qualified(version_table, quote)
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
            f"SET LOCAL lock_timeout = {int(COUNT_LOCK_WAIT * 1000)}; "
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
                        + ", ".join(f"(SELECT COUNT(*) FROM {quote(table)})" for table in wanted)
                    )
                    return dict(zip(wanted, cursor.fetchone(), strict=True))
                except (psycopg2.errors.LockNotAvailable, psycopg2.errors.QueryCanceled):
                    cursor.execute("ROLLBACK TO SAVEPOINT count_rows")  # one is locked: count them one by one
                if self.checkpoint is not None:
                    self.checkpoint()  # a cancelled count may be the stop: honour it here
            for table in wanted:
                cursor.execute("SAVEPOINT count_rows")
                try:
                    cursor.execute(f"SELECT COUNT(*) FROM {quote(table)}")
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


def connect_postgresql(database: Url, connect_timeout: float, checkpoint: Callable[[], None] | None) -> Any:
    """``psycopg2.connect`` that a stop can interrupt (see :func:`in_thread`).  libpq's minimum timeout is 2 s."""
    import psycopg2

    arguments = database.connect_kwargs_psycopg2()
    arguments["connect_timeout"] = max(2, int(connect_timeout + 0.999))
    arguments.setdefault("application_name", "migrate-init")
    return in_thread(lambda: psycopg2.connect(**arguments), checkpoint)


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

    ``shared``: the connection is the run's reader (:class:`PostgresqlReader`,
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
            raise unreachable(self._description, _where_postgresql(self.connection), exc) from None

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

    def _lost(self) -> LockLost | None:
        import psycopg2
        import psycopg2.extensions

        if self.connection.closed:
            return self._ended("its connection was closed")
        if not self._in_transaction():
            return self._let_go("the transaction that held it ended")
        try:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT 1")  # in the lock's transaction: answered only while the session lives
        except psycopg2.extensions.QueryCanceledError:
            raise  # a stop request: the caller's checkpoint says which
        except psycopg2.Error as exc:
            return self._ended(reason_of(exc))
        return None

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


def _pq_cancel(pgconn: int) -> bool:
    """psycopg2's cancel(), by libpq's own functions called through ctypes; False when libpq is not found.

    psycopg2's cancel() holds the GIL while libpq waits for the server to take
    the request, so a server whose postmaster stopped answering froze every
    thread, the one that would end the process too (issue 25, N25).  ctypes
    lets the GIL go during the call: only this cancel's thread waits.
    """
    try:
        libpq = _libpq()
        if libpq is None:
            return False
        import ctypes

        request = libpq.PQgetCancel(ctypes.c_void_p(pgconn))
        if not request:
            return False
        try:
            libpq.PQcancel(request, ctypes.create_string_buffer(256), 256)
        finally:
            libpq.PQfreeCancel(request)
        return True
    except Exception:  # whatever went wrong, psycopg2's own cancel() is still there
        return False


_LIBPQ: list[Any] = []


def _libpq() -> Any:
    """The libpq that psycopg2 loaded (found in this process's memory map), or None."""
    if not _LIBPQ:
        import ctypes

        path = None
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                name = line.rsplit(None, 1)[-1]
                if os.path.basename(name).startswith("libpq"):
                    path = name
                    break
        library = None
        if path is not None:
            library = ctypes.CDLL(path)
            library.PQgetCancel.restype = ctypes.c_void_p
            library.PQgetCancel.argtypes = [ctypes.c_void_p]
            library.PQcancel.restype = ctypes.c_int
            library.PQcancel.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
            library.PQfreeCancel.argtypes = [ctypes.c_void_p]
        _LIBPQ.append(library)
    return _LIBPQ[0]


def _postgresql_connect(dbapi_connection: Any, _record: Any) -> None:
    # A killed migrator's server session would otherwise run its statement
    # (and hold its locks) to the end; PostgreSQL 14+ notices the vanished client.
    if getattr(dbapi_connection, "server_version", 0) >= 140000:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET client_connection_check_interval = 1000")
        if not getattr(dbapi_connection, "autocommit", True):
            dbapi_connection.commit()


def _postgresql_read_only(dbapi_connection: Any, record: Any) -> None:
    _postgresql_connect(dbapi_connection, record)
    # psycopg2 then opens each transaction with BEGIN READ ONLY.  Not SET SESSION
    # CHARACTERISTICS: behind PgBouncer in transaction pooling that lands on a pooled
    # server connection and makes another client's migration read-only (issue 23).
    dbapi_connection.readonly = True


def _deferred_triggers(connection: Any) -> str:
    """PostgreSQL: the deferrable user constraint triggers, as a list for SET CONSTRAINTS; "" when none.

    By name, not ``ALL``: foreign keys keep their own timing, and the trigger a
    dry run arms in ``pg_temp`` against any commit (:mod:`preview`) stays deferred.
    """
    from ..catalog import query_rows

    return _deferred_list(query_rows(connection, _PG_DEFERRED)[0][0])


def _deferred_list(names: list[str] | None) -> str:
    return ", ".join(sorted({str(name) for name in names or ()}))


class PostgreSQL(ServerEngine):
    name = "postgresql"
    session_lock = staticmethod(postgresql_lock)
    holder_in = staticmethod(holder_postgresql)
    reader_class = PostgresqlReader
    label = "PostgreSQL"
    transactional_ddl = True
    placeholder = "%s"
    history_id = "id BIGSERIAL PRIMARY KEY"
    read_only_session = "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
    activity_view = "pg_stat_activity"
    sqlglot_dialect = "postgres"
    has_schemas = True

    def connect(self, database: Url, connect_timeout: float, checkpoint: Callable[[], None] | None) -> Any:
        return connect_postgresql(database, connect_timeout, checkpoint)

    def cancel(self, connection: Any) -> None:
        inner = getattr(connection, "driver_connection", None) or connection
        if getattr(inner, "pgconn_ptr", None) and _pq_cancel(inner.pgconn_ptr):
            return
        super().cancel(connection)

    def make_read_only(self, dbapi_connection: Any) -> None:
        super().make_read_only(dbapi_connection)
        if not getattr(dbapi_connection, "autocommit", True):
            dbapi_connection.commit()  # the driver opened a transaction for it: the setting outlives it

    def read_catalog(
        self, connection: Any, schema: str | None, watched: Callable[[str, str], bool], previous: CatalogSnapshot | None
    ) -> CatalogRead:
        from ..catalog import CatalogRead

        tables, ids, locations, marks, session = _postgresql(connection, schema, previous)
        if session is None:
            return CatalogRead(tables, ids=ids, locations=locations, marks=marks)
        return CatalogRead(
            tables, ids=ids, locations=locations, marks=marks, transaction=(session[0],), deferred=session[1]
        )

    def digest_sql(self, table: str, column: str) -> str | None:
        # Sorted by their text, so a rewrite that reorders rows changes nothing.
        return (
            f"SELECT md5(string_agg({column}::text, chr(31) ORDER BY {column}::text)) "
            f"FROM {table} WHERE {column} IS NOT NULL"
        )

    def string_class(self, canonical: object) -> tuple[str, int | None] | None:
        import re

        assert isinstance(canonical, str)
        match = re.fullmatch(r"character varying(?:\((\d+)\))?", canonical)
        if match:
            return ("varchar", int(match.group(1)) if match.group(1) else None)
        return ("text", None) if canonical == "text" else None

    def forbid_commit(self, connection: Any, name: str) -> bool:
        """A deferred constraint trigger ``name`` in ``pg_temp`` that fails any COMMIT of this transaction.

        libpq sends the driver's own ``commit()`` with no hook on the way; this
        makes the server refuse it (the transaction is rolled back instead).
        It lives in the dry run's transaction and goes with its rollback. A
        role without TEMP on the database cannot arm it: the other measures stay.
        """
        run = connection.exec_driver_sql
        run("SAVEPOINT migrate_init_arm")
        try:
            run(
                f"CREATE FUNCTION pg_temp.{name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"RAISE EXCEPTION '{name}: a dry run of migrate-init must not commit'; END $$"
            )
            run(f"CREATE TEMP TABLE {name} (armed boolean)")
            run(
                f"CREATE CONSTRAINT TRIGGER {name} AFTER INSERT ON pg_temp.{name} DEFERRABLE INITIALLY DEFERRED "
                f"FOR EACH ROW EXECUTE PROCEDURE pg_temp.{name}()"
            )
            run(f"INSERT INTO pg_temp.{name} VALUES (true)")
        except Exception:
            run("ROLLBACK TO SAVEPOINT migrate_init_arm")
            return False
        run("RELEASE SAVEPOINT migrate_init_arm")
        return True

    def deferred_constraints(self, connection: Any) -> str:
        return _deferred_triggers(connection)

    # txid_current() gives the transaction an id if it has none yet, so that a later read tells it apart.
    transaction_id_sql = "SELECT txid_current()"

    def transaction_id(self, connection: Any) -> object:
        from ..catalog import query_rows

        return query_rows(connection, self.transaction_id_sql)[0][0]

    def engine_options(
        self, database: Url, *, busy_timeout: float, connect_timeout: float, read_only: bool
    ) -> dict[str, Any]:
        return {"connect_args": {"connect_timeout": max(int(connect_timeout), 2), "application_name": "migrate-init"}}

    def configure_engine(
        self, engine: Any, *, read_only: bool, busy_timeout: float, checkpoint: Callable[[], None] | None
    ) -> None:
        from sqlalchemy import event

        event.listen(engine, "connect", _postgresql_read_only if read_only else _postgresql_connect)

    def ddl_session(self, connection: Any, ddl_lock_timeout: float) -> None:
        # A queued ALTER would block every reader of the table behind it; give up quickly and retry.
        # SET LOCAL as each transaction begins, not a session SET: behind PgBouncer in transaction
        # pooling a session setting lands on one pooled server connection, stays there for the next
        # client, and misses the server connections this session's later transactions run on.
        from sqlalchemy import event

        statement = f"SET LOCAL lock_timeout = {max(1, int(ddl_lock_timeout * 1000))}"

        def begin(conn: Any) -> None:
            cursor = conn.connection.driver_connection.cursor()
            try:
                cursor.execute(statement)  # psycopg2 opens the transaction with it
            finally:
                cursor.close()

        event.listen(connection, "begin", begin)

    def ddl_transaction(self, connection: Any, ddl_lock_timeout: float) -> None:
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, int(ddl_lock_timeout * 1000))}")


ENGINE = PostgreSQL()


# attidentity (PostgreSQL 10) counts as a default; attgenerated exists from 12 on,
# and a generated column's expression sits in pg_attrdef too (atthasdef).
# Every schema a migration may touch (issue 25, N4: op.drop_column(..., schema="app")),
# not only current_schema(); the current schema's tables keep their bare names.
_PG_COLUMNS = """
SELECT c.relname, c.oid::bigint, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
       NOT a.attnotnull, (a.atthasdef AND NOT {generated}) OR {identity}, {generated},
       a.attnum, a.atttypid::bigint, n.nspname, n.nspname = current_schema()
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute AS a
       ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND {schema}
ORDER BY n.nspname, c.relname, a.attnum
"""


# The incremental read (issue 27), one round trip: every table, and the columns of only
# those that may have changed since the previous read.  Everything a column is read from
# but its type's name is a pg_attribute value, and a catalog row's xmin is the transaction
# that wrote it: a table changed since has a pg_class or pg_attribute row (a dropped
# column's too: attisdropped is an update) written by a transaction at or after the
# previous read's horizon (the oldest transaction still in progress then, or this
# session's own, whichever is older: least(), as a snapshot's xmin need not count one's
# own; age() compares xids across wraparound).  A rollback after a read brings back older
# rows instead: the table's youngest pg_attribute xmin is kept in its mark, so one that
# is gone shows too.  A table the previous read did not know is read, whatever its xmin.
# The type's name (format_type) hangs on more than the column's row: pg_type and
# pg_namespace, the search path (current_schemas(true): "$user" under SET ROLE), another
# type or a table's row type of the same name hiding it, the relation of a row type.
# Rather than watch all of that, the names are computed again, each read, for the
# (type, typmod) pairs the kept columns have (a few dozen at most): exact, whatever
# renamed, hid, unhid or rolled back a type.  Each table's check is one index lookup of
# its own pg_attribute rows, so the read costs what the table list costs, not what every
# column does.  The horizon read here is the next read's, in the same round trip.
_PG_INCREMENTAL = """
SELECT t.relname, t.oid::bigint, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
       NOT a.attnotnull, (a.atthasdef AND NOT {generated}) OR {identity}, {generated},
       a.attnum, a.atttypid::bigint, t.nspname, t.current, a.atttypmod, t.changed, t.youngest::text,
       (SELECT mod(least(txid_snapshot_xmin(txid_current_snapshot()), txid_current_if_assigned()),
                   4294967296)::text),
       (SELECT array_agg(pg_catalog.format_type(u.id, u.mod) ORDER BY u.n)
        FROM unnest(%(type_ids)s::oid[], %(type_mods)s::integer[]) WITH ORDINALITY AS u (id, mod, n)),
       (SELECT txid_current_if_assigned()), ({deferred})
FROM (
    SELECT c.relname, c.oid, n.nspname, n.nspname = current_schema() AS current, y.youngest,
           coalesce(%(since)s::xid IS NULL OR known.id IS NULL OR known.youngest <> y.youngest::text
                    OR age(c.xmin) <= age(%(since)s::xid) OR age(y.youngest) <= age(%(since)s::xid), true) AS changed
    FROM pg_catalog.pg_class AS c
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL (
        SELECT f.xmin AS youngest FROM pg_catalog.pg_attribute AS f
        WHERE f.attrelid = c.oid ORDER BY age(f.xmin) LIMIT 1
    ) AS y
    LEFT JOIN unnest(%(known)s::bigint[], %(youngest)s::text[]) AS known (id, youngest) ON known.id = c.oid::bigint
    WHERE c.relkind IN ('r', 'p') AND {schema}
    OFFSET 0  -- each table judged once, not once per column row below
) AS t
LEFT JOIN LATERAL (
    SELECT * FROM pg_catalog.pg_attribute AS a
    WHERE t.changed AND a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
    OFFSET 0  -- an index lookup per changed table, not a scan of all of pg_attribute
) AS a ON true
ORDER BY t.nspname, t.relname, a.attnum
"""


# The deferrable user constraint triggers (see _deferred_triggers), as one array: the guard's
# catalog read after each migration carries them, and the transaction's id, in its own round trip.
_PG_DEFERRED = (
    "SELECT array_agg(quote_ident(n.nspname) || '.' || quote_ident(c.conname)) FROM pg_constraint c "
    "JOIN pg_namespace n ON n.oid = c.connamespace WHERE c.contype = 't' "
    "AND c.condeferrable AND left(n.nspname, 7) <> 'pg_temp'"
)


_PG_USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND left(n.nspname, 3) <> 'pg_'"


def _postgresql(
    connection: Any, schema: str | None, previous: CatalogSnapshot | None
) -> tuple[
    dict[str, dict[str, Column]],
    dict[str, int],
    dict[str, tuple[str | None, str]],
    dict[str, object],
    tuple[object, str] | None,
]:
    """The tables, their oids, locations and marks; and, read by the incremental query in the same round
    trip, ``(txid_current_if_assigned(), the deferred constraint triggers)``: None when not read (no
    table, or a server before 10)."""
    from ..catalog import Column, known_columns, query_rows

    version = _pg_server_version(connection)
    parts = {
        "identity": "a.attidentity <> ''" if version >= 100000 else "false",
        "generated": "a.attgenerated <> ''" if version >= 120000 else "false",
        "schema": _PG_USER_SCHEMAS if schema is None else "n.nspname = %(schema)s",
        "deferred": _PG_DEFERRED,
    }
    incremental = version >= 100000  # before 10 (no txid_current_if_assigned): read in full, every time
    # A mark is (oid, horizon, youngest pg_attribute xmin, the columns' (type, typmod) pairs, and the
    # names of every pair of the snapshot); one read's marks share the horizon and the names.
    marked = [(mark, columns) for mark, columns in known_columns(previous).items() if isinstance(mark, tuple)]
    cached = {mark[0]: (mark, columns) for mark, columns in marked}
    named_then: dict[tuple[int, int], str] = dict(marked[0][0][4]) if marked else {}
    pairs = sorted(named_then)
    params = {
        "schema": schema,
        "known": [mark[0] for mark, _ in marked],
        "youngest": [mark[2] for mark, _ in marked],
        "since": marked[0][0][1] if marked else None,
        "type_ids": [pair[0] for pair in pairs],
        "type_mods": [pair[1] for pair in pairs],
    }
    sql = (_PG_INCREMENTAL if incremental else _PG_COLUMNS).format(**parts)
    tables: dict[str, dict[str, Column]] = {}
    ids: dict[str, int] = {}
    locations: dict[str, tuple[str | None, str]] = {}
    marks: dict[str, object] = {}
    fresh: dict[str, tuple[int, object, object]] = {}  # the tables read now: the mark but their types
    kept_marks: dict[str, tuple[int, object, object, tuple[tuple[int, int], ...]]] = {}
    types: dict[str, list[tuple[int, int]]] = {}
    session: tuple[object, str] | None = None
    names: dict[tuple[int, int], str] = {}  # each pair's name now: those kept (read by the query), those read
    renamed = False
    for (
        table,
        oid,
        name,
        type_,
        nullable,
        has_default,
        generated,
        attnum,
        type_id,
        nspname,
        current,
        *mark,
    ) in query_rows(connection, sql, params):
        key = table if current or schema is not None else f"{nspname}.{table}"
        if key not in tables:
            ids[key] = int(oid)
            locations[key] = (nspname, table)
            tables[key] = {}
            if incremental:
                _mod, changed, youngest, horizon, now_named, *read = mark
                if session is None:
                    session = (read[0], _deferred_list(read[1]))
                    names = dict(zip(pairs, now_named or (), strict=True))
                    renamed = names != named_then
                if not changed:  # the server sent no column of it: the kept ones, their types named as now
                    kept_mark, kept = cached[int(oid)]
                    kept_marks[key] = (int(oid), horizon, youngest, kept_mark[3])
                    tables[key] = _renamed_types(kept, kept_mark[3], names) if renamed else kept
                    continue
                fresh[key], types[key] = (int(oid), horizon, youngest), []
        if name is not None:  # a table with no columns still counts
            tables[key][name] = Column(
                name, type_, bool(nullable), bool(has_default), bool(generated), int(attnum), type_id=int(type_id)
            )
            if key in types:
                types[key].append((int(type_id), int(mark[0])))
                names[types[key][-1]] = type_
    named_now = tuple(sorted(names.items()))  # hashable, as a mark must be
    for key in tables:
        if key in types:
            marks[key] = (*fresh[key], tuple(types[key]), named_now)
        elif key in kept_marks:
            marks[key] = (*kept_marks[key], named_now)
    return tables, ids, locations, marks, session


def _renamed_types(
    columns: dict[str, Column], pairs: tuple[tuple[int, int], ...], names: dict[tuple[int, int], str]
) -> dict[str, Column]:
    """``columns`` as kept, unless a type is named otherwise now: then a copy with the names of now.

    ``pairs``: each column's (atttypid, atttypmod), in order.  The same dict when nothing changed, so
    :func:`~migrate_init.catalog.losses` passes over it by identity.
    """
    import dataclasses

    if all(names.get(pair, column.type) == column.type for column, pair in zip(columns.values(), pairs, strict=True)):
        return columns
    return {
        name: dataclasses.replace(column, type=names.get(pair, column.type))
        for (name, column), pair in zip(columns.items(), pairs, strict=True)
    }


def _pg_server_version(connection: Any) -> int:
    from ..catalog import query_rows

    dialect = getattr(connection, "dialect", None)
    info = getattr(dialect, "server_version_info", None)
    if info:  # SQLAlchemy: (15, 4) from PostgreSQL 10 on, (9, 6, 24) before
        major, minor, patch = ((*tuple(int(part) for part in info), 0, 0))[:3]
        return major * 10000 + (minor if major >= 10 else minor * 100 + patch)
    raw_version = getattr(connection, "server_version", None)  # psycopg2
    if raw_version is None:
        # psycopg 3
        raw_version = getattr(getattr(connection, "info", None), "server_version", None)
    if isinstance(raw_version, int):
        return raw_version
    return int(query_rows(connection, "SELECT current_setting('server_version_num')")[0][0])
