"""Conformance: timers as events of poll() (DESIGN item 12)."""

from __future__ import annotations

import math
import random
import threading
import time

import pytest

import portaio
from portaio.conformance.plugin import Closer, poll_while

_now = time.monotonic


def timer_events(events: list[portaio.Event]) -> list[portaio.Event]:
    """The events of a poll result, all of which must be TIMER events (fails on any other)."""
    others = [e for e in events if e.events != portaio.TIMER or e.fd != -1]
    assert others == [], f"only timer events were due, but the poll also gave {others}"
    return events


def collect_timers(
    poller: portaio.Poller, count: int, timeout: float = 5.0
) -> list[tuple[portaio.Event, float]]:
    """Poll until *count* timer expirations arrived; each event with the time it was seen.

    Any other event (a stray WAKE, an fd) fails: only timers are expected here.
    """
    out: list[tuple[portaio.Event, float]] = []
    deadline = _now() + timeout
    seen = 0
    while seen < count:
        remaining = deadline - _now()
        assert remaining > 0, f"only {seen} of {count} expirations within {timeout} s: {out[-3:]}"
        for event in timer_events(poller.poll(remaining)):
            out.append((event, _now()))
            seen += event.times
    return out


def test_one_shot_fires_once_never_early(poller: portaio.Poller) -> None:
    start = _now()
    timer = poller.add_timer(0.02, data="t")
    assert timer.active
    assert timer.deadline is not None and timer.deadline >= start + 0.02
    [(event, seen)] = collect_timers(poller, 1)
    assert event == portaio.Event(-1, portaio.TIMER, "t", 1, 0)
    assert seen - start >= 0.02
    assert not timer.active and timer.deadline is None
    assert poller.poll(0.03) == []


def _by_deadline(poller: portaio.Poller, delays: tuple[float, ...]) -> list[float]:
    """Add a timer per delay (its data the delay); the delays in the order their deadlines fall.

    Not simply sorted delays: on a loaded machine the adds themselves may be
    milliseconds apart, and the order that counts is the deadlines'.
    """
    timers = [(poller.add_timer(delay, data=delay), delay) for delay in delays]
    return [delay for timer, delay in sorted(timers, key=lambda td: (td[0].deadline or 0.0, td[1]))]


def test_timers_come_ordered_by_deadline(poller: portaio.Poller) -> None:
    expected = _by_deadline(poller, (0.03, 0.0, 0.02, 0.01, 0.025, 0.005))
    got = [event.data for event, _ in collect_timers(poller, 6)]
    assert got == expected


def test_same_batch_is_ordered_too(poller: portaio.Poller) -> None:
    expected = _by_deadline(poller, (0.003, 0.001, 0.002, 0.0))
    end = _now() + 0.01
    while _now() < end:  # let all four fall due before the poll
        pass
    assert [e.data for e in poller.poll(0)] == expected


def test_poll_timeout_shorter_than_timer_is_honoured(poller: portaio.Poller) -> None:
    poller.add_timer(0.2)
    start = _now()
    assert poller.poll(0.02) == []
    elapsed = _now() - start
    assert 0.02 <= elapsed < 0.15


def test_blocking_poll_returns_at_the_timer(poller: portaio.Poller) -> None:
    start = _now()
    poller.add_timer(0.03, data="x")
    events = poller.poll()
    assert [e.data for e in events] == ["x"]
    assert 0.03 <= _now() - start < 1.0


def test_repeating_timer_keeps_its_grid(poller: portaio.Poller) -> None:
    interval = 0.005
    before = _now()
    timer = poller.add_timer(interval, interval, data="r")
    after = _now()
    got = collect_timers(poller, 40)
    total = sum(event.times for event, _ in got)
    for event, _seen in got:
        assert event.data == "r" and event.events == portaio.TIMER and event.times >= 1
    # Every expiry was seen at or after its deadline on the k * interval grid.
    reported = 0
    for event, seen in got:
        reported += event.times
        assert seen >= before + reported * interval
    deadline = timer.deadline
    assert deadline is not None
    # The next deadline is exactly (start + (total + 1) * interval): no drift.
    assert before + (total + 1) * interval - 1e-6 <= deadline <= after + (total + 1) * interval + 1e-6


def test_missed_expirations_are_counted_once(poller: portaio.Poller) -> None:
    interval = 0.025
    before = _now()
    timer = poller.add_timer(interval, interval, data="r")
    end = before + 6.5 * interval
    while _now() < end:  # the program is busy: expirations pile up
        pass
    asked = _now()
    [event] = poller.poll(0)
    assert event.times >= 6
    deadline = timer.deadline
    assert deadline is not None and deadline > asked  # the next one is still ahead
    again = poller.poll(0)
    if _now() < deadline:  # a loaded machine may have passed the next deadline meanwhile
        assert again == []


def test_cancel_before_expiry(poller: portaio.Poller) -> None:
    timer = poller.add_timer(0.01, data="c")
    assert timer.cancel() is True
    assert timer.cancel() is False
    assert not timer.active
    start = _now()
    assert poller.poll(0.03) == []
    assert _now() - start >= 0.03


def test_cancel_after_expiry_before_report_drops_it(poller: portaio.Poller) -> None:
    timer = poller.add_timer(0.0, data="c")
    other = poller.add_timer(0.0, 0.001, data="other")
    end = _now() + 0.003
    while _now() < end:
        pass
    assert timer.cancel() is True
    other.cancel()
    assert poller.poll(0) == []


def test_cancel_after_report_is_harmless(poller: portaio.Poller) -> None:
    timer = poller.add_timer(0.0, data="c")
    assert [e.data for e in poller.poll(1)] == ["c"]
    assert timer.cancel() is False
    repeating = poller.add_timer(0.0, 0.001, data="r")
    assert [e.data for e in poller.poll(1)] == ["r"]
    assert repeating.cancel() is True
    assert poller.poll(0.01) == []


def test_rearm_restarts_a_spent_or_cancelled_timer(poller: portaio.Poller) -> None:
    timer = poller.add_timer(0.0, data="a")
    poller.poll(1)
    start = _now()
    timer.rearm(0.01)
    assert timer.active
    [(event, seen)] = collect_timers(poller, 1)
    assert event.data == "a" and seen - start >= 0.01
    timer.cancel()
    timer.rearm(0.0, 0.002)
    got = collect_timers(poller, 3)
    assert all(e.data == "a" for e, _ in got)
    timer.cancel()


def test_rearm_to_earlier_deadline_takes_effect(poller: portaio.Poller) -> None:
    timer = poller.add_timer(10.0, data="x")
    start = _now()
    timer.rearm(0.01)
    [(_event, seen)] = collect_timers(poller, 1, timeout=2.0)
    assert 0.01 <= seen - start < 1.0


def test_zero_delay_is_due_at_once(poller: portaio.Poller) -> None:
    poller.add_timer(0, data="z")
    assert poller.poll(0) == [portaio.Event(-1, portaio.TIMER, "z", 1, 0)]
    assert poller.poll(0) == []


def test_huge_delay_never_fires_and_does_not_block_others(poller: portaio.Poller) -> None:
    huge = poller.add_timer(1e8, data="huge")
    start = _now()
    poller.add_timer(0.01, data="soon")
    assert [e.data for e, _ in collect_timers(poller, 1)] == ["soon"]
    assert _now() - start >= 0.01
    assert poller.poll(0.01) == []
    assert huge.active


@pytest.mark.parametrize(
    ("delay", "interval", "error"),
    [
        (-1, None, ValueError),
        (math.nan, None, ValueError),
        (math.inf, None, OverflowError),
        (1e10, None, OverflowError),
        (0.1, 0, ValueError),
        (0.1, -0.5, ValueError),
        ("1", None, TypeError),
        (True, None, TypeError),
    ],
)
def test_bad_delays_raise_at_the_call(
    poller: portaio.Poller, delay: object, interval: object, error: type
) -> None:
    with pytest.raises(error, match=poller.backend):
        poller.add_timer(delay, interval)  # type: ignore[arg-type]


def test_ten_thousand_timers(poller: portaio.Poller) -> None:
    rng = random.Random(4)
    timers = []
    for i in range(10_000):
        timers.append(poller.add_timer(rng.random() * 0.05, data=i))
    cancelled = set(range(0, 10_000, 3))
    for i in cancelled:
        assert timers[i].cancel()
    deadlines: dict[int, float] = {}
    for i, timer in enumerate(timers):
        if i not in cancelled:
            assert timer.deadline is not None
            deadlines[i] = timer.deadline
    seen: list[int] = []
    end = _now() + 5
    while len(seen) < len(deadlines):
        assert _now() < end, f"{len(seen)} of {len(deadlines)} timers fired"
        events = poller.poll(1)
        now = _now()
        for event in events:
            seen.append(event.data)
            assert now >= deadlines[event.data]
    assert sorted(seen) == sorted(deadlines)
    assert [deadlines[i] for i in seen] == sorted(deadlines[i] for i in seen)
    assert poller.poll(0) == []


def test_cancelling_most_timers_keeps_the_rest_in_order(poller: portaio.Poller) -> None:
    timers = [poller.add_timer(0.001 + (i % 97) * 0.0001, data=i) for i in range(2000)]
    survivors = {i for i in range(2000) if i % 10 == 0}
    for i, timer in enumerate(timers):
        if i not in survivors:
            timer.cancel()
    deadlines = {i: timers[i].deadline or 0.0 for i in survivors}
    assert all(timers[i].active for i in survivors)
    got = [event.data for event, _ in collect_timers(poller, len(survivors))]
    assert sorted(got) == sorted(survivors)
    assert [deadlines[i] for i in got] == sorted(deadlines[i] for i in got)
    assert poller.poll(0.005) == []


def test_max_events_splits_without_loss(poller: portaio.Poller, fds: Closer) -> None:
    for name in "abc":
        poller.add_timer(0.0, data=name)
    r, w = fds.pipe()
    poller.register(r, portaio.READABLE, "pipe")
    import os

    os.write(w, b"x")
    got = []
    for _ in range(4):
        got += [e.data for e in poller.poll(1, max_events=1)]
    assert sorted(got) == ["a", "b", "c", "pipe"]
    assert [e.data for e in poller.poll(0)] == ["pipe"]  # level: still readable


def test_timers_and_fd_events_in_one_poll(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "sock")
    poller.add_timer(0.0, data="t")
    b.send(b"x")
    end = _now() + 0.002
    while _now() < end:
        pass
    assert sorted(str(e.data) for e in poller.poll(1)) == ["sock", "t"]


def test_timers_beside_an_always_ready_regular_file(poller: portaio.Poller) -> None:
    import tempfile

    with tempfile.TemporaryFile() as handle:
        poller.register(handle, portaio.READABLE, "file")
        start = _now()
        poller.add_timer(0.02, data="t")
        seen: set[str] = set()
        while "t" not in seen:
            assert _now() - start < 5, "the timer never came"
            seen.update(str(e.data) for e in poller.poll(1))
        assert _now() - start >= 0.02
        assert "file" in seen
        poller.unregister(handle)


def test_timer_added_from_another_thread_wakes_a_blocked_poll(poller: portaio.Poller) -> None:
    poller.add_timer(30.0, data="far")  # the poll would otherwise sleep 30 s
    events, elapsed = poll_while(poller, 0.02, lambda: poller.add_timer(0.01, data="near"), 5)
    assert [e.data for e in events] == ["near"]
    assert elapsed < 2.0


def test_close_cancels_timers_and_refuses_new_ones(backend: str) -> None:
    poller = portaio.Poller(backend)
    timer = poller.add_timer(0.01)
    poller.close()
    assert not timer.active
    assert timer.cancel() is False
    with pytest.raises(portaio.PollerClosed):
        poller.add_timer(0.01)
    with pytest.raises(portaio.PollerClosed):
        timer.rearm(0.01)


@pytest.mark.slow
def test_soak_timers_and_wakes_from_many_threads(poller: portaio.Poller) -> None:
    """Threads start, cancel and wake for seconds: nothing early, lost or doubled."""
    stop = threading.Event()
    lock = threading.Lock()
    kept: dict[tuple[int, int], float] = {}  # timers not cancelled -> deadline
    dropped: set[tuple[int, int]] = set()  # cancelled before their expiry was reported

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        n = 0
        while not stop.is_set():
            n += 1
            key = (seed, n)
            timer = poller.add_timer(rng.random() * 0.003, data=key)
            deadline = timer.deadline
            cancelled = rng.random() < 0.3 and timer.cancel()
            with lock:
                if cancelled:
                    dropped.add(key)
                else:
                    kept[key] = deadline if deadline is not None else 0.0
            if rng.random() < 0.1:
                poller.wake()
            time.sleep(0.0003)

    seen: dict[tuple[int, int], list[float]] = {}

    def record(events: list[portaio.Event]) -> None:
        now = _now()
        for event in events:
            if event.events & portaio.TIMER:
                seen.setdefault(event.data, []).append(now)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(3)]
    for thread in threads:
        thread.start()
    try:
        end = _now() + 5
        while _now() < end:
            record(poller.poll(0.05))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    drain_end = _now() + 0.1
    while _now() < drain_end:
        record(poller.poll(0.02))
    assert [key for key, times in seen.items() if len(times) > 1] == []
    assert set(kept) - set(seen) == set()
    assert dropped & set(seen) == set()
    # A timer whose deadline was read after it fired has deadline None (0.0 here).
    early = [key for key, times in seen.items() if key in kept and times[0] < kept[key]]
    assert early == []
