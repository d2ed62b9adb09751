"""Missing-column repair: the seed's third protection layer, moved out of the models.

With REPAIR_MISSING_COLUMNS=true, every model column that an existing table
lacks is added as nullable.  Additive only: nothing is dropped or altered.
"""

from __future__ import annotations

from . import report


def add_missing_columns(engine, metadata) -> list[str]:
    """Add the missing columns; return ``table.column`` for each one added."""
    import sqlalchemy as sa
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

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
                report.event("repaired", f"Added missing column '{table.name}.{column.name}' "
                             "as nullable (REPAIR_MISSING_COLUMNS=true).",
                             table=table.name, column=column.name)
    return added
