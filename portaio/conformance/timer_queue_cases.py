"""Conformance: timer details beyond the basics of :mod:`timer_cases` (DESIGN item 12).

* a bad delay or interval is refused at the call, by ``add_timer()`` and by
  ``Timer.rearm()`` alike, with a message naming the backend and the argument,
  and a refused ``rearm()`` leaves the timer as it was;
* the bounds ``TIMER_MAX`` and ``TIMER_MIN_INTERVAL`` are accepted, just past
  them refused;
* a repeating timer's deadlines stay on the grid ``first + k * interval`` and
  a late poll counts every deadline it passed, exactly;
* cancelled timers among due ones and a short ``max_events`` lose nothing
  and list nothing twice;
* where the backend's timers are a kernel timer (``native_timers`` of the
  pinned capabilities: epoll's timerfd) that timer is armed to the earliest
  deadline, read back from the kernel.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from typing import Any

import pytest

import portaio

_now = time.monotonic


def _spin_until(instant: float) -> None:
    """Busy-wait until the monotonic clock reaches *instant* (a few ms at most here)."""
    while _now() < instant:
        pass


_BAD = [
    # (delay, interval, error, the message after "timer ")
    ("1", None, TypeError, "delay must be a number of seconds, got str"),
    (True, None, TypeError, "delay must be a number of seconds, got bool"),
    (None, None, TypeError, "delay must be a number of seconds, got NoneType"),
    (math.nan, None, ValueError, "delay is NaN"),
    (-1, None, ValueError, "delay -1.0 must be zero or positive"),
    (math.inf, None, OverflowError, "delay inf exceeds TIMER_MAX (1e+09 s)"),
    (1e10, None, OverflowError, "delay 10000000000.0 exceeds TIMER_MAX (1e+09 s)"),
    (0.1, "1", TypeError, "interval must be a number of seconds, got str"),
    (0.1, math.nan, ValueError, "interval is NaN"),
    (0.1, 0, ValueError, "interval 0.0 must be positive"),
    (0.1, -0.5, ValueError, "interval -0.5 must be positive"),
    (0.1, 2e9, OverflowError, "interval 2000000000.0 exceeds TIMER_MAX (1e+09 s)"),
    (
        0.1,
        1e-7,
        ValueError,
        "interval 1e-07 is below TIMER_MIN_INTERVAL, the smallest interval honoured (1e-06 s)",
    ),
]

_BAD_IDS = [
    "delay-str",
    "delay-bool",
    "delay-None",
    "delay-nan",
    "delay-negative",
    "delay-inf",
    "delay-1e10",
    "interval-str",
    "interval-nan",
    "interval-zero",
    "interval-negative",
    "interval-2e9",
    "interval-1e-7",
]


@pytest.mark.parametrize(("delay", "interval", "error", "message"), _BAD, ids=_BAD_IDS)
def test_bad_delay_or_interval_is_refused_naming_backend_and_argument(
    poller: portaio.Poller, delay: Any, interval: Any, error: type, message: str
) -> None:
    expected = f"^{re.escape(f'portaio[{poller.backend}]: timer {message}')}$"
    with pytest.raises(error, match=expected):
        poller.add_timer(delay, interval)
    assert poller.poll(0) == []
    # rearm() checks the same way, before touching the timer.
    timer = poller.add_timer(30.0, data="kept")
    deadline = timer.deadline
    with pytest.raises(error, match=expected):
        timer.rearm(delay, interval)
    assert timer.active and timer.deadline == deadline and timer.interval is None
    assert timer.cancel() is True


def test_the_bounds_themselves_are_accepted(poller: portaio.Poller) -> None:
    far = poller.add_timer(portaio.TIMER_MAX, portaio.TIMER_MAX, data="far")
    fine = poller.add_timer(portaio.TIMER_MAX, portaio.TIMER_MIN_INTERVAL, data="fine")
    assert far.interval == portaio.TIMER_MAX and fine.interval == portaio.TIMER_MIN_INTERVAL
    fine.rearm(portaio.TIMER_MAX, portaio.TIMER_MIN_INTERVAL)
    assert poller.poll(0) == []
    assert far.cancel() and fine.cancel()


def test_timers_are_made_by_add_timer_only(poller: portaio.Poller) -> None:
    with pytest.raises(TypeError, match=r"^portaio: timers are created by Poller\.add_timer\(\)$"):
        portaio.Timer()
    timer = poller.add_timer(30.0, 2.5, data="x")
    assert repr(timer) == "<portaio.Timer active interval=2.5 data='x'>"
    timer.cancel()
    assert repr(timer) == "<portaio.Timer inactive interval=2.5 data='x'>"
    spent = poller.add_timer(0.0, data=None)
    assert [e.data for e in poller.poll(0)] == [None]
    assert repr(spent) == "<portaio.Timer inactive interval=None data=None>"


def test_a_late_poll_counts_every_deadline_it_passed(poller: portaio.Poller) -> None:
    # Deadlines d0 + k * interval; a poll between two of them reports all
    # those passed, once, and the next deadline is the grid's next point.
    interval = 0.02
    timer = poller.add_timer(0.0, interval, data="r")
    d0 = timer.deadline
    assert d0 is not None
    reported = 0
    for _ in range(2):
        # 1.5 intervals past the next deadline: two or more deadlines passed
        # (more if the previous poll itself was late on a loaded machine).
        next_deadline = timer.deadline
        assert next_deadline is not None
        _spin_until(next_deadline + 1.5 * interval)
        before = _now()
        [event] = poller.poll(0)
        after = _now()
        assert (event.fd, event.events, event.data) == (-1, portaio.TIMER, "r")
        # Every deadline at or before the clock's reading inside poll(), none after.
        low = math.floor((before - d0) / interval) + 1 - reported
        high = math.floor((after - d0) / interval) + 1 - reported
        assert 2 <= low <= event.times <= high, (event.times, low, high)
        reported += event.times
        assert timer.deadline == d0 + reported * interval
    assert timer.cancel() is True
    assert poller.poll(0) == []


def test_a_cancelled_timer_among_due_ones_hides_none(poller: portaio.Poller) -> None:
    timers = [poller.add_timer(0.0, data=i) for i in range(6)]
    for i in (1, 2, 4):
        assert timers[i].cancel() is True
    _spin_until(max(t.deadline or 0.0 for t in (timers[0], timers[3], timers[5])))
    assert [e.data for e in poller.poll(0)] == [0, 3, 5]
    assert poller.poll(0) == []


@pytest.mark.parametrize("max_events", [2, 3])
def test_max_events_bounds_due_timers_exactly(poller: portaio.Poller, max_events: int) -> None:
    timers = [poller.add_timer(0.0, data=i) for i in range(7)]
    _spin_until(timers[-1].deadline or 0.0)
    got: list[Any] = []
    for _ in range(math.ceil(7 / max_events)):
        batch = [e.data for e in poller.poll(0, max_events=max_events)]
        assert len(batch) == min(max_events, 7 - len(got)), batch
        got += batch
    assert got == list(range(7))
    assert poller.poll(0) == []


def _timerfds() -> dict[int, str]:
    """The process's timerfds: ``{fd: its /proc fdinfo}``."""
    out: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:[timerfd]":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as info:
                out[fd] = info.read()
        except OSError:  # the listing's own fd, closed by now
            continue
    return out


def _remaining(info: str) -> float:
    """Seconds until the timerfd of this fdinfo expires (0.0 when disarmed or expired)."""
    found = re.search(r"^it_value: \((\d+), (\d+)\)$", info, re.M)
    assert found is not None, info
    return int(found.group(1)) + int(found.group(2)) / 1e9


def test_a_native_kernel_timer_is_armed_to_the_earliest_deadline(
    poller: portaio.Poller, capabilities: portaio.Capabilities
) -> None:
    if capabilities.native_timers != "timerfd":
        pytest.skip(f"{poller.backend}'s timers are {capabilities.native_timers!r}, not a timerfd")
    if not sys.platform.startswith("linux") or not os.path.isdir("/proc/self/fdinfo"):  # pragma: no cover
        pytest.skip("reads timerfds back through Linux's /proc/self/fdinfo")
    before = set(_timerfds())
    poller.add_timer(30.0, data="late")
    made = set(_timerfds()) - before
    assert len(made) == 1, f"a pending timer armed no timerfd of its own: {made}"
    [fd] = made

    def remaining() -> float:
        return _remaining(_timerfds()[fd])

    assert 25.0 < remaining() <= 30.0
    soon = poller.add_timer(20.0, data="soon")  # earlier: re-armed to it
    assert 15.0 < remaining() <= 20.0
    poller.add_timer(25.0, data="later")  # not the earliest: left alone
    assert 15.0 < remaining() <= 20.0
    soon.rearm(10.0)
    assert 5.0 < remaining() <= 10.0
    # A timer already due is collected by the poll itself, never armed in the
    # past (a timerfd firing at once would be a wake-up and a read for nothing).
    poller.add_timer(0.0, data="due")
    assert 5.0 < remaining() <= 10.0
    assert [e.data for e in poller.poll(0)] == ["due"]
    assert 5.0 < remaining() <= 10.0
    assert set(_timerfds()) - before == {fd}, "one timerfd per poller, reused"
