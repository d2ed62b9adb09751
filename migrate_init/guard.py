"""The destructive-operation guard: refuse data-losing SQL unless ALLOW_DESTRUCTIVE=true.

It watches the SQL a migration sends, so a raw ``op.execute("DROP ...")`` is
caught as surely as ``op.drop_column``.  The table rebuild that Alembic's
batch mode performs on SQLite (create ``_alembic_tmp_x``, copy, drop ``x``,
rename) is additive when the new table keeps every column with its type, and
is let through; a rebuild that loses or retypes a column is refused.
"""

from __future__ import annotations

import re

from .errors import DestructiveOperation

_IDENT = r'(?:"[^"]+"|`[^`]+`|\[[^\]]+\]|[\w.]+)'
_RULES = [
    (re.compile(rf"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<table>{_IDENT})", re.I), "drop table"),
    (re.compile(rf"^\s*ALTER\s+TABLE\s+(?:ONLY\s+)?(?P<table>{_IDENT})\s+DROP\s+(?:COLUMN\s+)?(?!CONSTRAINT\b)(?P<column>{_IDENT})", re.I), "drop column"),
    (re.compile(rf"^\s*ALTER\s+TABLE\s+(?P<table>{_IDENT})\s+ALTER\s+(?:COLUMN\s+)?(?P<column>{_IDENT})\s+(?:SET\s+DATA\s+)?TYPE\b", re.I), "change a column's type"),
    (re.compile(rf"^\s*ALTER\s+TABLE\s+(?P<table>{_IDENT})\s+RENAME\b", re.I), "rename"),
    (re.compile(rf"^\s*ALTER\s+TABLE\s+(?P<table>{_IDENT})\s+ALTER\s+(?:COLUMN\s+)?(?P<column>{_IDENT})\s+SET\s+NOT\s+NULL", re.I), "add NOT NULL to an existing column"),
    (re.compile(rf"^\s*ALTER\s+TABLE\s+(?P<table>{_IDENT})\s+ADD\s+(?:COLUMN\s+)?(?P<column>{_IDENT})\s+(?![^;]*\bDEFAULT\b)[^;]*\bNOT\s+NULL\b", re.I), "add a NOT NULL column without a default"),
    (re.compile(rf"^\s*TRUNCATE\s+(?:TABLE\s+)?(?P<table>{_IDENT})", re.I), "truncate"),
]
_BATCH_TMP = "_alembic_tmp_"
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)


def classify(statement: str) -> tuple[str, str] | None:
    """``(operation, object)`` when ``statement`` is destructive, else None."""
    sql = _COMMENT.sub("", statement).strip()
    for pattern, operation in _RULES:
        match = pattern.match(sql)
        if match:
            table = _unquote(match.group("table"))
            column = match.groupdict().get("column")
            return operation, f"{table}.{_unquote(column)}" if column else table
    return None


def _unquote(name: str | None) -> str:
    return (name or "").strip('"`[]')


class Guard:
    """A ``before_cursor_execute`` listener for the migration engine."""

    def __init__(self, allow: bool, current_revision, record: list | None = None):
        self.allow = allow
        self._current = current_revision  # () -> (revision, path) or None
        # With a list, findings are recorded there instead of refused (lint, plan).
        self.record = record

    def install(self, engine) -> None:
        from sqlalchemy import event

        event.listen(engine, "before_cursor_execute", self._check)

    def _check(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self.allow:
            return
        found = classify(statement)
        if found is None:
            return
        operation, target = found
        if self._batch_rebuild_is_additive(cursor, operation, target):
            return
        revision, path = self._current() or (None, None)
        if self.record is not None:
            self.record.append((revision, path, operation, target, " ".join(statement.split())))
            return
        where = f"Migration {revision} ({path})" if revision else "A migration"
        raise DestructiveOperation(
            f"{where} tried a destructive operation: {operation} {target} "
            f"(SQL: {' '.join(statement.split())[:160]}). It was refused and nothing of "
            "that migration was applied. Make the change additive, or set "
            "ALLOW_DESTRUCTIVE=true if you mean it (back up first)."
        )

    @staticmethod
    def _batch_rebuild_is_additive(cursor, operation: str, target: str) -> bool:
        """SQLite batch mode: DROP x after copying into _alembic_tmp_x, then RENAME."""
        table = target.split(".")[0]
        if operation == "rename" and table.startswith(_BATCH_TMP):
            return True
        if operation != "drop table" or table.startswith(_BATCH_TMP):
            return operation == "drop table" and table.startswith(_BATCH_TMP)
        try:
            connection = cursor.connection
            old = _sqlite_columns(connection, table)
            new = _sqlite_columns(connection, _BATCH_TMP + table)
        except Exception:  # not SQLite, or no such table: not a batch rebuild
            return False
        if not new:
            return False
        lost = [c for c in old if c not in new]
        retyped = [c for c in old if c in new and old[c].upper() != new[c].upper()]
        return not lost and not retyped


def _sqlite_columns(dbapi_connection, table: str) -> dict[str, str]:
    rows = dbapi_connection.execute(f'PRAGMA table_info("{table}")').fetchall()
    return {row[1]: row[2] for row in rows}
