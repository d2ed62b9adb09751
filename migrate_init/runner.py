"""The layered upgrade, deterministic and visible.

Layer 1: when MIGRATION_TARGET exists in the scripts, upgrade to it, then on
to every head: a merge point is a waypoint, not a ceiling.  Layer 2:
otherwise, every head.  Layer 3: otherwise, the single head.  A layer only
hands over to the next when Alembic could not resolve its destination; when
a migration itself fails, the next layers would run the same migration
again, so the failure goes straight to the caller (and the fallback).
"""

from __future__ import annotations

import logging
import time

from . import report
from .errors import Interrupted, MigrateInitError, MigrationFailed, MigrationTimeout


class StepTracker(logging.Filter):
    """Follows Alembic's "Running upgrade" records: progress, and which revision failed.

    Alembic commits each migration before it logs the next one, so a step
    counts as applied when the next begins or when the command returns.
    """

    def __init__(self, total: int):
        super().__init__()
        self.total = total
        self.count = 0
        self.running = None
        self.started = 0.0
        self.applied: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Running %s" and record.args:
            step = record.args[0] if isinstance(record.args, tuple) else record.args
            self.done()
            self.count += 1
            self.running = step
            self.started = time.monotonic()
            revision = getattr(getattr(step, "revision", None), "revision", "?")
            source = ", ".join(getattr(step, "from_revisions_no_deps", ())) or "base"
            name = getattr(step, "doc", None) or revision
            report.event(
                "applying",
                f"[{self.count}/{max(self.total, self.count)}] Applying {source} -> {revision} ({name})",
                index=self.count, total=self.total, revision=revision, name=name,
            )
        return True

    def done(self) -> None:
        """The running step committed."""
        if self.running is None:
            return
        revision = self.running.revision.revision
        elapsed = time.monotonic() - self.started
        self.applied.append(revision)
        report.event("applied", f"Applied {revision} in {elapsed * 1000:.0f}ms",
                     revision=revision, elapsed=round(elapsed, 4))
        self.running = None

    def current(self) -> tuple[str, str] | None:
        """``(revision, file)`` of the migration in progress, for messages."""
        if self.running is None:
            return None
        script = self.running.revision
        return script.revision, getattr(script, "path", "?")

    @property
    def failed_revision(self) -> str | None:
        return self.running.revision.revision if self.running is not None else None


def layers(target_name: str, target_exists: bool, explicit: str | None) -> list[tuple[str, list[str]]]:
    if explicit is not None:
        return [(f"upgrade {explicit}", [explicit])]
    plan = []
    if target_exists:
        plan.append(("layer 1", [target_name, "heads"]))
    plan.append(("layer 2", ["heads"]))
    plan.append(("layer 3", ["head"]))
    return plan


def upgrade(config, *, target_name: str, target_exists: bool, total: int,
            tried: list[str], watchdog=None, explicit: str | None = None,
            lock_retries: int = 0, tracker: StepTracker | None = None) -> list[str]:
    """Run the layers in order; return the revisions applied.

    A migration that gave up waiting for a table lock (PostgreSQL
    ``lock_timeout``, SQLSTATE 55P03) was rolled back whole, so it is retried,
    up to ``lock_retries`` times with backoff.  Any other failure raises
    MigrationFailed naming the revision; MigrationTimeout and Interrupted pass
    through untouched.
    """
    from .wait import Backoff

    tracker = tracker or StepTracker(total)
    tracker.total = total
    migration_log = logging.getLogger("alembic.runtime.migration")
    migration_log.addFilter(tracker)
    delays = Backoff(initial=0.5, maximum=5.0).delays()
    try:
        last_error: BaseException | None = None
        for name, destinations in layers(target_name, target_exists, explicit):
            tried.append(name)
            report.event("layer", f"{name}: upgrading to {' then '.join(destinations)}.",
                         layer=name, destinations=destinations)
            error = _attempt(config, destinations, tracker, watchdog, lock_retries, delays)
            if error is None:
                return tracker.applied
            failed = tracker.failed_revision
            if failed is not None:
                raise MigrationFailed(
                    f"Migration {failed} failed: {type(error).__name__}: {_first_line(error)}. "
                    "It was rolled back; fix it and run again.",
                    revision=failed,
                ) from error
            last_error = error
            report.warning("layer_failed", f"{name} could not resolve its destination "
                           f"({_first_line(error)}); trying the next layer.", layer=name)
        raise MigrationFailed(
            f"No layer could upgrade the database: {_first_line(last_error)}."
        ) from last_error
    finally:
        migration_log.removeFilter(tracker)


def _attempt(config, destinations, tracker, watchdog, lock_retries, delays) -> Exception | None:
    """Upgrade through ``destinations``; return the error, or None when done."""
    from alembic import command

    retries = 0
    connection = config.attributes.get("connection")
    while True:
        try:
            for destination in destinations:
                if connection is not None and connection.in_transaction():
                    # A pass with nothing to apply leaves Alembic's version
                    # check open.  Alembic would run the next pass inside that
                    # "external" transaction, which nobody commits: the
                    # migrations it applies would be rolled back at close.
                    connection.commit()
                command.upgrade(config, destination)
            tracker.done()
            return None
        except (MigrationTimeout, Interrupted):
            raise
        except Exception as exc:
            if watchdog is not None:
                watchdog.check()
            if isinstance(exc, MigrateInitError):
                raise
            failed = tracker.failed_revision
            if failed is None or not _lock_not_available(exc) or retries >= lock_retries:
                return exc
            retries += 1
            delay = next(delays)
            report.warning(
                "ddl_lock_retry",
                f"Migration {failed} timed out waiting for a table lock (DDL_LOCK_TIMEOUT); "
                f"it was rolled back, retry {retries}/{lock_retries} in {delay:.1f}s.",
                revision=failed, retry=retries,
            )
            tracker.running = None
            tracker.count -= 1  # the same migration runs again: same [k/N]
            time.sleep(delay)


def _lock_not_available(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    return (getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)) == "55P03"


def _first_line(exc: BaseException | None) -> str:
    if exc is None:
        return "no error"
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
