"""Stop on MIGRATION_TIMEOUT, SIGTERM or SIGINT: record, cancel, raise at checkpoints.

Python runs a signal handler between any two bytecodes, including inside
``logging``'s ``emit()``, whose ``except Exception`` swallows whatever the
handler raises (issue 12: SIGTERM with a stalled stderr turned into exit 0).
So no handler here ever raises.  The Python-level handler only records the
reason.  A helper thread listens on the signal wake-up fd (a long SQL
statement never returns to the interpreter, so the Python handler would not
run until it ends) and watches the deadline; it cancels the statement on
every tracked connection (psycopg2 ``cancel()``, sqlite3 ``interrupt()``,
MySQL ``KILL QUERY`` from a second connection).
The main thread raises at known checkpoints (:meth:`Watchdog.checkpoint`),
and the CLI honours the recorded reason last, whatever else happened.

A cancel needs a server that answers.  One that stopped (SIGSTOP, a network
partition) never replies to the statement nor, when its postmaster is gone
too, to the cancel request, and the main thread stays in a socket read.  So
the cancels run in threads of their own, and when the main thread has not
finished :data:`HARD_EXIT_GRACE` seconds after a stop, the helper thread ends
the process itself with the stop's exit code, after a last summary line
(issue 25, N25).  That is as safe as a kill -9, which migrate-init is built
to survive: the server rolls back the open transaction when it sees the
connection gone, and SQLite rolls back its journal on the next open.
"""

from __future__ import annotations

import _thread  # threading's C half: one helper thread needs neither threading nor _weakrefset
import os
import select
import time

from .errors import Interrupted, MigrateInitError, MigrationTimeout

TYPE_CHECKING = False  # typing is not imported on the way to a run with nothing to do (issue 14)
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
    from types import FrameType
    from typing import Any
else:
    # signal's C half, the same functions: signal.py wraps them in enums, and importing enum costs
    # about 2 ms of a run with nothing to do (issue 14).  Handlers get and return plain ints.
    import _signal as signal

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Seconds the main thread has, after a stop is recorded, to finish before the process ends itself.
HARD_EXIT_GRACE = 10.0
#: Seconds the last words (:attr:`Watchdog.on_hard_exit`) may take before the hard exit goes ahead.
_LAST_WORDS = 2.0


def block_stop_signals() -> None:
    """Keep SIGTERM and SIGINT away from the calling thread.

    Helper threads call it first, so the kernel hands a stop to the main
    thread, whose handler records it.  The CLI calls it last, once the exit
    code is settled: Python's shutdown puts the default handlers back, and a
    SIGTERM then would end the process with -15 instead of that code.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)


class Watchdog:
    """One per process, created before any work starts."""

    def __init__(self) -> None:
        self._connections: set[Any] = set()
        self._guard = _thread.allocate_lock()
        #: Held while statements are being cancelled: close() waits for a cancel in flight, so a
        #: process about to exit still reaches the server (MySQL's KILL QUERY takes a connection).
        self._cancelling = _thread.allocate_lock()
        self._deadline: float | None = None
        self._timeout_seconds = 0.0
        self._variable = "MIGRATION_TIMEOUT"
        #: What the run is doing now, for messages ("waiting for the lock", ...): see the property.
        self._phase = "starting"
        self._phase_since = time.monotonic()
        self._signum: int | None = None
        self._timed_out_in: str | None = None
        # A pipe, not a socketpair: the same wake-up fd without importing socket (issue 14).
        self._reader, self._writer = os.pipe()
        os.set_blocking(self._reader, False)
        os.set_blocking(self._writer, False)
        self._previous_fd = signal.set_wakeup_fd(self._writer, warn_on_full_buffer=False)
        self._previous = {s: signal.signal(s, self._on_signal) for s in _STOP_SIGNALS}
        # The deadline's way into a step that runs only Python (see _on_signal).
        self._previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._on_alarm)
        # Created by the main thread (the CLI's first step), which the signals reach.
        self._main: int | None = _thread.get_ident()
        self._closed = False
        #: Held by the helper thread while it runs: close() joins it by acquiring it.
        self._running = _thread.allocate_lock()
        self._running.acquire()
        _thread.start_new_thread(self._watch, ())
        from . import early

        for signum in early.received[:1]:  # a stop that came before this handler (issue 25 N32)
            self._record_signal(signum)

    # -- what the rest of the package calls ---------------------------------
    @property
    def phase(self) -> str:
        """What the run is doing now ("waiting for the database", "migrating"...), for messages and heartbeats."""
        return self._phase

    @phase.setter
    def phase(self, value: str) -> None:
        if value != self._phase:
            self._phase, self._phase_since = value, time.monotonic()
            self._phase_limit = None
            self.detail = None

    def limit_phase(self, seconds: float, variable: str) -> None:
        """The current phase ends by ``variable`` (``seconds``): the heartbeat names that bound."""
        self._phase_limit = (seconds, variable)

    def heartbeat(self, seconds: float) -> None:
        """Say what the run is doing after ``seconds`` without a line (0: never).

        The helper thread writes it, never through logging and never blocking
        (:func:`report.heartbeat`): it must stay free to cancel statements.
        """
        self._heartbeat = seconds
        self._wake()

    def checkpoint(self) -> None:
        """Raise the recorded stop, if any.  Called at known points by the main thread."""
        reason = self.reason
        if reason is not None:
            raise reason

    @property
    def stopped(self) -> bool:
        return self._signum is not None or self._timed_out_in is not None

    @property
    def reason(self) -> MigrateInitError | None:
        """The stop as an exception (a new one each time), or None.  A signal wins over a timeout."""
        if self._signum is not None:
            return Interrupted(self._signum, phase=self._signal_phase)
        if self._timed_out_in is not None:
            return MigrationTimeout(f"{self._timed_out_what} ran out while {self._timed_out_in}.")
        return None

    def arm(self, seconds: float, variable: str = "MIGRATION_TIMEOUT") -> None:
        """Start the deadline; 0 means no limit."""
        self._timeout_seconds = seconds
        self._variable = variable
        self._deadline = time.monotonic() + seconds if seconds > 0 else None
        self._wake()

    def bound_run(self, seconds: float, variables: str) -> None:
        """The whole run's bound, from now (the process start): the sum of its phases' limits.

        A wait no phase owns (a stalled log reader before MIGRATION_TIMEOUT
        starts, say) still ends by the documented total; 0 means no limit.
        """
        self._total_seconds = seconds
        self._total_variables = variables
        self._total_deadline = time.monotonic() + seconds if seconds > 0 else None
        self._wake()

    def disarm(self) -> None:
        self._deadline = None
        self._wake()

    def set_interruptible(self, on: bool) -> None:
        """A migration step's own code is running (True) or done (False)."""
        self.interruptible = on

    def track(self, dbapi_connection: Any) -> None:
        """Cancel this driver connection's statement when the run must stop."""
        with self._guard:
            self._connections.add(dbapi_connection)
        if self.stopped:
            _cancel(dbapi_connection)

    def untrack(self, dbapi_connection: Any) -> None:
        with self._guard:
            self._connections.discard(dbapi_connection)

    def track_sqlalchemy(self) -> None:
        """Follow every DBAPI connection SQLAlchemy checks out, including a user env.py's."""
        from sqlalchemy import event
        from sqlalchemy.pool import Pool

        if not event.contains(Pool, "checkout", self._checkout):
            event.listen(Pool, "checkout", self._checkout)
            event.listen(Pool, "checkin", self._checkin)

    def _checkout(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        self.track(dbapi_connection)

    def _checkin(self, dbapi_connection: Any, _record: Any) -> None:
        self.untrack(dbapi_connection)

    # -- internals -----------------------------------------------------------
    def _on_alarm(self, _signum: int, frame: FrameType | None) -> None:
        self._raise_into_step(frame)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._record_signal(signum)
        self._raise_into_step(frame)

    def _raise_into_step(self, frame: FrameType | None) -> None:
        # Record only, as a rule: raising here could land inside logging and be
        # swallowed there (issue 12).  The one exception: while a migration step
        # runs the user's own Python (a time.sleep, a loop that sends nothing
        # to the database), no checkpoint comes until it ends.  There, once,
        # and only when no logging code is on the stack, the stop is raised into
        # the step, which Alembic then rolls back; the CLI honours it either way.
        if self.interruptible and not self._raised and not _in_logging(frame):
            self._raised = True
            reason = self.reason
            if reason is not None:
                raise reason

    def _record_signal(self, signum: int) -> None:
        if self._signum is None:
            self._signal_phase = self.phase
            self._signum = signum
            self._stopped_at = self._stopped_at or time.monotonic()
            self._cancel_all_soon()

    def _watch(self) -> None:
        try:
            self._watch_until_closed()
        finally:
            self._running.release()

    def _watch_until_closed(self) -> None:
        block_stop_signals()  # they reach this thread through the wakeup fd, recorded by the main thread
        while not self._closed:
            hard_exit = self._stopped_at + HARD_EXIT_GRACE if self._stopped_at else None
            deadlines = [d for d in (self._deadline, self._total_deadline, hard_exit) if d is not None]
            if self._heartbeat > 0:
                deadlines.append(time.monotonic() + min(self._heartbeat, 1.0))
            wait = max(min(deadlines) - time.monotonic(), 0.0) if deadlines else None
            readable, _, _ = select.select([self._reader], [], [], wait)
            if readable:
                try:
                    data = os.read(self._reader, 64)
                except (BlockingIOError, OSError):
                    data = b""
                for signum in data:
                    if signum in _STOP_SIGNALS:
                        self._record_signal(signum)
            now = time.monotonic()
            if self.stopped:
                if hard_exit is not None and now >= hard_exit and not self._closed:
                    self._hard_exit()
                continue
            if self._heartbeat > 0:
                try:
                    self._beat(now)
                except Exception:  # this thread cancels statements: a heartbeat must never end it
                    pass
            if self._deadline is not None and now >= self._deadline:
                self._timed_out_what = f"{self._variable}={self._timeout_seconds:g}s"
            elif self._total_deadline is not None and now >= self._total_deadline:
                self._timed_out_what = (
                    f"The run's bound, {self._total_variables} = {self._total_seconds:g}s from its start,"
                )
            else:
                continue
            self._timed_out_in = self.phase
            self._stopped_at = self._stopped_at or now
            self._deadline = self._total_deadline = None
            self._cancel_all_soon()
            if self.interruptible and self._main is not None:
                signal.pthread_kill(self._main, signal.SIGALRM)

    def _beat(self, now: float) -> None:
        """One heartbeat line when nothing was written for ``_heartbeat`` seconds: what, for how long, the bound."""
        from . import report

        if now - max(report.last_line(), self._last_beat) < self._heartbeat:
            return
        self._last_beat = now
        phase, since, limit, detail = self._phase, self._phase_since, self._phase_limit, self.detail
        try:
            what = detail() if detail is not None else None
        except Exception:  # a description that fails must not stop the thread that cancels
            what = None
        if limit is not None:
            bound = f"{limit[1]}={limit[0]:g}s" if limit[0] > 0 else f"{limit[1]}=0 (no limit)"
        elif self._deadline is not None:
            bound = f"{self._variable}={self._timeout_seconds:g}s, {max(self._deadline - now, 0):.0f}s left"
        elif self._total_deadline is not None:
            bound = f"the run's bound, {self._total_seconds:g}s, {max(self._total_deadline - now, 0):.0f}s left"
        else:
            bound = "no limit set"
        elapsed = now - since
        report.heartbeat(
            f"Still {phase}{f' ({what})' if what else ''}: {elapsed:.0f}s so far; {bound}.",
            phase=phase,
            elapsed=round(elapsed, 1),
            detail=what,
            bound=bound,
        )

    def _cancel_all_soon(self) -> None:
        """Cancel in a thread of its own: a cancel request to a server that stopped answering
        may never return, and neither this thread nor the main one may wait for it."""

        def cancel() -> None:
            block_stop_signals()
            self._cancel_all()

        _thread.start_new_thread(cancel, ())

    def _hard_exit(self) -> None:
        """End the process with the stop's exit code: the main thread did not come back in time."""
        reason = self.reason
        if reason is None:
            return
        code = reason.exit_code
        last_words = self.on_hard_exit
        if last_words is not None:
            done = _thread.allocate_lock()
            done.acquire()

            def speak() -> None:
                try:
                    block_stop_signals()
                    last_words(reason, HARD_EXIT_GRACE)
                except BaseException:  # the exit goes ahead whatever the last words do
                    pass
                finally:
                    done.release()

            _thread.start_new_thread(speak, ())
            done.acquire(timeout=_LAST_WORDS)  # a stalled stderr or REPORT_FILE does not hold the exit
        os._exit(code)

    def _cancel_all(self) -> None:
        with self._cancelling:
            with self._guard:
                connections = list(self._connections)
            for connection in connections:
                _cancel(connection)

    def _wake(self) -> None:
        try:
            os.write(self._writer, b"\0")  # -1 once closed: OSError, as a closed socket's send
        except OSError:
            pass

    def close(self) -> None:
        """Stop the thread and restore the previous handlers.  Never raises."""
        self._closed = True
        self._wake()
        if self._running.acquire(timeout=1):  # the helper thread has ended
            self._running.release()
        if self._cancelling.acquire(timeout=6):  # a KILL QUERY under way (its connect: 5 s at most)
            self._cancelling.release()
        try:
            signal.set_wakeup_fd(self._previous_fd)
        except (ValueError, OSError):
            pass
        # The handlers stay "record only" until the process exits: a signal in
        # the last lines (summary, REPORT_FILE) is still honoured by the CLI.
        # close() runs more than once (the CLI's finally and _honour): never close a reused fd number.
        fds, self._reader, self._writer = (self._reader, self._writer), -1, -1
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass

    _signal_phase = "starting"
    _phase_limit: tuple[float, str] | None = None
    #: What the current phase is at, asked by the heartbeat (the migration in progress, the last error).
    detail: Callable[[], str | None] | None = None
    _heartbeat = 0.0
    _last_beat = 0.0
    #: When the first stop was recorded (monotonic), 0.0 while none was.
    _stopped_at = 0.0
    #: Called with the stop and the grace period just before a hard exit: the CLI's last summary.
    on_hard_exit: Callable[[MigrateInitError, float], None] | None = None
    #: True while a migration step runs (alembic_glue.Progress): see _on_signal.
    interruptible = False
    _raised = False
    _timed_out_what = ""
    _total_deadline: float | None = None
    _total_seconds = 0.0
    _total_variables = ""


def _in_logging(frame: FrameType | None) -> bool:
    """Whether ``frame`` or a caller is inside the logging package, or our report module (by module name)."""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module == "logging" or module.startswith("logging.") or module == _REPORT_MODULE:
            return True
        frame = frame.f_back
    return False


#: The module whose writes a stop must not interrupt halfway (a line, a JSON report).
_REPORT_MODULE = __name__.rpartition(".")[0] + ".report"


def _cancel(dbapi_connection: Any) -> None:
    """Ask the server (or SQLite) to abort the statement in progress, the engine's own way."""
    from . import engines

    engine = engines.of_driver_connection(dbapi_connection)
    if engine is None:
        engines.cancel_by_driver(dbapi_connection)  # a driver migrate-init does not know: its own cancel()
    else:
        engine.cancel(dbapi_connection)
