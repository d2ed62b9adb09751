"""MySQL and MariaDB: judge a statement's effect on the catalog before it runs.

On SQLite and PostgreSQL the destructive guard (:class:`effects.EffectGuard`)
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

A statement is read the way the server will read it: under the session's
``sql_mode`` (issue 25, N8), so ``NO_BACKSLASH_ESCAPES`` ends ``'a\\'`` at its
second quote and ``ANSI_QUOTES`` makes ``"x"`` a name, not a string.  A table
keeps its identity through renames (N9): another table renamed onto a table's
name (``RENAME TABLE t TO t_old, t_new TO t``) stands for it only if it holds
its rows (read before the statement runs), and an empty one created under its
name makes it count as dropped.  ``ENGINE=`` on a table holding rows (N7) is a
candidate loss unless the engine is a durable one
(:data:`catalog.DURABLE_ENGINES`).  A column's type is spelled as the catalog
will show it (``ZEROFILL`` is ``unsigned zerofill``, N31), with its character
set (N10), so that the check after the statement agrees with the prediction.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterator
from typing import Any

from .catalog import Column, Loss, Snapshot, _table_detail, charset_name, charset_of_collation, engine_loss

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
#: The mysql client's own command that changes the statement delimiter (seed files, not migrations).
_DELIMITER_COMMAND = re.compile(r"delimiter[ \t]+(\S+)[^\n]*(?:\n|\Z)", re.IGNORECASE)
#: The character set MySQL gives NCHAR/NVARCHAR ("national" types).
_NATIONAL_CHARSET = "utf8mb3"
#: Column types with a character set (the others have none: numbers, dates, BINARY, BLOB).
_STRING_TYPES = re.compile(r"(?:national\s+)?(?:n?char|n?varchar|tinytext|text|mediumtext|longtext|enum|set)\b")


class Unjudged(Exception):
    """A statement that changes the catalog in a way this module cannot read."""


def worth_judging(statement: str) -> bool:
    """Cheap test: could ``statement`` change tables or columns?"""
    return _MAYBE_DDL.search(statement) is not None


def sql_mode_flags(sql_mode: str) -> tuple[bool, bool]:
    """``(no_backslash_escapes, ansi_quotes)`` of a session's ``@@sql_mode``."""
    modes = {mode.strip().upper() for mode in sql_mode.split(",")}
    return "NO_BACKSLASH_ESCAPES" in modes, "ANSI_QUOTES" in modes


@functools.lru_cache(maxsize=4)
def _dialect(no_backslash_escapes: bool, ansi_quotes: bool) -> Any:
    """sqlglot's MySQL dialect, tokenising strings and names the way ``sql_mode`` says (N8)."""
    from sqlglot.dialects.mysql import MySQL

    if not (no_backslash_escapes or ansi_quotes):
        return MySQL
    base = MySQL.Tokenizer
    attributes: dict[str, Any] = {}
    if no_backslash_escapes:  # a backslash is a character like any other; only a doubled quote escapes
        attributes["STRING_ESCAPES"] = [escape for escape in base.STRING_ESCAPES if escape != "\\"]
    if ansi_quotes:  # "x" is a name
        attributes["QUOTES"] = [quote for quote in base.QUOTES if quote != '"']
        attributes["IDENTIFIERS"] = [*base.IDENTIFIERS, '"']
    tokenizer = type("Tokenizer", (base,), attributes)
    name = "MySQL" + ("NoBackslashEscapes" if no_backslash_escapes else "") + ("AnsiQuotes" if ansi_quotes else "")
    return type(name, (MySQL,), {"Tokenizer": tokenizer})


def only_adds(statement: str, sql_mode: str = "") -> bool:
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
    dialect = _dialect(*sql_mode_flags(sql_mode))
    for part in split(statement, sql_mode):
        try:
            trees = sqlglot.parse(part, read=dialect)
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
                if any(isinstance(option, exp.EngineProperty) for option in tree.args.get("options") or ()):
                    return False  # judged by the engine it leaves and the rows it holds (N7)
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


def predict(live: Snapshot, statement: str, sql_mode: str = "") -> tuple[Snapshot, list[Loss]]:
    """The catalog after ``statement`` runs on ``live``, and losses no catalog shows.

    The second value holds what a catalog of columns does not show: a table
    moved to an engine that does not keep its rows (``change engine``); the
    caller adds it to :func:`catalog.losses`.  ``sql_mode`` is the session's
    ``@@sql_mode``.  Raises :class:`Unjudged` for a catalog change it cannot
    read.
    """
    import sqlglot
    from sqlglot import exp

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # it warns on every fallback to Command
    effects = _Effects(live)
    dialect = _dialect(*sql_mode_flags(sql_mode))
    for part in split(_unwrap_executable_comments(statement), sql_mode):
        try:
            trees = sqlglot.parse(part, read=dialect)
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
    return effects.predicted(live), effects.extra


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
        out.extend((statement[position : match.start()], " ", statement[match.end() : end], " "))
        position = end + 2


def split(text: str, sql_mode: str = "", *, client: bool = False) -> list[str]:
    """``text`` cut into statements at its delimiters (not those in strings, names or comments).

    Quoting follows ``sql_mode`` as the server does (a backslash escapes in
    strings unless ``NO_BACKSLASH_ESCAPES``; ``"..."`` is a name under
    ``ANSI_QUOTES``).  With ``client``, a ``DELIMITER xx`` line changes the
    delimiter, as in the mysql client (a seed file with a trigger's
    ``BEGIN ... END``).  A piece holding only comments is left out: the
    server answers it with "Query was empty".  Each statement is then
    parsed on its own, so that one the parser cannot read (``DO SLEEP(1)``)
    does not hide the DDL after it.
    """
    return [statement for statement, _end, _delimiter in scan(text, sql_mode, client=client)]


def scan(
    text: str, sql_mode: str = "", *, client: bool = False, start: int = 0, delimiter: str = ";"
) -> Iterator[tuple[str, int, str]]:
    """:func:`split`'s statements from ``start``, each with where it ends and the delimiter after it."""
    no_backslash_escapes, ansi_quotes = sql_mode_flags(sql_mode)
    position, begin, code, end = start, start, False, len(text)
    while position < end:
        command = _DELIMITER_COMMAND.match(text, position) if client and not code else None
        if command is not None:
            delimiter, position, begin = command.group(1), command.end(), command.end()
            continue
        if text.startswith(delimiter, position):
            if code:
                yield text[begin:position].strip(), position + len(delimiter), delimiter
            position += len(delimiter)
            begin, code = position, False
            continue
        char = text[position]
        if char in "'\"`":
            escapes = not no_backslash_escapes and char != "`" and not (ansi_quotes and char == '"')
            position = _quoted_end(text, position, escapes)
            code = True
        elif char == "#" or (
            text.startswith("--", position) and text[position + 2 : position + 3] in ("", " ", "\t", "\r", "\n")
        ):
            newline = text.find("\n", position)
            position = end if newline < 0 else newline + 1
        elif text.startswith("/*", position):
            code = code or _EXECUTABLE_COMMENT.match(text, position) is not None  # the server runs those
            close = text.find("*/", position + 2)
            position = end if close < 0 else close + 2
        else:
            code = code or not char.isspace()
            position += 1
    if code:
        yield text[begin:].strip(), end, delimiter


def _quoted_end(text: str, position: int, escapes: bool) -> int:
    """Where the string or name opened at ``position`` ends (after its closing quote)."""
    quote, position = text[position], position + 1
    while position < len(text):
        char = text[position]
        if escapes and char == "\\":
            position += 2
        elif char == quote and text[position + 1 : position + 2] == quote:
            position += 2  # a doubled quote is the quote itself
        elif char == quote:
            return position + 1
        else:
            position += 1
    return position


def _first_word(statement: str) -> str:
    text = re.sub(r"(/\*.*?\*/|--[^\n]*\n|#[^\n]*\n|\s)+", " ", statement + "\n", flags=re.DOTALL).strip()
    return text.split(" ", 1)[0].upper() if text else ""


class _Effects:
    """The catalog as the statement changes it, and where each table of the live catalog went."""

    def __init__(self, live: Snapshot) -> None:
        self.tables = {name: dict(columns) for name, columns in live.tables.items()}
        #: Which live table each name holds now; None for a table this statement created.  A new
        #: table under a live table's name is left out of the prediction, so the live one counts as
        #: dropped; a live table renamed onto it stands for it, judged by the rows it holds (N9).
        self.origin: dict[str, str | None] = {name: name for name in live.tables}
        #: (table, column in lower case) dropped or renamed away; then added again (left out).
        self.gone_columns: set[tuple[str, str]] = set()
        self.recreated_columns: set[tuple[str, str]] = set()
        #: MySQL: each table's engine and default character set (a MODIFY without one takes it).
        self.engines = dict(live.engines)
        self.charsets = dict(live.charsets)
        #: Losses no catalog of columns shows (an engine that keeps no rows).
        self.extra: list[Loss] = []

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
        self.origin.pop(key, None)
        self.gone_columns = {item for item in self.gone_columns if item[0] != key}
        self.recreated_columns = {item for item in self.recreated_columns if item[0] != key}

    def create_table(self, name: str, columns: dict[str, Column]) -> None:
        """A new, empty table: left out of the prediction if a live table had its name."""
        self.tables[name] = dict(columns)
        self.origin[name] = None

    def rename_table(self, key: str, new: str) -> None:
        self.tables[new] = self.tables.pop(key)
        self.origin[new] = self.origin.pop(key, None)
        for options in (self.engines, self.charsets):
            if key in options:
                options[new] = options.pop(key)
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

    def change_engine(self, key: str, engine: str) -> None:
        """``ENGINE=``: a candidate loss when the table's rows may not survive it (N7)."""
        old = self.engines.get(key, "unknown")
        self.engines[key] = engine
        live_name = self.origin.get(key)
        loss = engine_loss(live_name, old, engine) if live_name is not None else None
        if loss is not None:  # (not for a table this statement created: it is empty)
            self.extra.append(loss)

    def predicted(self, live: Snapshot) -> Snapshot:
        """The catalog after the statement, without the tables and columns it created again empty.

        A live table whose name another live table took (``RENAME TABLE t TO
        t_old, t_new TO t``) is a candidate loss of its own, in :attr:`extra`:
        its values stay under its name only if ``t_new`` holds them.
        """
        tables: dict[str, dict[str, Column]] = {}
        for name, columns in self.tables.items():
            origin = self.origin.get(name)
            if name in live.tables and origin is None:
                continue  # a new, empty table under a live table's name: that one is gone from it
            if name in live.tables and origin != name:
                went = [other for other, was in self.origin.items() if was == name]
                detail = f"{_table_detail(live.tables[name], False)}; replaced by {origin}"
                self.extra.append(
                    Loss(
                        "drop table", name, None, detail, went[0] if went else None, recreated=True, replaced_by=origin
                    )
                )
            tables[name] = {
                column: definition
                for column, definition in columns.items()
                if (name, column.lower()) not in self.recreated_columns
            }
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


def _column(definition: Any, old: Column | None = None, table_charset: str | None = None) -> Column:
    """A column as MySQL stores a definition: nullable unless NOT NULL (or PRIMARY KEY).

    Its type is spelled as the catalog will show it, so that the check after
    the statement agrees with this prediction (N31): ``ZEROFILL`` implies
    ``UNSIGNED``.  Its character set is the one named (``CHARACTER SET``,
    or a ``COLLATE``'s), ``utf8mb3`` for NCHAR/NVARCHAR, or else the table's
    default (``table_charset``), as the server does (N10).
    """
    from sqlglot import exp

    nullable, default, generated, zerofill = True, False, False, False
    charset: str | None = None
    for constraint in definition.args.get("constraints") or ():
        kind = constraint.args.get("kind")
        if isinstance(kind, exp.CharacterSetColumnConstraint):
            charset = charset_name(kind.this.name)
        elif isinstance(kind, exp.CollateColumnConstraint) and charset is None:
            charset = charset_of_collation(kind.this.name)
        elif isinstance(kind, exp.ZeroFillColumnConstraint):
            zerofill = True
        elif isinstance(kind, exp.NotNullColumnConstraint):
            nullable = bool(kind.args.get("allow_null"))
        elif isinstance(kind, exp.PrimaryKeyColumnConstraint):
            nullable = False
        elif isinstance(kind, exp.DefaultColumnConstraint | exp.AutoIncrementColumnConstraint):
            default = True
        elif isinstance(kind, exp.ComputedColumnConstraint | exp.GeneratedAsIdentityColumnConstraint):
            generated = True
    declared = definition.args.get("kind")
    type_text = declared.sql(dialect="mysql").lower() if declared is not None else (old.type if old else "")
    if zerofill:
        type_text += ("" if " unsigned" in type_text else " unsigned") + " zerofill"
    if declared is not None and declared.this in (exp.DataType.Type.NCHAR, exp.DataType.Type.NVARCHAR):
        charset = charset or _NATIONAL_CHARSET
    if declared is None:
        charset = charset or (old.charset if old else None)
    elif _STRING_TYPES.match(type_text):
        charset = charset or table_charset
    else:
        charset = None
    return Column(
        name=str(definition.name),
        type=type_text,
        nullable=nullable,
        default_present=default,
        generated=generated,
        charset=charset,
    )


def _alter(effects: _Effects, tree: Any) -> None:
    from sqlglot import exp

    if str(tree.args.get("kind") or "").upper() != "TABLE":
        return
    name = _table_name(tree.this)
    key = effects.key(name)
    actions = tree.args.get("actions") or ()
    if key is None:
        return  # a table this migration created after the catalog was read, or none: nothing of the start is lost
    for option in tree.args.get("options") or ():
        # Other table options (ROW_FORMAT, COMMENT, AUTO_INCREMENT, ALGORITHM, LOCK...) keep every value.
        if isinstance(option, exp.EngineProperty):
            effects.change_engine(key, option.this.name)
        elif isinstance(option, exp.CharacterSetProperty):
            effects.charsets[key] = charset_name(option.this.name)  # the default of columns defined later
    for action in actions:
        columns = effects.tables[key]
        if isinstance(action, exp.ColumnDef):
            column = _column(action, table_charset=effects.charsets.get(key))
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
            effects.put(key, _column(new, old, effects.charsets.get(key)))
        elif isinstance(action, exp.AlterColumn):
            found = _column_key(columns, str(action.name))
            if found is None:
                continue
            old = columns[found]
            dtype = action.args.get("dtype")
            effects.put(
                key,
                Column(
                    name=old.name,
                    type=dtype.sql(dialect="mysql").lower() if dtype is not None else old.type,
                    nullable=old.nullable if action.args.get("allow_null") is None else bool(action.args["allow_null"]),
                    default_present=(old.default_present or action.args.get("default") is not None)
                    and not action.args.get("drop"),
                    generated=old.generated,
                    charset=old.charset,
                ),
            )
        elif isinstance(action, exp.RenameColumn):
            found = _column_key(columns, str(action.this.name))
            if found is not None:
                old = effects.drop_column(key, found)
                new_name = str(action.args["to"].name)
                effects.put(
                    key,
                    Column(new_name, old.type, old.nullable, old.default_present, old.generated, charset=old.charset),
                )
        elif isinstance(action, exp.AlterRename):
            new_table = _table_name(action.this)
            effects.rename_table(key, new_table)
            key = new_table
        elif isinstance(action, exp.AddConstraint | exp.DropPrimaryKey):
            continue  # indexes and keys hold no data of their own
        else:
            raise Unjudged(
                f"ALTER TABLE {name} {action.sql(dialect='mysql')[:80]}: a subcommand the guard does not know"
            )


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
        pairs = rest.lstrip()[len("TABLE") :].split(",")
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
