"""The migration lock, so that replicas never race: one protocol, on the bare driver.

A run that finds the database behind waits on this lock, the real one, and
the run that then migrates keeps holding the same lock object: the cheap path
and the full path never disagree about who is first.  It is taken with the
bare driver (stdlib ``fcntl``, psycopg2, pymysql), never SQLAlchemy, because
the no-op fast path must not pay for that import.

Each engine's lock lives in its module (:mod:`migrate_init.engines`): SQLite's
``flock`` on a file beside the database, PostgreSQL's transaction-level
advisory lock (PgBouncer-safe), MySQL's ``GET_LOCK``.  All three die with
their holder's process or session.  This module is what they share: the
protocol (:class:`MigrationLock`: wait, time out naming the holder, release)
and its pacing.

Every wait is :func:`migrate_init.retry.poll`, bounded by LOCK_TIMEOUT, and
honours the caller's checkpoint (SIGTERM, MIGRATION_TIMEOUT) within a
quarter of a second.  Imported on the fast path: cheap stdlib only at the top.
"""

from __future__ import annotations

import time

from . import report, retry
from .errors import (
    DatabaseUnreachable,
    LockLost,
    LockSessionEnded,
    LockTimeout,
    MigrateInitError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Self

    from .config import Config
    from .probe import Reader
    from .state import Expected
    from .watchdog import Watchdog

#: Polling starts fast and slows down gently: a waiter notices a released lock (or finished work)
#: within 0.1 s during the first second of its wait, when most migrations end, and within 1 s of
#: a long one, which it then polls about twice a second.  No two polls of one waiter come less
#: than 0.05 s apart: 15 waiters polling in bursts cost the one migrator its CPU (issue 14: the
#: last of 16 runners used to exit up to 0.25 s after the work was done).
BACKOFF = retry.Backoff(initial=0.1, maximum=1.0, multiplier=1.1, floor=0.05)
#: statement_timeout of the PostgreSQL lock connection: no polling query may hang.
STATEMENT_TIMEOUT_MS = 5000
#: What to do after a lost migration lock stopped the run (the end of each such message).
LOST_NEXT = (
    "Run again to finish the job; if it happens again, find what ends the lock's session (an "
    "idle-session killer, a pooler) or deletes the lock file."
)


def stopped(lost: LockLost, what: str) -> LockLost:
    """``lost`` reworded as the stop of the run: ``what`` it did about it, then what to do.

    The same class: the server ending the lock's session is a lost connection (exit 3), the rest exit 5.
    """
    return type(lost)(f"{lost} Another migrator could have started beside this run, so {what}. {LOST_NEXT}")


class MigrationLock:
    """The migration lock: ``with lock:`` or ``acquire()`` / ``release()``.  Made by the factories.

    ``acquire()`` waits up to ``timeout`` seconds (LOCK_TIMEOUT), then raises
    LockTimeout naming the lock and its holder.  While it waits it calls
    ``checkpoint()`` at least every quarter second (whatever that raises
    ends the wait, the lock released), and the first time it finds the lock
    busy it calls ``on_wait(sentence)`` once, with a sentence that names the
    lock and its holder, for the caller to log.  Acquiring a lock already
    held returns at once: the full path reuses the lock the fast path took.

    ``release()`` is idempotent and never raises.  A failed ``acquire()``
    releases everything it took before it raises.  The PostgreSQL and MySQL
    locks close their connection on release: they serve once.
    """

    def __init__(
        self,
        description: str,
        *,
        timeout: float,
        checkpoint: Callable[[], None] | None,
        on_wait: Callable[[str], None] | None,
    ) -> None:
        self._description = description
        self.timeout = timeout
        self._checkpoint = checkpoint
        self._on_wait = on_wait
        self._held = False
        self._waited = False

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._held

    @property
    def description(self) -> str:
        """The lock, for messages: "the migration lock /data/webui.db.migrate.lock"."""
        return self._description

    @property
    def waited(self) -> bool:
        """Whether the last ``acquire()`` found the lock busy at least once."""
        return self._waited

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._description} held={self._held}>"

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()

    def acquire(self, until: Callable[[], bool] | None = None) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds; LockTimeout after that.

        ``until``, asked between attempts while the lock is busy, ends the
        wait early when it answers True (the holder did the work meanwhile):
        then nothing is held and this returns False.  Otherwise True.
        """
        if self._held:
            return True
        self._waited = False
        deadline = time.monotonic() + self.timeout

        def attempt() -> bool | None:
            if self._try_lock():
                return True
            return False if until is not None and until() else None

        def waiting(_number: int, _remaining: float) -> None:
            if self._waited:
                return
            self._waited = True
            if self._on_wait is not None:
                self._on_wait(f"Waiting for {self._description}, held by {self._holder()}.")

        try:
            self._open()
            if not retry.poll(
                attempt,
                deadline=deadline,
                backoff=BACKOFF,
                on_wait=waiting,
                checkpoint=self._checkpoint,
                on_timeout=self._timed_out,
            ):
                self.release()
                return False
            self._held = True
            self._acquired()
        except BaseException:
            self.release()
            raise
        return True

    def release(self) -> None:
        """Let the lock go and close what it opened.  Idempotent; never raises."""
        try:
            if self._held:
                self._unlock()
        except Exception:  # closing, below, releases it anyway
            pass
        finally:
            self._held = False
            try:
                self._close()
            except Exception:  # nothing more to release: the session or descriptor is gone
                pass

    def verify(self) -> None:
        """Raise LockLost when the lock this object took is no longer held; nothing when it is (or was never taken).

        Asked before each migration commits (:class:`alembic_glue.Progress`):
        a lock whose session the server ended (an administrator, a pooler's
        timeout, a failover) or whose file was deleted no longer keeps a
        second migrator out, and this run must not go on as if it did.
        """
        if not self._held:
            return
        lost = self._lost()
        if lost is not None:
            raise lost

    def _let_go(self, reason: str) -> LockLost:
        """The lock is gone, its holder still here (a deleted lock file, a lock released behind its back)."""
        return LockLost(f"This run lost {self._description} while it held it: {reason}.")

    def _ended(self, reason: str) -> LockSessionEnded:
        """The server ended the session that held the lock: a lost connection (exit 3)."""
        return LockSessionEnded(
            f"The session that held the migration lock ({self._description}) was ended by the server while the "
            f"migrations ran (a restart, a failover, pg_terminate_backend or KILL, a pooler's timeout): {reason}."
        )

    def _timed_out(self) -> LockTimeout:
        return LockTimeout(
            f"Another migrator held {self._description} for longer than "
            f"LOCK_TIMEOUT={self.timeout:g}s; it is {self._holder()}. Nothing was "
            "changed. Wait for it to finish, or raise LOCK_TIMEOUT."
        )

    def _holder(self) -> str:
        try:
            return self._describe_holder()
        except MigrateInitError:
            raise
        except Exception as exc:  # who holds it is a courtesy; the wait goes on
            return f"a holder that could not be looked up ({type(exc).__name__})"

    # What each kind of lock provides.

    def _open(self) -> None:
        """Prepare for the first attempt (open the file, set the session up)."""

    def _try_lock(self) -> bool:
        """One attempt that never blocks: True when the lock is now held."""
        raise NotImplementedError

    def _describe_holder(self) -> str:
        """Who holds the lock, in words (read while this object does not hold it)."""
        raise NotImplementedError

    def _acquired(self) -> None:
        """Just taken: record who holds it, where that is possible."""

    def _lost(self) -> LockLost | None:
        """What says the lock, taken, is no longer held (``_let_go``, ``_ended``), or None while it is."""
        return None

    def _unlock(self) -> None:
        """Let go of the lock (may raise: ``_close`` releases it anyway)."""

    def _close(self) -> None:
        """Close what ``_open`` opened; releases the lock if still held."""


def reason_of(exc: BaseException) -> str:
    """A driver's error in one line: its message's first line, or its class's name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def unreachable(description: str, where: str, exc: BaseException) -> DatabaseUnreachable:
    reason = reason_of(exc)
    return DatabaseUnreachable(
        f"The connection for {description} at {where} failed: {reason}. Nothing more was "
        "changed. Check that the database is up and reachable, then run again."
    )


def migration_lock(
    cfg: Config,
    expected: Expected,
    watchdog: Watchdog,
    until: Callable[[], bool] | None = None,
    reader: Reader | None = None,
) -> HeldForRun:
    """The one migration lock, with the bare driver: replicas that find work wait here, not elsewhere.

    ``with migration_lock(...) as held:`` -- ``held`` is True once the lock is
    held.  With ``until``, a waiter asks it between attempts, and when it
    answers True (another replica finished the work meanwhile) ``held`` is
    False, without the lock: waiters then need not take the lock one after the
    other just to find nothing to do.  ``reader``: on PostgreSQL and MySQL the
    lock is taken in the reader's session, not in one of its own.
    """
    database = cfg.database

    def waiting(sentence: str) -> None:
        report.event("lock_waiting", sentence)

    engine = database.engine
    connection = None
    # On a server, in the reader's session when there is one (tracked by the watchdog since the wait).
    shared = not engine.file_based and reader is not None and reader.backend == engine.name
    if shared:
        connection = reader.connection if reader is not None else None
    elif not engine.file_based:
        connection = engine.connect(database, min(cfg.db_wait_timeout, 10), watchdog.checkpoint)
        watchdog.track(connection)
    held = engine.lock(
        database,
        connection=connection,
        version_table=expected.version_table,
        timeout=cfg.lock_timeout,
        checkpoint=watchdog.checkpoint,
        on_wait=waiting,
        shared=shared,
        allow_network_fs=cfg.sqlite_allow_network_fs,
    )
    return HeldForRun(held, cfg, watchdog, until)


class HeldForRun:
    """A run's hold on the migration lock: MIGRATION_TIMEOUT runs while it is held; leaving releases it."""

    def __init__(self, lock: MigrationLock, cfg: Config, watchdog: Watchdog, until: Callable[[], bool] | None) -> None:
        self.lock, self.cfg, self.watchdog, self.until = lock, cfg, watchdog, until
        self._armed = False

    def __enter__(self) -> bool:
        try:
            self.watchdog.limit_phase(self.cfg.lock_timeout, "LOCK_TIMEOUT")  # for the heartbeat while it waits
            if not self.lock.acquire(self.until):
                return False
            # MIGRATION_TIMEOUT runs from the moment the lock is held, before any line is logged:
            # a stalled log reader cannot hold the run past it.
            self.watchdog.arm(self.cfg.migration_timeout)
            self._armed = True
            self.watchdog.phase = "holding the migration lock"
            report.event("lock_acquired", f"Acquired {self.lock.description}.")
            self.watchdog.checkpoint()  # a stop recorded while that line waited for a stalled reader
            return True
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._armed:
                self._armed = False
                self.watchdog.disarm()
        finally:
            self.lock.release()
