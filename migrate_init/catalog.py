"""Catalog snapshots: judge a migration by what it did to the schema, not by its SQL.

A migration's SQL can take many shapes (an ``ALTER`` with two subcommands, a
``DO`` block, several statements in one string, a batch rebuild); its effect on
the catalog has one.  The guard (:class:`effects.EffectGuard`) takes a
:func:`snapshot` when a migration starts and another inside the migration's
own transaction, right after its ``upgrade()``.  :func:`losses` compares the two and gives the
*candidates*; :mod:`values` then reads what exactly those tables and columns
held before and after (the guard rolls back to a savepoint to read the
"before", and runs the migration again when nothing would be lost).  A loss of
values without ALLOW_DESTRUCTIVE raises
:class:`~migrate_init.errors.DestructiveOperation` (exit 8), which rolls the
migration back with its version row (issue 22).

A snapshot reads only the catalog (``sqlite_master`` + ``pragma_table_xinfo``,
``pg_catalog`` for every user schema, ``information_schema``), never a table's
rows, so its cost does not grow with the data.  Read-only.  Each snapshot after
the first re-reads only the tables whose mark changed (issue 27), so a chain's
cost does not grow with the schema times the chain either.

Identity: PostgreSQL's ``pg_class`` oid and ``attnum``, SQLite's root page
(a rebuilt table) and column order; MySQL has none, and its statement guard
(:mod:`statements`) sees a drop and re-add in the statement itself.  What it
cannot see: changes to rows alone (``DELETE``, ``UPDATE``, ``TRUNCATE``).
What it cannot undo: a migration that commits behind Alembic's back
(``COMMIT`` in raw SQL, ``autocommit_block()``,
``sqlite3.Connection.executescript``), and any DDL on MySQL/MariaDB, which
commits implicitly; there the loss is still reported, but it has happened.

The module imports neither SQLAlchemy nor Alembic: it works on a SQLAlchemy
``Connection`` (through ``exec_driver_sql``) or on a raw DBAPI connection
(``sqlite3``, ``psycopg2``, ``pymysql``; through a cursor).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from . import engines
from .errors import ConfigError

VERSION_TABLE = "alembic_version"
# Alembic's SQLite batch mode rebuilds ``x`` as ``_alembic_tmp_x`` and renames it back.
BATCH_TMP_PREFIX = "_alembic_tmp_"

#: MySQL engines that keep every row on disk: moving a table between them keeps its values (N7).
#: Any other (BLACKHOLE keeps nothing, MEMORY loses the rows on restart, FEDERATED/CONNECT point
#: elsewhere...) is judged by the rows the table holds.
DURABLE_ENGINES = frozenset({"innodb", "myisam", "aria"})

LOSS_KINDS = ("drop table", "drop column", "replace column", "change type", "set not null", "change engine")


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
    #: PostgreSQL's ``attnum``: a column dropped and added again under its name gets a new one.
    ident: int | None = None
    #: MySQL's ``CHARACTER_SET_NAME`` (string columns only): a narrower one loses characters (N10).
    charset: str | None = None
    #: PostgreSQL's ``atttypid``: an enum (or domain) rebuilt under its old name reads the same in
    #: ``type`` but is another type, and the cast to it may have NULLed the values (issue 25 N3).
    type_id: int | None = None


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
    #: ``(schema, table)`` of a table named ``schema.table`` here (PostgreSQL, outside the current schema).
    locations: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    #: MySQL: each table's ENGINE, and its default character set (what a column defined without one gets).
    engines: dict[str, str] = field(default_factory=dict)
    charsets: dict[str, str] = field(default_factory=dict)
    #: What the reader saw of each table (SQLite: root page and CREATE text; PostgreSQL: oid, the read's
    #: horizon, the youngest pg_attribute row and the columns' types): the next :func:`snapshot` reuses the columns of a table whose mark is unchanged,
    #: so two snapshots may share a table's column dict; nothing may change one in place (copy it first).
    marks: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
    #: Read in the same round trip where the engine can (PostgreSQL 10+; None: not read), for the guard:
    #: the id of the transaction it was read in (a 1-tuple; its value None when none is assigned yet)
    #: and the deferred constraint triggers a COMMIT would fire (issue 27: fewer round trips).
    transaction: tuple[object] | None = field(default=None, compare=False, repr=False)
    deferred: str | None = field(default=None, compare=False, repr=False)

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
    #: ``drop table``: a table of that name is still there, but it is a new one (its values are compared).
    recreated: bool = False
    #: What the values judgement found (``2 rows``, ``3 non-NULL values``); empty before it ran.
    held: str = ""
    #: MySQL ``drop table`` (recreated): the table renamed onto this one's name, whose rows now stand for it.
    replaced_by: str | None = None

    def describe(self, done: bool = False) -> str:
        """One phrase, e.g. ``column account.name (TEXT) would be dropped``.

        With ``done``, in the past tense: ``... was dropped``.
        """
        where = f"{self.table}.{self.column}"
        be, become, change = ("was", "became", "changed") if done else ("would be", "would become", "would change")
        if self.kind == "drop table":
            text = f"table {self.table} ({self.detail}) {be} dropped"
        elif self.kind == "drop column":
            text = f"column {where} ({self.detail}) {be} dropped"
        elif self.kind == "replace column" and self.recreated:
            text = f"column {where} ({self.detail}) {change} its values in the table's rebuild"
        elif self.kind == "replace column":
            text = f"column {where} ({self.detail}) {be} dropped and added again under its name"
        elif self.kind == "change type":
            text = f"column {where} {change} type ({self.detail})"
        elif self.kind == "set not null" and self.added:
            text = f"column {where} ({self.detail}) {be} added NOT NULL without a default"
        elif self.kind == "set not null":
            text = f"column {where} ({self.detail}) {become} NOT NULL"
        elif self.kind == "change engine":
            text = f"table {self.table} {change} engine ({self.detail}), one that does not keep its rows on disk"
        else:  # pragma: no cover - LOSS_KINDS is closed
            text = f"{self.kind} {where}"
        if self.renamed_to:
            text += f" (renamed to {self.renamed_to}?)"
        if self.held:
            text += f", holding {self.held}"
        return text

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.kind, self.table, self.column)


@dataclass(frozen=True)
class Finding:
    """Losses of one migration that were let through (allowed) or only recorded."""

    revision: str
    path: str
    losses: tuple[Loss, ...]


# --------------------------------------------------------------------------- reading


@dataclass
class CatalogRead:
    """What an engine's catalog reader (:meth:`migrate_init.engines.Engine.read_catalog`) found."""

    #: ``{table: {column name: Column}}``, every table the reader was asked to watch.
    tables: dict[str, dict[str, Column]]
    #: The table's identity where the engine has one (SQLite's root page, PostgreSQL's oid).
    ids: dict[str, int] = field(default_factory=dict)
    #: PostgreSQL: ``{table: (schema, name)}``.
    locations: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    #: MySQL: ``{table: (storage engine, default character set)}``.
    options: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: A mark per table that changes whenever its columns do (incremental reads, issue 27).
    marks: dict[str, object] = field(default_factory=dict)
    #: See :class:`Snapshot`: what the same round trip read of the session, where the engine folds it in.
    transaction: tuple[object] | None = None
    deferred: str | None = None


def engine_family(dialect: str) -> str:
    """``"sqlite"``, ``"postgresql"`` or ``"mysql"`` (MariaDB included) for a dialect name.

    Raises ConfigError for an engine whose catalog this module cannot read.
    """
    if not engines.known(dialect):
        raise ConfigError(
            f"The destructive-change guard cannot read the catalog of a '{dialect}' "
            "database (it knows SQLite, PostgreSQL, MySQL and MariaDB). Set "
            "ALLOW_DESTRUCTIVE=true to migrate without the guard, after a backup."
        )
    return engines.of(dialect).name


def snapshot(
    connection: Any,
    dialect: str,
    schema: str | None = None,
    *,
    version_table: str = VERSION_TABLE,
    previous: Snapshot | None = None,
) -> Snapshot:
    """Read the user tables of ``schema`` (default: the current one).  Read-only.

    ``connection`` is a SQLAlchemy ``Connection`` or a raw DBAPI connection;
    the read happens in whatever transaction it has open, so it sees that
    transaction's own uncommitted DDL.  Skipped: the version table,
    SQLite's ``sqlite_*`` tables and ``_alembic_tmp_*`` (a batch rebuild in
    flight).

    ``previous``, an earlier snapshot of the same schema on the same
    connection, makes the read incremental (issue 27): on SQLite and
    PostgreSQL one cheap query lists every table with a mark that changes
    whenever anything its columns are read from changes, and only the tables
    whose mark differs from ``previous``'s are read in full; the others keep
    ``previous``'s column objects, so :func:`losses` can pass over them by
    identity.  The answer is the one a full read gives.  MySQL/MariaDB are
    always read in full.
    """
    family = engine_family(dialect)
    skip = _name_key(family, version_table)

    internal = engines.of(family).internal_prefix

    def watched(name: str, relname: str) -> bool:
        return (
            _name_key(family, relname) != skip
            and not name.startswith(BATCH_TMP_PREFIX)
            and not (internal and name.lower().startswith(internal))
        )

    if previous is not None and (previous.dialect != family or previous.schema != schema):
        previous = None
    read = engines.of(family).read_catalog(connection, schema, watched, previous)
    tables, ids, locations, options, marks = read.tables, read.ids, read.locations, read.options, read.marks
    kept = {name: columns for name, columns in tables.items() if watched(name, locations.get(name, (None, name))[1])}
    return Snapshot(
        dialect=family,
        tables=kept,
        schema=schema,
        table_ids={name: ids[name] for name in kept if name in ids},
        locations={name: locations[name] for name in kept if name in locations},
        engines={name: options[name][0] for name in kept if name in options},
        charsets={name: options[name][1] for name in kept if name in options},
        marks={name: marks[name] for name in kept if name in marks},
        transaction=read.transaction,
        deferred=read.deferred,
    )


def known_columns(previous: Snapshot | None) -> dict[object, dict[str, Column]]:
    """``previous``'s columns by mark: a table whose mark is among them has exactly those columns.

    By mark, not by name: a table renamed on PostgreSQL keeps its oid and columns, hence its mark.
    """
    if previous is None:
        return {}
    return {mark: previous.tables[name] for name, mark in previous.marks.items() if name in previous.tables}


def query_rows(connection: Any, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
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


def charset_of_collation(collation: str) -> str:
    """MySQL: the character set of a collation (``latin1_swedish_ci`` -> ``latin1``, ``binary``)."""
    return charset_name(collation.lower().split("_", 1)[0])


def charset_name(charset: str) -> str:
    """One spelling of a MySQL character set: ``utf8`` is ``utf8mb3`` (MySQL 8 and MariaDB 10.6 say so)."""
    charset = charset.lower()
    return "utf8mb3" if charset == "utf8" else charset


#: MySQL character sets and those that hold every character they hold (a change between them loses none).
_WIDER_CHARSETS = {
    "ascii": {"latin1", "utf8mb3", "utf8mb4"},
    "latin1": {"utf8mb3", "utf8mb4"},
    "utf8mb3": {"utf8mb4"},
}


def _charset_kept(old: str | None, new: str | None) -> bool:
    """Whether every character of a column in ``old`` exists in ``new`` (N10); unknown: yes."""
    return old is None or new is None or old == new or new in _WIDER_CHARSETS.get(old, set())


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


#: The engine of a family, memoised: the keys below are computed for every column of every migration.
_engine = functools.cache(engines.of)


def _name_key(family: str, name: str) -> str:
    # SQLite compares identifiers case-insensitively (ASCII only); MySQL does
    # so for column names, and for table names only on some platforms.
    return name.lower() if _engine(family).folds_table_names else name


def _column_key(family: str, name: str) -> str:
    return name.lower() if _engine(family).folds_column_names else name


# --------------------------------------------------------------------------- judging


def losses(before: Snapshot, after: Snapshot) -> list[Loss]:
    """What disappeared or tightened between two snapshots of the same schema.

    Losses, in the order of ``before``'s tables and columns:

    - ``drop table``: a table is gone (or, on PostgreSQL, its name now belongs
      to a different table: it was dropped and created again);
    - ``drop column``: a column is gone; a rename counts, since code that reads
      the old name breaks (``renamed_to`` guesses the new name);
    - ``change type``: a column's type changed, or the column became generated;
    - ``change engine`` (MySQL): a table moved to an engine that does not
      keep its rows on disk;
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
        if recreated and _engine(family).alters_by_rebuild and new_name is not None:
            # A rebuild (batch mode, or SQLite's own ALTER TABLE ... DROP COLUMN): the same
            # table in a new b-tree.  Each column that stayed is judged by its values.
            column_found = _column_losses(family, table, old_columns, after.tables[new_name])
            named = {loss.column for loss in column_found}
            found.extend(column_found)
            new_keys = {_column_key(family, name) for name in after.tables[new_name]}
            found.extend(
                Loss("replace column", table, name, column.type or "no type", recreated=True)
                for name, column in old_columns.items()
                if name not in named and _column_key(family, name) in new_keys
            )
            continue
        renamed = _renamed_table(family, before, after, table, before_keys) if new_name is None else None
        if renamed is not None and table in before.table_ids:
            # The same table (its oid or root page) under a new name: every value is still
            # there, so only what happened to its columns counts (issue 22).
            # (Named by the table's old name: the values before are read there.)
            found.extend(_column_losses(family, table, old_columns, after.tables[renamed]))
            continue
        if new_name is None or recreated:
            found.append(
                Loss(
                    "drop table",
                    table,
                    None,
                    _table_detail(old_columns, recreated),
                    _renamed_table(family, before, after, table, before_keys),
                    recreated=recreated,
                )
            )
            continue
        new_columns = after.tables[new_name]
        # An incremental snapshot hands an unchanged table's columns over as the same object:
        # equal columns in the same order lose nothing, so only the tables a migration touched
        # are compared (issue 27).  (Not dict equality: it ignores order, which _moved reads.)
        if new_columns is not old_columns and list(new_columns.values()) != list(old_columns.values()):
            found.extend(_column_losses(family, table, old_columns, new_columns))
        engine_change = engine_loss(table, before.engines.get(table), after.engines.get(new_name))
        if engine_change is not None:
            found.append(engine_change)
    return found


def engine_loss(table: str, old: str | None, new: str | None) -> Loss | None:
    """MySQL: ``table`` moved from engine ``old`` to ``new`` (N7), as a candidate loss; None if neither
    is known, nothing changed, or ``new`` keeps every row on disk (:data:`DURABLE_ENGINES`)."""
    if old is None or new is None or old.lower() == new.lower() or new.lower() in DURABLE_ENGINES:
        return None
    return Loss("change engine", table, None, f"{old} -> {new}")


def _table_detail(columns: dict[str, Column], recreated: bool) -> str:
    names = ", ".join(columns) or "no columns"
    count = f"{len(columns)} column{'s' if len(columns) != 1 else ''}: {names}"
    return f"{count}; dropped and created again" if recreated else count


def _renamed_table(family: str, before: Snapshot, after: Snapshot, table: str, before_keys: set[str]) -> str | None:
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
    return tuple((_column_key(family, c.name), _canonical(family, c.type)) for c in columns.values())


def _column_losses(family: str, table: str, old: dict[str, Column], new: dict[str, Column]) -> list[Loss]:
    found: list[Loss] = []
    new_by_key = {_column_key(family, name): column for name, column in new.items()}
    old_keys = {_column_key(family, name) for name in old}
    added = [column for key, column in new_by_key.items() if key not in old_keys]
    moved = _moved(family, old, new)
    for name, column in old.items():
        now = new_by_key.get(_column_key(family, name))
        if now is None:
            if column.ident is not None:  # PostgreSQL: a rename keeps the column's attnum
                same = next((c for c in added if c.ident == column.ident), None)
                if same is not None:  # the same column under a new name: its values are all there
                    if not _same_or_widened(family, column.type, same.type):
                        found.append(Loss("change type", table, same.name, f"{column.type} -> {same.type}"))
                    continue
                renamed = None
            else:
                same_type = [c.name for c in added if _same_type(family, column.type, c.type)]
                renamed = same_type[0] if len(same_type) == 1 else None
            found.append(Loss("drop column", table, name, column.type or "no type", renamed))
            continue
        if (column.ident is not None and now.ident is not None and column.ident != now.ident) or (
            _column_key(family, name) in moved
        ):
            # Same name, another column (issue 25, N2): judged by the values it holds.
            found.append(Loss("replace column", table, name, f"{column.type} -> {now.type}"))
            continue
        if not _charset_kept(column.charset, now.charset):
            found.append(
                Loss("change type", table, name, f"{column.type} {column.charset} -> {now.type} {now.charset}")
            )
        elif not _same_or_widened(family, column.type, now.type):
            found.append(Loss("change type", table, name, f"{column.type} -> {now.type}"))
        elif column.type_id is not None and now.type_id is not None and column.type_id != now.type_id:
            # The same name, another type (an enum rebuilt): judged by the values, as any type change.
            found.append(Loss("change type", table, name, f"{column.type} -> {now.type} (a new type of that name)"))
        elif now.generated and not column.generated:
            found.append(Loss("change type", table, name, f"{column.type} -> {now.type} GENERATED"))
        if column.nullable and not now.nullable:
            found.append(Loss("set not null", table, name, now.type or "no type"))
    for column in added:
        if not column.nullable and not column.default_present and not column.generated:
            found.append(Loss("set not null", table, column.name, column.type or "no type", added=True))
    return found


def _moved(family: str, old: dict[str, Column], new: dict[str, Column]) -> set[str]:
    """SQLite: columns that kept their name but not their place among the columns that stayed.

    SQLite cannot reorder columns: a column that moved was dropped and added
    again (ALTER TABLE ... ADD COLUMN appends).  Which of two swapped columns
    moved cannot be told, so both are named; their values decide.  A column
    dropped and added back as the last column keeps its place and is not
    seen (a documented limit; a batch rebuild is seen through the table's
    root page).
    """
    if not _engine(family).order_tells_rebuilds:
        return set()
    kept = {_column_key(family, name) for name in new}
    was = [k for k in (_column_key(family, name) for name in old) if k in kept]
    now = [k for k in (_column_key(family, name) for name in new) if k in set(was)]
    return {a for a, b in zip(was, now, strict=True) if a != b}


@functools.lru_cache(maxsize=4096)
def _canonical(family: str, declared: str) -> object:
    """A value equal for two spellings of the same type on ``family`` (:meth:`Engine.canonical_type`).

    Memoised: a schema spells few distinct types, and each is compared once per migration.
    """
    return _engine(family).canonical_type(declared)


def _same_type(family: str, old: str, new: str) -> bool:
    return _canonical(family, old) == _canonical(family, new)


def _string_class(family: str, declared: str) -> tuple[str, int | None] | None:
    """``("varchar", length or None)`` or ``("text", None)``; None for other types."""
    return _engine(family).string_class(_canonical(family, declared))


def _same_or_widened(family: str, old: str, new: str) -> bool:
    if _same_type(family, old, new):
        return True
    was, now = _string_class(family, old), _string_class(family, new)
    if was is None or now is None or was[0] != "varchar":
        return False
    if now[0] == "text" or now[1] is None:
        return True
    return was[1] is not None and now[1] >= was[1]
