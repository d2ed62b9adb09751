"""The engine seam: what differs between SQLite, PostgreSQL and MySQL/MariaDB, and nothing else.

One module per engine (:mod:`.sqlite`, :mod:`.postgresql`, :mod:`.mysql`),
each an :class:`Engine`: how to connect through the bare driver (and the
options of the SQLAlchemy engine built for migrations), the one reader of
versions, catalog and counts (:mod:`migrate_init.probe`'s protocol), the
migration lock, how a statement in progress is cancelled, the session setup
before DDL, whether DDL is transactional, and the engine's own spellings.

The engine is chosen once, from the URL (:func:`of`, ``Url.engine``); the
rest of the package asks it instead of comparing engine names.  An engine's
module is imported only when that engine is used: a run with nothing to do
on SQLite never imports psycopg2's half (issue 14).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..catalog import CatalogRead, Snapshot
    from ..lock import MigrationLock
    from ..probe import Reader
    from ..url import Url

#: Every spelling of an engine the package meets (URL schemes, SQLAlchemy dialect names) -> its module.
_MODULES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}
_LOADED: dict[str, Engine] = {}


class Engine:
    """One engine's answers.  Subclasses are singletons: use :func:`of`."""

    #: ``"sqlite"``, ``"postgresql"`` or ``"mysql"`` (MariaDB included): the package's one vocabulary.
    name = ""
    #: How the engine is named in messages.
    label = ""
    #: Whether a failed DDL statement rolls back with its transaction (MySQL commits each one).
    transactional_ddl = True
    #: The driver's parameter marker.
    placeholder = "%s"
    #: The id column of migrate-init's history table, in the engine's DDL.
    history_id = ""
    #: The statement that makes a session read-only.
    read_only_session = ""
    #: Where an operator sees the sessions that block a statement; empty where there is none.
    activity_view = ""
    #: Whether the engine compares table names regardless of case (SQLite; MySQL only on some platforms).
    folds_table_names = False
    #: Whether the engine compares column names regardless of case (SQLite, MySQL).
    folds_column_names = False
    #: The prefix of the engine's own tables, which no migration owns (lower case; empty: none).
    internal_prefix = ""
    #: Whether most ALTER TABLE forms need the table rebuilt (Alembic's batch mode, ``render_as_batch``).
    alters_by_rebuild = False
    #: Whether a column that changed place among the columns that stayed was dropped and added back
    #: (SQLite, which cannot reorder columns and whose catalog keeps no other trace of it).
    order_tells_rebuilds = False
    #: Whether adding NOT NULL may overwrite NULLs with an implicit default instead of failing
    #: (MySQL/MariaDB outside a strict sql_mode).
    coerces_nulls = False
    #: Whether the database is a file (a path on a volume) rather than a server's.
    file_based = False

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
        """The one reader (:class:`migrate_init.probe.Reader`) of this engine, connected."""
        raise NotImplementedError

    def connect(self, database: Url, connect_timeout: float, checkpoint: Callable[[], None] | None) -> Any:
        """A bare-driver connection (autocommit on server engines) that a stop can interrupt."""
        raise NotImplementedError

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
        """The migration lock of ``database`` (not yet taken); ``connection`` is the session to take it in."""
        raise NotImplementedError

    def holder(self, database: Url, version_table: str) -> str | None:
        """Who holds the migration lock now, in words, or None when nobody does.  Read-only."""
        raise NotImplementedError

    def read_catalog(
        self, connection: Any, schema: str | None, watched: Callable[[str, str], bool], previous: Snapshot | None
    ) -> CatalogRead:
        """The columns of every table of ``schema`` (None: the current one), in the transaction ``connection``
        has open (a SQLAlchemy Connection or a DB-API connection): the one catalog reader the guard,
        verification and ``check`` share.  ``previous``, an earlier read of the same schema, lets the
        engine read again only the tables that changed (their marks)."""
        raise NotImplementedError

    #: The schema a table name without one is in, when the engine's SQL names it (SQLite's ``main``).
    default_schema: str | None = None

    #: Whether a chain can be rehearsed in a scratch schema of the same database, inside a transaction
    #: that is rolled back (PostgreSQL: schemas and transactional DDL); elsewhere lint uses a SQLite file.
    has_schemas = False
    #: The dialect sqlglot reads this engine's SQL with.
    sqlglot_dialect = ""
    #: Whether the driver runs one statement per call (sqlite3: the rest of the string is ignored).
    one_statement_per_call = False

    def forbid_commit(self, connection: Any, name: str) -> bool:
        """Make the server itself refuse any COMMIT of the transaction open on ``connection`` (a dry run's),
        with ``name`` in its error; False where the engine cannot."""
        return False

    def quote(self, identifier: str) -> str:
        """``identifier`` quoted for this engine's SQL."""
        return '"' + identifier.replace('"', '""') + '"'

    def digest_sql(self, table: str, column: str) -> str | None:
        """A query whose one value digests the non-NULL values of ``column`` (both quoted), in an order of
        their own; None where the values are read and digested here."""
        return None

    def canonical_type(self, declared: str) -> object:
        """A value equal for two spellings of the same column type on this engine (the catalog's text)."""
        return " ".join(declared.split())

    def string_class(self, canonical: object) -> tuple[str, int | None] | None:
        """For a :meth:`canonical_type`: ``("varchar", length or None)``, ``("text", None)``, or None."""
        return None

    def deferred_constraints(self, connection: Any) -> str:
        """The deferred constraint triggers a COMMIT would fire, for ``SET CONSTRAINTS``; "" when none."""
        return ""

    def transaction_id(self, connection: Any) -> object:
        """The server's id of the transaction in progress on ``connection``, or None where there is none to ask."""
        return None

    #: The query of :meth:`transaction_id`, where there is one: the guard sends it with its savepoint.
    transaction_id_sql = ""

    def cancel(self, connection: Any) -> None:
        """Ask the engine to abort the statement in progress on the driver's ``connection``."""
        cancel_by_driver(connection)

    def engine_options(
        self, database: Url, *, busy_timeout: float, connect_timeout: float, read_only: bool
    ) -> dict[str, Any]:
        """Keyword arguments of ``sqlalchemy.create_engine`` for migrate-init's own engine."""
        return {}

    def configure_engine(
        self, engine: Any, *, read_only: bool, busy_timeout: float, checkpoint: Callable[[], None] | None
    ) -> None:
        """Events on a new SQLAlchemy engine: how each connection starts and each transaction begins."""

    def ddl_session(self, connection: Any, ddl_lock_timeout: float) -> None:
        """Bound how long each DDL statement of a migration may wait for a table lock (DDL_LOCK_TIMEOUT),
        on the SQLAlchemy ``connection`` the migrations run on."""

    def ddl_transaction(self, connection: Any, ddl_lock_timeout: float) -> None:
        """The same bound for the transaction in progress only (a rehearsal that is rolled back)."""

    def make_read_only(self, dbapi_connection: Any) -> None:
        """Make a session read-only for good (:attr:`read_only_session`), on any driver's DB-API connection."""
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(self.read_only_session)
        finally:
            cursor.close()

    def run_script(self, dbapi_connection: Any, script: str) -> None:
        """Run a file of SQL statements in the transaction in progress, as the engine's own client would."""
        # The driver's own cursor with no parameters: nothing interpolates a '%'.
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(script)  # psycopg2 sends several statements in one string
        finally:
            cursor.close()

    def __repr__(self) -> str:
        return f"<engine {self.name}>"


class ServerEngine(Engine):
    """An engine behind a server: its reader class and lock factory, and the lock taken in a session."""

    #: The reader (:class:`migrate_init.probe.Reader`) of this engine.
    reader_class: Any = None
    #: ``(connection, database name, *, version_table, timeout, checkpoint, on_wait, shared)`` -> the lock
    #: of that database, taken in ``connection``'s session.
    session_lock: Callable[..., MigrationLock]
    #: ``(connection, database name, version_table)`` -> who holds the lock, read on ``connection``; None: nobody.
    holder_in: Callable[[Any, str, str], str | None]

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
        reader: Reader = self.reader_class(
            database,
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
            track=track,
            checkpoint=checkpoint,
        )
        return reader

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
        return self.session_lock(
            connection,
            database.database or "",
            version_table=version_table,
            timeout=timeout,
            checkpoint=checkpoint,
            on_wait=on_wait,
            shared=shared,
        )

    def holder(self, database: Url, version_table: str) -> str | None:
        connection = self.connect(database, 5, None)
        try:
            return self.holder_in(connection, database.database or "", version_table)
        finally:
            connection.close()


def of(name: str) -> Engine:
    """The engine for any of its spellings (``sqlite``, ``postgres``, ``mariadb``, a dialect name...).

    An engine migrate-init does not serve is :class:`migrate_init.errors.ConfigError`.
    """
    key = _MODULES.get(name.partition("+")[0].lower())
    if key is None:
        from ..errors import ConfigError

        raise ConfigError(
            f"migrate-init serves SQLite, PostgreSQL and MySQL/MariaDB databases, not '{name}'. "
            "Check the scheme of DATABASE_URL."
        )
    engine = _LOADED.get(key)
    if engine is None:
        # __import__, not importlib.import_module: importlib (and warnings) cost a millisecond on the
        # no-op path, and the module is a fixed sibling of this one (docs/performance.md).
        engine = _LOADED[key] = __import__(f"{__name__}.{key}", fromlist=["ENGINE"]).ENGINE
    return engine


def known(name: str) -> bool:
    """Whether ``name`` spells an engine migrate-init serves."""
    return name.partition("+")[0].lower() in _MODULES


def of_connection(connection: Any) -> Engine:
    """The engine of a SQLAlchemy connection or engine (its dialect's name)."""
    return of(connection.dialect.name)


def of_driver_connection(connection: Any) -> Engine | None:
    """The engine of a driver's connection (sqlite3, psycopg2, PyMySQL...), by the driver's module; None if unknown."""
    inner = getattr(connection, "driver_connection", None) or connection
    for klass in type(inner).__mro__:
        module = klass.__module__.partition(".")[0].lstrip("_")
        if module in ("sqlite3", "pysqlite2"):
            return of("sqlite")
        if module in ("psycopg2", "psycopg", "asyncpg", "pg8000"):
            return of("postgresql")
        if module in ("pymysql", "MySQLdb", "mysql", "mariadb", "aiomysql", "asyncmy"):
            return of("mysql")
    return None


def cancel_by_driver(connection: Any) -> None:
    """The driver's own ``cancel()`` (psycopg2) or ``interrupt()`` (sqlite3), on the connection or the one it adapts."""
    for method in ("cancel", "interrupt"):
        fn = getattr(connection, method, None)
        if fn is None:
            # SQLAlchemy may hand us an adapted connection; reach the driver's.
            inner = getattr(connection, "driver_connection", None)
            fn = getattr(inner, method, None) if inner is not None else None
        if fn is not None:
            try:
                fn()
            except Exception:  # the connection may already be gone; nothing to cancel
                pass
            return
