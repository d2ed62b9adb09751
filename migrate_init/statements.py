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

Two things a comparison of the end states alone would miss are handled so
that they are still judged against the migration's start (a table or column
this migration created loses nothing):

- a column dropped (or renamed away) and added again under its name in the
  same statement (``ALTER TABLE t DROP COLUMN c, ADD COLUMN c ...``), and a
  table dropped (or renamed away) and created again (``CREATE OR REPLACE
  TABLE``, ``DROP TABLE t; CREATE TABLE t ...``): the new, empty one is left
  out of the predicted catalog, so the old one counts as dropped;
- MySQL's executable comments (``/*! ... */``, MariaDB's ``/*M! ... */``),
  which the server runs and a parser skips as comments: they are read as
  the statement they hold.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from .catalog import Column, Loss, Snapshot

#: Statements worth parsing: anything else (SELECT, INSERT, UPDATE, SET...) changes no column.
_MAYBE_DDL = re.compile(r"\b(ALTER|DROP|RENAME|REPLACE|CREATE)\b", re.IGNORECASE)
#: First words of statements that change the catalog; unreadable ones are not guessed at.
#: (A statement that starts with REPLACE is MySQL's REPLACE INTO, which writes rows only.)
_DDL_WORDS = ("ALTER", "DROP", "RENAME", "CREATE")
#: One name of RENAME TABLE: `quoted` or plain, with or without its database (`db`.`t`, db.t).
_NAME = r"(?:`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(?:`(?:[^`]|``)+`|[\w$]+))?"
_RENAME_PAIR = re.compile(rf"\s*({_NAME})\s+TO\s+({_NAME})\s*", re.IGNORECASE)
_LAST_PART = re.compile(r"(?:`((?:[^`]|``)+)`|([\w$]+))\s*\Z")
#: The opening of an executable comment: /*!, /*!50001, MariaDB's /*M!100101.
_EXECUTABLE_COMMENT = re.compile(r"/\*M?!(\d{5,6})?")


class Unjudged(Exception):
    """A statement that changes the catalog in a way this module cannot read."""


def worth_judging(statement: str) -> bool:
    """Cheap test: could ``statement`` change tables or columns?"""
    return _MAYBE_DDL.search(statement) is not None


def only_adds(statement: str) -> bool:
    """Whether every statement of ``statement`` can only add: no catalog read is needed to judge it.

    Reads (``SHOW``, ``DESCRIBE``, ``SELECT``), ``SET``, ``CREATE TABLE`` and
    ``CREATE INDEX`` (not ``OR REPLACE``), and ``ALTER
    TABLE`` whose every subcommand adds a nullable column, a column with a
    default, an index or a key.  A fresh deploy sends almost nothing else, and
    on MariaDB a catalog read costs milliseconds.  Anything this does not
    recognise is judged in full by :func:`predict`.
    """
    import sqlglot
    from sqlglot import exp

    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    if _EXECUTABLE_COMMENT.search(statement):
        return False
    for part in _statements(statement):
        try:
            trees = sqlglot.parse(part, read="mysql")
        except sqlglot.errors.SqlglotError:
            return False
        for tree in trees:
            if tree is None:
                continue
            if isinstance(tree, exp.Show | exp.Describe | exp.Select | exp.Set):
                continue  # reads (SQLAlchemy's inspector sends SHOW CREATE TABLE) and session settings
            if isinstance(tree, exp.Create):
                if tree.args.get("replace") or str(tree.args.get("kind") or "").upper() not in ("TABLE", "INDEX"):
                    return False
            elif isinstance(tree, exp.Alter):
                for action in tree.args.get("actions") or ():
                    if isinstance(action, exp.AddConstraint):
                        continue
                    if not isinstance(action, exp.ColumnDef):
                        return False
                    column = _column(action)
                    if not (column.nullable or column.default_present or column.generated):
                        return False  # NOT NULL without a default: judged like on every engine
            else:
                return False
    return True


def predict(live: Snapshot, statement: str) -> tuple[Snapshot, list[Loss]]:
    """The catalog after ``statement`` runs on ``live``, and losses no catalog shows.

    Every loss is told by the predicted catalog (see the module docstring),
    so the second value is empty; it stays for callers that add it to
    :func:`catalog.losses`.  Raises :class:`Unjudged` for a catalog
    change it cannot read.
    """
    import sqlglot
    from sqlglot import exp

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # it warns on every fallback to Command
    effects = _Effects(live)
    for part in _statements(_unwrap_executable_comments(statement)):
        try:
            trees = sqlglot.parse(part, read="mysql")
        except sqlglot.errors.SqlglotError as exc:
            if _first_word(part) in _DDL_WORDS:
                raise Unjudged(f"the SQL parser cannot read it ({str(exc).splitlines()[0][:120]})") from None
            continue  # not DDL (DO, LOAD DATA...): it changes no column
        for tree in trees:
            if tree is None:
                continue
            if isinstance(tree, exp.Drop):
                _drop(effects, tree)
            elif isinstance(tree, exp.Create):
                _create(effects, tree)
            elif isinstance(tree, exp.Alter):
                _alter(effects, tree)
            elif isinstance(tree, exp.Command):
                _command(effects, tree)
    return effects.predicted(live), []


def _unwrap_executable_comments(statement: str) -> str:
    """``/*!50001 DROP TABLE t */`` -> `` DROP TABLE t ``: the server runs what such a comment holds."""
    if "/*" not in statement:
        return statement
    out: list[str] = []
    position = 0
    while True:
        match = _EXECUTABLE_COMMENT.search(statement, position)
        end = statement.find("*/", match.end()) if match is not None else -1
        if match is None or end < 0:
            out.append(statement[position:])
            return "".join(out)
        out.extend((statement[position:match.start()], " ", statement[match.end():end], " "))
        position = end + 2


def _statements(text: str) -> list[str]:
    """``text`` cut at its semicolons (not those in strings, identifiers or comments).

    Each statement is then parsed on its own, so that one the parser cannot
    read (``DO SLEEP(1)``) does not hide the DDL after it.
    """
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.errors import SqlglotError

    try:
        tokens = Dialect.get_or_raise("mysql").tokenize(text)
    except SqlglotError:
        return [text]  # parsed whole below: a DDL statement then is Unjudged
    parts: list[str] = []
    start = 0
    for token in tokens:
        if token.token_type.name == "SEMICOLON":
            parts.append(text[start:token.start])
            start = token.end + 1
    parts.append(text[start:])
    return [part for part in parts if part.strip()]


def _first_word(statement: str) -> str:
    text = re.sub(r"(/\*.*?\*/|--[^\n]*\n|#[^\n]*\n|\s)+", " ", statement + "\n", flags=re.DOTALL).strip()
    return text.split(" ", 1)[0].upper() if text else ""


class _Effects:
    """The catalog as the statement changes it, and the names whose data it destroyed on the way."""

    def __init__(self, live: Snapshot) -> None:
        self.tables = {name: dict(columns) for name, columns in live.tables.items()}
        #: Tables dropped or renamed away: one created under such a name is a new, empty table.
        self.gone_tables: set[str] = set()
        #: Tables created again after that (left out of the prediction).
        self.recreated_tables: set[str] = set()
        #: (table, column in lower case) dropped or renamed away; then added again (left out).
        self.gone_columns: set[tuple[str, str]] = set()
        self.recreated_columns: set[tuple[str, str]] = set()

    def key(self, name: str) -> str | None:
        """The catalog's spelling of table ``name``.

        MySQL compares table names exactly on Linux, but not with
        ``lower_case_table_names`` set (Windows, macOS, some managed
        servers): a name that matches one table only in another case is
        taken to be that table (at worst a statement that would fail anyway
        is judged).
        """
        if name in self.tables:
            return name
        found = [existing for existing in self.tables if existing.lower() == name.lower()]
        return found[0] if len(found) == 1 else None

    def drop_table(self, key: str) -> None:
        del self.tables[key]
        self.gone_tables.add(key)
        self.recreated_tables.discard(key)
        self.gone_columns = {item for item in self.gone_columns if item[0] != key}
        self.recreated_columns = {item for item in self.recreated_columns if item[0] != key}

    def create_table(self, name: str, columns: dict[str, Column]) -> None:
        """A new, empty table: left out if its name held data earlier in the statement."""
        if name in self.gone_tables:
            self.recreated_tables.add(name)
        self.tables[name] = dict(columns)

    def rename_table(self, key: str, new: str) -> None:
        self.tables[new] = self.tables.pop(key)
        self.gone_tables.add(key)
        self.gone_tables.discard(new)  # renamed into place: its rows came along
        if key in self.recreated_tables:
            self.recreated_tables.discard(key)
            self.recreated_tables.add(new)
        self.gone_columns = {(new if t == key else t, c) for t, c in self.gone_columns}
        self.recreated_columns = {(new if t == key else t, c) for t, c in self.recreated_columns}

    def drop_column(self, table: str, found: str) -> Column:
        self.gone_columns.add((table, found.lower()))
        self.recreated_columns.discard((table, found.lower()))
        return self.tables[table].pop(found)

    def add_column(self, table: str, column: Column) -> None:
        """A new, empty column (ADD): left out if its name held data earlier in the statement."""
        if (table, column.name.lower()) in self.gone_columns:
            self.recreated_columns.add((table, column.name.lower()))
        self.put(table, column)

    def put(self, table: str, column: Column) -> None:
        """Store ``column``, a new one or a new definition of one."""
        self.tables[table][column.name] = column

    def predicted(self, live: Snapshot) -> Snapshot:
        """The catalog after the statement, without the tables and columns it created again empty."""
        tables: dict[str, dict[str, Column]] = {}
        for name, columns in self.tables.items():
            if name not in self.recreated_tables:
                tables[name] = {column: definition for column, definition in columns.items()
                                if (name, column.lower()) not in self.recreated_columns}
        return Snapshot(live.dialect, tables, live.schema)


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


def _drop(effects: _Effects, tree: Any) -> None:
    kind = str(tree.args.get("kind") or "").upper()
    if kind in ("DATABASE", "SCHEMA"):
        for name in list(effects.tables):
            effects.drop_table(name)
    elif kind == "TABLE":
        for table in _targets(tree):
            key = effects.key(_table_name(table))
            if key is not None:
                effects.drop_table(key)
    # DROP INDEX, VIEW, TRIGGER, PROCEDURE...: no column is lost


def _create(effects: _Effects, tree: Any) -> None:
    from sqlglot import exp

    if str(tree.args.get("kind") or "").upper() != "TABLE":
        return
    target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    name = _table_name(target)
    key = effects.key(name)
    if key is not None and not tree.args.get("replace"):
        return  # CREATE TABLE IF NOT EXISTS of an existing table changes nothing
    if key is not None:
        effects.drop_table(key)  # CREATE OR REPLACE: dropped, then created again empty
    columns: dict[str, Column] = {}
    if isinstance(tree.this, exp.Schema):
        for definition in tree.this.expressions:
            if isinstance(definition, exp.ColumnDef):
                column = _column(definition)
                columns[column.name] = column
    effects.create_table(key or name, columns)


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


def _alter(effects: _Effects, tree: Any) -> None:
    from sqlglot import exp

    if str(tree.args.get("kind") or "").upper() != "TABLE":
        return
    name = _table_name(tree.this)
    key = effects.key(name)
    actions = tree.args.get("actions") or ()
    if key is None:
        return  # a table this migration created after the catalog was read, or none: nothing of the start is lost
    for action in actions:
        columns = effects.tables[key]
        if isinstance(action, exp.ColumnDef):
            column = _column(action)
            if _column_key(columns, column.name) is None:
                effects.add_column(key, column)
        elif isinstance(action, exp.Drop):
            if str(action.args.get("kind") or "").upper() == "COLUMN":
                for target in _targets(action):
                    found = _column_key(columns, str(target.name))
                    if found is not None:
                        effects.drop_column(key, found)
        elif isinstance(action, exp.ModifyColumn):
            new = action.this
            old_name = action.args.get("rename_from")
            found = _column_key(columns, str(old_name.name if old_name is not None else new.name))
            if found is None:
                continue  # MODIFY/CHANGE of a column that is not there fails
            renamed = found.lower() != str(new.name).lower()  # CHANGE old new: renamed away
            old = effects.drop_column(key, found) if renamed else columns.pop(found)
            effects.put(key, _column(new, old))
        elif isinstance(action, exp.AlterColumn):
            found = _column_key(columns, str(action.name))
            if found is None:
                continue
            old = columns[found]
            dtype = action.args.get("dtype")
            effects.put(key, Column(
                name=old.name,
                type=dtype.sql(dialect="mysql").lower() if dtype is not None else old.type,
                nullable=old.nullable if action.args.get("allow_null") is None else bool(action.args["allow_null"]),
                default_present=(old.default_present or action.args.get("default") is not None)
                and not action.args.get("drop"),
                generated=old.generated,
            ))
        elif isinstance(action, exp.RenameColumn):
            found = _column_key(columns, str(action.this.name))
            if found is not None:
                old = effects.drop_column(key, found)
                new_name = str(action.args["to"].name)
                effects.put(key, Column(new_name, old.type, old.nullable, old.default_present, old.generated))
        elif isinstance(action, exp.AlterRename):
            new_table = _table_name(action.this)
            effects.rename_table(key, new_table)
            key = new_table
        elif isinstance(action, exp.AddConstraint | exp.DropPrimaryKey):
            continue  # indexes and keys hold no data of their own
        else:
            raise Unjudged(f"ALTER TABLE {name} {action.sql(dialect='mysql')[:80]}: a subcommand "
                           "the guard does not know")


def _unquoted_table(name: str) -> str:
    """The table of ``db.t``, ```db`.`t` ``, ```t` ``: its last part, unquoted."""
    match = _LAST_PART.search(name)
    assert match is not None  # _NAME matched it
    quoted, plain = match.groups()
    return quoted.replace("``", "`") if quoted is not None else plain


def _command(effects: _Effects, tree: Any) -> None:
    """What sqlglot keeps as raw text: RENAME TABLE is read here, other DDL is not guessed at."""
    word = str(tree.this).upper()
    rest = "" if tree.expression is None else str(getattr(tree.expression, "this", tree.expression))
    if word == "RENAME" and rest.upper().lstrip().startswith("TABLE"):
        pairs = rest.lstrip()[len("TABLE"):].split(",")
        for pair in pairs:
            match = _RENAME_PAIR.fullmatch(pair)
            if match is None:
                raise Unjudged(f"RENAME TABLE {rest[5:85].strip()}: not read")
            old, new = (_unquoted_table(part) for part in match.groups())
            key = effects.key(old)
            if key is not None:
                effects.rename_table(key, new)
        return
    if word in _DDL_WORDS:
        raise Unjudged(f"{word} {rest[:80].strip()}: the SQL parser cannot read this statement")
