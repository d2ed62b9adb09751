"""Catalog snapshots: judge a migration by what it did to the schema, not by its SQL.

A migration's SQL can take many shapes (an ``ALTER`` with two subcommands, a
``DO`` block, several statements in one string, a batch rebuild); its effect on
the catalog has one.  :class:`EffectGuard` takes a :func:`snapshot` when a
migration starts and another inside the migration's own transaction, just
before it commits (Alembic's ``on_version_apply`` callbacks run there, after the
migration function and the version-table update).  :func:`losses` compares the
two; a loss without ALLOW_DESTRUCTIVE raises
:class:`~migrate_init.errors.DestructiveOperation` (exit 8), which rolls the
migration back with its version row.

A snapshot reads only the catalog (``sqlite_master`` + ``pragma_table_xinfo``,
``pg_catalog``, ``information_schema``), never a table's rows, so its cost does
not grow with the data.  Read-only.

What it cannot see: changes to rows (``DELETE``, ``UPDATE``, ``TRUNCATE``), and
on SQLite and MySQL a table dropped and created again with the same columns
(PostgreSQL notices that one through the table's oid).  What it cannot undo: a
migration that commits behind Alembic's back (``COMMIT`` in raw SQL,
``sqlite3.Connection.executescript``), and any DDL on MySQL/MariaDB, which
commits implicitly; there the loss is still reported, but it has happened.

The module imports neither SQLAlchemy nor Alembic: it works on a SQLAlchemy
``Connection`` (through ``exec_driver_sql``) or on a raw DBAPI connection
(``sqlite3``, ``psycopg2``, ``pymysql``; through a cursor).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, DestructiveOperation

VERSION_TABLE = "alembic_version"
# Alembic's SQLite batch mode rebuilds ``x`` as ``_alembic_tmp_x`` and renames it back.
BATCH_TMP_PREFIX = "_alembic_tmp_"

LOSS_KINDS = ("drop table", "drop column", "change type", "set not null")


@dataclass(frozen=True)
class Column:
    """One column as the catalog describes it.

    ``type`` is PostgreSQL's ``format_type(atttypid, atttypmod)`` (``character
    varying(50)``), SQLite's declared type upper-cased (``VARCHAR(50)``), or
    MySQL's ``COLUMN_TYPE`` lower-cased (``varchar(50)``).
    """

    name: str
    type: str
    nullable: bool
    default_present: bool
    generated: bool


@dataclass(frozen=True)
class Table:
    """A table with its columns in catalog order; ``table_id`` is PostgreSQL's oid."""

    name: str
    columns: dict[str, Column]
    table_id: int | None = None


@dataclass(frozen=True)
class Snapshot:
    """The user tables of one schema: ``tables[table][column] -> Column``.

    ``table_ids`` (PostgreSQL only) maps a table to its ``pg_class`` oid, so a
    table dropped and created again under the same name is told apart from one
    left alone.
    """

    dialect: str
    tables: dict[str, dict[str, Column]]
    schema: str | None = None
    table_ids: dict[str, int] = field(default_factory=dict)

    def table(self, name: str) -> Table | None:
        columns = self.tables.get(name)
        if columns is None:
            return None
        return Table(name, columns, self.table_ids.get(name))


@dataclass(frozen=True)
class Loss:
    """Something a migration would destroy.

    ``kind`` is one of :data:`LOSS_KINDS`.  ``detail`` is the column's type
    (``drop column``, ``set not null``), ``"old -> new"`` (``change type``) or
    what the table held (``drop table``).  ``renamed_to`` names the table or
    column that appeared in its place when the change looks like a rename;
    ``added`` marks a NOT NULL column without a default added to an existing table.
    """

    kind: str
    table: str
    column: str | None
    detail: str
    renamed_to: str | None = None
    added: bool = False

    def describe(self, done: bool = False) -> str:
        """One phrase, e.g. ``column account.name (TEXT) would be dropped``.

        With ``done``, in the past tense: ``... was dropped``.
        """
        where = f"{self.table}.{self.column}"
        be, become, change = (
            ("was", "became", "changed") if done else ("would be", "would become", "would change")
        )
        if self.kind == "drop table":
            text = f"table {self.table} ({self.detail}) {be} dropped"
        elif self.kind == "drop column":
            text = f"column {where} ({self.detail}) {be} dropped"
        elif self.kind == "change type":
            text = f"column {where} {change} type ({self.detail})"
        elif self.kind == "set not null" and self.added:
            text = f"column {where} ({self.detail}) {be} added NOT NULL without a default"
        elif self.kind == "set not null":
            text = f"column {where} ({self.detail}) {become} NOT NULL"
        else:  # pragma: no cover - LOSS_KINDS is closed
            text = f"{self.kind} {where}"
        if self.renamed_to:
            text += f" (renamed to {self.renamed_to}?)"
        return text


@dataclass(frozen=True)
class Finding:
    """Losses of one migration that were let through (allowed) or only recorded."""

    revision: str
    path: str
    losses: tuple[Loss, ...]


# --------------------------------------------------------------------------- reading


def engine_family(dialect: str) -> str:
    """``"sqlite"``, ``"postgresql"`` or ``"mysql"`` (MariaDB included) for a dialect name.

    Raises ConfigError for an engine whose catalog this module cannot read.
    """
    name = dialect.lower().partition("+")[0]
    if name == "sqlite":
        return "sqlite"
    if name in ("postgresql", "postgres"):
        return "postgresql"
    if name in ("mysql", "mariadb"):
        return "mysql"
    raise ConfigError(
        f"The destructive-change guard cannot read the catalog of a '{dialect}' "
        "database (it knows SQLite, PostgreSQL, MySQL and MariaDB). Set "
        "ALLOW_DESTRUCTIVE=true to migrate without the guard, after a backup."
    )


def snapshot(
    connection: Any,
    dialect: str,
    schema: str | None = None,
    *,
    version_table: str = VERSION_TABLE,
) -> Snapshot:
    """Read the user tables of ``schema`` (default: the current one).  Read-only.

    ``connection`` is a SQLAlchemy ``Connection`` or a raw DBAPI connection;
    the read happens in whatever transaction it has open, so it sees that
    transaction's own uncommitted DDL.  Skipped: the version table,
    SQLite's ``sqlite_*`` tables and ``_alembic_tmp_*`` (a batch rebuild in
    flight).
    """
    family = engine_family(dialect)
    ids: dict[str, int] = {}
    if family == "sqlite":
        tables = _sqlite(connection, schema or "main")
    elif family == "postgresql":
        tables, ids = _postgresql(connection, schema)
    else:
        tables = _mysql(connection, schema)
    skip = _name_key(family, version_table)
    kept = {
        name: columns
        for name, columns in tables.items()
        if _name_key(family, name) != skip
        and not name.startswith(BATCH_TMP_PREFIX)
        and not (family == "sqlite" and name.lower().startswith("sqlite_"))
    }
    return Snapshot(
        dialect=family,
        tables=kept,
        schema=schema,
        table_ids={name: ids[name] for name in kept if name in ids},
    )


def _rows(connection: Any, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    # The SQL goes to the DBAPI as is (no SQLAlchemy text() parsing), so it is
    # written in the driver's paramstyle and holds no literal '%'.
    exec_driver_sql = getattr(connection, "exec_driver_sql", None)
    if exec_driver_sql is not None:
        result = exec_driver_sql(sql, params) if params else exec_driver_sql(sql)
        return [tuple(row) for row in result.fetchall()]
    cursor = connection.cursor()
    try:
        if params:
            cursor.execute(sql, params)
        else:
            cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


_SQLITE_COLUMNS = """
SELECT m.name, p.name, p.type, p."notnull", p.dflt_value IS NOT NULL, p.pk, p.hidden
FROM {master} AS m JOIN pragma_table_xinfo(m.name, ?) AS p
WHERE m.type = 'table' AND m.sql NOT LIKE 'CREATE VIRTUAL TABLE %'
ORDER BY m.name, p.cid
"""
_SQLITE_VIRTUAL = (
    "SELECT name FROM {master} WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE %'"
)


def _sqlite(connection: Any, schema: str) -> dict[str, dict[str, Column]]:
    master = f"{_quote(schema)}.sqlite_master"
    tables: dict[str, dict[str, Column]] = {}
    for row in _rows(connection, _SQLITE_COLUMNS.format(master=master), (schema,)):
        _sqlite_column(tables.setdefault(row[0], {}), row[1:])
    # SQLite normalises the stored text to start "CREATE VIRTUAL TABLE ".  A
    # virtual table is read on its own: when its module is not loaded, its
    # pragma fails, and that must not blind the guard to the other tables.
    for (table,) in _rows(connection, _SQLITE_VIRTUAL.format(master=master)):
        columns = tables.setdefault(table, {})
        try:
            infos = _rows(
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
    return tables


def _sqlite_column(columns: dict[str, Column], info: tuple[Any, ...]) -> None:
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


# attidentity (PostgreSQL 10) counts as a default; attgenerated exists from 12 on,
# and a generated column's expression sits in pg_attrdef too (atthasdef).
_PG_COLUMNS = """
SELECT c.relname, c.oid::bigint, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
       NOT a.attnotnull, (a.atthasdef AND NOT {generated}) OR {identity}, {generated}
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute AS a
       ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND n.nspname = {schema}
ORDER BY c.relname, a.attnum
"""


def _postgresql(
    connection: Any, schema: str | None
) -> tuple[dict[str, dict[str, Column]], dict[str, int]]:
    version = _pg_server_version(connection)
    sql = _PG_COLUMNS.format(
        identity="a.attidentity <> ''" if version >= 100000 else "false",
        generated="a.attgenerated <> ''" if version >= 120000 else "false",
        schema="current_schema()" if schema is None else "%s",
    )
    rows = _rows(connection, sql, () if schema is None else (schema,))
    tables: dict[str, dict[str, Column]] = {}
    ids: dict[str, int] = {}
    for table, oid, name, type_, nullable, has_default, generated in rows:
        columns = tables.setdefault(table, {})
        ids[table] = int(oid)
        if name is not None:  # a table with no columns still counts
            columns[name] = Column(name, type_, bool(nullable), bool(has_default), bool(generated))
    return tables, ids


def _pg_server_version(connection: Any) -> int:
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
    return int(_rows(connection, "SELECT current_setting('server_version_num')")[0][0])


_MYSQL_COLUMNS = """
SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE, c.COLUMN_DEFAULT, c.EXTRA
FROM information_schema.COLUMNS AS c
JOIN information_schema.TABLES AS t
  ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE t.TABLE_TYPE = 'BASE TABLE' AND c.TABLE_SCHEMA = {schema}
ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION
"""


def _mysql(connection: Any, schema: str | None) -> dict[str, dict[str, Column]]:
    """MySQL and MariaDB; written to their documentation, not yet run against a server."""
    sql = _MYSQL_COLUMNS.format(schema="DATABASE()" if schema is None else "%s")
    tables: dict[str, dict[str, Column]] = {}
    for table, name, type_, is_nullable, default, extra in _rows(
        connection, sql, () if schema is None else (schema,)
    ):
        extra_text = _text(extra).upper()
        default_text = None if default is None else _text(default)
        tables.setdefault(_text(table), {})[_text(name)] = Column(
            name=_text(name),
            type=_text(type_).lower(),
            nullable=_text(is_nullable).upper() == "YES",
            # MariaDB reports the default of a nullable column as the word NULL.
            default_present=(default_text is not None and default_text != "NULL")
            or "AUTO_INCREMENT" in extra_text,
            # MySQL 8 marks expression defaults DEFAULT_GENERATED; those are defaults.
            generated="VIRTUAL GENERATED" in extra_text
            or "STORED GENERATED" in extra_text
            or "PERSISTENT GENERATED" in extra_text,
        )
    return tables


def open_transaction(connection: Any) -> bool | None:
    """Whether the driver reports an open transaction on ``connection``; None if it cannot tell.

    False means that whatever ran so far is committed: a rollback now undoes nothing.
    """
    raw = connection
    if hasattr(connection, "exec_driver_sql"):  # SQLAlchemy: reach the DBAPI connection
        pooled = connection.connection
        raw = getattr(pooled, "driver_connection", None) or pooled
    flag = getattr(raw, "in_transaction", None)  # sqlite3
    if isinstance(flag, bool):
        return flag
    # psycopg2 (2.8+) and psycopg 3 report libpq's PQtransactionStatus; 0 is IDLE.
    status = getattr(getattr(raw, "info", None), "transaction_status", None)
    if isinstance(status, int):
        return status != 0
    return None


def _text(value: Any) -> str:
    # Some MySQL drivers return information_schema values as bytes.
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _name_key(family: str, name: str) -> str:
    # SQLite compares identifiers case-insensitively (ASCII only); MySQL does
    # so for column names, and for table names only on some platforms.
    return name.lower() if family == "sqlite" else name


def _column_key(family: str, name: str) -> str:
    return name.lower() if family in ("sqlite", "mysql") else name


# --------------------------------------------------------------------------- judging


def losses(before: Snapshot, after: Snapshot) -> list[Loss]:
    """What disappeared or tightened between two snapshots of the same schema.

    Losses, in the order of ``before``'s tables and columns:

    - ``drop table``: a table is gone (or, on PostgreSQL, its name now belongs
      to a different table: it was dropped and created again);
    - ``drop column``: a column is gone; a rename counts, since code that reads
      the old name breaks (``renamed_to`` guesses the new name);
    - ``change type``: a column's type changed, or the column became generated;
    - ``set not null``: an existing nullable column became NOT NULL, or a NOT
      NULL column without a default (and not generated) was added to a table
      that already existed, which breaks the inserts of the code still running.

    Type policy: any change of the type string is a loss, except

    - the same type spelled another way: PostgreSQL's ``format_type`` is
      already canonical; SQLite spellings are compared the way SQLite stores
      and SQLAlchemy reads them (``INT`` = ``INTEGER``, ``BOOL`` = ``BOOLEAN``,
      an unknown name = its affinity, ``NUMERIC(10,2)`` = ``NUMERIC(10, 2)``),
      which is also what a batch rebuild re-declares; MySQL integer display
      widths (``int(11)`` = ``int``) are ignored;
    - widening a varchar: ``VARCHAR(50)`` -> ``VARCHAR(100)``, -> unbounded
      ``VARCHAR``, or -> ``TEXT``.  The reverse and every other change
      (numeric precision included) is a loss.

    Additions (tables, nullable columns, NOT NULL columns with a default,
    columns of new tables) are never losses.  The same policy holds on every
    engine, so a migration refused on PostgreSQL is refused on SQLite too.
    """
    family = engine_family(before.dialect)
    if engine_family(after.dialect) != family:
        raise ValueError(f"cannot compare a {family} snapshot with a {after.dialect} one")
    found: list[Loss] = []
    after_tables = {_name_key(family, name): name for name in after.tables}
    before_keys = {_name_key(family, name) for name in before.tables}
    for table, old_columns in before.tables.items():
        new_name = after_tables.get(_name_key(family, table))
        recreated = (
            new_name is not None
            and table in before.table_ids
            and new_name in after.table_ids
            and before.table_ids[table] != after.table_ids[new_name]
        )
        if new_name is None or recreated:
            found.append(
                Loss(
                    "drop table",
                    table,
                    None,
                    _table_detail(old_columns, recreated),
                    _renamed_table(family, before, after, table, before_keys),
                )
            )
            continue
        found.extend(_column_losses(family, table, old_columns, after.tables[new_name]))
    return found


def _table_detail(columns: dict[str, Column], recreated: bool) -> str:
    names = ", ".join(columns) or "no columns"
    count = f"{len(columns)} column{'s' if len(columns) != 1 else ''}: {names}"
    return f"{count}; dropped and created again" if recreated else count


def _renamed_table(
    family: str, before: Snapshot, after: Snapshot, table: str, before_keys: set[str]
) -> str | None:
    table_id = before.table_ids.get(table)
    if table_id is not None:
        for name, other_id in after.table_ids.items():
            if other_id == table_id and name != table:
                return name
        return None
    shape = _shape(family, before.tables[table])
    matches = [
        name
        for name, columns in after.tables.items()
        if _name_key(family, name) not in before_keys and _shape(family, columns) == shape
    ]
    return matches[0] if len(matches) == 1 else None


def _shape(family: str, columns: dict[str, Column]) -> tuple[tuple[str, object], ...]:
    return tuple(
        (_column_key(family, c.name), _canonical(family, c.type)) for c in columns.values()
    )


def _column_losses(
    family: str, table: str, old: dict[str, Column], new: dict[str, Column]
) -> list[Loss]:
    found: list[Loss] = []
    new_by_key = {_column_key(family, name): column for name, column in new.items()}
    old_keys = {_column_key(family, name) for name in old}
    added = [column for key, column in new_by_key.items() if key not in old_keys]
    for name, column in old.items():
        now = new_by_key.get(_column_key(family, name))
        if now is None:
            same_type = [c.name for c in added if _same_type(family, column.type, c.type)]
            renamed = same_type[0] if len(same_type) == 1 else None
            found.append(Loss("drop column", table, name, column.type or "no type", renamed))
            continue
        if not _same_or_widened(family, column.type, now.type):
            found.append(Loss("change type", table, name, f"{column.type} -> {now.type}"))
        elif now.generated and not column.generated:
            found.append(Loss("change type", table, name, f"{column.type} -> {now.type} GENERATED"))
        if column.nullable and not now.nullable:
            found.append(Loss("set not null", table, name, now.type or "no type"))
    for column in added:
        if not column.nullable and not column.default_present and not column.generated:
            found.append(
                Loss("set not null", table, column.name, column.type or "no type", added=True)
            )
    return found


# SQLAlchemy's reading of SQLite declared types (sqlalchemy/dialects/sqlite/base.py,
# ischema_names and _resolve_type_affinity), which is also what Alembic's batch
# mode writes back when it rebuilds a table.  Affinity rules:
# https://www.sqlite.org/datatype3.html#determination_of_column_affinity
_SQLITE_NAMES = {
    "BIGINT": "BIGINT", "BLOB": "BLOB", "BOOL": "BOOLEAN", "BOOLEAN": "BOOLEAN",
    "CHAR": "CHAR", "DATE": "DATE", "DATE_CHAR": "DATE", "DATETIME": "DATETIME",
    "DATETIME_CHAR": "DATETIME", "DOUBLE": "DOUBLE", "DECIMAL": "DECIMAL",
    "FLOAT": "FLOAT", "INT": "INTEGER", "INTEGER": "INTEGER", "JSON": "JSON",
    "JSONB": "JSONB", "NUMERIC": "NUMERIC", "REAL": "REAL", "SMALLINT": "SMALLINT",
    "TEXT": "TEXT", "TIME": "TIME", "TIME_CHAR": "TIME", "TIMESTAMP": "TIMESTAMP",
    "VARCHAR": "VARCHAR", "NVARCHAR": "NVARCHAR", "NCHAR": "NCHAR",
}  # fmt: skip
_SQLITE_TYPE = re.compile(r"([\w ]+)(\(.*?\))?")
_MYSQL_INT_WIDTH = re.compile(r"\b(tinyint|smallint|mediumint|int|integer|bigint)\(\d+\)")
_PG_VARCHAR = re.compile(r"character varying(?:\((\d+)\))?")


def _canonical(family: str, declared: str) -> object:
    """A value equal for two spellings of the same type on ``family``."""
    text = " ".join(declared.split())
    if family == "sqlite":
        text = text.upper()
        match = _SQLITE_TYPE.match(text)
        name, args = (match.group(1).strip(), match.group(2)) if match else ("", None)
        if name in _SQLITE_NAMES:
            name = _SQLITE_NAMES[name]
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
    if family == "mysql":
        return _MYSQL_INT_WIDTH.sub(r"\1", text.lower())
    return text


def _same_type(family: str, old: str, new: str) -> bool:
    return _canonical(family, old) == _canonical(family, new)


def _string_class(family: str, declared: str) -> tuple[str, int | None] | None:
    """``("varchar", length or None)`` or ``("text", None)``; None for other types."""
    canonical = _canonical(family, declared)
    if family == "sqlite":
        assert isinstance(canonical, tuple)
        name, args = canonical
        if name in ("VARCHAR", "NVARCHAR") or (name == "TEXT" and args):
            return ("varchar", args[0] if args else None)
        return ("text", None) if name == "TEXT" else None
    assert isinstance(canonical, str)
    if family == "postgresql":
        match = _PG_VARCHAR.fullmatch(canonical)
        if match:
            return ("varchar", int(match.group(1)) if match.group(1) else None)
        return ("text", None) if canonical == "text" else None
    match = re.fullmatch(r"varchar\((\d+)\)", canonical)
    if match:
        return ("varchar", int(match.group(1)))
    return ("text", None) if canonical in ("text", "mediumtext", "longtext") else None


def _same_or_widened(family: str, old: str, new: str) -> bool:
    if _same_type(family, old, new):
        return True
    was, now = _string_class(family, old), _string_class(family, new)
    if was is None or now is None or was[0] != "varchar":
        return False
    if now[0] == "text" or now[1] is None:
        return True
    return was[1] is not None and now[1] >= was[1]


# --------------------------------------------------------------------------- the guard


class EffectGuard:
    """Refuse a migration whose effect on the catalog loses data.

    Call :meth:`begin` once the migration context is configured and before the
    first migration runs, then :meth:`check` from an ``on_version_apply``
    callback: Alembic calls it inside each migration's transaction, so raising
    there rolls the migration back together with its version row.  Each check
    becomes the starting point of the next migration.

    With ``allow`` (ALLOW_DESTRUCTIVE) or ``record`` (a dry run such as
    ``plan``), losses are appended to :attr:`findings` instead of raised.
    """

    def __init__(
        self,
        allow: bool,
        *,
        record: bool = False,
        version_table: str = VERSION_TABLE,
        schema: str | None = None,
    ) -> None:
        self.allow = allow
        self.record = record
        self.version_table = version_table
        self.schema = schema
        self.findings: list[Finding] = []
        self._before: Snapshot | None = None
        self._off = False

    def begin(self, connection: Any, dialect: str) -> None:
        """Take the snapshot the first migration is judged against."""
        try:
            engine_family(dialect)
        except ConfigError:
            if self.allow:  # nothing to protect: run blind, as asked
                self._off = True
                return
            raise
        self._off = False
        self._before = self._snapshot(connection, dialect)

    def check(self, connection: Any, dialect: str, revision: str, path: str) -> None:
        """Judge the migration that just ran, before its transaction commits."""
        if self._off:
            return
        if self._before is None:
            raise RuntimeError("EffectGuard.check() was called before begin()")
        after = self._snapshot(connection, dialect)
        found = losses(self._before, after)
        if found and not (self.allow or self.record):
            advice = (
                "Make the change additive (add a new column or table and copy the data "
                "over), or set ALLOW_DESTRUCTIVE=true if you mean it (back up first)."
            )
            if engine_family(dialect) == "mysql" or open_transaction(connection) is False:
                # Nothing left to roll back: the change is in the database.
                self._before = after
                what = "; ".join(loss.describe(done=True) for loss in found)
                raise DestructiveOperation(
                    f"Migration {revision} ({path}) lost data: {what}. It could not be "
                    "rolled back, because its changes were already committed (by the "
                    "migration itself, or by an engine that commits DDL at once). Restore "
                    f"the backup taken before this run. {advice}"
                )
            # The caller rolls this migration back, so the database returns to
            # self._before, which stays the starting point of any retry.
            what = "; ".join(loss.describe() for loss in found)
            raise DestructiveOperation(
                f"Migration {revision} ({path}) would lose data: {what}. It was rolled "
                f"back and the database stays at the revision before it. {advice}"
            )
        if found:
            self.findings.append(Finding(revision, path, tuple(found)))
        self._before = after

    def before_statement(self, connection: Any, dialect: str, statement: str, revision: str,
                         path: str) -> None:
        """MySQL/MariaDB: refuse a statement that would lose data, before it runs.

        Those engines commit DDL at once, so :meth:`check` comes too late to
        roll anything back.  ``connection`` is the DBAPI connection (the
        catalog is read on a cursor of its own, outside SQLAlchemy's
        statement in progress).  See :mod:`migrate_init.statements`.
        """
        from . import statements

        if self._off or self._before is None or engine_family(dialect) != "mysql":
            return
        if not statements.worth_judging(statement) or statements.only_adds(statement):
            return
        shown = " ".join(statement.split())
        shown = shown if len(shown) <= 160 else shown[:157] + "..."
        live = self._snapshot(connection, dialect)
        try:
            predicted, extra = statements.predict(live, statement)
        except statements.Unjudged as exc:
            if self.allow or self.record:
                return
            raise DestructiveOperation(
                f"Migration {revision} ({path}) runs a statement the destructive guard cannot judge: "
                f"{exc}. MySQL/MariaDB commit DDL at once, so the guard decides before a statement "
                f"runs, and it does not guess. The statement: {shown}. It was not run; statements "
                "before it in this migration are applied. Rewrite it in a form the guard reads "
                "(one ALTER TABLE per change), or set ALLOW_DESTRUCTIVE=true once you have checked it."
            ) from None
        found = extra + losses(self._before, predicted)
        if not found:
            return
        if self.allow or self.record:
            self.findings.append(Finding(revision, path, tuple(found)))
            return
        what = "; ".join(loss.describe() for loss in found)
        raise DestructiveOperation(
            f"Migration {revision} ({path}) would lose data: {what}. The statement was refused "
            f"before it ran ({shown}); MySQL/MariaDB commit DDL at once, so statements before it "
            "in this migration are applied. Make the change additive (add a new column or table "
            "and copy the data over), or set ALLOW_DESTRUCTIVE=true if you mean it (back up first)."
        )

    def _snapshot(self, connection: Any, dialect: str) -> Snapshot:
        return snapshot(connection, dialect, self.schema, version_table=self.version_table)
