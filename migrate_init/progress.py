"""Which revision is half-applied, on engines whose DDL is not transactional (MySQL, MariaDB).

On SQLite and PostgreSQL a migration is one transaction: killed half-way,
nothing of it stays.  MySQL commits each DDL statement on its own, so a
migration killed half-way leaves part of its changes behind.  golang-migrate
answers with a "dirty" flag that always needs a manual ``force``; this module
records instead, so that the next run knows and acts:

- :func:`begin`, committed before a revision's first statement, records it
  in the ``migrate_init_progress`` table;
- :func:`finish`, inside the revision's last transaction (together with
  Alembic's version row), deletes the record, so "done" and "no longer in
  progress" commit at once;
- a run that finds a record decides with :func:`decide`: a revision already
  in the version table is stale and cleared; one whose module declares
  ``idempotent = True`` (the shipped chain does: it is built from
  :mod:`migrate_init.ops`) is run again; any other stops the run (exit 1)
  and names ``migrate.py resolve REV``, which :func:`resolve` carries out
  (or ``migrate.py alembic stamp REV`` for a revision finished by hand).
"""

from __future__ import annotations

import datetime
import os
import socket
from typing import TYPE_CHECKING, Any

from . import engines
from .errors import MigrationInterrupted
from .probe import PROGRESS_TABLE

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} ("
    "revision VARCHAR(255) NOT NULL PRIMARY KEY, "
    "started_at VARCHAR(40) NOT NULL, "
    "started_by VARCHAR(255) NOT NULL)"
)


def needed(connection: Connection) -> bool:
    """Whether this database commits DDL statement by statement (so progress is recorded)."""

    return not engines.of_connection(connection).transactional_ddl


def begin(connection: Connection, revision: str) -> None:
    """Record ``revision`` as started, and commit, before any of its statements runs."""
    if connection.in_transaction():
        connection.commit()
    connection.exec_driver_sql(_CREATE)
    connection.exec_driver_sql(
        f"REPLACE INTO {PROGRESS_TABLE} (revision, started_at, started_by) VALUES (%s, %s, %s)",
        (
            revision,
            datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            f"{socket.gethostname()} pid {os.getpid()}"[:255],
        ),
    )
    connection.commit()


def finish(connection: Connection, revision: str) -> None:
    """Delete the record, in the transaction that writes the version row (not committed here)."""
    connection.exec_driver_sql(f"DELETE FROM {PROGRESS_TABLE} WHERE revision = %s", (revision,))


def resolve(connection: Connection, revision: str) -> bool:
    """``migrate.py resolve REV``: forget that ``revision`` was interrupted.  Returns whether it was recorded."""
    found = connection.exec_driver_sql(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
        (PROGRESS_TABLE,),
    ).scalar()
    if not found:
        return False
    deleted = connection.exec_driver_sql(f"DELETE FROM {PROGRESS_TABLE} WHERE revision = %s", (revision,))
    connection.commit()
    return bool(deleted.rowcount)


def _module(script: Any, revision: str | None) -> Any:
    try:
        return script.get_revision(revision).module
    except Exception:  # not a revision of these scripts
        return None


def idempotent(script: Any, revision: str | None) -> bool:
    """Whether ``revision``'s module declares ``idempotent = True``: safe to run again after a part of it ran."""
    return getattr(_module(script, revision), "idempotent", False) is True


def decide(
    connection: Connection,
    script: Any,
    recorded: tuple[str, ...],
    current: tuple[str, ...],
    *,
    on_rerun: Any,
    on_stale: Any,
) -> None:
    """Act on the revisions recorded as started and never finished (see the module docstring).

    ``script`` is Alembic's ScriptDirectory, ``current`` the version table's
    rows.  Raises :class:`MigrationInterrupted` for a revision that cannot be
    run again safely; tells ``on_rerun(revision)`` / ``on_stale(revision)``
    about the others.
    """
    done: set[str] = set()
    for head in current:
        try:
            done.update(s.revision for s in script.iterate_revisions(head, "base"))
        except Exception:  # a row these scripts cannot place: nothing counts as done through it
            continue
    for revision in recorded:
        if revision in done:
            connection.exec_driver_sql(f"DELETE FROM {PROGRESS_TABLE} WHERE revision = %s", (revision,))
            connection.commit()
            on_stale(revision)
            continue
        if idempotent(script, revision):
            on_rerun(revision)
            continue
        module = _module(script, revision)
        where = f" ({module.__file__})" if module is not None and getattr(module, "__file__", None) else ""
        raise MigrationInterrupted(
            f"Migration {revision}{where} was interrupted on an earlier run, and MySQL/MariaDB commit "
            "each DDL statement on its own: part of it may be applied. Its module does not declare "
            "'idempotent = True', so it is not run again blindly. Compare the schema with what "
            f"{revision} does; then either undo the part that was applied and run "
            f"'migrate.py resolve {revision}' (the next run applies it whole), or finish it by hand "
            f"and record it with 'migrate.py alembic stamp {revision}' (the next run then clears the "
            "record itself).",
            revision=revision,
        )
