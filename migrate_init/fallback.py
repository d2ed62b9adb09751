"""The fallback: create every table the models define that does not exist yet.

It is the seed's second protection layer.  It never drops or alters
anything, and it never stamps the version table: once the failing migration
is fixed, the next run applies it (the shipped migrations are idempotent).
"""

from __future__ import annotations

from . import report


def create_missing_tables(engine, metadata) -> list[str]:
    """``metadata.create_all`` in one transaction; returns the tables it created."""
    from sqlalchemy import inspect

    with engine.begin() as connection:
        before = set(inspect(connection).get_table_names())
        metadata.create_all(connection, checkfirst=True)
        created = [t.name for t in metadata.sorted_tables if t.name not in before]
    report.event(
        "fallback_created",
        f"Fallback create_all created {len(created)} table(s)"
        + (f": {', '.join(created)}." if created else "; all tables already existed."),
        tables=created,
    )
    return created
