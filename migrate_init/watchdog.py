"""Stop a running migration on MIGRATION_TIMEOUT, SIGTERM or SIGINT.

A Python signal handler only runs when the main thread returns to the
interpreter, which a long SQL statement never does.  So a helper thread
listens on the signal wake-up fd and watches the deadline; it cancels the
statement on every open connection (PostgreSQL: cancel request; SQLite:
``interrupt()``), and the main thread then raises :class:`Interrupted` or
:class:`MigrationTimeout`, which unwinds through the transaction context
managers and rolls the migration back.
"""

from __future__ import annotations

import select
import signal
import socket
import threading
import time

from .errors import Interrupted, MigrationTimeout

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Watchdog:
    def __init__(self) -> None:
        self._connections: set = set()
        self._guard = threading.Lock()
        self._deadline: float | None = None
        self._timeout_seconds: float = 0.0
        self.reason: BaseException | None = None
        self._raised = False
        self._main = threading.main_thread().ident
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno())
        self._previous = {s: signal.signal(s, self._on_signal) for s in _STOP_SIGNALS}
        self._previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._on_signal)
        self._closed = False
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)
        self._thread.start()

    # -- connections -------------------------------------------------------
    def track_sqlalchemy(self) -> None:
        """Follow every DBAPI connection SQLAlchemy checks out, including a user env.py's."""
        from sqlalchemy import event
        from sqlalchemy.pool import Pool

        if not event.contains(Pool, "checkout", self._checkout):
            event.listen(Pool, "checkout", self._checkout)
            event.listen(Pool, "checkin", self._checkin)

    def _checkout(self, dbapi_connection, _record, _proxy) -> None:
        with self._guard:
            self._connections.add(dbapi_connection)
        if self.reason is not None:
            _cancel(dbapi_connection)

    def _checkin(self, dbapi_connection, _record) -> None:
        with self._guard:
            self._connections.discard(dbapi_connection)

    # -- deadline ------------------------------------------------------------
    def arm(self, seconds: float) -> None:
        """Start MIGRATION_TIMEOUT; 0 means no limit."""
        self._timeout_seconds = seconds
        self._deadline = time.monotonic() + seconds if seconds > 0 else None
        self._wake()

    def disarm(self) -> None:
        self._deadline = None
        self._wake()

    def check(self) -> None:
        """Raise the pending stop, if any, exactly once (for code that caught a DB error)."""
        if self.reason is not None and not self._raised:
            self._raised = True
            raise self.reason

    @property
    def fired(self) -> bool:
        return self.reason is not None

    # -- internals -----------------------------------------------------------
    def _on_signal(self, signum, _frame) -> None:
        if signum == signal.SIGALRM:
            if isinstance(self.reason, MigrationTimeout):
                self.check()
            return
        if self.reason is None:
            self.reason = Interrupted(signum)
            self._cancel_all()
        self.check()

    def _watch(self) -> None:
        while not self._closed:
            wait = None if self._deadline is None else max(self._deadline - time.monotonic(), 0)
            readable, _, _ = select.select([self._reader], [], [], wait)
            if readable:
                try:
                    data = self._reader.recv(64)
                except BlockingIOError:
                    data = b""
                for signum in data:
                    if signum in _STOP_SIGNALS and self.reason is None:
                        self.reason = Interrupted(signum)
                        self._cancel_all()
            deadline = self._deadline
            if deadline is not None and time.monotonic() >= deadline and self.reason is None:
                self.reason = MigrationTimeout(
                    f"MIGRATION_TIMEOUT={self._timeout_seconds:g}s ran out; the running "
                    "migration was cancelled and rolled back. Raise MIGRATION_TIMEOUT "
                    "(0 means no limit) or make the migration faster."
                )
                self._deadline = None
                self._cancel_all()
                signal.pthread_kill(self._main, signal.SIGALRM)

    def _cancel_all(self) -> None:
        with self._guard:
            connections = list(self._connections)
        for connection in connections:
            _cancel(connection)

    def _wake(self) -> None:
        try:
            self._writer.send(b"\0")
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        self._closed = True
        self._wake()
        self._thread.join(timeout=1)
        signal.set_wakeup_fd(self._previous_fd)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._reader.close()
        self._writer.close()


def _cancel(dbapi_connection) -> None:
    """Ask the server (or SQLite) to abort the statement in progress."""
    for method in ("cancel", "interrupt"):
        fn = getattr(dbapi_connection, method, None)
        if fn is None:
            # SQLAlchemy may hand us an adapted connection; reach the driver's.
            inner = getattr(dbapi_connection, "driver_connection", None)
            fn = getattr(inner, method, None) if inner is not None else None
        if fn is not None:
            try:
                fn()
            except Exception:  # the connection may already be gone; nothing to cancel
                pass
            return
