"""Small idempotent, additive helpers that migrations are built from.

Each inspects the live database first and only then acts, printing what it
did or that there was nothing to do, so a migration is safe to run twice and
safe on a database that the create_all fallback already shaped.  New columns
must be nullable or carry a server default: additive only.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from . import report


def _inspector() -> sa.engine.Inspector:
    return sa.inspect(op.get_bind())


def table_exists(table: str) -> bool:
    return table in _inspector().get_table_names()


def column_exists(table: str, column: str) -> bool:
    return column in {c["name"] for c in _inspector().get_columns(table)}


def create_table_if_missing(table: str, *columns: sa.schema.SchemaItem, **kw: Any) -> bool:
    """Create ``table`` whole unless it exists.  Returns whether it was created."""
    if table_exists(table):
        report.event("exists", f"Table '{table}' already exists; skipped.", table=table)
        return False
    op.create_table(table, *columns, **kw)
    report.event("created", f"Created table '{table}'.", table=table)
    return True


def add_column_if_missing(table: str, column: sa.Column[Any]) -> bool:
    """Add ``column`` to ``table`` unless it is there.

    A missing table is left alone: the migration that creates it (or the
    fallback) creates it whole, with the column.  Adding a nullable column is
    a metadata-only change on SQLite and PostgreSQL: no table rebuild, no
    data copy, whatever the table's size.
    """
    if not column.nullable and column.server_default is None:
        raise ValueError(
            f"Column {table}.{column.name} is NOT NULL without a server default; "
            "an additive migration must add nullable columns (or give a default)."
        )
    if not table_exists(table):
        report.event(
            "skipped",
            f"Table '{table}' does not exist; column '{column.name}' not added.",
            table=table,
            column=column.name,
        )
        return False
    if column_exists(table, column.name):
        report.event(
            "exists", f"Column '{table}.{column.name}' already exists; skipped.", table=table, column=column.name
        )
        return False
    op.add_column(table, column)
    report.event("added", f"Added column '{table}.{column.name}'.", table=table, column=column.name)
    return True


def create_index_if_missing(name: str, table: str, columns: list[str], *, unique: bool = False) -> bool:
    """Create index ``name`` on ``table`` unless an index of that name exists."""
    if not table_exists(table):
        return False
    if name in {ix["name"] for ix in _inspector().get_indexes(table)}:
        report.event("exists", f"Index '{name}' already exists; skipped.", index=name)
        return False
    op.create_index(name, table, columns, unique=unique)
    report.event("created", f"Created index '{name}' on '{table}'.", index=name, table=table)
    return True


def no_downgrade(revision: str) -> None:
    """Additive-only migrations are not undone: roll back the code instead.

    An older image starts on the newer, additive schema ("schema ahead of
    code"), so there is nothing to undo; dropping would lose data.
    """
    raise NotImplementedError(
        f"Revision {revision} is additive and has no downgrade: roll back the "
        "application image instead; it runs on the newer schema."
    )
