"""Conformance: signals arriving during ``poll()`` (DESIGN item 11, PEP 475).

A signal interrupting the wait never escapes as an exception and never ends
the wait early or late; the Python handler runs; an exception raised by the
handler comes out of ``poll()`` promptly.  Signals are sent to the main
thread with ``signal.pthread_kill`` from helper threads (``setitimer`` would
clash with pytest-timeout's SIGALRM).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest

import portaio
from portaio.conformance.plugin import Closer

if sys.platform == "win32":  # pragma: no cover
    pytest.skip("EINTR comes from POSIX signals sent to a thread: not on Windows", allow_module_level=True)

_SIG = signal.SIGUSR1
# How late a timed poll cut by signals may end.  The point of the case is the
# lower bound (a signal must not end the wait early); the upper one only
# catches a wait that never ends, and 0.25 s failed under a CI load of 6-9
# (0.47 s for a 0.15 s poll on select).
_SLACK = 1.0


class _Boom(Exception):
    """Raised by a test's signal handler."""


@pytest.fixture
def on_signal() -> Iterator[Callable[[Callable[[], None]], list[float]]]:
    """Install a SIGUSR1 handler calling the given function; returns the delivery times."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("Python runs signal handlers only in the main thread")
    previous = signal.getsignal(_SIG)
    times: list[float] = []

    def install(action: Callable[[], None]) -> list[float]:
        def handler(signum: int, frame: FrameType | None) -> None:
            times.append(time.monotonic())
            action()

        signal.signal(_SIG, handler)
        return times

    try:
        yield install
    finally:
        signal.signal(_SIG, previous)


def _kill_main_after(*delays: float) -> list[threading.Timer]:
    main = threading.main_thread().ident
    assert main is not None
    timers = [threading.Timer(d, signal.pthread_kill, (main, _SIG)) for d in delays]
    for t in timers:
        t.start()
    return timers


def _join(timers: list[threading.Timer]) -> None:
    for t in timers:
        t.join(5.0)


def _nothing() -> None:
    pass


def test_signals_do_not_cut_a_timed_poll_short(poller: portaio.Poller, fds: Closer, on_signal: Any) -> None:
    a, _ = fds.socketpair()
    poller.register(a, portaio.READABLE)
    delivered = on_signal(_nothing)
    timeout = 0.15
    t0 = time.monotonic()
    timers = _kill_main_after(0.02, 0.05, 0.08)
    try:
        assert poller.poll(timeout) == []
        elapsed = time.monotonic() - t0
    finally:
        _join(timers)
    assert len(delivered) == 3
    assert timeout <= elapsed < timeout + _SLACK
    assert all(t < t0 + elapsed for t in delivered)  # the handlers ran during the wait


def test_signal_does_not_end_a_blocking_poll(poller: portaio.Poller, fds: Closer, on_signal: Any) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "a")
    delivered = on_signal(_nothing)
    t0 = time.monotonic()
    timers = _kill_main_after(0.02, 0.04)
    sender = threading.Timer(0.12, b.send, (b"x",))
    sender.start()
    try:
        events = poller.poll()
        elapsed = time.monotonic() - t0
    finally:
        _join([*timers, sender])
    assert [e.data for e in events] == ["a"]
    assert len(delivered) == 2
    assert elapsed >= 0.12


def test_handler_work_is_seen_by_the_resumed_poll(
    poller: portaio.Poller, fds: Closer, on_signal: Any
) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "a")
    on_signal(lambda: b.send(b"from handler"))
    timers = _kill_main_after(0.03)
    t0 = time.monotonic()
    try:
        events = poller.poll(5.0)
    finally:
        _join(timers)
    assert [e.data for e in events] == ["a"]
    assert time.monotonic() - t0 < 2.0


@pytest.mark.parametrize("timeout", [5.0, None])
def test_handler_exception_propagates_promptly(
    poller: portaio.Poller, fds: Closer, on_signal: Any, timeout: float | None
) -> None:
    a, _ = fds.socketpair()
    poller.register(a, portaio.READABLE, "a")

    def boom() -> None:
        raise _Boom("from the handler")

    on_signal(boom)
    timers: list[threading.Timer] = []
    t0 = time.monotonic()
    try:
        with pytest.raises(_Boom):  # on a loaded machine the signal may come before poll()
            timers = _kill_main_after(0.03)
            poller.poll(timeout)
    finally:
        _join(timers)
    assert time.monotonic() - t0 < 2.0
    # The poller is still usable afterwards.
    assert poller.poll(0) == []
    poller.modify(a, portaio.WRITABLE, "w")
    assert [e.data for e in poller.poll(0.5)] == ["w"]


def test_keyboard_interrupt_from_default_sigint_handler(poller: portaio.Poller, on_signal: Any) -> None:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(0.03, signal.pthread_kill, (main, signal.SIGINT))
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            timer.start()
            poller.poll(5.0)
    finally:
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - t0 < 2.0
