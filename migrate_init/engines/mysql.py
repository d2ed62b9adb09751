"""MySQL and MariaDB: PyMySQL on the bare driver, ``GET_LOCK``, ``KILL QUERY`` from a second session.

DDL is not transactional: each statement commits, so a failed migration can
leave part of itself applied; the revision in progress is recorded
(:mod:`migrate_init.progress`) and every statement is judged before it runs
(:mod:`migrate_init.statements`).  The lock is ``GET_LOCK(name, 0)``, polled
on a connection of its own or the reader's; it dies with the session.  Every
socket read and write is bounded: PyMySQL waits for ever by default.
"""

from __future__ import annotations

import time

from ..errors import MigrateInitError
from ..lock import STATEMENT_TIMEOUT_MS, MigrationLock, reason_of, unreachable
from ..probe import (
    COUNT_LOCK_WAIT,
    ESTIMATE_ABOVE,
    PROGRESS_TABLE,
    SEED_TABLE,
    Reader,
    Snapshot,
    in_thread,
    qualified,
    text_of,
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
                live.setdefault(text_of(table), set()).add(text_of(column))
            versions, checksums = versions_and_checksums(
                lambda sql: (cursor.execute(sql), cursor.fetchall())[1],
                live,
                version_source(
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
                seeded = frozenset(text_of(row[0]) for row in cursor.fetchall())
            progress = None
            if PROGRESS_TABLE in live:
                cursor.execute(f"SELECT revision FROM {PROGRESS_TABLE}")
                progress = tuple(sorted(text_of(row[0]) for row in cursor.fetchall()))
            return Snapshot(versions, live, seeded, progress, checksums)

        result: Snapshot = self._read(read)
        return result

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        result: list[tuple[Any, ...]] = self._read(lambda cursor: (cursor.execute(sql), list(cursor.fetchall()))[1])
        return result

    def versions(self, version_table: str) -> tuple[str, ...] | None:
        import pymysql

        try:
            self.cursor.execute(f"SELECT version_num FROM {qualified(version_table, mysql_quote)}")
        except pymysql.err.ProgrammingError as exc:
            if exc.args and exc.args[0] == 1146:  # no such table
                return None
            raise
        return tuple(sorted(text_of(row[0]) for row in self.cursor.fetchall()))

    def counts(self, tables: Iterable[str]) -> dict[str, int | None]:
        import pymysql

        wanted = list(tables)
        result: dict[str, int | None] = {}
        self.cursor.execute(f"SET SESSION lock_wait_timeout = {max(1, int(COUNT_LOCK_WAIT))}")
        try:

            def read(cursor: Any) -> None:
                cursor.execute(
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
                )
                live = {text_of(row[0]) for row in cursor.fetchall()}
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
                text_of(row[0]): int(row[1])
                for row in cursor.fetchall()
                if row[1] is not None and int(row[1]) >= ESTIMATE_ABOVE
            }

        result: dict[str, int] = self._read(read)
        return result

    def close(self) -> None:
        if self.connection.open:
            self.connection.close()


def mysql_quote(identifier: str) -> str:
    """A MySQL identifier in backquotes (correct whatever sql_mode says)."""
    return "`" + identifier.replace("`", "``") + "`"


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
    """``pymysql.connect`` (autocommit) that a stop can interrupt (see :func:`in_thread`).

    Every socket read and write is bounded: by :func:`mysql_io_timeout` of
    ``io_timeout`` (the session's statement bound), or of ``connect_timeout``;
    a URL's own ``read_timeout``/``write_timeout`` win.
    """
    from ..errors import ConfigError, missing_driver_error

    try:
        connection_class = mysql_connection_class()
    except ModuleNotFoundError as exc:
        raise missing_driver_error(database.drivername, exc) from None
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

    return in_thread(attempt, checkpoint)


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
    connection is the run's reader (:class:`MysqlReader`, autocommit, its own
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


#: The lock session's wait_timeout while it holds the lock, in seconds (a day), unless the server's is longer.
LOCK_SESSION_WAIT_TIMEOUT = 86400


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
                raise unreachable(self._description, "the MySQL server", exc) from None
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

    def _acquired(self) -> None:
        # The session now sits idle while the migrations run on another one: the server's
        # wait_timeout (some managed servers set a minute or less) would end it, and the lock
        # with it.  A day at least, for this session only; a dead client's session still ends
        # with its TCP connection.
        self._execute(f"SET SESSION wait_timeout = GREATEST(@@SESSION.wait_timeout, {LOCK_SESSION_WAIT_TIMEOUT})")

    def _describe_holder(self) -> str:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT IS_USED_LOCK(%s)", (self.name,))
            row = cursor.fetchone()
            if row is None or row[0] is None:
                return "a session that has just released it"
            return _describe_mysql_session(cursor, row[0])

    def _lost(self) -> LockLost | None:
        if self._closed:
            return self._ended("its connection was closed")
        try:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (self.name,))
                row = cursor.fetchone()
        except Exception as exc:  # DB-API errors of whichever driver made the connection
            # PyMySQL's errors read "(2013, 'Lost connection ...')": the words, without the tuple.
            words = exc.args[-1] if len(exc.args) == 2 and isinstance(exc.args[-1], str) else reason_of(exc)
            return self._ended(words)
        if row is None or not row[0]:
            return self._let_go("its session no longer holds it (a RELEASE_LOCK or RELEASE_ALL_LOCKS in a migration?)")
        return None

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


def _over_tls(connection: Any) -> bool:
    """Whether a PyMySQL connection is encrypted (its ``.ssl`` is set even on a plain one)."""
    import ssl

    return bool(getattr(connection, "_ssl_required", False)) or isinstance(
        getattr(connection, "_sock", None), ssl.SSLSocket
    )


def _kill_query(connection: Any) -> None:
    """MySQL/MariaDB: ``KILL QUERY`` the connection's statement, from a second connection.

    PyMySQL has no cancel(); the server stops the statement when another
    session of the same user asks.  Its session stays (the lock with it).
    The second connection is PyMySQL's without the CA-store load (:func:`mysql_connection_class`):
    a cancel has no time for it.
    """
    # Not connection.open: the main thread may have closed its end already (a stop raised into the
    # step unwinds through the driver), while the server still runs the statement.
    server_thread = getattr(connection, "server_thread_id", None)
    thread_id = server_thread[0] if server_thread else None
    if thread_id is None:
        return
    try:
        killer = mysql_connection_class()(
            host=connection.host,
            port=connection.port,
            user=connection.user,
            password=connection.password,
            unix_socket=connection.unix_socket,
            ssl=connection.ctx if _over_tls(connection) else None,
            connect_timeout=5,
            autocommit=True,
            program_name="migrate-init-cancel",
        )
    except Exception:  # the server is gone: nothing runs there to cancel
        return
    try:
        with killer.cursor() as cursor:
            cursor.execute(f"KILL QUERY {int(thread_id)}")
    except Exception:  # the statement ended meanwhile
        pass
    finally:
        killer.close()


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


def _mysql_do_connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """PyMySQL's connect with SQLAlchemy's arguments, through :func:`mysql_connection_class`.

    The same connection, without the 20 ms CA-store load of TLS "preferred"
    that each pooled connection paid (issue 14).  Another MySQL driver
    (``mysql+mysqldb://``) connects as SQLAlchemy does.
    """
    if dialect.driver != "pymysql":
        return None
    return mysql_connection_class()(*cargs, **cparams)


def _mysql_read_only(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION READ ONLY")


#: What MySQL stores for a type written another way (as COLUMN_TYPE shows it, display widths aside).
_TYPE_SYNONYMS = {
    "boolean": "tinyint",
    "bool": "tinyint",
    "decimal": "decimal(10,0)",
    "numeric": "decimal(10,0)",
    "real": "double",
    "serial": "bigint unsigned",
}


class MySQL(ServerEngine):
    name = "mysql"
    session_lock = staticmethod(mysql_lock)
    holder_in = staticmethod(holder_mysql)
    reader_class = MysqlReader
    label = "MySQL/MariaDB"
    transactional_ddl = False
    placeholder = "%s"
    history_id = "id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY"
    read_only_session = "SET SESSION TRANSACTION READ ONLY"
    activity_view = "SHOW PROCESSLIST"
    folds_column_names = True
    coerces_nulls = True
    sqlglot_dialect = "mysql"

    def connect(self, database: Url, connect_timeout: float, checkpoint: Callable[[], None] | None) -> Any:
        return connect_mysql(database, connect_timeout, checkpoint)

    def cancel(self, connection: Any) -> None:
        inner = getattr(connection, "driver_connection", None) or connection
        # PyMySQL's Connection or a subclass (mysql_connection_class, which SQLAlchemy's engine uses too).
        if any(klass.__module__.startswith("pymysql") for klass in type(inner).__mro__):
            _kill_query(inner)
        else:
            super().cancel(connection)

    def run_script(self, dbapi_connection: Any, script: str) -> None:
        """One statement per call (issue 25, N30): the script is cut as the mysql client does.

        Quoting follows the session's ``sql_mode``, read again after a statement
        that may change it, and ``DELIMITER`` lines work as in the client.
        """
        from ..statements import scan

        cursor = dbapi_connection.cursor()

        def sql_mode() -> str:
            cursor.execute("SELECT @@SESSION.sql_mode")
            return text_of(cursor.fetchone()[0])

        try:
            position, delimiter, mode = 0, ";", sql_mode()
            while True:
                found = next(scan(script, mode, client=True, start=position, delimiter=delimiter), None)
                if found is None:
                    return
                statement, position, delimiter = found
                cursor.execute(statement)
                if "sql_mode" in statement.lower():
                    mode = sql_mode()
        finally:
            cursor.close()

    def read_catalog(
        self, connection: Any, schema: str | None, watched: Callable[[str, str], bool], previous: CatalogSnapshot | None
    ) -> CatalogRead:
        from ..catalog import CatalogRead

        tables, options = _mysql(connection, schema)
        return CatalogRead(tables, options=options)

    def quote(self, identifier: str) -> str:
        return "`" + identifier.replace("`", "``") + "`"

    def canonical_type(self, declared: str) -> object:
        """As COLUMN_TYPE shows it: the statement guard predicts from a statement's spelling and must agree (N31)."""
        import re

        text = " ".join(declared.split())
        # (10, 2) is (10,2); ENUM('a', 'b') is ENUM('a','b'): spaces between the values, not in them.
        text = re.sub(r"(\d),\s+(\d)", r"\1,\2", re.sub(r"',\s+'", "','", text.lower()))
        text = re.sub(r"\b(tinyint|smallint|mediumint|int|integer|bigint|year)\(\d+\)", r"\1", text)
        text = re.sub(r"^numeric\b", "decimal", text)
        return _TYPE_SYNONYMS.get(text, text)

    def string_class(self, canonical: object) -> tuple[str, int | None] | None:
        import re

        assert isinstance(canonical, str)
        match = re.fullmatch(r"varchar\((\d+)\)", canonical)
        if match:
            return ("varchar", int(match.group(1)))
        return ("text", None) if canonical in ("text", "mediumtext", "longtext") else None

    def engine_options(
        self, database: Url, *, busy_timeout: float, connect_timeout: float, read_only: bool
    ) -> dict[str, Any]:
        connect_args: dict[str, Any] = {"connect_timeout": max(int(connect_timeout), 1), "program_name": "migrate-init"}
        # No socket wait without a bound (issue 25, N24): a read-only session waits for a lock at
        # most busy_timeout; a migration's statement may run long (the watchdog bounds it), so
        # only its writes are bounded, and its reads are left to the watchdog's hard exit.
        io = mysql_io_timeout(max(connect_timeout, busy_timeout))
        connect_args["write_timeout"] = io
        if read_only:
            connect_args["read_timeout"] = io
        if database.password:
            # PyMySQL sends a str password as latin-1; the server hashed the UTF-8 bytes.  Under
            # "password", the key SQLAlchemy 2.1 passes the URL's str under: PyMySQL ignores "passwd"
            # beside a password, and a non-ASCII one was refused (exit 4) once migrations ran.
            connect_args["password"] = database.password.encode("utf-8")
        return {"connect_args": connect_args}

    def configure_engine(
        self, engine: Any, *, read_only: bool, busy_timeout: float, checkpoint: Callable[[], None] | None
    ) -> None:
        from sqlalchemy import event

        event.listen(engine, "do_connect", _mysql_do_connect)
        if read_only:
            event.listen(engine, "connect", _mysql_read_only)

    def ddl_session(self, connection: Any, ddl_lock_timeout: float) -> None:
        # The same for MySQL's metadata locks (whole seconds; error 1205 when it runs out).
        connection.exec_driver_sql(f"SET SESSION lock_wait_timeout = {max(1, round(ddl_lock_timeout))}")
        connection.commit()


ENGINE = MySQL()


_MYSQL_COLUMNS = """
SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE, c.COLUMN_DEFAULT, c.EXTRA,
  c.CHARACTER_SET_NAME, t.ENGINE, t.TABLE_COLLATION
FROM information_schema.COLUMNS AS c
JOIN information_schema.TABLES AS t
  ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE t.TABLE_TYPE = 'BASE TABLE' AND c.TABLE_SCHEMA = {schema}
ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION
"""


def _mysql(connection: Any, schema: str | None) -> tuple[dict[str, dict[str, Column]], dict[str, tuple[str, str]]]:
    """MySQL and MariaDB: the columns, and each table's ``(engine, default character set)``."""
    from ..catalog import Column, charset_name, charset_of_collation, query_rows

    sql = _MYSQL_COLUMNS.format(schema="DATABASE()" if schema is None else "%s")
    tables: dict[str, dict[str, Column]] = {}
    options: dict[str, tuple[str, str]] = {}
    for table, name, type_, is_nullable, default, extra, charset, engine, collation in query_rows(
        connection, sql, () if schema is None else (schema,)
    ):
        options[text_of(table)] = (text_of(engine or ""), charset_of_collation(text_of(collation or "")))
        extra_text = text_of(extra).upper()
        default_text = None if default is None else text_of(default)
        tables.setdefault(text_of(table), {})[text_of(name)] = Column(
            name=text_of(name),
            type=text_of(type_).lower(),
            nullable=text_of(is_nullable).upper() == "YES",
            # MariaDB reports the default of a nullable column as the word NULL.
            default_present=(default_text is not None and default_text != "NULL") or "AUTO_INCREMENT" in extra_text,
            # MySQL 8 marks expression defaults DEFAULT_GENERATED; those are defaults.
            generated="VIRTUAL GENERATED" in extra_text
            or "STORED GENERATED" in extra_text
            or "PERSISTENT GENERATED" in extra_text,
            charset=charset_name(text_of(charset)) if charset is not None else None,
        )
    return tables, options
