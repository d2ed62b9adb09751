"""What a candidate loss held: rows, non-NULL values and a fingerprint of them.  Read-only.

The catalog diff (:func:`catalog.losses`) says what a migration changed in
the schema; whether that lost anything depends on the values (issue 22): a
dropped table without rows, or a dropped column holding only NULLs, loses
nothing, and a type change loses nothing when every value reads the same
afterwards.  This module reads exactly the tables and columns the diff
named, with one query per table, so its cost grows with those tables only.

A fingerprint is the count of non-NULL values and a digest of them read as
text, independent of row order (a type change may rewrite the table).  Two
spellings of one value (``'007'`` and ``7`` on SQLite, ``5`` and ``5.00``
after ``numeric(10,2)``, a jsonb that normalises its text) count as a change:
the guard does not guess which ones the application treats as equal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from . import engines
from .catalog import Snapshot, query_rows


@dataclass(frozen=True)
class Held:
    """One table's rows, and per column ``(non-NULL count, digest or None)``."""

    rows: int
    columns: dict[str, tuple[int, str | None]] = field(default_factory=dict)

    def count(self, column: str) -> int:
        return self.columns.get(column, (0, None))[0]


def read(connection: Any, snapshot: Snapshot, wanted: dict[str, dict[str, bool]]) -> dict[str, Held]:
    """``wanted[table][column] -> digest?``: what those tables of ``snapshot`` hold now.

    A table missing from ``snapshot`` is left out of the answer.
    """
    held: dict[str, Held] = {}
    for table, columns in wanted.items():
        if table not in snapshot.tables:
            continue
        present = {c: digest for c, digest in columns.items() if c in snapshot.tables[table]}
        held[table] = _table(connection, snapshot, table, present)
    return held


def _table(connection: Any, snapshot: Snapshot, table: str, columns: dict[str, bool]) -> Held:
    family = snapshot.dialect
    name = qualified(snapshot, table)
    counts = [f"COUNT({_q(family, c)})" for c in columns]
    row = query_rows(connection, f"SELECT {', '.join(['COUNT(*)', *counts])} FROM {name}")[0]
    rows = int(row[0])
    found: dict[str, tuple[int, str | None]] = {c: (int(n), None) for c, n in zip(columns, row[1:], strict=True)}
    for column, digest in columns.items():
        # Where DDL is not transactional, judged before a statement runs: no "after" to compare a digest with.
        if digest and found[column][0] and engines.of(family).transactional_ddl:
            found[column] = (found[column][0], _digest(connection, family, name, _q(family, column)))
    return Held(rows, found)


def _digest(connection: Any, family: str, table: str, column: str) -> str:
    sql = engines.of(family).digest_sql(table, column)
    if sql is not None:  # the server digests the values itself
        return str(query_rows(connection, sql)[0][0])
    # A BLOB as hex: its bytes need not be UTF-8 text.
    text = f"CASE WHEN typeof({column}) = 'blob' THEN hex({column}) ELSE CAST({column} AS TEXT) END"
    values = sorted(str(v) for (v,) in query_rows(connection, f"SELECT {text} FROM {table} WHERE {column} IS NOT NULL"))
    digest = hashlib.blake2b(digest_size=16)
    for value in values:
        digest.update(value.encode("utf-8", "surrogatepass") + b"\x1f")
    return digest.hexdigest()


def qualified(snapshot: Snapshot, table: str) -> str:
    """``table`` of ``snapshot`` as SQL, with its schema when it has one."""
    family = snapshot.dialect
    schema, name = snapshot.locations.get(table, (snapshot.schema, table))
    schema = schema or engines.of(family).default_schema
    if schema is None:
        return _q(family, name)
    return f"{_q(family, schema)}.{_q(family, name)}"


def _q(family: str, identifier: str) -> str:
    return engines.of(family).quote(identifier)
