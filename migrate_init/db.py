"""The database URL and the engine built from it.

Every URL that reaches a message goes through :func:`redact`.  The engine for
SQLite follows SQLAlchemy's documented pysqlite recipe for transactional DDL:
the driver's own transaction handling is turned off and the engine emits
BEGIN itself, so a failed or killed migration leaves nothing half-applied.
https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

# Python module of a DBAPI -> the pip requirement that provides it.
_DRIVER_PACKAGES = {
    "pymysql": "pymysql",
    "MySQLdb": "mysqlclient",
    "mysql": "mysql-connector-python",
    "mariadb": "mariadb",
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "pg8000": "pg8000",
    "asyncpg": "asyncpg",
    "pyodbc": "pyodbc",
    "pymssql": "pymssql",
    "oracledb": "oracledb",
    "cx_Oracle": "cx_Oracle",
}

_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z0-9+_.-]+://)(?P<user>[^:/@]*):(?P<pw>.*)@")


def redact(url: object) -> str:
    """Render ``url`` (a string or SQLAlchemy URL) with its password masked."""
    text = url if isinstance(url, str) else _render(url)
    # Greedy up to the last '@' so a raw '@' inside the password is masked too.
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def _render(url) -> str:
    try:
        return url.render_as_string(hide_password=True)
    except AttributeError:
        return str(url)


@dataclass(frozen=True)
class Target:
    """A parsed DATABASE_URL: what kind of database and where."""

    url: object  # sqlalchemy.engine.URL
    backend: str  # "sqlite" or "postgresql" (or another SQLAlchemy backend)

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.backend == "postgresql"

    @property
    def sqlite_path(self) -> Path | None:
        """The database file, or None for an in-memory database."""
        if not self.is_sqlite:
            return None
        database = self.url.database
        if not database or database == ":memory:" or database.startswith("file::memory"):
            return None
        return Path(database)

    @property
    def safe(self) -> str:
        return redact(self.url)


def parse(raw: str) -> Target:
    """Parse DATABASE_URL; an unparsable URL is a ConfigError that never shows the password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    scheme, sep, rest = raw.partition("://")
    if sep and rest.split("/", 1)[0].count("@") > 1:
        # SQLAlchemy would split at the first '@' and print the rest of the
        # password as the host name; refuse instead of guessing.
        raise ConfigError(
            f"DATABASE_URL={redact(raw)!r} has more than one '@' before the host. "
            "Percent-encode '@' in the user name or password as %40 "
            "(and '/' as %2F, '%' as %25, ':' as %3A)."
        )
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(
            f"DATABASE_URL={redact(raw)!r} is not a database URL ({_first_line(exc)}). "
            "Use a form such as sqlite:////data/app.db or "
            "postgresql://user:password@host:5432/dbname, with special characters "
            "in the password percent-encoded."
        ) from None
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgres":
        # Heroku-style scheme; SQLAlchemy dropped this alias in 1.4.
        backend = "postgresql"
        url = url.set(drivername="postgresql" + (f"+{driver}" if driver else ""))
    if backend == "postgresql" and not driver:
        # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; we ship psycopg2.
        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
            url = url.set(drivername="postgresql+psycopg2")
    return Target(url=url, backend=backend)


def missing_driver_error(target: Target, exc: BaseException) -> ConfigError:
    """Explain which package to add when the URL's DBAPI is not installed."""
    module = getattr(exc, "name", None) or str(exc)
    package = _DRIVER_PACKAGES.get(module.split(".")[0], module)
    return ConfigError(
        f"DATABASE_URL uses the driver '{target.url.drivername}', whose Python "
        f"module '{module}' is not installed. Add '{package}' to EXTRA_PIP_PACKAGES."
    )


def create_engine(
    target: Target,
    *,
    lock_timeout: float = 120.0,
    connect_timeout: float = 10.0,
    write: bool = True,
):
    """An engine with the settings a migration needs.

    SQLite: transactional DDL (with ``write``, BEGIN IMMEDIATE, so the write
    lock is taken up front rather than failing half-way when a reader holds
    it), a busy timeout of at least LOCK_TIMEOUT, and foreign keys off,
    because a batch table rebuild with foreign_keys=ON deletes child rows that
    have ON DELETE CASCADE.
    """
    import sqlalchemy
    from sqlalchemy import event

    # A small pool: one run opens the same few connections again and again (wait,
    # check, lock, migrate, verify), and each new PostgreSQL login costs an
    # authentication round trip.  The lock and the migration need two at once.
    kwargs: dict = {"pool_size": 2, "max_overflow": 2}
    if target.is_sqlite:
        busy_ms = int(max(lock_timeout, 1.0) * 1000)
        kwargs["connect_args"] = {"timeout": max(lock_timeout, 1.0)}
    elif target.is_postgresql:
        kwargs["connect_args"] = {
            "connect_timeout": max(int(connect_timeout), 1),
            "application_name": "migrate-init",
        }
    try:
        engine = sqlalchemy.create_engine(target.url, **kwargs)
    except ModuleNotFoundError as exc:
        raise missing_driver_error(target, exc) from None
    except sqlalchemy.exc.NoSuchModuleError:
        raise ConfigError(
            f"DATABASE_URL={target.safe!r} names the dialect "
            f"'{target.url.drivername}', which SQLAlchemy does not know. "
            "Check the scheme, or add the dialect's package to EXTRA_PIP_PACKAGES."
        ) from None

    if target.is_sqlite:
        begin = "BEGIN IMMEDIATE" if write else "BEGIN"

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection, _record):
            # Let the engine, not the driver, decide where transactions begin.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA foreign_keys = OFF")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):
            connection.exec_driver_sql(begin)

    if target.is_postgresql:

        @event.listens_for(engine, "connect")
        def _postgres_connect(dbapi_connection, _record):
            # A killed migrator's server session would otherwise run its
            # statement (and hold its locks) to the end, blocking the next
            # run; PostgreSQL 14+ can notice the vanished client (issue 4).
            if getattr(dbapi_connection, "server_version", 0) >= 140000:
                cursor = dbapi_connection.cursor()
                cursor.execute("SET client_connection_check_interval = 1000")
                cursor.close()
                if not getattr(dbapi_connection, "autocommit", True):
                    dbapi_connection.commit()

    return engine


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0]) if text else type(exc).__name__


# SQLAlchemy's own URL grammar (sqlalchemy.engine.url._parse_url, 2.x), so that
# the fast path and the log mask read a URL exactly as SQLAlchemy will, without
# importing SQLAlchemy (issue 7: a run with nothing to do stays light).
_URL_GRAMMAR = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


@dataclass(frozen=True)
class UrlParts:
    """A URL split the way SQLAlchemy splits it; values percent-decoded."""

    drivername: str
    username: str | None
    password: str | None
    raw_password: str | None  # as written in the URL, still percent-encoded
    host: str | None
    port: str | None
    database: str | None
    query: tuple[tuple[str, str], ...]

    def render_safe(self, drivername: str | None = None) -> str:
        """What ``redact(make_url(raw))`` prints, for the same URL."""
        from urllib.parse import quote, quote_plus

        text = (drivername or self.drivername) + "://"
        if self.username is not None:
            text += quote(self.username, safe=" +")
            if self.password is not None:
                text += ":***"
            text += "@"
        if self.host is not None:
            text += f"[{self.host}]" if ":" in self.host else self.host
        if self.port:
            text += ":" + str(int(self.port))
        if self.database is not None:
            text += "/" + quote(self.database, safe=" +/")
        if self.query:
            text += "?" + "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted(
                self.query, key=lambda item: item[0]))
        return redact(text)


def split_url(raw: str) -> UrlParts | None:
    """Split ``raw`` without SQLAlchemy; None when it does not parse.  Never raises."""
    from urllib.parse import parse_qsl, unquote

    match = _URL_GRAMMAR.match(raw)
    if match is None:
        return None
    parts = match.groupdict()
    query = tuple(parse_qsl(parts["query"])) if parts["query"] is not None else ()

    def decoded(name: str) -> str | None:
        value = parts[name]
        return unquote(value) if value is not None else None

    return UrlParts(
        drivername=parts["name"],
        username=decoded("username"),
        password=decoded("password"),
        raw_password=parts["password"],
        host=parts["ipv4host"] or parts["ipv6host"],
        port=parts["port"] or None,
        database=decoded("database"),
        query=query,
    )
