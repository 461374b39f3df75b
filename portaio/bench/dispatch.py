"""Dispatch cost: R ready events out of 1,000 registered sockets.

Each contender waits with a zero timeout and reads the user data of every
ready event, as an event loop does.  Contenders, measured in one run:

* ``portaio`` -- ``Poller.poll(0)`` and ``event.data`` (default backend);
* ``EpollSelector`` -- ``selectors.EpollSelector.select(0)`` and ``key.data``;
* ``epoll+dict`` -- ``select.epoll.poll(0)`` and a dict lookup per fd.
"""

from __future__ import annotations

import argparse
import select
import selectors
import socket
import sys
from collections.abc import Sequence

import portaio

from ._util import best_of, print_table

if sys.platform == "win32":  # pragma: no cover
    raise ImportError("portaio bench dispatch is POSIX-only")

__all__ = ["main", "measure"]


def measure(
    ready_counts: Sequence[int], registered: int = 1000, backend: str | None = None, repeats: int = 5
) -> list[dict[str, float]]:
    """Seconds per dispatch for each contender at each R in *ready_counts* (best of *repeats*).

    The contenders take turns within each repeat, so a burst of load elsewhere
    on the machine hits all of them alike.
    """
    pairs = [socket.socketpair() for _ in range(registered)]
    poller = portaio.Poller(backend)
    stdsel = selectors.EpollSelector() if hasattr(selectors, "EpollSelector") else None
    ep = select.epoll() if hasattr(select, "epoll") else None
    table: dict[int, object] = {}
    try:
        for a, _b in pairs:
            a.setblocking(False)
            fd = a.fileno()
            poller.register(fd, portaio.READABLE, ("conn", fd))
            table[fd] = ("conn", fd)
            if stdsel is not None:
                stdsel.register(fd, selectors.EVENT_READ, ("conn", fd))
            if ep is not None:
                ep.register(fd, select.EPOLLIN)

        def run_portaio() -> None:
            for event in poller.poll(0):
                _ = event.data

        def run_selector() -> None:
            assert stdsel is not None
            for key, _ in stdsel.select(0):
                _ = key.data

        def run_epoll() -> None:
            assert ep is not None
            for fd, _ in ep.poll(0):
                _ = table[fd]

        results = []
        for ready in ready_counts:
            for a, _ in pairs:
                try:
                    a.recv(65536)
                except BlockingIOError:
                    pass
            for _, b in pairs[:ready]:
                b.send(b"x")
            assert len(poller.poll(0, max_events=registered)) == ready
            number = max(200, 40000 // max(ready, 1))
            contenders = {"portaio": run_portaio}
            if stdsel is not None:
                contenders["EpollSelector"] = run_selector
            if ep is not None:
                contenders["epoll+dict"] = run_epoll
            row = {"ready": float(ready)}
            row.update((name, float("inf")) for name in contenders)
            for _ in range(repeats):
                for name, run in contenders.items():
                    row[name] = min(row[name], best_of(run, number, repeat=1))
            results.append(row)
        return results
    finally:
        poller.close()
        if stdsel is not None:
            stdsel.close()
        if ep is not None:
            ep.close()
        for a, b in pairs:
            a.close()
            b.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Print the dispatch table with ratios (higher is better for portaio)."""
    parser = argparse.ArgumentParser(prog="portaio bench dispatch", description=__doc__.splitlines()[0])
    parser.add_argument("--ready", type=int, nargs="+", default=[1, 16, 64, 256], help="ready counts R")
    parser.add_argument("--registered", type=int, default=1000, help="registered sockets (default 1000)")
    parser.add_argument("--backend", default=None, help="portaio backend (default: the best here)")
    parser.add_argument("--repeats", type=int, default=5, help="best of this many turns (default 5)")
    args = parser.parse_args(argv)
    results = measure(args.ready, args.registered, args.backend, args.repeats)
    rows = []
    for r in results:
        ours = r["portaio"]
        sel = r.get("EpollSelector")
        base = r.get("epoll+dict")
        rows.append(
            [
                int(r["ready"]),
                f"{ours * 1e6:.2f}",
                f"{sel * 1e6:.2f}" if sel else "-",
                f"{base * 1e6:.2f}" if base else "-",
                f"{sel / ours:.2f}x" if sel else "-",
                f"{base / ours:.2f}x" if base else "-",
            ]
        )
    backend = args.backend or portaio.default_backend()
    print(f"dispatch of R ready out of {args.registered} sockets, us per poll (portaio backend: {backend})")
    print_table(["R", "portaio", "EpollSelector", "epoll+dict", "vs EpollSelector", "vs epoll+dict"], rows)
    print("ratios > 1 mean portaio is faster; targets: >= 2x EpollSelector, >= 1x epoll+dict")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
