"""Wait cost against the number of registered idle fds, per backend.

One socket is ready; N idle UDP sockets are registered for READABLE beside
it.  epoll and kqueue look only at what is ready, so their cost stays flat;
poll and select hand the kernel every fd on every call, so theirs grows with
N.  select stops at ``FD_SETSIZE``.
"""

from __future__ import annotations

import argparse
import resource
import selectors
import socket
import sys
from collections.abc import Sequence

import portaio

from ._util import best_of, print_table

if sys.platform == "win32":  # pragma: no cover
    raise ImportError("portaio bench scaling is POSIX-only (pipes as fds)")

__all__ = ["main", "measure"]

DEFAULT_SIZES = (10, 100, 1000, 10000, 18000)


def _idle_sockets(count: int) -> list[socket.socket]:
    return [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]


def measure(sizes: Sequence[int], backends: Sequence[str]) -> dict[str, dict[int, float | None]]:
    """Seconds per ``poll(0)`` with one ready fd, for each backend and size N."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(sizes) + 64
    if soft < wanted <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    a, b = socket.socketpair()
    b.send(b"x")
    idle: list[socket.socket] = []
    names = [*backends, "stdlib-default"]
    results: dict[str, dict[int, float | None]] = {name: {} for name in names}
    try:
        # Sizes in increasing order, opening sockets as we go, so select
        # meets low fd numbers while there are few.
        for n in sorted(sizes):
            idle += _idle_sockets(n - len(idle))
            for name in names:
                results[name][n] = _one(name, a, idle[:n])
    finally:
        for s in idle:
            s.close()
        a.close()
        b.close()
    return results


def _one(name: str, ready: socket.socket, idle: list[socket.socket]) -> float | None:
    if name == "stdlib-default":
        sel = selectors.DefaultSelector()
        try:
            sel.register(ready, selectors.EVENT_READ)
            for s in idle:
                sel.register(s, selectors.EVENT_READ)
            return best_of(lambda: sel.select(0), _number(len(idle)))
        finally:
            sel.close()
    try:
        poller = portaio.Poller(name)
    except OSError:
        return None  # select: no fd below FD_SETSIZE left for its own pipe
    try:
        limit = poller.capabilities.max_fd
        if limit is not None and any(s.fileno() > limit for s in idle):
            return None
        poller.register(ready, portaio.READABLE)
        for s in idle:
            poller.register(s, portaio.READABLE)
        return best_of(lambda: poller.poll(0), _number(len(idle)))
    finally:
        poller.close()


def _number(n: int) -> int:
    return max(50, min(20000, 2_000_000 // (n + 100)))


def plot(results: dict[str, dict[int, float | None]], path: str) -> None:
    """Draw the O(1)-vs-O(N) picture (needs matplotlib: ``pip install portaio[plot]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise SystemExit(
            f"portaio bench scaling: --plot needs matplotlib ({err}); pip install 'portaio[plot]'"
        ) from None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, row in results.items():
        points = [(n, t * 1e6) for n, t in row.items() if t is not None]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("registered idle fds (N)")
    ax.set_ylabel("µs per poll(0), one fd ready")
    ax.set_title("Wait cost against registered fds: O(ready) vs O(N)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the scaling table (and optionally plot it)."""
    parser = argparse.ArgumentParser(prog="portaio bench scaling", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="N values")
    parser.add_argument("--backend", action="append", help="backend(s) to measure (default: all available)")
    parser.add_argument("--plot", metavar="FILE.png", help="also draw the figure (needs matplotlib)")
    args = parser.parse_args(argv)
    backends = args.backend or portaio.available_backends()
    sizes = sorted(args.sizes)
    results = measure(sizes, backends)
    rows = []
    for name, row in results.items():
        base = row[sizes[0]]
        cells: list[object] = [name]
        cells += [f"{t * 1e6:.2f}" if t is not None else "n/a" for t in row.values()]
        last = row[sizes[-1]]
        cells.append(f"{last / base:.2f}" if last is not None and base else "n/a")
        rows.append(cells)
    print("µs per poll(0) with one ready fd among N registered idle fds")
    print_table(["backend", *[f"N={n}" for n in sizes], f"t({sizes[-1]})/t({sizes[0]})"], rows)
    print("n/a: the backend cannot hold fds that high (select: FD_SETSIZE)")
    if args.plot:
        plot(results, args.plot)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
