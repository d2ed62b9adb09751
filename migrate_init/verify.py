"""The integrity check: the live schema against the models.  Read-only."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import VerificationFailed


@dataclass
class Findings:
    missing_tables: list[str] = field(default_factory=list)
    missing_columns: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing_tables and not self.missing_columns

    def describe(self) -> str:
        parts = []
        if self.missing_tables:
            parts.append("missing tables: " + ", ".join(self.missing_tables))
        for table, columns in sorted(self.missing_columns.items()):
            parts.append(f"table '{table}' lacks columns: " + ", ".join(columns))
        return "; ".join(parts)


def compare(connection, expected: dict[str, set[str]]) -> Findings:
    """Which of the expected tables and columns the database lacks.  Read-only."""
    from sqlalchemy import inspect

    inspector = inspect(connection)
    live_tables = set(inspector.get_table_names())
    findings = Findings()
    for table, columns in sorted(expected.items()):
        if table not in live_tables:
            findings.missing_tables.append(table)
            continue
        live = {c["name"] for c in inspector.get_columns(table)}
        missing = sorted(columns - live)
        if missing:
            findings.missing_columns[table] = missing
    return findings


def row_counts(connection, tables: list[str]) -> dict[str, int]:
    """Exact row counts of ``tables`` that exist.  Read-only."""
    from sqlalchemy import inspect, text

    live = set(inspect(connection).get_table_names())
    preparer = connection.dialect.identifier_preparer
    return {
        table: connection.execute(text(f"SELECT COUNT(*) FROM {preparer.quote(table)}")).scalar_one()
        for table in tables
        if table in live
    }


def check(connection, expected: dict[str, set[str]], *, after: str) -> None:
    """Raise VerificationFailed naming what is missing.  Read-only."""
    findings = compare(connection, expected)
    if not findings.ok:
        raise VerificationFailed(
            f"Verification failed after {after}: {findings.describe()}. "
            "Fix the migration that should create them, or set "
            "REPAIR_MISSING_COLUMNS=true to add missing columns as nullable."
        )


def drift(connection, metadata) -> list[str]:
    """Alembic's compare_metadata, in words: what differs between the database and the models.  Read-only."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from . import report

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    with report.quiet():  # Alembic logs each difference too; we print them once, in words
        diffs = compare_metadata(context, metadata)
    return [_describe(diff) for diff in _flatten(diffs)]


def _flatten(diffs):
    for diff in diffs:
        # Column modifications come grouped in a list of tuples.
        if isinstance(diff, list):
            yield from diff
        else:
            yield diff


_WHERE = {"add": ("in the models but not in the database"), "remove": ("in the database but not in the models")}


def _null(value) -> str:
    return "NULL" if value else "NOT NULL"


def _describe(diff) -> str:
    kind = diff[0]
    action, _, thing = kind.partition("_")
    if action in _WHERE and thing in ("table", "index"):
        return f"{thing} '{diff[1].name}' is {_WHERE[action]}"
    if action in _WHERE and thing == "column":
        return f"column '{diff[2]}.{diff[3].name}' is {_WHERE[action]}"
    if kind in ("modify_type", "modify_nullable", "modify_default"):
        show = _null if kind == "modify_nullable" else repr if kind == "modify_default" else str
        what = {"modify_type": "has type", "modify_nullable": "is", "modify_default": "has default"}[kind]
        return (f"column '{diff[2]}.{diff[3]}' {what} {show(diff[5])} in the database, "
                f"{show(diff[6])} in the models")
    return " ".join(str(part) for part in diff)
