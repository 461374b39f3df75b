"""Signals for tests, sent from helper threads: never SIGALRM, never an itimer.

pytest-timeout guards each test with ``SIGALRM`` and ``ITIMER_REAL``; a test
that installs its own SIGALRM handler or calls ``setitimer`` silently cancels
that guard for itself (and a hang then hangs the whole run).  These helpers
send ``SIGUSR1``/``SIGUSR2`` with ``signal.pthread_kill`` from a thread whose
life is bounded: it stops when the ``with`` block ends, and on its own after
*limit* seconds in any case.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

__all__ = ["counting_handlers", "handler_installed", "signal_main_after", "signal_storm"]


@contextlib.contextmanager
def handler_installed(signum: int, handler: Callable[[int, FrameType | None], Any]) -> Iterator[None]:
    """Install *handler* for *signum* for the block; the previous one comes back after."""
    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, previous)


@contextlib.contextmanager
def signal_main_after(delay: float, signum: int | None = None) -> Iterator[threading.Event]:
    """Send *signum* (default ``SIGUSR1``) to the main thread once, *delay* seconds into the block.

    Yields an event set once the signal was sent.  Leaving the block early
    cancels the send; the thread is joined either way.
    """
    if sys.platform == "win32":  # pragma: no cover
        raise NotImplementedError("signals sent to a thread are POSIX: not on Windows")
    if signum is None:
        signum = signal.SIGUSR1
    sig = signum
    main = threading.main_thread().ident
    assert main is not None
    cancel = threading.Event()
    sent = threading.Event()

    def send() -> None:
        if not cancel.wait(delay):
            signal.pthread_kill(main, sig)
            sent.set()

    thread = threading.Thread(target=send, name="portaio-signal-after", daemon=True)
    thread.start()
    try:
        yield sent
    finally:
        cancel.set()
        thread.join(5.0)


@contextlib.contextmanager
def signal_storm(interval: float, signum: int | None = None, limit: float = 120.0) -> Iterator[list[int]]:
    """Send *signum* (default ``SIGUSR1``) every *interval* seconds to every live thread.

    Like an interval itimer, the deliveries interrupt whichever thread is in a
    system call, not only the main one.  Yields a one-item list counting the
    signals sent.  The storm stops when the block ends, or after *limit* s.
    """
    if sys.platform == "win32":  # pragma: no cover
        raise NotImplementedError("signals sent to a thread are POSIX: not on Windows")
    if signum is None:
        signum = signal.SIGUSR1
    sig = signum
    stop = threading.Event()
    sent = [0]

    def storm() -> None:
        me = threading.get_ident()
        end = time.monotonic() + limit
        while not stop.wait(interval) and time.monotonic() < end:
            # Every live thread each round: a round costs the GIL once, and
            # under load a round may come late, so one thread per round
            # would make a thin storm.
            for thread in threading.enumerate():
                if thread.ident is None or thread.ident == me:
                    continue
                try:
                    signal.pthread_kill(thread.ident, sig)
                except (ProcessLookupError, OSError):
                    continue  # the thread ended meanwhile
                sent[0] += 1

    thread = threading.Thread(target=storm, name="portaio-signal-storm", daemon=True)
    thread.start()
    try:
        yield sent
    finally:
        stop.set()
        thread.join(5.0)


@contextlib.contextmanager
def counting_handlers() -> Iterator[list[int]]:
    """Python handlers on ``SIGUSR1`` and ``SIGUSR2`` for the block; yields the numbers they got, in order.

    On leaving, a delivery still pending because a failing case left the
    signal blocked goes to these handlers, not to ``SIG_DFL`` (which would
    end the whole run) once the previous handlers are back.
    """
    if sys.platform == "win32":  # pragma: no cover
        raise NotImplementedError("SIGUSR1/SIGUSR2 and signal masks are POSIX: not on Windows")
    calls: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        calls.append(signum)

    usr1, usr2 = signal.SIGUSR1, signal.SIGUSR2
    with handler_installed(usr1, handler), handler_installed(usr2, handler):
        try:
            yield calls
        finally:
            stuck = {usr1, usr2} & signal.sigpending()
            if stuck:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, stuck)
