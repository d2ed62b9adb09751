"""retry: the one backoff policy and the one poll loop, timed with real time and small numbers.

Timed assertions have generous bounds: they prove an order of magnitude
(a quarter second, not ten), never a scheduler's precision.
"""

from __future__ import annotations

import itertools
import time

import pytest

from migrate_init import retry
from migrate_init.retry import Backoff, poll


class Stop(Exception):
    """What a checkpoint raises when the process must stop."""


class GaveUp(Exception):
    """What on_timeout returns in these tests."""


def gave_up() -> GaveUp:
    return GaveUp("deadline passed")


# -- Backoff --------------------------------------------------------------------


def test_delays_are_jittered_below_a_ceiling_that_grows_to_the_maximum() -> None:
    backoff = Backoff(initial=0.1, maximum=0.8, multiplier=2.0)
    ceilings = [0.1, 0.2, 0.4, 0.8, 0.8, 0.8]
    for _ in range(200):
        delays = backoff.delays()
        for ceiling in ceilings:
            delay = next(delays)
            assert 0.0 <= delay <= ceiling


def test_delays_use_the_whole_jitter_range() -> None:
    """Full jitter: replicas that started together spread out, from 0 up to the ceiling."""
    samples = [next(Backoff(initial=1.0, maximum=1.0).delays()) for _ in range(400)]
    assert min(samples) < 0.2
    assert max(samples) > 0.8


def test_a_floor_keeps_every_delay_above_it() -> None:
    """The lock's waiters: no two polls closer than the floor, the ceiling still growing."""
    backoff = Backoff(initial=0.1, maximum=1.0, multiplier=1.1, floor=0.05)
    for _ in range(200):
        delays = backoff.delays()
        ceiling = 0.1
        for _ in range(40):
            delay = next(delays)
            assert 0.05 <= delay <= ceiling + 1e-12
            ceiling = min(ceiling * 1.1, 1.0)
    with pytest.raises(ValueError):
        Backoff(initial=0.1, maximum=1.0, floor=0.2)
    with pytest.raises(ValueError):
        Backoff(initial=0.1, maximum=1.0, floor=-0.1)
    assert Backoff(0.1, 1.0, floor=0.05) != Backoff(0.1, 1.0)


def test_backoff_refuses_nonsense_and_is_immutable() -> None:
    with pytest.raises(ValueError):
        Backoff(initial=0, maximum=1)
    with pytest.raises(ValueError):
        Backoff(initial=2, maximum=1)
    with pytest.raises(ValueError):
        Backoff(initial=0.1, maximum=1, multiplier=0.5)
    backoff = Backoff(initial=0.05, maximum=1.0)
    with pytest.raises(AttributeError):
        backoff.initial = 1.0
    assert backoff == Backoff(initial=0.05, maximum=1.0, multiplier=2.0)
    assert hash(backoff) == hash(Backoff(0.05, 1.0))
    assert backoff != Backoff(initial=0.05, maximum=2.0)
    assert repr(backoff) == "Backoff(initial=0.05, maximum=1.0, multiplier=2.0, floor=0.0)"


# -- poll -----------------------------------------------------------------------


def test_poll_returns_the_first_result_that_is_not_none_even_a_falsy_one() -> None:
    answers = iter([None, None, False, True])
    waits: list[tuple[int, float]] = []

    result = poll(
        lambda: next(answers),
        deadline=None,
        backoff=Backoff(0.001, 0.001),
        on_wait=lambda number, remaining: waits.append((number, remaining)),
        on_timeout=gave_up,
    )

    assert result is False
    assert waits == [(1, float("inf")), (2, float("inf"))]


def test_a_deadline_already_past_gives_exactly_one_attempt() -> None:
    attempts: list[float] = []
    waits: list[int] = []
    checkpoints: list[float] = []

    def attempt() -> None:
        attempts.append(time.monotonic())

    started = time.monotonic()
    with pytest.raises(GaveUp):
        poll(
            attempt,
            deadline=time.monotonic() - 1,
            backoff=Backoff(5.0, 5.0),
            on_wait=lambda number, _remaining: waits.append(number),
            checkpoint=lambda: checkpoints.append(time.monotonic()),
            on_timeout=gave_up,
        )

    assert len(attempts) == 1
    assert waits == [] and checkpoints == []
    assert time.monotonic() - started < 1.0


def test_a_deadline_of_now_gives_exactly_one_attempt() -> None:
    attempts: list[int] = []
    with pytest.raises(GaveUp):
        poll(lambda: attempts.append(1), deadline=time.monotonic(), backoff=Backoff(5.0, 5.0), on_timeout=gave_up)
    assert attempts == [1]


def test_on_timeout_exception_is_raised_as_returned() -> None:
    sentinel = GaveUp("the one")
    with pytest.raises(GaveUp) as raised:
        poll(lambda: None, deadline=0.0, backoff=Backoff(), on_timeout=lambda: sentinel)
    assert raised.value is sentinel


def test_what_an_attempt_raises_ends_the_poll_at_once() -> None:
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        raise KeyError("final")

    with pytest.raises(KeyError):
        poll(attempt, deadline=time.monotonic() + 30, backoff=Backoff(0.01, 0.01), on_timeout=gave_up)
    assert calls == [1]


def test_the_wait_never_runs_past_the_deadline_and_tries_once_more_at_it() -> None:
    """Delays of up to ten seconds are cut at a deadline 0.4 s away; the last try is at the deadline."""
    attempts: list[float] = []
    remaining: list[float] = []
    started = time.monotonic()
    deadline = started + 0.4

    with pytest.raises(GaveUp):
        poll(
            lambda: attempts.append(time.monotonic()),
            deadline=deadline,
            backoff=Backoff(initial=10.0, maximum=10.0),
            on_wait=lambda _number, left: remaining.append(left),
            on_timeout=gave_up,
        )

    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 1.5, f"took {elapsed:.2f}s"
    assert len(attempts) >= 2
    assert attempts[-1] >= deadline - 0.05  # the last attempt was at the deadline, not before it
    assert all(0.0 < left <= 0.4 for left in remaining)
    assert remaining == sorted(remaining, reverse=True)


def test_no_single_sleep_is_longer_than_a_slice() -> None:
    """With one-second delays, the checkpoint still runs at least every quarter second."""
    marks: list[float] = []
    answers = iter([None, None, "done"])

    result = poll(
        lambda: next(answers),
        deadline=time.monotonic() + 30,
        backoff=Backoff(initial=1.0, maximum=1.0, multiplier=1.0),
        checkpoint=lambda: marks.append(time.monotonic()),
        on_timeout=gave_up,
    )

    assert result == "done"
    assert len(marks) >= 2
    gaps = [later - earlier for earlier, later in itertools.pairwise(marks)]
    assert max(gaps) < retry.SLICE + 0.2, f"a sleep of {max(gaps):.2f}s"


def test_a_checkpoint_that_raises_stops_the_wait_within_one_slice() -> None:
    started = time.monotonic()
    attempts: list[int] = []

    def checkpoint() -> None:
        if time.monotonic() - started >= 0.3:
            raise Stop("SIGTERM")

    with pytest.raises(Stop):
        poll(
            lambda: attempts.append(1),
            deadline=None,
            backoff=Backoff(initial=30.0, maximum=30.0),
            checkpoint=checkpoint,
            on_timeout=gave_up,
        )

    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 0.3 + retry.SLICE + 0.45, f"took {elapsed:.2f}s"
    assert attempts


def test_on_wait_gets_numbered_attempts_and_the_time_left() -> None:
    seen: list[tuple[int, float]] = []
    answers = iter([None, None, None, 7])
    deadline = time.monotonic() + 30

    assert (
        poll(
            lambda: next(answers),
            deadline=deadline,
            backoff=Backoff(0.001, 0.001),
            on_wait=lambda number, left: seen.append((number, left)),
            on_timeout=gave_up,
        )
        == 7
    )

    assert [number for number, _ in seen] == [1, 2, 3]
    assert all(29.0 < left <= 30.0 for _, left in seen)


# -- sleep ------------------------------------------------------------------------


def test_sleep_of_zero_still_runs_the_checkpoint_once() -> None:
    calls: list[int] = []
    retry.sleep(0, lambda: calls.append(1))
    assert calls == [1]


def test_sleep_runs_the_checkpoint_around_every_slice() -> None:
    marks: list[float] = []
    started = time.monotonic()
    retry.sleep(0.6, lambda: marks.append(time.monotonic()))
    elapsed = time.monotonic() - started
    assert 0.6 <= elapsed < 1.5
    assert len(marks) >= 4  # three slices (0.25, 0.25, 0.1): before the first and after each
    assert marks[-1] - started >= 0.6  # the last one after the last slice
