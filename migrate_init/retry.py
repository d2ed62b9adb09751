"""One retry policy, declared once: exponential backoff with full jitter, and one poll loop.

Every wait in migrate-init (the database to answer, the migration lock to be
free, another migrator to finish) is a call to :func:`poll`: try, and between
tries sleep a jittered, growing delay, never past the deadline the user set,
in slices short enough that a stop request (SIGTERM, MIGRATION_TIMEOUT) is
honoured within a quarter of a second.  The callers decide what an attempt
is, what to announce and which error a timeout is; nothing else about waiting
is written twice.

Imported on the no-op fast path: only ``time`` at the top (``random`` is
loaded on the first delay).
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import TypeVar

    T = TypeVar("T")

#: The longest single ``time.sleep``: a checkpoint runs at least this often while waiting.
SLICE = 0.25


class Backoff:
    """Exponential backoff with full jitter, capped.  Immutable.

    The n-th delay (from 0) is drawn uniformly from
    ``[floor, min(initial * multiplier**n, maximum)]``: full jitter (``floor``
    0, the default) spreads replicas that started together, so they do not
    poll in lockstep
    (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
    A ``floor`` keeps many waiters from polling a shared server in bursts of
    near-zero delays.
    """

    __slots__ = ("floor", "initial", "maximum", "multiplier")

    initial: float
    maximum: float
    multiplier: float
    floor: float

    def __init__(self, initial: float = 0.1, maximum: float = 2.0, multiplier: float = 2.0, floor: float = 0.0) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"Backoff needs 0 < initial <= maximum, not initial={initial!r}, maximum={maximum!r}.")
        if multiplier < 1:
            raise ValueError(f"Backoff needs multiplier >= 1, not {multiplier!r}.")
        if not 0 <= floor <= initial:
            raise ValueError(f"Backoff needs 0 <= floor <= initial, not floor={floor!r}, initial={initial!r}.")
        object.__setattr__(self, "initial", float(initial))
        object.__setattr__(self, "maximum", float(maximum))
        object.__setattr__(self, "multiplier", float(multiplier))
        object.__setattr__(self, "floor", float(floor))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Backoff is immutable; make a new one instead of setting {name}.")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Backoff is immutable; {name} cannot be deleted.")

    def __repr__(self) -> str:
        return (
            f"Backoff(initial={self.initial!r}, maximum={self.maximum!r}, "
            f"multiplier={self.multiplier!r}, floor={self.floor!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Backoff):
            return NotImplemented
        return (self.initial, self.maximum, self.multiplier, self.floor) == (
            other.initial,
            other.maximum,
            other.multiplier,
            other.floor,
        )

    def __hash__(self) -> int:
        return hash((self.initial, self.maximum, self.multiplier, self.floor))

    def delays(self) -> Iterator[float]:
        """An endless series of delays in seconds, each jittered, their ceiling growing."""
        import random

        ceiling = self.initial
        while True:
            yield random.uniform(self.floor, ceiling)
            ceiling = min(ceiling * self.multiplier, self.maximum)


def sleep(seconds: float, checkpoint: Callable[[], None] | None = None) -> None:
    """Sleep ``seconds`` in slices of at most :data:`SLICE`, calling ``checkpoint`` around each.

    ``checkpoint`` is called before the first slice and after every slice
    (so at least once, even for a zero sleep); whatever it raises ends the
    sleep at once.
    """
    end = time.monotonic() + seconds
    while True:
        if checkpoint is not None:
            checkpoint()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(SLICE, left))


def poll(
    attempt: Callable[[], T | None],
    *,
    deadline: float | None,
    backoff: Backoff,
    on_wait: Callable[[int, float], None] | None = None,
    checkpoint: Callable[[], None] | None = None,
    on_timeout: Callable[[], BaseException],
) -> T:
    """Call ``attempt()`` until it returns something other than None, and return that.

    ``deadline`` is a :func:`time.monotonic` value (None: wait for ever).
    After every attempt that returned None:

    - when the deadline has passed, raise the exception ``on_timeout()``
      returns (a deadline already past gives exactly one attempt);
    - else call ``on_wait(attempt_number, remaining_seconds)`` (``inf`` when
      there is no deadline): the caller decides what, and when, to announce;
    - then sleep the next delay of ``backoff``, cut short at the deadline
      (so the last attempt happens at the deadline), in slices of at most
      :data:`SLICE`, with ``checkpoint()`` called before and after each
      slice.  ``checkpoint`` raises when the process must stop.

    Whatever ``attempt`` raises ends the poll at once: it classifies its
    own errors and returns None for those worth retrying.  A result of
    ``False``, ``0`` or ``""`` is a result, not a retry.
    """
    delays = backoff.delays()
    number = 0
    while True:
        number += 1
        result = attempt()
        if result is not None:
            return result
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise on_timeout()
        if on_wait is not None:
            on_wait(number, float("inf") if deadline is None else deadline - now)
        pause = next(delays)
        if deadline is not None:
            pause = min(pause, max(deadline - time.monotonic(), 0.0))
        sleep(pause, checkpoint)
