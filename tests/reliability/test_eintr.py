"""EINTR storm: SIGUSR1 every millisecond, round-robin to every thread, while several threads poll.

(Not SIGALRM from an itimer: that is pytest-timeout's guard, and taking it over
would leave the test unguarded.)

No exception escapes ``poll()``, no event is lost, no poll returns before its
timeout or grossly after it, and the Python handler keeps running.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import portaio
from portaio import READABLE
from portaio.conformance.signalling import handler_installed, signal_storm

SECONDS = float(os.environ.get("PORTAIO_EINTR_SECONDS", "1.5"))
LATE = 0.25  # "grossly later": a loaded 2-core machine may be a scheduler tick or two late


@pytest.fixture
def storm() -> Iterator[list[int]]:
    """SIGUSR1 every millisecond to the threads in turn; yields the list the handler appends to."""
    hits: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        hits.append(signum)

    with handler_installed(signal.SIGUSR1, handler), signal_storm(0.001, signal.SIGUSR1, limit=SECONDS + 60):
        yield hits


def _timed_polls(backend: str, errors: list[BaseException], lateness: list[float], stop: float) -> None:
    try:
        with portaio.Poller(backend) as p:
            a, b = socket.socketpair()
            with a, b:
                p.register(a, READABLE)  # never ready: every poll must wait out its timeout
                i = 0
                while time.monotonic() < stop:
                    timeout = (0.003, 0.011, 0.027)[i % 3]
                    i += 1
                    start = time.monotonic()
                    events = p.poll(timeout)
                    elapsed = time.monotonic() - start
                    assert events == [], events
                    assert elapsed >= timeout, f"{backend}: poll({timeout}) returned after {elapsed:.6f} s"
                    lateness.append(elapsed - timeout)
    except BaseException as err:
        errors.append(err)


def _counted_traffic(backend: str, errors: list[BaseException], stop: float, counts: list[int]) -> None:
    """One thread writes numbered messages, this poller reads them: none may be lost."""
    try:
        with portaio.Poller(backend) as p:
            pairs = [socket.socketpair() for _ in range(4)]
            for a, _ in pairs:
                a.setblocking(False)
                p.register(a, READABLE)
            sent = [0] * len(pairs)
            received = [0] * len(pairs)
            by_fd = {a.fileno(): i for i, (a, _) in enumerate(pairs)}

            def writer() -> None:
                n = 0
                while time.monotonic() < stop:
                    i = n % len(pairs)
                    pairs[i][1].sendall(sent[i].to_bytes(4, "big"))
                    sent[i] += 1
                    n += 1
                    time.sleep(0.0002)

            t = threading.Thread(target=writer)
            t.start()
            buf = [b""] * len(pairs)
            while t.is_alive() or received != sent:
                for ev in p.poll(0.05):
                    i = by_fd[ev.fd]
                    buf[i] += pairs[i][0].recv(65536)
                    while len(buf[i]) >= 4:
                        assert int.from_bytes(buf[i][:4], "big") == received[i], "message lost or reordered"
                        received[i] += 1
                        buf[i] = buf[i][4:]
                if not t.is_alive() and time.monotonic() > stop + 5:
                    break
            t.join()
            assert received == sent, f"{backend}: sent {sent}, received {received}"
            counts.append(sum(received))
            for a, b in pairs:
                a.close()
                b.close()
    except BaseException as err:
        errors.append(err)


def test_eintr_storm(backend: str, storm: list[int]) -> None:
    errors: list[BaseException] = []
    lateness: list[float] = []
    counts: list[int] = []
    stop = time.monotonic() + SECONDS
    threads = [
        threading.Thread(target=_timed_polls, args=(backend, errors, lateness, stop)),
        threading.Thread(target=_timed_polls, args=(backend, errors, lateness, stop)),
        threading.Thread(target=_counted_traffic, args=(backend, errors, stop, counts)),
    ]
    for t in threads:
        t.start()
    # The main thread polls too: Python runs the handler here, between retries.
    _timed_polls(backend, errors, lateness, stop)
    for t in threads:
        t.join(SECONDS + 30)
    assert not errors, errors
    assert len(storm) > SECONDS * 100, f"the handler ran only {len(storm)} times"
    assert counts and counts[0] > 100
    lateness.sort()
    assert lateness, "no timed poll completed"
    print(
        f"\n{backend}: {SECONDS:g} s, {len(storm)} SIGUSR1 handled, {len(lateness)} timed polls"
        f" (median late {lateness[len(lateness) // 2] * 1e3:.3f} ms, worst {lateness[-1] * 1e3:.3f} ms),"
        f" {counts[0]} messages through 4 socketpairs"
    )
    assert lateness[-1] < LATE, (
        f"{backend}: worst lateness {lateness[-1]:.4f} s (median {lateness[len(lateness) // 2]:.5f})"
    )


@pytest.mark.slow
@pytest.mark.timeout(0)
def test_eintr_storm_long(backend: str, storm: list[int]) -> None:
    """The same for a minute (``-m slow``; PORTAIO_EINTR_SECONDS sets the length of both)."""
    global SECONDS
    saved, SECONDS = SECONDS, max(SECONDS, 60.0)
    try:
        test_eintr_storm(backend, storm)
    finally:
        SECONDS = saved
