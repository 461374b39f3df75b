"""The scaling scene: O(N) against O(ready), a live counter of the cost of one wait.

select(2) and poll(2) hand the kernel the whole fd set on every call; the
kernel asks every fd whether it is ready, so one wait costs time in
proportion to the *registered* fds, however few are ready.  epoll and kqueue
keep the interest list in the kernel and a ready list fed by callbacks: a wait
takes items off the ready list and never looks at idle fds.  The scene times
``poll(0)`` with one ready fd as idle fds are added.  The idle fds are
``dup()`` copies of one idle socket: each is a separate fd the kernel must ask
(poll, select) or keep an entry for (epoll, kqueue), and one fd each keeps the
count far below ``ulimit -n`` and select's ``FD_SETSIZE``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Generator, Iterator

import portaio

from ._stage import Stage, Step, describe


def _soft_fd_limit() -> int | None:
    """The soft RLIMIT_NOFILE, or None where there is none to hit (unlimited, Windows)."""
    if sys.platform == "win32":  # sockets are handles: no per-process fd limit
        return None
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


__all__ = ["scaling"]

READABLE = portaio.READABLE
LEVELS = (10, 100, 1000, 4000)
"""Idle fds registered at each measurement (bounded by select's FD_SETSIZE and ``ulimit -n``)."""
FLAT_MAX = 2.5
"""An O(ready) backend's t(N max) / t(10) must stay below this to be called flat."""
GROWS_MIN = 4.0
"""An O(registered) backend's t(N max) / t(10) must reach this (N max >= 1000) to be called growing."""


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
        soft = _soft_fd_limit()
        while len(self.idle_fds) < count:
            fd = os.dup(self.idle.fileno())
            if self.max_fd is not None and fd > self.max_fd:
                os.close(fd)
                return f"fd {fd} is beyond {self.poller.backend}'s limit (fd {self.max_fd}, FD_SETSIZE - 1)"
            self.idle_fds.append(fd)
            self.poller.register(fd, READABLE)
            if soft is not None and fd >= soft - 64:
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
