"""``PortaioSelector.select()`` against ``selectors.EpollSelector`` (and friends).

R of N registered sockets are ready (a byte waits unread in each); every
round calls ``select(0)`` and walks the ``(key, mask)`` pairs as an event loop
does.  Both selectors run interleaved in one process, so the ratio is fair on a
noisy machine; the best of several repeats is reported.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import time
from collections.abc import Callable, Sequence

from ..selectors import PortaioSelector

__all__ = ["main", "measure"]


def _make_pairs(n: int) -> list[tuple[socket.socket, socket.socket]]:
    pairs = []
    for _ in range(n):
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        pairs.append((a, b))
    return pairs


def _time_select(sel: selectors.BaseSelector, rounds: int, expect: int) -> float:
    select = sel.select
    t0 = time.perf_counter()
    for _ in range(rounds):
        for key, mask in select(0):
            if mask & 1:
                key.data  # noqa: B018 - the dispatch an event loop does
    elapsed = time.perf_counter() - t0
    got = len(sel.select(0))
    if got != expect:
        raise RuntimeError(f"{type(sel).__name__}: {got} ready, expected {expect}")
    return elapsed / rounds


def measure(
    n: int, ready: int, factories: dict[str, Callable[[], selectors.BaseSelector]], repeats: int = 5
) -> dict[str, float]:
    """Seconds per ``select(0)`` + dispatch for each selector factory (best of *repeats*)."""
    pairs = _make_pairs(n)
    sels = {name: make() for name, make in factories.items()}
    try:
        for sel in sels.values():
            for i, (a, _) in enumerate(pairs):
                sel.register(a, selectors.EVENT_READ, i)
        for _, b in pairs[:ready]:
            b.send(b"x")
        rounds = max(200, 200_000 // max(ready, 1))
        best = {name: float("inf") for name in sels}
        for _ in range(repeats):
            for name, sel in sels.items():
                best[name] = min(best[name], _time_select(sel, rounds, ready))
        return best
    finally:
        for sel in sels.values():
            sel.close()
        for a, b in pairs:
            a.close()
            b.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Print a table of select() dispatch times and ratios; returns 0."""
    parser = argparse.ArgumentParser(prog="portaio-bench-selectors", description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="registered sockets (default 1000)")
    parser.add_argument("--ready", type=int, nargs="*", default=[1, 16, 64, 256], help="R values")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    factories: dict[str, Callable[[], selectors.BaseSelector]] = {}
    if hasattr(selectors, "EpollSelector"):
        factories["stdlib Epoll"] = selectors.EpollSelector
    factories["portaio"] = PortaioSelector
    for name in ("poll",):  # select: FD_SETSIZE caps fds at 1023, too few here
        factories[f"portaio[{name}]"] = lambda name=name: PortaioSelector(name)  # type: ignore[misc]
    if hasattr(selectors, "PollSelector"):
        factories["stdlib Poll"] = selectors.PollSelector
    names = list(factories)
    base = "stdlib Epoll" if "stdlib Epoll" in factories else names[0]
    print(f"select(0) + dispatch, {args.n} registered, microseconds per call (best of {args.repeats})")
    header = f"{'R':>5} " + " ".join(f"{n:>15}" for n in names) + f"  {'portaio speed-up vs ' + base:>30}"
    print(header)
    for r in args.ready:
        res = measure(args.n, r, factories, args.repeats)
        cells = " ".join(f"{res[n] * 1e6:15.2f}" for n in names)
        print(f"{r:>5} {cells}  {res[base] / res['portaio']:29.2f}x")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
