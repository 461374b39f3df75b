"""Conformance: cross-thread wake-ups as events of poll() (DESIGN item 12)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

import pytest

import portaio
from portaio.conformance.plugin import Closer, poll_while

_now = time.monotonic
WAKE_EVENT = portaio.Event(-1, portaio.WAKE, None, 1, 0)


def test_wake_before_poll_returns_at_once(poller: portaio.Poller) -> None:
    poller.wake()
    start = _now()
    assert poller.poll(5) == [WAKE_EVENT]
    assert _now() - start < 1.0


def test_wakes_coalesce_and_leave_nothing_behind(poller: portaio.Poller) -> None:
    for _ in range(100):
        poller.wake()
    assert poller.poll(1) == [WAKE_EVENT]
    start = _now()
    assert poller.poll(0.03) == []  # drained: no spurious event, no busy loop
    assert _now() - start >= 0.03


def test_wake_from_another_thread_interrupts_a_blocked_poll(poller: portaio.Poller) -> None:
    # The delay lets the main thread block first.
    events, elapsed = poll_while(poller, 0.02, poller.wake, 5)
    assert events == [WAKE_EVENT]
    assert elapsed < 2.0
    assert poller.poll(0) == []


def test_wake_from_a_signal_handler(poller: portaio.Poller) -> None:
    def handler(signum: int, frame: Any) -> None:
        poller.wake()

    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("SIGUSR2 and os.kill of a handled signal are POSIX")
    previous = signal.signal(signal.SIGUSR2, handler)
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
        events = poller.poll(5)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert events == [WAKE_EVENT]


def test_wake_alongside_fd_events(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "sock")
    b.send(b"x")
    poller.wake()
    events = poller.poll(1)  # both are ready before the call: both come in it
    assert sorted(events, key=repr) == sorted(
        [WAKE_EVENT, portaio.Event(a.fileno(), portaio.READABLE, "sock")], key=repr
    )
    assert poller.poll(0) == [portaio.Event(a.fileno(), portaio.READABLE, "sock")]


def test_wake_with_timers_in_use(poller: portaio.Poller) -> None:
    poller.add_timer(30.0)
    poller.wake()
    assert poller.poll(5) == [WAKE_EVENT]
    assert poller.poll(0) == []


def test_many_threads_waking_never_hang_or_leak(poller: portaio.Poller) -> None:
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            poller.wake()

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(200):
            assert poller.poll(5) == [WAKE_EVENT]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    leftover = poller.poll(0)
    assert leftover in ([], [WAKE_EVENT])  # the last wake may land after the last poll
    assert poller.poll(0) == []


def test_wake_on_a_closed_poller_raises(backend: str) -> None:
    poller = portaio.Poller(backend)
    poller.close()
    with pytest.raises(portaio.PollerClosed, match=backend):
        poller.wake()


def test_a_wake_is_reported_once_not_on_later_internal_wakeups(poller: portaio.Poller, fds: Closer) -> None:
    """The poller wakes itself too (a due timer or a registration from another thread).

    Those must not report a WAKE again: only a :meth:`wake` since the last
    WAKE event makes one.
    """
    poller.add_timer(30.0, data="far")  # timers in use before the poll (see threads_cases)
    poller.wake()
    assert poller.poll(1) == [WAKE_EVENT]
    timer = portaio.Event(-1, portaio.TIMER, "due", 1, 0)
    events, _ = poll_while(poller, 0.02, lambda: poller.add_timer(0.0, data="due"), 5)
    assert events == [timer]
    a, b = fds.socketpair()
    b.send(b"x")
    events, _ = poll_while(poller, 0.02, lambda: poller.register(a, portaio.READABLE, "late"), 5)
    assert events == [portaio.Event(a.fileno(), portaio.READABLE, "late")]
    poller.unregister(a)
    events, _ = poll_while(poller, 0.02, lambda: poller.add_timer(0.0, data="due"), 5)
    assert events == [timer]
    assert poller.poll(0.01) == []
    poller.wake()  # and a new wake() is reported again, once
    assert poller.poll(1) == [WAKE_EVENT]
    assert poller.poll(0) == []


def test_a_wake_is_not_repeated_by_a_signal_shared_with_another_poller(backend: str) -> None:
    """Two pollers watch one signal; the one that drains it wakes the other internally."""
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("SIGUSR1 is POSIX")
    usr1 = signal.SIGUSR1
    with portaio.Poller(backend) as one, portaio.Poller(backend) as two:
        one.wake()
        assert one.poll(1) == [WAKE_EVENT]
        one.add_signal(usr1, data=1)
        two.add_signal(usr1, data=2)
        os.kill(os.getpid(), usr1)
        for poller, data in ((two, 2), (one, 1)):
            got = poller.poll(5)
            assert got == [portaio.Event(-1, portaio.SIGNAL, data, 1, usr1)]
        assert one.poll(0.01) == []
        assert two.poll(0) == []
