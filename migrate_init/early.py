"""The first thing every entry point does: record SIGTERM and SIGINT until the watchdog takes over.

Python's start and the imports before :class:`~migrate_init.watchdog.Watchdog`
(the CLI's, the configuration's) take 10 to 100 ms.  A SIGTERM in that window
ended the process with no summary, or, as PID 1 in a container, where the
kernel drops a signal that has no handler, was lost, and the run migrated to
exit 0 (issue 25 N32).  ``migrate.py``, ``python -m migrate_init`` and the
``migrate-init`` command call :func:`install` before importing anything else;
the watchdog then honours what it recorded.  ``_signal`` (the C half of
``signal``) keeps this to one cheap import.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported on the way to a run with nothing to do (issue 14)
if TYPE_CHECKING:
    import signal as _signal
else:
    import _signal

_STOP = (_signal.SIGTERM, _signal.SIGINT)

#: The stop signals received before the watchdog was installed, in order.
received: list[int] = []


def _record(signum: int, _frame: object) -> None:
    received.append(signum)


def install() -> None:
    """Record SIGTERM and SIGINT from now on, including one a launcher held blocked until now."""
    for signum in _STOP:
        _signal.signal(signum, _record)
    # A launcher that blocks them before exec (the only way to close the window before this line)
    # leaves them pending: unblocked here, they reach _record.
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, _STOP)


def main() -> None:
    """The ``migrate-init`` command: :func:`install`, then the CLI (whose imports come after it)."""
    install()
    from .cli import main as cli_main

    cli_main()
