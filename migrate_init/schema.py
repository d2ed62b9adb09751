"""The models named by MODELS: the schema they expect, how the database differs, and the fallbacks.

``load`` imports MODELS; ``expected_schema`` and ``counted_tables`` describe
it; ``drift`` says in words how the live database differs (``check``);
``create_missing_tables`` is the seed's create_all fallback and
``add_missing_columns`` the opt-in REPAIR_MISSING_COLUMNS layer.  Reading
the live schema for verification is :mod:`probe`'s job, not this module's.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData

from . import report
from .errors import ConfigError
from .probe import HISTORY_TABLE, PROGRESS_TABLE, SEED_TABLE

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def load(spec: str, search_path: list[Path]) -> MetaData:
    """Import ``module:attribute`` and return its SQLAlchemy MetaData.

    The attribute may be a MetaData or a declarative Base (anything with a
    ``.metadata``).  ``search_path`` (the migrations folder) is put on
    sys.path first, the way Alembic's ``prepend_sys_path`` does.
    """
    for folder in reversed(search_path):
        entry = str(folder)
        if entry not in sys.path:
            sys.path.insert(0, entry)
    module_name, _, attribute = spec.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"MODELS={spec!r}: cannot import module '{module_name}' ({exc}). Put it on PYTHONPATH or in MIGRATIONS_DIR."
        ) from None
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"MODELS={spec!r}: module '{module_name}' has no attribute '{attribute}'.") from None
    metadata = obj if isinstance(obj, MetaData) else getattr(obj, "metadata", None)
    if not isinstance(metadata, MetaData):
        raise ConfigError(f"MODELS={spec!r} is neither a MetaData nor a declarative Base.")
    _check_references(spec, metadata)
    return metadata


def _check_references(spec: str, metadata: MetaData) -> None:
    """Every foreign key of ``metadata`` names a table and column it holds; else exit 2 (issue 24).

    Otherwise the first thing that sorts the tables (verification, create_all)
    fails with SQLAlchemy's NoReferencedTableError, far from its cause: a
    models module that does not import the module defining the other table.
    """
    for table in metadata.tables.values():
        for key in table.foreign_keys:
            try:
                key.column  # noqa: B018 - resolving it is the check
            except sa.exc.NoReferencedTableError as exc:
                raise ConfigError(
                    f"MODELS={spec!r} is incomplete: {table.name}.{key.parent.name} has a foreign key to the "
                    f"table '{exc.table_name}', which its metadata does not hold. Import the module that "
                    f"defines '{exc.table_name}' in the module MODELS names (or fix the foreign key)."
                ) from None
            except sa.exc.NoReferencedColumnError as exc:
                raise ConfigError(
                    f"MODELS={spec!r} is incomplete: {table.name}.{key.parent.name} has a foreign key to "
                    f"'{exc.table_name}.{exc.column_name}', a column that table does not have. Fix the "
                    "foreign key or the model."
                ) from None


def expected_schema(metadata: MetaData) -> dict[str, set[str]]:
    """``{table: {column, ...}}`` for every table the models define."""
    return {table.name: {column.name for column in table.columns} for table in metadata.sorted_tables}


def counted_tables(metadata: MetaData) -> list[str]:
    """The tables whose row counts the summary reports.

    Tables marked ``info={"count_rows": True}``; when none is marked, all.
    """
    marked = [t.name for t in metadata.sorted_tables if t.info.get("count_rows")]
    return marked or [t.name for t in metadata.sorted_tables]


def drift(connection: Any, metadata: MetaData) -> list[str]:
    """Alembic's compare_metadata, in words: what differs between the database and the models.  Read-only."""

    def ours(name: str | None, type_: str, _parent: Any) -> bool:
        # migrate-init's own bookkeeping: seeds done, revisions in progress (MySQL/MariaDB), the history
        return not (type_ == "table" and name in (SEED_TABLE, PROGRESS_TABLE, HISTORY_TABLE))

    context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": ours})
    with report.quiet():  # Alembic logs each difference too; we print them once, in words
        diffs = compare_metadata(context, metadata)
    return [_describe(diff) for diff in _flatten(diffs)]


def _flatten(diffs: Any) -> Iterator[Any]:
    for diff in diffs:
        # Column modifications come grouped in a list of tuples.
        if isinstance(diff, list):
            yield from diff
        else:
            yield diff


_WHERE = {"add": ("in the models but not in the database"), "remove": ("in the database but not in the models")}


def _null(value: Any) -> str:
    return "NULL" if value else "NOT NULL"


def _describe(diff: Any) -> str:
    kind = diff[0]
    action, _, thing = kind.partition("_")
    if action in _WHERE and thing in ("table", "index"):
        return f"{thing} '{diff[1].name}' is {_WHERE[action]}"
    if action in _WHERE and thing == "column":
        return f"column '{diff[2]}.{diff[3].name}' is {_WHERE[action]}"
    if kind in ("modify_type", "modify_nullable", "modify_default"):
        show = _null if kind == "modify_nullable" else repr if kind == "modify_default" else str
        what = {"modify_type": "has type", "modify_nullable": "is", "modify_default": "has default"}[kind]
        return f"column '{diff[2]}.{diff[3]}' {what} {show(diff[5])} in the database, {show(diff[6])} in the models"
    if action in _WHERE and thing in ("fk", "constraint"):
        return f"{_constraint(diff[1])} is {_WHERE[action]}"
    return " ".join(_word(part) for part in diff)


def _constraint(constraint: Any) -> str:
    """A constraint in words: kind, name, table and columns, never a Python repr."""
    kind = type(constraint).__name__.replace("Constraint", " constraint").replace("ForeignKey", "foreign key")
    kind = kind.replace("Unique", "unique").replace("Check", "check").replace("PrimaryKey", "primary key")
    table = getattr(getattr(constraint, "table", None), "name", "?")
    columns = ", ".join(c.name for c in getattr(constraint, "columns", ()))
    text = f"{kind.strip()} {constraint.name or '(unnamed)'} on {table}({columns})"
    elements = getattr(constraint, "elements", None)
    if elements:
        text += " -> " + ", ".join(e.target_fullname for e in elements)
    return text


def _word(part: Any) -> str:
    if isinstance(part, str):
        return part
    name = getattr(part, "name", None)
    return f"{type(part).__name__.lower()} '{name}'" if name is not None else type(part).__name__


def create_missing_tables(engine: Engine, metadata: MetaData) -> list[str]:
    """``metadata.create_all`` in one transaction; returns the tables it created."""
    with engine.begin() as connection:
        before = set(sa.inspect(connection).get_table_names())
        metadata.create_all(connection, checkfirst=True)
        created = [t.name for t in metadata.sorted_tables if t.name not in before]
    report.event(
        "fallback_created",
        f"Fallback create_all created {len(created)} table(s)"
        + (f": {', '.join(created)}." if created else "; all tables already existed."),
        tables=created,
    )
    return created


def add_missing_columns(engine: Engine, metadata: MetaData) -> list[str]:
    """Add the missing columns; return ``table.column`` for each one added."""
    added: list[str] = []
    with engine.begin() as connection:
        inspector = sa.inspect(connection)
        live_tables = set(inspector.get_table_names())
        operations = Operations(MigrationContext.configure(connection))
        for table in metadata.sorted_tables:
            if table.name not in live_tables:
                continue
            live = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in live:
                    continue
                operations.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
                added.append(f"{table.name}.{column.name}")
                report.event(
                    "repaired",
                    f"Added missing column '{table.name}.{column.name}' as nullable (REPAIR_MISSING_COLUMNS=true).",
                    table=table.name,
                    column=column.name,
                )
    return added
