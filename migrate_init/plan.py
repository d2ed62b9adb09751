"""Dry runs: apply the pending migrations inside one transaction, capture the SQL, roll back.

The shipped migrations inspect the live database, so Alembic's offline mode
cannot render them.  Inside a rolled-back transaction the SQL is exact on
PostgreSQL and on SQLite with transactional DDL, and nothing changes: not the
schema, not the version table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from . import report

# Introspection and bookkeeping a reader does not need to see in a plan.
_SKIP = ("SELECT", "PRAGMA", "SHOW", "SET ", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@dataclass
class Step:
    revision: str
    name: str
    path: str
    statements: list[str] = field(default_factory=list)


class _Capture(logging.Filter):
    """Starts a new Step at each of Alembic's "Running upgrade" records."""

    def __init__(self):
        super().__init__()
        self.steps: list[Step] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Running %s" and record.args:
            step = record.args[0] if isinstance(record.args, tuple) else record.args
            script = step.revision
            self.steps.append(Step(script.revision, script.doc or "", getattr(script, "path", "?")))
        return True

    def statement(self, conn, cursor, statement, parameters, context, executemany) -> None:
        text = " ".join(statement.split())
        if not self.steps or text.upper().startswith(_SKIP):
            return
        if parameters and not executemany:
            text = f"{text}  -- parameters: {parameters!r}"
        self.steps[-1].statements.append(text)


def dry_run(engine, alembic_config, destinations: list[str], steps: list[Step] | None = None,
            prepare=None) -> list[Step]:
    """Upgrade through ``destinations`` in one transaction, capture, roll back.

    ``steps`` (optional) is filled as the run goes, for listeners that need
    to know the revision in progress.  ``prepare(connection)`` (optional)
    runs first inside the transaction, e.g. to point search_path at an
    empty schema.
    """
    from alembic import command
    from sqlalchemy import event

    capture = _Capture()
    if steps is not None:
        capture.steps = steps
    migration_log = logging.getLogger("alembic.runtime.migration")
    migration_log.addFilter(capture)
    report.set_dry_run(True)
    try:
        with engine.connect() as connection:
            event.listen(connection, "before_cursor_execute", capture.statement)
            transaction = connection.begin()
            if prepare is not None:
                prepare(connection)
            # An open transaction makes Alembic run every migration inside it.
            alembic_config.attributes["connection"] = connection
            try:
                for destination in destinations:
                    command.upgrade(alembic_config, destination)
            finally:
                alembic_config.attributes["connection"] = None
                transaction.rollback()
    finally:
        report.set_dry_run(False)
        migration_log.removeFilter(capture)
    return capture.steps
