"""MySQL and MariaDB: judge a statement's effect on the catalog before it runs.

On SQLite and PostgreSQL the destructive guard (:class:`catalog.EffectGuard`)
compares the catalog after a migration with the one before, and rolls the
migration back.  MySQL commits every DDL statement on its own, so there is
nothing to roll back: the guard has to decide before a statement runs.

:func:`predict` reads the statement with a real SQL parser (sqlglot's MySQL
dialect, every statement of a multi-statement string, every subcommand of an
``ALTER TABLE``) and applies what it would do to a copy of the live catalog.
The loss policy stays the one of :func:`catalog.losses`, applied to the
catalog at the migration's start and the predicted one, so a migration
refused on PostgreSQL is refused here too.  A DDL statement the parser cannot
read is not guessed at: it is :class:`Unjudged`, and refused unless
ALLOW_DESTRUCTIVE is set.  Like the effect guard, this does not see rows:
``DELETE``, ``UPDATE`` and ``TRUNCATE`` are not judged.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from .catalog import Column, Loss, Snapshot

#: Statements worth parsing: anything else (SELECT, INSERT, UPDATE, SET...) changes no column.
_MAYBE_DDL = re.compile(r"\b(ALTER|DROP|RENAME|REPLACE|CREATE)\b", re.IGNORECASE)
#: First words of statements that change the catalog; unreadable ones are not guessed at.
_DDL_WORDS = ("ALTER", "DROP", "RENAME", "CREATE", "REPLACE")
_RENAME_PAIR = re.compile(r"\s*(`(?:[^`]|``)+`|[\w$.]+)\s+TO\s+(`(?:[^`]|``)+`|[\w$.]+)\s*", re.IGNORECASE)


class Unjudged(Exception):
    """A statement that changes the catalog in a way this module cannot read."""


def worth_judging(statement: str) -> bool:
    """Cheap test: could ``statement`` change tables or columns?"""
    return _MAYBE_DDL.search(statement) is not None


def predict(live: Snapshot, statement: str) -> tuple[Snapshot, list[Loss]]:
    """The catalog after ``statement`` runs on ``live``, and losses no catalog shows.

    The second value names what a catalog comparison cannot see:
    ``CREATE OR REPLACE TABLE`` of a table that exists.  Raises
    :class:`Unjudged` for a catalog change it cannot read.
    """
    import sqlglot
    from sqlglot import exp

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # it warns on every fallback to Command
    tables = {name: dict(columns) for name, columns in live.tables.items()}
    extra: list[Loss] = []
    try:
        trees = sqlglot.parse(statement, read="mysql")
    except sqlglot.errors.SqlglotError as exc:
        if _first_word(statement) in _DDL_WORDS:
            raise Unjudged(f"the SQL parser cannot read it ({str(exc).splitlines()[0][:120]})") from None
        trees = []
    for tree in trees:
        if tree is None:
            continue
        if isinstance(tree, exp.Drop):
            _drop(tables, tree)
        elif isinstance(tree, exp.Create):
            _create(tables, tree, extra)
        elif isinstance(tree, exp.Alter):
            _alter(tables, tree)
        elif isinstance(tree, exp.Command):
            _command(tables, tree)
    return Snapshot(live.dialect, tables, live.schema), extra


def _first_word(statement: str) -> str:
    text = re.sub(r"(/\*.*?\*/|--[^\n]*\n|#[^\n]*\n|\s)+", " ", statement + "\n", flags=re.DOTALL).strip()
    return text.split(" ", 1)[0].upper() if text else ""


def _key(tables: dict[str, Any], name: str) -> str | None:
    """The catalog's spelling of table ``name`` (MySQL compares table names exactly on Linux)."""
    return name if name in tables else None


def _column_key(columns: dict[str, Column], name: str) -> str | None:
    for existing in columns:
        if existing.lower() == name.lower():  # column names never depend on case in MySQL
            return existing
    return None


def _table_name(node: Any) -> str:
    return str(node.name)


def _targets(drop: Any) -> list[Any]:
    """What a DROP names: sqlglot keeps several under ``tables``, one under ``this``."""
    found = drop.args.get("tables") or drop.expressions or ([drop.this] if drop.this is not None else [])
    return list(found)


def _drop(tables: dict[str, dict[str, Column]], tree: Any) -> None:
    kind = str(tree.args.get("kind") or "").upper()
    if kind in ("DATABASE", "SCHEMA"):
        tables.clear()
    elif kind == "TABLE":
        for table in _targets(tree):
            key = _key(tables, _table_name(table))
            if key is not None:
                del tables[key]
    # DROP INDEX, VIEW, TRIGGER, PROCEDURE...: no column is lost


def _create(tables: dict[str, dict[str, Column]], tree: Any, extra: list[Loss]) -> None:
    from sqlglot import exp

    if str(tree.args.get("kind") or "").upper() != "TABLE":
        return
    target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    name = _table_name(target)
    key = _key(tables, name)
    if key is not None and tree.args.get("replace"):
        names = ", ".join(tables[key]) or "no columns"
        extra.append(Loss("drop table", key, None, f"{len(tables[key])} columns: {names}; "
                          "dropped and created again by CREATE OR REPLACE"))
    if key is not None and not tree.args.get("replace"):
        return  # CREATE TABLE IF NOT EXISTS of an existing table changes nothing
    columns: dict[str, Column] = {}
    if isinstance(tree.this, exp.Schema):
        for definition in tree.this.expressions:
            if isinstance(definition, exp.ColumnDef):
                column = _column(definition)
                columns[column.name] = column
    tables[key or name] = columns


def _column(definition: Any, old: Column | None = None) -> Column:
    """A column as MySQL stores a definition: nullable unless NOT NULL (or PRIMARY KEY)."""
    from sqlglot import exp

    nullable, default, generated = True, False, False
    for constraint in definition.args.get("constraints") or ():
        kind = constraint.args.get("kind")
        if isinstance(kind, exp.NotNullColumnConstraint):
            nullable = bool(kind.args.get("allow_null"))
        elif isinstance(kind, exp.PrimaryKeyColumnConstraint):
            nullable = False
        elif isinstance(kind, exp.DefaultColumnConstraint | exp.AutoIncrementColumnConstraint):
            default = True
        elif isinstance(kind, exp.ComputedColumnConstraint | exp.GeneratedAsIdentityColumnConstraint):
            generated = True
    declared = definition.args.get("kind")
    type_text = declared.sql(dialect="mysql").lower() if declared is not None else (old.type if old else "")
    return Column(name=str(definition.name), type=type_text, nullable=nullable,
                  default_present=default, generated=generated)


def _alter(tables: dict[str, dict[str, Column]], tree: Any) -> None:
    from sqlglot import exp

    if str(tree.args.get("kind") or "").upper() != "TABLE":
        return
    name = _table_name(tree.this)
    key = _key(tables, name)
    actions = tree.args.get("actions") or ()
    if key is None:
        return  # a table this migration created after the catalog was read, or none: nothing of the start is lost
    columns = tables[key]
    for action in actions:
        if isinstance(action, exp.ColumnDef):
            column = _column(action)
            if _column_key(columns, column.name) is None:
                columns[column.name] = column
        elif isinstance(action, exp.Drop):
            if str(action.args.get("kind") or "").upper() == "COLUMN":
                for target in _targets(action):
                    found = _column_key(columns, str(target.name))
                    if found is not None:
                        del columns[found]
        elif isinstance(action, exp.ModifyColumn):
            new = action.this
            old_name = action.args.get("rename_from")
            found = _column_key(columns, str(old_name.name if old_name is not None else new.name))
            old = columns.pop(found) if found is not None else None
            columns[str(new.name)] = _column(new, old)
        elif isinstance(action, exp.AlterColumn):
            found = _column_key(columns, str(action.name))
            if found is None:
                continue
            old = columns[found]
            dtype = action.args.get("dtype")
            columns[found] = Column(
                name=old.name,
                type=dtype.sql(dialect="mysql").lower() if dtype is not None else old.type,
                nullable=old.nullable if action.args.get("allow_null") is None else bool(action.args["allow_null"]),
                default_present=(old.default_present or action.args.get("default") is not None)
                and not action.args.get("drop"),
                generated=old.generated,
            )
        elif isinstance(action, exp.RenameColumn):
            found = _column_key(columns, str(action.this.name))
            if found is not None:
                old = columns.pop(found)
                new_name = str(action.args["to"].name)
                columns[new_name] = Column(new_name, old.type, old.nullable, old.default_present, old.generated)
        elif isinstance(action, exp.AlterRename):
            tables[_table_name(action.this)] = tables.pop(key)
            key = _table_name(action.this)
            columns = tables[key]
        elif isinstance(action, exp.AddConstraint | exp.DropPrimaryKey):
            continue  # indexes and keys hold no data of their own
        else:
            raise Unjudged(f"ALTER TABLE {name} {action.sql(dialect='mysql')[:80]}: a subcommand "
                           "the guard does not know")


def _command(tables: dict[str, dict[str, Column]], tree: Any) -> None:
    """What sqlglot keeps as raw text: RENAME TABLE is read here, other DDL is not guessed at."""
    word = str(tree.this).upper()
    rest = "" if tree.expression is None else str(getattr(tree.expression, "this", tree.expression))
    if word == "RENAME" and rest.upper().lstrip().startswith("TABLE"):
        pairs = rest.lstrip()[len("TABLE"):].split(",")
        for pair in pairs:
            match = _RENAME_PAIR.fullmatch(pair)
            if match is None:
                raise Unjudged(f"RENAME TABLE {rest[5:85].strip()}: not read")
            old, new = (part.strip("`").replace("``", "`").rsplit(".", 1)[-1] for part in match.groups())
            key = _key(tables, old)
            if key is not None:
                tables[new] = tables.pop(key)
        return
    if word in _DDL_WORDS:
        raise Unjudged(f"{word} {rest[:80].strip()}: the SQL parser cannot read this statement")
