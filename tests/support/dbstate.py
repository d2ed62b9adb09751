"""What a real database holds, read back for assertions (and the few rows tests set up).

Every reader takes a URL (``sqlite:///...``, ``postgresql://...`` or
``mysql://...``/``mariadb://...``) and opens the database it names as it is:
a SQLite file that does not exist is an error, never created, so that a
check cannot create the database a test expects the product to create.
Nothing here migrates anything.

On MySQL/MariaDB :func:`query` (and what is built on it: ``count``,
``add_users``...) runs its statement with ``ANSI_QUOTES`` added to the
session's ``sql_mode``, so that the tests' SQL quotes identifiers the one
standard way on all three engines (``"user"``); string literals are in
single quotes anyway.  Reflection (``schema``, ``all_rows``...) runs in the
server's own mode, which SQLAlchemy's MySQL dialect reads as it expects.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import sqlite3
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from . import myserver
from .chains import SHIPPED, SLOW_ROWS
from .pgserver import execute


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def is_mysql(url: str) -> bool:
    """A ``mysql://``, ``mariadb://`` or ``mysql+pymysql://`` URL (MariaDB in the tests)."""
    return url.startswith(("mysql", "mariadb"))


def engine_of(url: str) -> str:
    """``"sqlite"``, ``"postgresql"`` or ``"mysql"``: the engine a URL names."""
    if is_sqlite(url):
        return "sqlite"
    return "mysql" if is_mysql(url) else "postgresql"


def database_name(url: str) -> str:
    """The database part of a server URL."""
    return make_url(url).database or ""


def sqlite_url(path: Path) -> str:
    """The ``sqlite:///`` URL of a file."""
    return f"sqlite:///{path}"


def sqlite_path(url_or_path: str | Path) -> Path:
    """The file behind a ``sqlite:///`` URL, or the path itself."""
    text = str(url_or_path)
    if text.startswith("sqlite"):
        database = make_url(text).database
        if not database or database == ":memory:":
            raise ValueError(f"{text} does not name a database file")
        return Path(database)
    return Path(text)


# --- one statement, at the driver level --------------------------------------------


def sqlite_query(url_or_path: str | Path, sql: str, params=(), create: bool = False) -> list[tuple]:
    """Run one statement on a SQLite file with sqlite3 (``?`` parameters) and commit; return its rows.

    The file must exist unless ``create`` is true.
    """
    path = sqlite_path(url_or_path)
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.exists():
        raise FileNotFoundError(f"SQLite database {path} does not exist")
    mode = "rwc" if create else "rw"
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True)
    try:
        rows = conn.execute(sql, params).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def pg_query(url: str, sql, params=None) -> list[tuple]:
    """Run one statement on a PostgreSQL URL with psycopg2 (``%s`` parameters, autocommit)."""
    return execute(url, sql, params)


def my_query(url: str, sql, params=None) -> list[tuple]:
    """Run one statement on a MySQL/MariaDB URL with PyMySQL (``%s`` parameters, autocommit)."""
    return myserver.execute(url, sql, params)


# --- through SQLAlchemy, on either engine -------------------------------------------


def _engine_url(url: str) -> str:
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the venv has psycopg2.
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    # A bare mysql:// or mariadb:// means mysqlclient to SQLAlchemy; the venv has PyMySQL.
    for scheme in ("mysql://", "mariadb://"):
        if url.startswith(scheme):
            return scheme[:-3] + "+pymysql://" + url[len(scheme) :]
    return url


@contextlib.contextmanager
def connect(url: str):
    """A SQLAlchemy connection to an existing database (a SQLite file is never created here)."""
    if is_sqlite(url) and not sqlite_path(url).exists():
        raise FileNotFoundError(f"SQLite database {sqlite_path(url)} does not exist")
    engine = sa.create_engine(_engine_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def query(url: str, sql: str, params: dict | None = None) -> list[tuple]:
    """Run one statement (``:name`` parameters) and commit; return its rows, if any."""
    with connect(url) as connection:
        if is_mysql(url):
            # "user" is an identifier, as on SQLite and PostgreSQL (see the module docstring).
            connection.exec_driver_sql("SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',ANSI_QUOTES')")
        result = connection.execute(sa.text(sql), params or {})
        rows = [tuple(r) for r in result] if result.returns_rows else []
        connection.commit()
        return rows


def still_running(url: str, fragment: str, within: float = 2.0) -> int:
    """How many other sessions of this server database still run a statement holding ``fragment`` (in any
    case) once ``within`` seconds have passed (at once when none do): a cancel must reach the server."""
    if is_mysql(url):
        sql = (
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
            "WHERE DB = DATABASE() AND INFO LIKE :pattern AND ID <> CONNECTION_ID()"
        )
    else:
        sql = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query ILIKE :pattern AND pid <> pg_backend_pid()"
        )
    deadline = time.monotonic() + within
    while True:
        running = query(url, sql, {"pattern": f"%{fragment}%"})[0][0]
        if not running or time.monotonic() >= deadline:
            return int(running)
        time.sleep(0.1)


def versions(url: str) -> list[str]:
    """The rows of alembic_version, sorted; [] when the table does not exist."""
    with connect(url) as connection:
        if "alembic_version" not in sa.inspect(connection).get_table_names():
            return []
        rows = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
        return sorted(r[0] for r in rows)


def tables(url: str) -> set[str]:
    """Every table, alembic_version included."""
    with connect(url) as connection:
        return set(sa.inspect(connection).get_table_names())


#: migrate-init's record of revisions under way on MySQL/MariaDB (migrate_init/progress.py):
#: bookkeeping like alembic_version, left out of schema() (tests/integration/test_mysql_engine.py
#: asserts on it).
PROGRESS_TABLE = "migrate_init_progress"
#: migrate-init's history of what it applied (migrate_init/history.py): bookkeeping too, left out of schema().
HISTORY_TABLE = "migrate_init_history"


def schema(url: str) -> dict[str, set[str]]:
    """``{table: {column, ...}}`` of the live database, without alembic_version (and PROGRESS_TABLE, HISTORY_TABLE)."""
    with connect(url) as connection:
        inspector = sa.inspect(connection)
        return {
            table: {c["name"] for c in inspector.get_columns(table)}
            for table in inspector.get_table_names()
            if table not in ("alembic_version", PROGRESS_TABLE, HISTORY_TABLE)
        }


def in_progress(url: str) -> list[str] | None:
    """MySQL/MariaDB: the revisions migrate-init records as started and not finished; None without its table."""
    rows = my_query(
        url,
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
        (PROGRESS_TABLE,),
    )
    if not rows[0][0]:
        return None
    return sorted(r[0] for r in my_query(url, f"SELECT revision FROM {PROGRESS_TABLE}"))


def columns(url: str, table: str) -> set[str]:
    """The column names of ``table``."""
    with connect(url) as connection:
        return {c["name"] for c in sa.inspect(connection).get_columns(table)}


def snapshot(url: str) -> dict:
    """Everything a dry run must not change: tables, columns with types, indexes, versions."""
    with connect(url) as connection:
        inspector = sa.inspect(connection)
        found = {}
        for table in sorted(inspector.get_table_names()):
            found[table] = {
                "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
                "indexes": sorted(ix["name"] or "" for ix in inspector.get_indexes(table)),
            }
        version = []
        if "alembic_version" in found:
            version = sorted(r[0] for r in connection.execute(sa.text("SELECT version_num FROM alembic_version")))
        return {"tables": found, "versions": version}


def count(url: str, table: str, where: str = "") -> int:
    """``SELECT COUNT(*)`` of ``table``, with an optional ``WHERE ...`` clause."""
    return query(url, f'SELECT COUNT(*) FROM "{table}" {where}')[0][0]


def table_count(url: str, table: str) -> int:
    """How many tables named ``table`` the catalog lists (0 or 1; more would be a bug)."""
    if is_sqlite(url):
        sql, params = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        return sqlite_query(url, sql, params)[0][0]
    if is_mysql(url):
        return my_query(
            url,
            "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = %s AND TABLE_TYPE = 'BASE TABLE'",
            (table,),
        )[0][0]
    return pg_query(url, "SELECT count(*) FROM pg_class WHERE relname = %s AND relkind = 'r'", (table,))[0][0]


def integrity(url: str) -> list[tuple]:
    """SQLite's ``PRAGMA integrity_check``: ``[("ok",)]`` for a sound file."""
    return sqlite_query(url, "PRAGMA integrity_check")


def all_rows(url: str, table: str) -> list[dict]:
    """Every row of ``table`` in primary-key order, as ``{column: value}``."""
    with connect(url) as connection:
        target = sa.Table(table, sa.MetaData(), autoload_with=connection)
        order = list(target.primary_key.columns) or list(target.columns)
        return [dict(r._mapping) for r in connection.execute(sa.select(target).order_by(*order))]


def fingerprint(url: str) -> tuple:
    """Everything a run could change: the snapshot (schema, indexes, versions) and row counts."""
    state = snapshot(url)
    return state, {table: count(url, table) for table in state["tables"]}


# --- writing the rows a test starts from ---------------------------------------------


def insert_many(url: str, table: str, rows: list[dict]) -> None:
    """A bulk insert (executemany) into ``table``, in one transaction."""
    with connect(url) as connection:
        target = sa.Table(table, sa.MetaData(), autoload_with=connection)
        connection.execute(target.insert(), rows)
        connection.commit()


def add_users(url: str, *ids: str) -> None:
    for user_id in ids:
        query(
            url,
            "INSERT INTO \"user\" (id, name, email, role) VALUES (:id, :id, :email, 'user')",
            {"id": user_id, "email": f"{user_id}@example.com"},
        )


def drop_user_phone(url: str) -> None:
    """Remove user.phone by hand, keeping the rows (SQLite 3.35+ and PostgreSQL both DROP COLUMN)."""
    query(url, 'ALTER TABLE "user" DROP COLUMN phone')


# --- what the models define ----------------------------------------------------------


def load_models(folder: Path = SHIPPED):
    """The MetaData of ``folder``/models.py, imported under a name of its own."""
    name = f"_test_models_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, folder / "models.py")
    module = importlib.util.module_from_spec(spec)
    # Registered first: the models' string annotations resolve through sys.modules.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.Base.metadata


def models_schema(folder: Path = SHIPPED) -> dict[str, set[str]]:
    """``{table: {column, ...}}`` that ``folder``/models.py defines."""
    return {t.name: {c.name for c in t.columns} for t in load_models(folder).sorted_tables}


def assert_at_head(url: str, heads: list[str], slow_tables: tuple[str, ...] = ()) -> None:
    """Version, schema and data agree: the version is ``heads``, every model
    table and column exists, each slow table (chains.BODIES["slow"]) exists
    once with all its rows, and a SQLite file passes PRAGMA integrity_check."""
    assert versions(url) == sorted(heads)
    live = schema(url)
    for table, wanted in models_schema().items():
        assert table in live, f"table {table} missing"
        assert wanted <= live[table], f"{table} lacks {wanted - live[table]}"
    for table in slow_tables:
        assert table_count(url, table) == 1
        assert count(url, table) == SLOW_ROWS
    if is_sqlite(url):
        assert integrity(url) == [("ok",)]


# --- what a run logged ---------------------------------------------------------------


def running_upgrade_lines(out: str) -> list[str]:
    """Alembic's own "Running upgrade <from> -> <to>, <name>" lines."""
    return [line for line in out.splitlines() if "Running upgrade " in line]


def upgrade_count(out: str, revision: str, name: str) -> int:
    """How often ``Running upgrade ... -> revision, name`` was logged."""
    pattern = re.compile(rf"Running upgrade .*-> {re.escape(revision)}, {re.escape(name)}$")
    return sum(1 for line in running_upgrade_lines(out) if pattern.search(line))


def add_blobs(url_or_path: str | Path, megabytes: int, table: str = "stranger_blob") -> None:
    """Grow a SQLite database by ``megabytes`` (10 MB zero blobs, quick to write): a backup long enough to interrupt."""
    connection = sqlite3.connect(sqlite_path(url_or_path))
    try:
        connection.execute(f"CREATE TABLE {table} (b BLOB)")
        for _ in range(megabytes // 10):
            connection.execute(f"INSERT INTO {table} VALUES (zeroblob(10000000))")
        connection.commit()
    finally:
        connection.close()
