"""The herd scene: EXCLUSIVE and the thundering herd.

When several threads or processes each wait on one shared listening socket
with their own poller, one connection wakes every waiter; one wins
``accept()`` and the others get EAGAIN — the thundering herd.  EPOLLEXCLUSIVE
asks the kernel to wake one of them (Linux promises "one or more", and
refuses the mode with ONESHOT, RDHUP or PRIORITY).  The scene counts the
waiters whose poll reported the listener, then lets each woken one try
``accept()``.  Every wait is bounded: a waiter the kernel never woke is
released with :meth:`portaio.Poller.wake`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Generator

import portaio

from ._stage import Stage, Step

__all__ = ["herd"]

READABLE = portaio.READABLE
WAITERS = 8
"""Threads, each with its own poller, waiting on one listening socket."""


def _until_asleep(native_ids: list[int], timeout: float = 2.0) -> None:
    """Wait, bounded, until every waiter thread sleeps in the kernel's wait.

    Linux names the kernel function a thread sleeps in (``/proc/.../wchan``):
    ``do_epoll_wait``, ``poll_schedule_timeout`` for poll and select, against
    ``futex_*`` for a thread still queued for the GIL.  A waiter not yet
    asleep when the connection comes is not part of the herd, which would
    spoil the count.  Elsewhere a fixed pause has to do.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chans = []
            for tid in native_ids:
                with open(f"/proc/self/task/{tid}/wchan") as wchan:
                    chans.append(wchan.read())
        except OSError:
            break
        if any(chan in ("", "0") for chan in chans):  # hidden by the kernel: cannot tell
            break
        if all("poll" in chan or "select" in chan for chan in chans):
            time.sleep(0.02)  # from "going to sleep" to queued on the socket's wait queue
            return
        time.sleep(0.005)
    time.sleep(0.1)


def _count_wakeups(stage: Stage, listener: socket.socket, mode: int) -> tuple[int, int, int]:
    """One connection to *listener*: (waiters woken, accept() winners, accept() EAGAINs)."""
    pollers = [stage.poller() for _ in range(WAITERS)]
    for poller in pollers:
        poller.register(listener, READABLE | mode)
    outcome: list[str] = [""] * WAITERS
    native_ids: list[int] = [0] * WAITERS
    started = threading.Barrier(WAITERS + 1)
    first_woken = threading.Event()
    go_accept = threading.Event()
    accepted = threading.Event()

    def wait(i: int) -> None:
        native_ids[i] = threading.get_native_id()
        started.wait(5.0)
        events = pollers[i].poll(5.0)  # bounded: a waiter not woken is released by wake()
        if not any(e.fd == listener.fileno() for e in events):
            outcome[i] = "asleep"
            return
        outcome[i] = "woken"
        first_woken.set()
        go_accept.wait(5.0)
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            outcome[i] = "EAGAIN"
        else:
            conn.close()
            outcome[i] = "accepted"
            accepted.set()

    threads = [threading.Thread(target=wait, args=(i,), daemon=True) for i in range(WAITERS)]
    for thread in threads:
        thread.start()
    try:
        started.wait(5.0)
        _until_asleep(native_ids)  # every waiter in the kernel before the connection comes
        with socket.create_connection(listener.getsockname(), timeout=5.0):
            first_woken.wait(2.0)
            time.sleep(0.1)  # the rest of a herd reports within this
            go_accept.set()
            accepted.wait(2.0)  # before wake(): a waiter released then must find nothing to accept
    finally:
        go_accept.set()
        for i, thread in enumerate(threads):
            pollers[i].wake()  # releases a waiter the kernel never woke (its poll reports WAKE only)
            thread.join(5.0)
        for poller in pollers:
            poller.close()
    woken = sum(o in ("accepted", "EAGAIN") for o in outcome)
    return woken, outcome.count("accepted"), outcome.count("EAGAIN")


def herd(stage: Stage) -> Generator[Step, None, None]:
    """Count the waiters one connection wakes, without and with EXCLUSIVE."""
    listener = stage.listener()
    fd = listener.fileno()
    port = listener.getsockname()[1]
    yield Step(
        f"listen on 127.0.0.1:{port} (fd {fd}); {WAITERS} threads, each with its own {stage.backend}"
        f" poller, register fd {fd} READABLE and poll",
        "registered",
        "Pre-forked servers and thread pools share one listening socket like this.",
    )
    tries = 1
    woken, won, eagain = _count_wakeups(stage, listener, 0)
    while woken < WAITERS and tries < 3:  # a waiter not yet asleep when the connection came
        tries += 1
        woken, won, eagain = _count_wakeups(stage, listener, 0)
    does = "connect once; every woken waiter calls accept()"
    answer = f"{woken} of {WAITERS} polls report fd {fd} READABLE; accept(): {won} wins, {eagain} get EAGAIN"
    stage.check(does, woken == WAITERS and won == 1, f"{WAITERS} woken, 1 wins", answer)
    yield Step(
        does + (f" (try {tries})" if tries > 1 else ""),
        answer,
        "The thundering herd: one connection woke every waiter, and all but one woke for nothing.",
    )
    refusal = stage.refusal(
        f"register fd {fd} READABLE|EXCLUSIVE",
        stage.capabilities.exclusive,
        lambda: stage.poller().register(listener, READABLE | portaio.EXCLUSIVE),
    )
    if refusal is not None:
        yield Step(
            f"register fd {fd} READABLE|EXCLUSIVE",
            refusal,
            f"Wake-one is epoll's EPOLLEXCLUSIVE; {stage.backend} has no such mode, so it does not apply"
            " here (SO_REUSEPORT, one listener per worker, avoids the herd everywhere).",
            applies=False,
        )
        return
    tries = 1
    woken, won, eagain = _count_wakeups(stage, listener, portaio.EXCLUSIVE)
    while woken >= WAITERS and tries < 3:
        tries += 1
        woken, won, eagain = _count_wakeups(stage, listener, portaio.EXCLUSIVE)
    does = f"the same {WAITERS} waiters with READABLE|EXCLUSIVE; connect once"
    answer = f"{woken} of {WAITERS} polls report fd {fd} READABLE; accept(): {won} wins, {eagain} get EAGAIN"
    stage.check(does, 1 <= woken < WAITERS and won == 1, f"fewer than {WAITERS} woken, 1 wins", answer)
    yield Step(
        does + (f" (try {tries})" if tries > 1 else ""),
        answer,
        "EXCLUSIVE: the kernel wakes one waiter (Linux promises one or more, never all).",
    )
