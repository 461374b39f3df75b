"""wake() racing close(): no byte ever reaches a number the poller no longer owns.

A thread calls ``wake()`` in a loop while the main thread closes the poller
and at once opens pipes, which take the lowest free numbers: the waker's
eventfd or pipe number among them.  Before the waker guarded its write,
about one iteration in 250 wrote the wake-up bytes into such a pipe.  Now
``close()`` takes the waker's lock before closing its fd, and a ``wake()``
after that does nothing (or raises :exc:`~portaio.PollerClosed`).
"""

from __future__ import annotations

import os
import threading

import portaio

ROUNDS = 300


def _one_round(backend: str) -> bytes:
    poller = portaio.Poller(backend)
    started = threading.Event()
    stop = threading.Event()

    def waker() -> None:
        started.set()
        while not stop.is_set():
            try:
                poller.wake()
            except portaio.PollerClosed:
                return

    thread = threading.Thread(target=waker)
    thread.start()
    started.wait(5)
    pipes: list[tuple[int, int]] = []
    try:
        poller.close()
        pipes = [os.pipe() for _ in range(4)]  # reuse every number close() freed
        stop.set()
        thread.join(5)
        stray = b""
        for r, _ in pipes:
            os.set_blocking(r, False)
            try:
                stray += os.read(r, 64)
            except BlockingIOError:
                pass
        return stray
    finally:
        stop.set()
        thread.join(5)
        for r, w in pipes:
            os.close(r)
            os.close(w)


def test_wake_racing_close_never_writes_into_a_reused_number(backend: str) -> None:
    for i in range(ROUNDS):
        stray = _one_round(backend)
        assert stray == b"", f"round {i}: wake() wrote {stray!r} into a file that reused the waker's number"
