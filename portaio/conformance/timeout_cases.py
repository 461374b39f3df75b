"""Conformance: poll timeouts.

A positive timeout is never cut short (measured on the monotonic clock) and
not overrun by much; ``0`` returns at once yet still asks the kernel;
``None`` (and ``math.inf``) block until an event.
"""

from __future__ import annotations

import math
import threading
import time

import pytest

import portaio
from portaio.conformance.plugin import Closer

_SLACK = 0.25  # scheduling noise allowed past a deadline on a busy machine


@pytest.mark.parametrize("timeout", [0.0005, 0.002, 0.0105, 0.03, 1 / 3 * 0.1])
def test_timeout_never_early(poller: portaio.Poller, fds: Closer, timeout: float) -> None:
    a, _ = fds.socketpair()
    poller.register(a, portaio.READABLE)
    for _ in range(3):
        t0 = time.monotonic()
        assert poller.poll(timeout) == []
        elapsed = time.monotonic() - t0
        assert timeout <= elapsed < timeout + _SLACK


def test_integer_timeout_is_seconds(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "a")
    timer = threading.Timer(0.05, b.send, (b"x",))
    timer.start()
    t0 = time.monotonic()
    try:
        events = poller.poll(1)
    finally:
        timer.join()
    assert [e.data for e in events] == ["a"]
    assert time.monotonic() - t0 < 1.0


def test_zero_returns_at_once_but_asks_the_kernel(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "a")
    t0 = time.monotonic()
    for _ in range(100):
        assert poller.poll(0) == []
    assert time.monotonic() - t0 < 0.5
    b.send(b"x")
    assert [e.data for e in poller.poll(0)] == ["a"]  # no earlier wait needed


@pytest.mark.parametrize("timeout", [None, math.inf])
def test_none_blocks_until_an_event(poller: portaio.Poller, fds: Closer, timeout: float | None) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "a")
    delay = 0.1
    timer = threading.Timer(delay, b.send, (b"x",))
    t0 = time.monotonic()
    timer.start()
    try:
        events = poller.poll(timeout)
    finally:
        timer.join()
    elapsed = time.monotonic() - t0
    assert [e.data for e in events] == ["a"]
    assert delay <= elapsed < delay + 2.0


def test_event_ends_a_long_timeout_early(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "a")
    timer = threading.Timer(0.05, b.send, (b"x",))
    timer.start()
    t0 = time.monotonic()
    try:
        events = poller.poll(5.0)
    finally:
        timer.join()
    assert [e.data for e in events] == ["a"]
    assert time.monotonic() - t0 < 2.0


def test_ready_fd_returns_without_waiting(poller: portaio.Poller, fds: Closer) -> None:
    a, _ = fds.socketpair()
    poller.register(a, portaio.WRITABLE)
    t0 = time.monotonic()
    for timeout in (5.0, None, math.inf):
        assert len(poller.poll(timeout)) == 1
    assert time.monotonic() - t0 < 1.0


def test_empty_poller_honours_timeout(poller: portaio.Poller) -> None:
    t0 = time.monotonic()
    assert poller.poll(0.02) == []
    assert 0.02 <= time.monotonic() - t0 < 0.02 + _SLACK


@pytest.mark.parametrize("timeout", [0.0005, 0.0025])
def test_timeout_precision_matches_capabilities(
    poller: portaio.Poller, capabilities: portaio.Capabilities, timeout: float
) -> None:
    # The best of several waits shows the backend's rounding, not the machine's load.
    resolution = capabilities.timeout_resolution
    expected = math.ceil(timeout / resolution - 1e-9) * resolution
    best = math.inf
    for _ in range(10):
        t0 = time.monotonic()
        poller.poll(timeout)
        best = min(best, time.monotonic() - t0)
    assert timeout <= best < expected + 0.001, (best, expected)
