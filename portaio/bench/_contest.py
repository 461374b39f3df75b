"""The dispatch contest behind ``portaio bench dispatch`` and ``portaio bench selectors``.

R of N registered sockets are ready (a byte waits unread in each).  Every
contender waits with a zero timeout and reads the user data of every event,
as an event loop does:

* ``portaio``: ``Poller.poll(0)`` and ``event.data``;
* ``portaio+ts``: the same on a poller that also has a far-off timer and a
  signal watch (the case the issue "hot path" measured 3.2x slower);
* ``PortaioSelector``: ``select(0)`` and the walk over its ``(key, mask)``
  pairs, reading ``key.data``;
* ``PortaioSelector+ts``: the same with a timer and a signal watch on the
  selector's poller;
* ``EpollSelector``: ``selectors.EpollSelector.select(0)`` and the walk;
* ``epoll+dict``: ``select.epoll.poll(0)`` and one dict lookup per fd, the
  least Python can do with the standard library.

All contenders run in one process, on the same sockets, interleaved: each
repeat times a block of calls of every contender in turn (the order rotates
from repeat to repeat), and the table gives each contender's *median* block.
A noisy machine slows every contender alike, so compare ratios, which is what
the targets (from issue 15) are stated in.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import select
import selectors
import signal
import socket
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import portaio

from ..selectors import PortaioSelector

__all__ = ["TARGETS", "Target", "add_arguments", "main", "measure", "verdicts"]

FAR_OFF = 3600.0
"""Seconds until the timer of the ``+ts`` contenders fires: never, during a run."""

Runner = Callable[[int], None]
"""``run(n)``: *n* rounds of one contender (a wait and the walk over its events)."""

# Linux's EPOLLIN; named through getattr so the module type-checks for Windows
# (no select.epoll there: the contender is simply absent).
_EPOLLIN: int = getattr(select, "EPOLLIN", 1)


class Target(NamedTuple):
    """One speed target: *subject* against *baseline* at the R values *applies* accepts.

    ``kind`` is ``"faster"`` (``t(baseline) / t(subject) >= bound``: the
    subject is at least *bound* times as fast) or ``"within"`` (``t(subject) /
    t(baseline) <= bound``: the subject costs at most *bound* times the baseline).
    """

    text: str
    subject: str
    baseline: str
    kind: str
    bound: float
    applies: Callable[[int], bool]


def _at(r: int) -> Callable[[int], bool]:
    return lambda ready: ready == r


def _from(r: int) -> Callable[[int], bool]:
    return lambda ready: ready >= r


def _every(ready: int) -> bool:
    return True


TARGETS = [
    Target("Poller.poll(0) >= 1.0x EpollSelector at R=1", "portaio", "EpollSelector", "faster", 1.0, _at(1)),
    Target(
        "Poller.poll(0) >= 2x EpollSelector from R=64", "portaio", "EpollSelector", "faster", 2.0, _from(64)
    ),
    Target("Poller.poll(0) within 1.3x of epoll+dict at R=1", "portaio", "epoll+dict", "within", 1.3, _at(1)),
    Target(
        "Poller.poll(0) within 1.05x of epoll+dict from R=64",
        "portaio",
        "epoll+dict",
        "within",
        1.05,
        _from(64),
    ),
    Target(
        "PortaioSelector >= 1.0x EpollSelector at R=1",
        "PortaioSelector",
        "EpollSelector",
        "faster",
        1.0,
        _at(1),
    ),
    Target(
        "PortaioSelector >= 1.5x EpollSelector at R=16",
        "PortaioSelector",
        "EpollSelector",
        "faster",
        1.5,
        _at(16),
    ),
    Target(
        "PortaioSelector >= 2x EpollSelector from R=64",
        "PortaioSelector",
        "EpollSelector",
        "faster",
        2.0,
        _from(64),
    ),
    Target(
        "Poller.poll(0) with timer+signal within 1.10x of plain",
        "portaio+ts",
        "portaio",
        "within",
        1.10,
        _every,
    ),
    Target(
        "PortaioSelector with timer+signal within 1.10x of plain",
        "PortaioSelector+ts",
        "PortaioSelector",
        "within",
        1.10,
        _every,
    ),
]
"""The targets of issue 15, in the order they are printed."""


# ------------------------------------------------------------------ contenders
def _poller_runner(poller: portaio.Poller) -> Runner:
    poll = poller.poll

    def run(n: int) -> None:
        for _ in range(n):
            for event in poll(0):
                _ = event.data

    return run


def _selector_runner(sel: selectors.BaseSelector) -> Runner:
    select_ = sel.select

    def run(n: int) -> None:
        for _ in range(n):
            for key, _mask in select_(0):
                _ = key.data

    return run


def _epoll_runner(ep: Any, table: dict[int, object]) -> Runner:
    poll = ep.poll

    def run(n: int) -> None:
        for _ in range(n):
            for fd, _ev in poll(0):
                _ = table[fd]

    return run


def _timer_and_signal(poller: portaio.Poller, signum: int | None) -> None:
    """Give *poller* a timer that will not fire during the run and, where possible, a signal watch."""
    poller.add_timer(FAR_OFF)
    if signum is not None:
        poller.add_signal(signum)


def _signals() -> tuple[int | None, int | None]:
    # Watches need the main thread and SIGUSR1/2; without them the +ts
    # contenders have a timer only (said in the header).
    if sys.platform == "win32" or not hasattr(signal, "SIGUSR1"):
        return None, None
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None, None
    return signal.SIGUSR1, signal.SIGUSR2


# ------------------------------------------------------------------ measuring
def _count(name: str, obj: Any) -> int:
    if name.startswith("portaio"):
        return len(obj.poll(0, max_events=100_000))
    if name == "epoll+dict":
        return len(obj.poll(0))
    return len(obj.select(0))


CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
"""``cpu``: this process's CPU time, which time slices given to other programs do not
inflate (the machine is shared); ``wall``: elapsed time."""


def _time_block(run: Runner, number: int, clock: Callable[[], float]) -> float:
    start = clock()
    run(number)
    return (clock() - start) / number


def measure(
    ready_counts: Sequence[int],
    registered: int = 1000,
    backend: str | None = None,
    repeats: int = 15,
    number: int | None = None,
    clock: str = "cpu",
) -> list[dict[str, float]]:
    """Median seconds per round of each contender at each R in *ready_counts*.

    Each row has ``"ready"`` and one entry per contender available here.
    *number* is the rounds in one timed block (default: about 20,000 events'
    worth, at least 100); *clock* is a key of :data:`CLOCKS`.
    """
    timer = CLOCKS[clock]
    if not ready_counts or min(ready_counts) < 1 or max(ready_counts) > registered:
        raise ValueError("every R must be 1 to the registered count")
    pairs = []
    objs: dict[str, Any] = {}
    table: dict[int, object] = {}
    try:
        for _ in range(registered):
            a, b = socket.socketpair()
            pairs.append((a, b))
            a.setblocking(False)
            b.setblocking(False)
        sig_poller, sig_selector = _signals()
        objs["portaio"] = portaio.Poller(backend)
        objs["portaio+ts"] = portaio.Poller(backend)
        _timer_and_signal(objs["portaio+ts"], sig_poller)
        objs["PortaioSelector"] = PortaioSelector(backend)
        objs["PortaioSelector+ts"] = PortaioSelector(backend)
        _timer_and_signal(objs["PortaioSelector+ts"]._poller, sig_selector)
        if hasattr(selectors, "EpollSelector"):
            objs["EpollSelector"] = selectors.EpollSelector()
        if hasattr(select, "epoll"):
            objs["epoll+dict"] = select.epoll()
        for a, _ in pairs:
            fd = a.fileno()
            data = ("conn", fd)
            table[fd] = data
            for name, obj in objs.items():
                if name.startswith("portaio"):
                    obj.register(fd, portaio.READABLE, data)
                elif name == "epoll+dict":
                    obj.register(fd, _EPOLLIN)
                else:
                    obj.register(fd, selectors.EVENT_READ, data)
        runners: dict[str, Runner] = {}
        for name, obj in objs.items():
            if name.startswith("portaio"):
                runners[name] = _poller_runner(obj)
            elif name == "epoll+dict":
                runners[name] = _epoll_runner(obj, table)
            else:
                runners[name] = _selector_runner(obj)
        names = list(runners)
        results = []
        for ready in ready_counts:
            for a, _ in pairs:
                try:
                    a.recv(65536)
                except BlockingIOError:
                    pass
            for _, b in pairs[:ready]:
                b.send(b"x")
            rounds = number if number is not None else max(100, 20_000 // max(ready, 1))
            for name in names:
                runners[name](min(rounds, 50))  # warm: caches filled, code paths taken
                got = _count(name, objs[name])
                if got != ready:
                    raise RuntimeError(f"{name}: {got} ready, expected {ready}")
            samples: dict[str, list[float]] = {name: [] for name in names}
            gc_was = gc.isenabled()
            gc.disable()
            try:
                for k in range(repeats):
                    shift = k % len(names)
                    for name in names[shift:] + names[:shift]:
                        samples[name].append(_time_block(runners[name], rounds, timer))
            finally:
                if gc_was:
                    gc.enable()
            row = {"ready": float(ready)}
            for name in names:
                row[name] = statistics.median(samples[name])
            results.append(row)
        return results
    finally:
        for obj in objs.values():
            obj.close()
        for a, b in pairs:
            a.close()
            b.close()


def verdicts(results: Sequence[dict[str, float]]) -> list[tuple[Target, int, float, bool]]:
    """Each target at each R it applies to: ``(target, R, ratio, holds)``, skipping absent contenders."""
    out = []
    for target in TARGETS:
        for row in results:
            ready = int(row["ready"])
            if not target.applies(ready) or target.subject not in row or target.baseline not in row:
                continue
            subject, baseline = row[target.subject], row[target.baseline]
            if target.kind == "faster":
                ratio = baseline / subject
                holds = ratio >= target.bound
            else:
                ratio = subject / baseline
                holds = ratio <= target.bound
            out.append((target, ready, ratio, holds))
    return out


# ------------------------------------------------------------------ printing
def _load() -> str:
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def _report(
    results: Sequence[dict[str, float]], registered: int, backend: str, repeats: int, clock: str
) -> None:
    names = [name for name in results[0] if name != "ready"]
    print(f"ns per event ({clock} time): R ready of {registered} sockets, timeout 0, every event's data read")
    ts = (
        "a timer in 1 h and a signal watch"
        if _signals()[0] is not None
        else "a timer in 1 h (no signal watch here)"
    )
    print(f"(portaio backend {backend}; median of {repeats} interleaved repeats; +ts: {ts})")
    width = max(len(n) for n in names) + 2
    print(f"{'R':>5}" + "".join(f"{n:>{width}}" for n in names))
    for row in results:
        ready = int(row["ready"])
        cells = "".join(f"{row[n] * 1e9 / max(ready, 1):>{width},.0f}" for n in names)
        print(f"{ready:>5}{cells}")
    print()
    print("ratios (x: t(EpollSelector) / t(contender), higher is faster)")
    if "EpollSelector" in names:
        for row in results:
            ratios = "  ".join(
                f"{n} {row['EpollSelector'] / row[n]:.2f}x" for n in names if n != "EpollSelector"
            )
            print(f"  R={int(row['ready'])}: {ratios}")
    print()
    print("targets (issue 15)")
    rows = verdicts(results)
    text_width = max((len(t.text) for t, *_ in rows), default=10)
    for target, ready, ratio, holds in rows:
        print(f"  {target.text:<{text_width}}  R={ready:<4} {ratio:6.2f}x  {'holds' if holds else 'MISSES'}")
    if not rows:
        print("  (none applies to these R values or contenders)")


def add_arguments(parser: argparse.ArgumentParser, registered_flags: Sequence[str]) -> None:
    """The options both commands take (*registered_flags* name the socket count option)."""
    parser.add_argument("--ready", type=int, nargs="+", default=[1, 16, 64, 256], help="ready counts R")
    parser.add_argument(
        *registered_flags, dest="registered", type=int, default=1000, help="registered sockets"
    )
    parser.add_argument("--backend", default=None, help="portaio backend (default: the best here)")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved repeats; the median is reported")
    parser.add_argument(
        "--number", type=int, default=None, help="rounds per timed block (default: automatic)"
    )
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu: this process's CPU time (default); wall: elapsed",
    )


def main(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse *argv* with *parser* (made with :func:`add_arguments`), run the contest, print; returns 0."""
    args = parser.parse_args(argv)
    if args.repeats < 1 or (args.number is not None and args.number < 1):
        parser.error("--repeats and --number must be at least 1")
    if min(args.ready) < 1 or max(args.ready) > args.registered:
        parser.error(f"every --ready count must be 1 to {args.registered} (the registered sockets)")
    backend = args.backend or portaio.default_backend()
    print(f"python {platform.python_version()} ({platform.python_implementation()}), {platform.system()}")
    print(f"load average at start: {_load()}  (cpus: {os.cpu_count()})")
    results = measure(args.ready, args.registered, args.backend, args.repeats, args.number, args.clock)
    _report(results, args.registered, backend, args.repeats, args.clock)
    print(f"load average at end: {_load()}")
    return 0
