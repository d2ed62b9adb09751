"""What was applied, when, by which release, how long it took, and whether its script changed since (issue 26).

Alembic's version table holds one row per head and nothing else.  migrate-init
keeps ``migrate_init_history`` beside it (and beside ``migrate_init_seed``),
created on first use, with one row per revision it applied, stamped, accepted,
resolved, refused, failed, ran the fallback for, or found interrupted:

=====================  ==========================================================
``revision``, ``kind``  the revision; ``applied``, ``stamped``, ``baseline``,
                        ``accepted``, ``resolved``, ``refused``, ``failed``,
                        ``fallback`` or ``interrupted``
``outcome``             ``ok``, ``rolled_back`` (nothing of it stayed),
                        ``partial`` (MySQL/MariaDB: part of it may have stayed)
``started_at``,         UTC, ISO 8601; the duration in milliseconds
``finished_at``,
``duration_ms``
``checksum``            what the revision's module does (:mod:`checksum`)
``migrate_init_version``, ``image_revision``, ``host``: which release, which image (IMAGE_REVISION), which pod
``detail``              a sentence: the error, the checksum accepted...
=====================  ==========================================================

An ``applied`` row is written inside the migration's own transaction, by
Alembic's ``on_version_apply`` callback (:class:`alembic_glue.Progress`), with
the version row: on SQLite and PostgreSQL a migration and its history row
commit together or not at all, so a killed run leaves neither.  On
MySQL/MariaDB the row commits with the version row and with the deletion of
the revision's ``migrate_init_progress`` record (:mod:`progress`): that record
stays the one answer to "is a revision half-applied?"; the history only logs
what a run did about it.

A database migrated before the table existed gets, on the first run that
finds it, a ``baseline`` row per revision it already has, with the checksum of
the script as it is then (trust on first use).

The checksum a revision was last recorded with (``applied``, ``stamped``,
``baseline`` or ``accepted``) is read by :mod:`probe` in the same statement as
the version rows, so the run with nothing to do notices an edited revision at
no extra cost; the scripts' checksums come from the manifest.  This module's
top level imports only the standard library.
"""

from __future__ import annotations

import datetime
import os
import socket
import time

from . import __version__, engines, report
from .errors import EditedRevision
from .probe import HISTORY_TABLE, REMOVED_CHECKSUM, text_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .config import Config
    from .state import Standing

TABLE = HISTORY_TABLE  # one spelling
REMOVED = REMOVED_CHECKSUM
#: The columns, in the order rows are read.
COLUMNS = (
    "id",
    "revision",
    "kind",
    "outcome",
    "started_at",
    "finished_at",
    "duration_ms",
    "checksum",
    "migrate_init_version",
    "image_revision",
    "host",
    "detail",
)


def create_sql(dialect: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {TABLE} ({engines.of(dialect).history_id}, "
        "revision VARCHAR(255) NOT NULL, kind VARCHAR(20) NOT NULL, outcome VARCHAR(20) NOT NULL, "
        "started_at VARCHAR(40) NOT NULL, finished_at VARCHAR(40), duration_ms INTEGER, checksum VARCHAR(80), "
        "migrate_init_version VARCHAR(40) NOT NULL, image_revision VARCHAR(255), host VARCHAR(255) NOT NULL, "
        "detail VARCHAR(1000))"
    )


def utc(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(timespec="milliseconds")


class Recorder:
    """Writes the rows of one process: its release, image and host, and the scripts' checksums."""

    def __init__(self, cfg: Config, checksums: dict[str, str]) -> None:
        self.image_revision = cfg.image_revision
        self.ddl_lock_timeout = cfg.ddl_lock_timeout
        # In Kubernetes the host name is the pod's name.
        self.host = socket.gethostname()[:255]
        self.checksums = checksums

    def write(
        self,
        connection: Any,
        revision: str,
        kind: str,
        *,
        outcome: str = "ok",
        elapsed: float | None = None,
        checksum: str | None = None,
        detail: str | None = None,
    ) -> None:
        """One row, in ``connection``'s transaction (a SQLAlchemy Connection); not committed here."""
        finished = time.time()
        started = finished - (elapsed or 0.0)
        marker = engines.of_connection(connection).placeholder
        connection.exec_driver_sql(
            f"INSERT INTO {TABLE} (revision, kind, outcome, started_at, finished_at, duration_ms, checksum, "
            f"migrate_init_version, image_revision, host, detail) VALUES ({', '.join([marker] * 11)})",
            (
                revision,
                kind,
                outcome,
                utc(started),
                utc(finished),
                None if elapsed is None else round(elapsed * 1000),
                checksum or self.checksums.get(revision),
                __version__,
                self.image_revision,
                self.host,
                None if detail is None else detail[:1000],
            ),
        )

    def applied(self, connection: Any, revision: str, elapsed: float) -> None:
        """From Alembic's ``on_version_apply``: inside the migration's transaction, with its version row."""
        self.write(connection, revision, "applied", elapsed=elapsed)

    def ensure(self, engine: Any, script: Any, current: tuple[str, ...]) -> None:
        """Create the table if needed; a migrated database whose table is empty gets its ``baseline`` rows.

        Called under the migration lock, before the first migration.  The
        baseline is decided by "no row yet", not by "table just created", so
        a run killed between the two (MySQL commits the CREATE at once) is
        finished by the next.
        """
        with engine.begin() as connection:
            connection.exec_driver_sql(create_sql(connection.dialect.name))
        if not current:
            return
        with engine.begin() as connection:
            if connection.exec_driver_sql(f"SELECT COUNT(*) FROM {TABLE}").scalar():
                return
            revisions = applied_revisions(script, current)
            for revision in revisions:
                self.write(
                    connection,
                    revision,
                    "baseline",
                    detail="Applied before migrate-init kept a history; checksum of the script as "
                    "found on the first run that kept one.",
                )
        report.event(
            "history_baseline",
            f"Recorded {len(revisions)} revision(s) the database already had in {TABLE} (kind baseline).",
            revisions=len(revisions),
        )

    def best_effort(self, engine: Any, revision: str | None, kind: str, *, outcome: str, detail: str) -> None:
        """A row of its own transaction, after a failure: the failure is what the run must report."""
        if revision is None:
            return
        try:
            with engine.begin() as connection:
                if self.ddl_lock_timeout > 0:  # an app's lock on the table must not hold the failure's report
                    engines.of_connection(connection).ddl_transaction(connection, self.ddl_lock_timeout)
                connection.exec_driver_sql(create_sql(connection.dialect.name))
                self.write(connection, revision, kind, outcome=outcome, detail=detail)
        except Exception as exc:
            report.warning(
                "history_not_written",
                f"Could not record {kind} {revision} in {TABLE}: {type(exc).__name__}; the run's outcome is unchanged.",
                revision=revision,
            )


def applied_revisions(script: Any, current: tuple[str, ...]) -> list[str]:
    """Every revision the version rows ``current`` stand for, oldest first."""
    seen: dict[str, None] = {}
    for head in current:
        try:
            for found in reversed(list(script.iterate_revisions(head, "base"))):
                seen.setdefault(found.revision, None)
        except Exception:  # a row these scripts cannot place: nothing counts as applied through it
            continue
    return list(seen)


def edited_revisions(cfg: Config, summary: Any, standing: Standing) -> None:
    """A run found applied revisions whose script changed or is gone: warn, or refuse (ON_EDITED_REVISION=fail)."""
    # A database ahead of these scripts has revisions they lack: "schema ahead of code", not an edit.
    text = describe_edits(cfg, standing.edited, () if standing.unknown else standing.vanished)
    if cfg.on_edited_revision == "fail":
        raise EditedRevision(f"{text} ON_EDITED_REVISION=fail: nothing was migrated.")
    summary.warnings.append(text)
    report.warning("edited_revision", text, edited=list(standing.edited), missing=list(standing.vanished))


def describe_edits(cfg: Config, edited: tuple[str, ...], vanished: tuple[str, ...]) -> str:
    versions = os.path.join(cfg.migrations_dir, "versions")  # one slash after MIGRATIONS_DIR=m/ too
    parts = []
    if edited:
        parts.append(
            f"Applied revision(s) {', '.join(edited)} changed in {versions} since they ran: what the "
            "database has is not what the script now says. Review the change (`migrate.py history` "
            "shows when each ran); if it is intended, record it with `migrate.py accept REV`, "
            "otherwise restore the script."
        )
    if vanished:
        parts.append(
            f"Applied revision(s) {', '.join(vanished)} are missing from {versions}. Restore the "
            "script(s), or record that they are gone with `migrate.py accept REV`."
        )
    return " ".join(parts)


def read(reader: Any, snapshot: Any) -> list[dict[str, Any]]:
    """Every row, newest first; [] when ``snapshot`` (the reader's) shows no table.  Read-only."""

    if TABLE not in snapshot.columns:
        return []
    rows = reader.rows(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} ORDER BY id DESC")
    return [
        {
            name: (text_of(value) if isinstance(value, bytes | bytearray) else value)
            for name, value in zip(COLUMNS, row, strict=True)
        }
        for row in rows
    ]


def checksum_state(row: dict[str, Any], scripts: dict[str, str], revisions: set[str]) -> str:
    """``unchanged``, ``edited``, ``script missing`` or ``-`` (no checksum), against the scripts now."""
    recorded = row.get("checksum")
    if row["revision"] not in revisions:
        return "script missing"
    if not recorded or recorded == REMOVED:
        return "-"
    return "unchanged" if scripts.get(row["revision"]) == recorded else "edited"


def listing(
    database: str,
    rows: list[dict[str, Any]],
    *,
    scripts: dict[str, str],
    revisions: set[str],
    pending: list[str],
    edited: tuple[str, ...],
    vanished: tuple[str, ...],
    interrupted: tuple[str, ...],
    describe: Any,
    as_json: bool,
) -> list[str]:
    """``migrate.py history``: the rows newest first, then what is pending; or one JSON document."""
    for row in rows:
        row["checksum_state"] = checksum_state(row, scripts, revisions)
    if as_json:
        import json

        return [
            json.dumps(
                {
                    "database": database,
                    "table": TABLE,
                    "history": rows,
                    "pending": pending,
                    "edited": list(edited),
                    "missing": list(vanished),
                    "interrupted": list(interrupted),
                },
                indent=2,
            )
        ]
    if not rows:
        lines = [
            f"No history recorded in {database} yet: the next `migrate.py run` creates {TABLE} (what the "
            "database already has is recorded with kind baseline)."
        ]
    else:
        lines = [
            f"History of {database} ({TABLE}), newest first:",
            f"{'WHEN (UTC)':<19}  {'KIND':<11} {'OUTCOME':<11} {'DURATION':>9}  {'REVISION':<20} {'CHECKSUM':<26} BY",
        ]
        for row in rows:
            when = str(row["started_at"])[:19].replace("T", " ")
            took = "-" if row["duration_ms"] is None else f"{row['duration_ms']}ms"
            state = f"{row['checksum_state']} {short_sum(row['checksum'])}".strip()
            image = f", image {row['image_revision']}" if row["image_revision"] else ""
            lines.append(
                f"{when:<19}  {row['kind']:<11} {row['outcome']:<11} {took:>9}  {row['revision']:<20} "
                f"{state:<26} {row['host']} (migrate-init {row['migrate_init_version']}{image})"
            )
            if row["detail"] and row["kind"] not in ("applied", "baseline"):
                lines.append(f"{'':<21}{row['detail']}")
    for revision in interrupted:
        lines.append(
            f"Interrupted: {revision} began on an earlier run and never finished (recorded in "
            "migrate_init_progress; MySQL/MariaDB keep what it applied: see `migrate.py resolve`)."
        )
    for revision in edited:
        lines.append(
            f"Edited: {revision} changed since it was applied; after a review, `migrate.py accept "
            f"{revision}` records the new checksum."
        )
    for revision in vanished:
        lines.append(
            f"Missing: {revision} was applied, and its script is gone from the scripts; restore it, or "
            f"`migrate.py accept {revision}`."
        )
    if pending:
        lines.append(f"Pending: {len(pending)} (oldest first)")
        lines.extend(f"  {describe(revision)}" for revision in pending)
    else:
        lines.append("Pending: none")
    return lines


def short_sum(value: str | None) -> str:
    if not value or value == REMOVED:
        return ""
    return value.split(":", 1)[-1][:12]
