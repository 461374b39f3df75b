"""Conformance: changes from another thread while a poll blocks (DESIGN item 10).

A register, modify or unregister made while another thread waits in
``poll()`` takes effect in that wait, without waiting out its timeout; a
``close()`` ends that wait with :class:`portaio.PollerClosed`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import portaio
from portaio.conformance.plugin import Closer, open_fds, poll_while

_LONG = 5.0  # the blocked poll's timeout; the change must end it far sooner


class _Waiter:
    """Runs ``poller.poll(timeout)`` in a thread and records what it returned and when."""

    def __init__(self, poller: portaio.Poller, timeout: float | None = _LONG) -> None:
        self.poller = poller
        self.timeout = timeout
        self.result: list[portaio.Event] | None = None
        self.error: BaseException | None = None
        self.started = threading.Event()
        self.elapsed = -1.0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.started.wait(2.0)
        # The thread is about to block; give it a moment to get into the kernel.
        # (A change made before it blocks is also fine: the poll then sees it.)
        time.sleep(0.05)

    def _run(self) -> None:
        self.started.set()
        t0 = time.monotonic()
        try:
            self.result = self.poller.poll(self.timeout)
        except BaseException as err:  # handed to the test thread
            self.error = err
        self.elapsed = time.monotonic() - t0

    def join(self) -> list[portaio.Event]:
        self.thread.join(_LONG + 2.0)
        assert not self.thread.is_alive(), "poll() never returned"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def _changed_in_time(waiter: _Waiter, change: Callable[[], Any]) -> list[portaio.Event]:
    t0 = time.monotonic()
    change()
    events = waiter.join()
    assert time.monotonic() - t0 < _LONG / 2, "the change waited out the poll's timeout"
    return events


def test_register_from_another_thread_wakes_poll(poller: portaio.Poller, fds: Closer) -> None:
    a, _ = fds.socketpair()
    waiter = _Waiter(poller)
    events = _changed_in_time(waiter, lambda: poller.register(a, portaio.WRITABLE, "late"))
    assert [(e.fd, e.data) for e in events] == [(a.fileno(), "late")]


def test_register_from_another_thread_wakes_blocking_poll(poller: portaio.Poller, fds: Closer) -> None:
    a, _ = fds.socketpair()
    waiter = _Waiter(poller, timeout=None)
    events = _changed_in_time(waiter, lambda: poller.register(a, portaio.WRITABLE, "late"))
    assert [e.data for e in events] == ["late"]


def test_modify_from_another_thread_wakes_poll(poller: portaio.Poller, fds: Closer) -> None:
    a, _ = fds.socketpair()
    poller.register(a, portaio.READABLE, "r")  # writable, but not asked
    waiter = _Waiter(poller)
    events = _changed_in_time(waiter, lambda: poller.modify(a, portaio.WRITABLE, "w"))
    assert [(e.events, e.data) for e in events] == [(portaio.WRITABLE, "w")]


def test_rearm_oneshot_from_another_thread_wakes_poll(poller: portaio.Poller, fds: Closer) -> None:
    a, _ = fds.socketpair()
    poller.register(a, portaio.WRITABLE | portaio.ONESHOT, 1)
    assert [e.data for e in poller.poll(0)] == [1]
    waiter = _Waiter(poller)
    events = _changed_in_time(waiter, lambda: poller.modify(a, portaio.WRITABLE | portaio.ONESHOT, 2))
    assert [e.data for e in events] == [2]


def test_unregister_from_another_thread_takes_effect(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    c, d = fds.socketpair()
    poller.register(a, portaio.READABLE, "gone")
    poller.register(c, portaio.READABLE, "kept")
    waiter = _Waiter(poller)

    def change() -> None:
        poller.unregister(a)
        b.send(b"x")  # too late: a is no longer watched
        d.send(b"y")

    events = _changed_in_time(waiter, change)
    assert [e.data for e in events] == ["kept"]


def test_unregister_and_close_from_another_thread(poller: portaio.Poller, fds: Closer) -> None:
    import socket

    a, b = socket.socketpair()
    c, d = fds.socketpair()
    fds.add(b)
    poller.register(a, portaio.READABLE, "closed")
    poller.register(c, portaio.READABLE, "kept")
    waiter = _Waiter(poller, timeout=1.0)
    poller.unregister(a)
    a.close()  # b now sees a hang-up; a's number is gone
    d.send(b"y")
    assert [e.data for e in waiter.join()] == ["kept"]


def test_many_changes_while_polling(poller: portaio.Poller, fds: Closer) -> None:
    pairs = [fds.socketpair() for _ in range(20)]
    stop = threading.Event()
    seen: list[Any] = []

    def loop() -> None:
        while not stop.is_set():
            seen.extend(e.data for e in poller.poll(0.5))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        for round_ in range(5):
            for i, (a, _) in enumerate(pairs):
                poller.register(a, portaio.READABLE, (round_, i))
            for a, _ in pairs:
                poller.unregister(a)
        pairs[0][1].send(b"x")  # nothing registered: never reported
        poller.register(pairs[1][0], portaio.WRITABLE, "last")
        deadline = time.monotonic() + 2.0
        while "last" not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        poller.register(pairs[2][0], portaio.WRITABLE, "stop")  # wakes the loop
        thread.join(3.0)
    assert not thread.is_alive()
    assert "last" in seen
    assert all(isinstance(d, str) for d in seen), seen


def test_several_threads_poll_one_poller(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE | portaio.ONESHOT, "once")
    waiters = [_Waiter(poller, timeout=0.3) for _ in range(3)]
    b.send(b"x")
    results = [w.join() for w in waiters]  # none raises
    assert sorted(len(r) for r in results) == [0, 0, 1], "a one-shot event reached one thread only"
    poller.modify(a, portaio.READABLE, "level")
    waiters = [_Waiter(poller, timeout=1.0) for _ in range(2)]
    assert all([e.data for e in w.join()] == ["level"] for w in waiters)


def test_oneshot_changes_from_another_thread_never_lost(poller: portaio.Poller, fds: Closer) -> None:
    # The kernel may report a new registration to the waiting thread before
    # the changing thread has returned: that event must not be dropped, or a
    # one-shot is gone for good.
    a, _ = fds.socketpair()
    lost = []
    for i in range(60):
        results: list[list[portaio.Event]] = []
        started = threading.Event()

        def wait(started: threading.Event = started, results: list[list[portaio.Event]] = results) -> None:
            started.set()
            results.append(poller.poll(1.0))

        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        started.wait(2.0)
        if i % 2 == 0:
            poller.register(a, portaio.WRITABLE | portaio.ONESHOT, i)
        else:
            poller.modify(a, portaio.WRITABLE | portaio.ONESHOT, i)
        thread.join(3.0)
        if [e.data for e in results[0]] != [i]:
            lost.append((i, results[0]))
            poller.poll(0)
        if i % 2:
            poller.unregister(a)
    assert not lost, f"one-shot events lost or wrong: {lost[:5]}"


@pytest.mark.parametrize("timeout", [_LONG, None])
@pytest.mark.parametrize("variant", ["plain", "timer-pending"])
def test_close_from_another_thread_ends_a_blocked_poll(
    backend: str, fds: Closer, timeout: float | None, variant: str
) -> None:
    a, _ = fds.socketpair()
    before = open_fds()
    poller = portaio.Poller(backend)
    poller.register(a, portaio.READABLE)
    if variant == "timer-pending":
        poller.add_timer(3600.0)
    waiter = _Waiter(poller, timeout)
    t0 = time.monotonic()
    poller.close()
    with pytest.raises(portaio.PollerClosed, match=rf"portaio\[{backend}\]"):
        waiter.join()
    assert time.monotonic() - t0 < _LONG / 2
    assert open_fds() <= before, "close() left fds of the poller open"


def test_first_timer_added_from_another_thread_wakes_a_blocked_poll(poller: portaio.Poller) -> None:
    events, elapsed = poll_while(poller, 0.02, lambda: poller.add_timer(0.0, data="first"), 1.0)
    assert events == [portaio.Event(-1, portaio.TIMER, "first", 1, 0)]
    assert elapsed < 0.9


def test_regular_file_registered_from_another_thread_wakes_a_blocked_poll(poller: portaio.Poller) -> None:
    import tempfile

    with tempfile.TemporaryFile() as handle:
        events, elapsed = poll_while(
            poller, 0.02, lambda: poller.register(handle, portaio.READABLE, "f"), 1.0
        )
        poller.unregister(handle)
        fd = handle.fileno()
    assert events == [portaio.Event(fd, portaio.READABLE, "f")]
    assert elapsed < 0.9
