"""Scenes about many fds and many waiters: O(N) against O(ready), and the thundering herd.

select(2) and poll(2) hand the kernel the whole fd set on every call; the
kernel asks every fd whether it is ready, so one wait costs time in
proportion to the *registered* fds, however few are ready.  epoll and kqueue
keep the interest list in the kernel and a ready list fed by callbacks: a wait
takes items off the ready list and never looks at idle fds.  The scene times
``poll(0)`` with one ready fd as idle fds are added.  The idle fds are
``dup()`` copies of one idle socket: each is a separate fd the kernel must ask
(poll, select) or keep an entry for (epoll, kqueue), and one fd each keeps the
count far below ``ulimit -n`` and select's ``FD_SETSIZE``.

When several threads or processes each wait on one shared listening socket
with their own poller, one connection wakes every waiter; one wins
``accept()`` and the others get EAGAIN — the thundering herd.  EPOLLEXCLUSIVE
asks the kernel to wake one of them (Linux promises "one or more").  The
scene counts the waiters whose poll reported the listener.
"""

from __future__ import annotations

import math
import os
import resource
import socket
import threading
import time
from collections.abc import Generator, Iterator

import portaio

from ._stage import Stage, Step, describe

__all__ = ["herd", "scaling"]

READABLE = portaio.READABLE
LEVELS = (10, 100, 1000, 4000)
"""Idle fds registered at each measurement (bounded by select's FD_SETSIZE and ``ulimit -n``)."""
FLAT_MAX = 2.5
"""An O(ready) backend's t(N max) / t(10) must stay below this to be called flat."""
GROWS_MIN = 4.0
"""An O(registered) backend's t(N max) / t(10) must reach this (N max >= 1000) to be called growing."""
WAITERS = 8
"""Threads, each with its own poller, waiting on one listening socket."""


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def _cost(stage: Stage, poller: portaio.Poller, ready_fd: int, batches: int = 5) -> float:
    """Seconds per ``poll(0)``: the best of *batches* batches of ~2 ms (the least disturbed by load)."""
    stage.expect(f"{poller.backend}: poll(0)", poller.poll(0), {ready_fd: READABLE})
    calls = 1
    while True:  # calibrate: a batch long enough for the clock, short enough to stay quick
        start = time.perf_counter()
        for _ in range(calls):
            poller.poll(0)
        if time.perf_counter() - start >= 0.002:
            break
        calls *= 2
    best = float("inf")
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(calls):
            poller.poll(0)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


class _Bench:
    """One poller with one ready fd and a growing number of idle fds on *backend*."""

    def __init__(self, stage: Stage, backend: str) -> None:
        self.stage = stage
        self.poller = stage.poller(backend)
        self.max_fd = portaio.backend_class(backend).capabilities.max_fd
        ready, peer = stage.socketpair()
        peer.send(b"!")
        self.ready_fd = ready.fileno()
        self.poller.register(ready, READABLE)
        self.idle, _ = stage.socketpair()  # nobody ever sends on its peer
        self.idle_fds: list[int] = []
        self.stage.keep(self)

    def grow(self, count: int) -> str | None:
        """Register idle fds until there are *count*; the reason if a limit stops it first."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        while len(self.idle_fds) < count:
            fd = os.dup(self.idle.fileno())
            if self.max_fd is not None and fd > self.max_fd:
                os.close(fd)
                return f"fd {fd} is beyond {self.poller.backend}'s limit (fd {self.max_fd}, FD_SETSIZE - 1)"
            self.idle_fds.append(fd)
            self.poller.register(fd, READABLE)
            if soft != resource.RLIM_INFINITY and fd >= soft - 64:
                return f"ulimit -n is {soft}"
        return None

    def shrink(self, count: int) -> None:
        """Unregister and close idle fds until *count* are left."""
        while len(self.idle_fds) > count:
            fd = self.idle_fds.pop()
            self.poller.unregister(fd)
            os.close(fd)

    def close(self) -> None:
        self.shrink(0)


def _levels(stage: Stage, bench: _Bench) -> Iterator[tuple[int, float, str | None]]:
    """Grow to each of LEVELS and time a wait there: (idle fds, seconds per wait, why it stopped)."""
    base: float | None = None
    for level in LEVELS:
        if stage.shows_live:
            base = _count_up(stage, bench, level, base)
        stopped = bench.grow(level)
        cost = _cost(stage, bench.poller, bench.ready_fd)
        base = base or cost
        yield len(bench.idle_fds), cost, stopped
        if stopped:
            return


def _count_up(stage: Stage, bench: _Bench, level: int, base: float | None) -> float | None:
    """The live counter: add idle fds in twentieths of the way to *level*, timing a wait after each."""
    step = max(1, (level - len(bench.idle_fds)) // 20)
    while len(bench.idle_fds) + step < level:
        if bench.grow(len(bench.idle_fds) + step):
            break
        cost = _cost(stage, bench.poller, bench.ready_fd, batches=2)
        base = min(base or cost, cost)  # the cheapest wait seen is the reference
        # Log scale: one # per doubling's eighth, so 1x is one mark and 100x fits a line.
        bar = "#" * min(60, 1 + round(8 * math.log2(max(1.0, cost / base))))
        stage.live(
            f"{bench.poller.backend:6} N = {len(bench.idle_fds):5}  {_fmt(cost):>10} per wait  {bar} (log)"
        )
    return base


def _verdict(o1_wait: bool, ratio: float, biggest: int) -> bool:
    if o1_wait:
        return ratio < FLAT_MAX
    return biggest < 1000 or ratio >= GROWS_MIN


def _confirmed(stage: Stage, bench: _Bench, costs: list[tuple[int, float]]) -> tuple[float, float]:
    """t(N min) and t(N max), both ends re-measured (best kept) while the shape disagrees.

    Two shared cores under load can stall a whole batch: before the demo calls
    the kernel wrong it measures both ends again, up to three times.
    """
    (n0, t0), (n1, t1) = costs[0], costs[-1]
    o1 = bench.poller.capabilities.o1_wait
    for _ in range(3):
        if _verdict(o1, t1 / t0, n1):
            break
        bench.shrink(n0)
        t0 = min(t0, _cost(stage, bench.poller, bench.ready_fd))
        bench.grow(n1)
        t1 = min(t1, _cost(stage, bench.poller, bench.ready_fd))
    return t0, t1


def scaling(stage: Stage) -> Generator[Step, None, None]:
    """A live counter of the cost of one wait as idle fds are added; then every backend side by side."""
    bench = _Bench(stage, stage.backend)
    o1 = stage.capabilities.o1_wait
    yield Step(
        f"socketpair with 1 byte unread: fd {bench.ready_fd} READABLE; register it on {stage.backend}",
        f"poll(0) answers {describe(bench.poller.poll(0))}",
        "One ready fd; now idle fds are added and each wait is timed (best of 5 batches).",
    )
    costs: list[tuple[int, float]] = []
    for count, cost, stopped in _levels(stage, bench):
        costs.append((count, cost))
        base = costs[0][1]
        if len(costs) == 1:
            why = f"The cost of one wait with {count} idle fds: the baseline."
        elif o1:
            why = f"{stage.backend} waits in O(ready): idle fds sit in the kernel's interest list, unvisited."
        else:
            why = f"{stage.backend} is O(registered): every wait hands over and checks all {count + 1} fds."
        if stopped:
            why = f"Stopped adding: {stopped}."
        yield Step(
            f"register idle fds up to N = {count}; time poll(0)",
            f"fd {bench.ready_fd} READABLE, {_fmt(cost)} per wait"
            f" ({cost / base:.1f}x the cost at N = {costs[0][0]})",
            why,
        )
    biggest = costs[-1][0]
    t0, t1 = _confirmed(stage, bench, costs)
    ratio = t1 / t0
    does = f"compare t(N = {biggest}) / t(N = {costs[0][0]})"
    stated = f"below {FLAT_MAX}x (flat)" if o1 else f"at least {GROWS_MIN}x (growing)"
    answer = stage.check(does, _verdict(o1, ratio, biggest), stated, f"{ratio:.1f}x")
    yield Step(
        does,
        f"{answer}: {'flat' if o1 else 'grows with N'}",
        "O(ready) waits cost the same with 10 or thousands of idle connections."
        if o1
        else "O(N): a server with thousands of idle keep-alive connections pays for each on every wait.",
    )
    bench.close()

    rows = []
    for name in portaio.available_backends():
        other = _Bench(stage, name)
        measured = [(count, cost) for count, cost, _ in _levels(stage, other)]
        (n0, _), (n1, _) = measured[0], measured[-1]
        t0, t1 = _confirmed(stage, other, measured)
        other_o1 = other.poller.capabilities.o1_wait
        stage.check(
            f"{name}: t(N = {n1}) / t(N = {n0})",
            _verdict(other_o1, t1 / t0, n1),
            "flat" if other_o1 else "growing",
            f"{t1 / t0:.1f}x",
        )
        rows.append(f"{name:7} N = {n0}: {_fmt(t0):>9}   N = {n1}: {_fmt(t1):>9}   {t1 / t0:5.1f}x")
        other.close()
    yield Step(
        "the same on every backend here",
        "\n".join(rows),
        "epoll and kqueue stay flat; poll and select grow with every idle fd (select stops at fd 1023).",
    )


def _count_wakeups(stage: Stage, listener: socket.socket, mode: int) -> tuple[int, int, int]:
    """One connection to *listener*: (waiters woken, accept() winners, accept() EAGAINs)."""
    pollers = [stage.poller() for _ in range(WAITERS)]
    for poller in pollers:
        poller.register(listener, READABLE | mode)
    outcome: list[str] = [""] * WAITERS
    started = threading.Barrier(WAITERS + 1)
    first_woken = threading.Event()
    go_accept = threading.Event()
    accepted = threading.Event()

    def wait(i: int) -> None:
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
        time.sleep(0.1)  # let every waiter get into the kernel before the connection comes
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
