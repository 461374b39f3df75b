"""The floor under ``Poller.poll(0)`` on epoll: what a wait costs before portaio's own Python.

``python benchmarks/floor.py [N R]`` prints, in CPU time per wait (median of
15 interleaved repeats, R ready of N registered sockets, default 1,000 and 1):

* ``bare cffi, 4 args``: the general wait's cffi call, ``portaio_epoll_wait``
  (four arguments: cffi packs them into a tuple), no Python work on its result;
* ``bare quick wait``: the quick wait of ``poll(0)``'s fast path,
  ``portaio_epoll_wait_now`` (one argument, the only key as its result);
* ``select.epoll.poll``: the standard library's whole wait;
* ``epoll+dict``: that and one dict lookup per event (the benchmark's
  baseline);
* ``least Py, 4 args`` and ``least Py, quick``: the least a Python method
  over either call can do: the call, the keys read, one dict lookup each
  into the cached events, a list;
* ``Poller.poll``: portaio, reading ``event.data`` as the others read theirs.

``python benchmarks/floor.py --round NAME K [N R]`` runs K rounds of one of
them (names: bare, bare_quick, std, std_dict, least, least_quick, poller,
selector, epollselector) for
an instruction count under callgrind; the count per round is the difference
of two runs with different K (see docs/benchmarks.rst)::

    valgrind --tool=callgrind python benchmarks/floor.py --round poller 1000
    valgrind --tool=callgrind python benchmarks/floor.py --round poller 3000

Uses portaio's private bindings (``portaio._epoll_cffi``): Linux only.
"""

from __future__ import annotations

import gc
import select
import selectors
import socket
import statistics
import sys
import time
from operator import itemgetter
from typing import Any, Callable

import portaio
from portaio._epoll_cffi import ffi, lib
from portaio.backends._unpack import unpacker, unpackers
from portaio.selectors import PortaioSelector


def contenders(n: int, ready: int) -> tuple[dict[str, Callable[[int], None]], list[Any]]:
    """Each contender's ``run(rounds)`` over one set of sockets, and what to close."""
    pairs = [socket.socketpair() for _ in range(n)]
    poller = portaio.Poller("epoll")
    sel = PortaioSelector("epoll")
    std_sel = selectors.EpollSelector()
    ep = select.epoll()
    table = {}
    for a, _ in pairs:
        fd = a.fileno()
        table[fd] = ("conn", fd)
        poller.register(fd, portaio.READABLE, table[fd])
        sel.register(fd, selectors.EVENT_READ, table[fd])
        std_sel.register(fd, selectors.EVENT_READ, table[fd])
        ep.register(fd, select.EPOLLIN)
    for _, b in pairs[:ready]:
        b.send(b"x")
    poller.poll(0)  # fills the event cache
    epfd = poller.fileno()
    keys = ffi.new("uint64_t[]", 2 * 1024)
    wait = lib.portaio_epoll_wait
    unpack = ffi.unpack
    cache = poller._cache
    lookup = cache.__getitem__

    class Least:
        def poll(self, timeout: float | None = None, max_events: int | None = None) -> list[Any]:
            got = wait(epfd, keys, 1024, 0.0)
            if got == 1:
                return [cache[keys[0]]]
            return list(map(lookup, unpack(keys, got)))

    least = Least().poll
    # The quick wait of poll(0)'s fast path: one argument, the one key as its result.
    q, view = poller._quick
    quick, release = lib.portaio_epoll_wait_now, lib.portaio_epoll_quick_release

    class LeastQuick:
        def poll(self, timeout: float | None = None, max_events: int | None = None) -> list[Any]:
            got = quick(q)
            if got >= 0:
                return [cache[got]]
            keys = (unpackers.get(-2 - got) or unpacker(-2 - got))(view)
            release(q)
            return list(itemgetter(*keys)(cache))

    least_quick = LeastQuick().poll
    poll, std_poll, sel_select, std_select = poller.poll, ep.poll, sel.select, std_sel.select

    def bare(rounds: int) -> None:
        for _ in range(rounds):
            wait(epfd, keys, 1024, 0.0)

    def bare_quick(rounds: int) -> None:
        for _ in range(rounds):
            if quick(q) < -3:
                release(q)

    def std(rounds: int) -> None:
        for _ in range(rounds):
            std_poll(0)

    def std_dict(rounds: int) -> None:
        for _ in range(rounds):
            for fd, _ev in std_poll(0):
                _ = table[fd]

    def least_python(rounds: int) -> None:
        for _ in range(rounds):
            for event in least(0):
                _ = event.data

    def least_quick_python(rounds: int) -> None:
        for _ in range(rounds):
            for event in least_quick(0):
                _ = event.data

    def poller_poll(rounds: int) -> None:
        for _ in range(rounds):
            for event in poll(0):
                _ = event.data

    def selector(rounds: int) -> None:
        for _ in range(rounds):
            for key, _mask in sel_select(0):
                _ = key.data

    def epoll_selector(rounds: int) -> None:
        for _ in range(rounds):
            for key, _mask in std_select(0):
                _ = key.data

    runs = {
        "bare": bare,
        "bare_quick": bare_quick,
        "std": std,
        "std_dict": std_dict,
        "least": least_python,
        "least_quick": least_quick_python,
        "poller": poller_poll,
        "selector": selector,
        "epollselector": epoll_selector,
    }
    return runs, [poller, sel, std_sel, ep, *[s for pair in pairs for s in pair]]


LABELS = {
    "bare": "bare cffi, 4 args",
    "bare_quick": "bare quick wait",
    "std": "select.epoll.poll",
    "std_dict": "epoll+dict",
    "least": "least Py, 4 args",
    "least_quick": "least Py, quick",
    "poller": "Poller.poll",
}


def main(argv: list[str]) -> int:
    """Print the floor table, or run one contender's rounds (``--round``)."""
    if argv[:1] == ["--round"]:
        name, rounds = argv[1], int(argv[2])
        n, ready = (int(argv[3]), int(argv[4])) if len(argv) > 4 else (1000, 1)
        runs, keep = contenders(n, ready)  # keep: the sockets must stay open
        gc.collect()
        gc.disable()
        runs[name](50)
        runs[name](rounds)
        for obj in keep:
            obj.close()
        return 0
    n, ready = (int(argv[0]), int(argv[1])) if len(argv) > 1 else (1000, 1)
    runs, keep = contenders(n, ready)  # keep: the sockets must stay open
    samples: dict[str, list[float]] = {name: [] for name in LABELS}
    gc.disable()
    for _ in range(15):
        for name in LABELS:
            start = time.process_time()
            runs[name](20_000)
            samples[name].append((time.process_time() - start) / 20_000)
    for obj in keep:
        obj.close()
    base = statistics.median(samples["std_dict"])
    print(f"R={ready} of {n}: ns per wait (CPU time, median of 15)")
    for name, label in LABELS.items():
        t = statistics.median(samples[name])
        print(f"  {label:<18} {t * 1e9:7.0f}  {t / base:5.2f}x epoll+dict")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
