"""Timer precision and wake-up latency: portaio on each backend beside asyncio and uvloop.

Measured in one run, for every contender:

* lateness of one-shot timers of 250 us and 1 ms (armed, then waited for, one
  at a time): how long after its deadline the program got control back; a
  negative value means the timer fired *early*;
* a 1 ms repeating timer over 1,000 periods: lateness of each observed
  expiry on the grid ``start + k * 1 ms``, and the drift, how far behind the
  grid the 1,000th expiry was observed (asyncio and uvloop have no repeating
  timer: ``loop.call_at`` on the same grid stands in for one);
* wake-up latency: from ``wake()`` (``call_soon_threadsafe`` for the event
  loops) in another thread to the waiting thread running again.

Everything is read from :func:`time.monotonic`, the clock all contenders use.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import portaio

from ._util import print_table

__all__ = ["main", "measure_loop", "measure_portaio"]

_now = time.monotonic
ONE_SHOT_DELAYS = (0.00025, 0.001)
INTERVAL = 0.001


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def summarize(lateness: Sequence[float]) -> dict[str, float]:
    """min, p50, p99 and max of *lateness* (seconds), and how many were early."""
    return {
        "min": min(lateness),
        "p50": _percentile(lateness, 0.50),
        "p99": _percentile(lateness, 0.99),
        "max": max(lateness),
        "early": float(sum(1 for x in lateness if x < 0)),
        "n": float(len(lateness)),
    }


# ------------------------------------------------------------------ portaio
def _portaio_one_shot(poller: portaio.Poller, delay: float, count: int) -> list[float]:
    out = []
    for _ in range(count):
        start = _now()
        poller.add_timer(delay)
        while not poller.poll():
            pass
        out.append(_now() - (start + delay))
    return out


def _portaio_repeating(poller: portaio.Poller, interval: float, periods: int) -> tuple[list[float], float]:
    start = _now()
    timer = poller.add_timer(interval, interval)
    late = []
    seen = 0
    while seen < periods:
        for event in poller.poll():
            seen += event.times
            late.append(_now() - (start + seen * interval))
    timer.cancel()
    return late, late[-1]


def _wake_samples(wake: Callable[[], None], wait: Callable[[], None], count: int) -> list[float]:
    """Latency from *wake* in a helper thread to *wait* returning in this one."""
    stamps: list[float] = []
    go = threading.Event()
    done = threading.Event()

    def waker() -> None:
        for _ in range(count):
            go.wait()
            go.clear()
            time.sleep(0.0002)  # let the waiter block in its wait first
            stamps.append(_now())
            wake()
        done.set()

    thread = threading.Thread(target=waker, daemon=True)
    thread.start()
    out = []
    for i in range(count):
        go.set()
        wait()
        out.append(_now() - stamps[i])
    done.wait(5)
    thread.join(5)
    return out


def measure_portaio(backend: str, count: int, periods: int) -> dict[str, Any]:
    """Lateness, drift and wake-up latency of portaio on *backend*."""
    with portaio.Poller(backend) as poller:
        result: dict[str, Any] = {}
        _portaio_one_shot(poller, 0.0005, 20)  # warm up
        for delay in ONE_SHOT_DELAYS:
            result[f"one-shot {delay * 1e6:.0f} us"] = summarize(_portaio_one_shot(poller, delay, count))
        late, drift = _portaio_repeating(poller, INTERVAL, periods)
        result["repeating 1 ms"] = summarize(late)
        result["drift"] = drift

        def wait() -> None:
            while not poller.poll():
                pass

        result["wake"] = summarize(_wake_samples(poller.wake, wait, count // 2))
    return result


# ---------------------------------------------------------- asyncio / uvloop
def measure_loop(loop: asyncio.AbstractEventLoop, count: int, periods: int) -> dict[str, Any]:
    """The same measurements on an asyncio-compatible event loop."""

    async def one_shot(delay: float, n: int) -> list[float]:
        out = []
        for _ in range(n):
            fired = loop.create_future()
            start = _now()
            loop.call_later(delay, fired.set_result, None)
            await fired
            out.append(_now() - (start + delay))
        return out

    async def repeating(interval: float, n: int) -> tuple[list[float], float]:
        late: list[float] = []
        finished = loop.create_future()
        # The grid is on the loop's clock (time.monotonic for asyncio; for
        # uvloop the same clock in whole milliseconds, cached per iteration).
        origin = loop.time()

        def tick(k: int) -> None:
            late.append(_now() - (origin + k * interval))
            if k == n:
                finished.set_result(None)
            else:
                loop.call_at(origin + (k + 1) * interval, tick, k + 1)

        loop.call_at(origin + interval, tick, 1)
        await finished
        return late, late[-1]

    result: dict[str, Any] = {}
    loop.run_until_complete(one_shot(0.0005, 20))
    for delay in ONE_SHOT_DELAYS:
        result[f"one-shot {delay * 1e6:.0f} us"] = summarize(loop.run_until_complete(one_shot(delay, count)))
    late, drift = loop.run_until_complete(repeating(INTERVAL, periods))
    result["repeating 1 ms"] = summarize(late)
    result["drift"] = drift

    def wait() -> None:
        fired = loop.create_future()
        waiter["future"] = fired
        loop.run_until_complete(fired)

    waiter: dict[str, asyncio.Future[None]] = {}

    def wake() -> None:
        loop.call_soon_threadsafe(lambda: waiter["future"].set_result(None))

    result["wake"] = summarize(_wake_samples(wake, wait, count // 2))
    return result


def _contenders(backends: Sequence[str]) -> list[tuple[str, Callable[[int, int], dict[str, Any] | None]]]:
    out: list[tuple[str, Callable[[int, int], dict[str, Any] | None]]] = []
    for backend in backends:
        out.append((f"portaio/{backend}", functools.partial(measure_portaio, backend)))

    def run_asyncio(c: int, p: int) -> dict[str, Any]:
        loop = asyncio.new_event_loop()
        try:
            return measure_loop(loop, c, p)
        finally:
            loop.close()

    def run_uvloop(c: int, p: int) -> dict[str, Any] | None:
        try:
            import uvloop  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return None
        loop = uvloop.new_event_loop()
        try:
            return measure_loop(loop, c, p)
        finally:
            loop.close()

    out.append(("asyncio", run_asyncio))
    out.append(("uvloop", run_uvloop))
    return out


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the timer precision and wake-up latency table."""
    parser = argparse.ArgumentParser(prog="portaio bench timers", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="one-shot firings per delay (default 1000)")
    parser.add_argument(
        "--periods", type=int, default=1000, help="periods of the repeating timer (default 1000)"
    )
    parser.add_argument(
        "--backend", action="append", help="portaio backend(s) to measure (default: every available one)"
    )
    args = parser.parse_args(argv)
    backends = args.backend or portaio.available_backends()
    rows = []
    wake_rows = []
    verdicts = []
    for name, run in _contenders(backends):
        result = run(args.count, args.periods)
        if result is None:
            rows.append([name, "not installed", "", "", "", "", "", ""])
            continue
        for test in [f"one-shot {d * 1e6:.0f} us" for d in ONE_SHOT_DELAYS] + ["repeating 1 ms"]:
            s = result[test]
            drift = _us(result["drift"]) if test.startswith("repeating") else ""
            rows.append(
                [
                    name,
                    test,
                    _us(s["min"]),
                    _us(s["p50"]),
                    _us(s["p99"]),
                    _us(s["max"]),
                    str(int(s["early"])),
                    drift,
                ]
            )
            if name == "portaio/epoll":
                ok = s["p50"] <= 50e-6 and s["p99"] <= 200e-6 and s["early"] == 0
                if test.startswith("repeating"):
                    ok = ok and abs(result["drift"]) <= 1e-3
                verdicts.append(f"{test}: {'met' if ok else 'MISSED'}")
        w = result["wake"]
        wake_rows.append([name, _us(w["p50"]), _us(w["p99"]), _us(w["max"])])
    print("timer lateness in us (negative = fired early), monotonic clock, one run")
    print_table(["contender", "timer", "min", "p50", "p99", "max", "early", "drift"], rows)
    print()
    print("wake-up latency from another thread, us")
    print_table(["contender", "p50", "p99", "max"], wake_rows)
    if verdicts:
        print()
        print(
            "epoll targets (p50 <= 50 us, p99 <= 200 us, never early, drift <= 1 ms): " + "; ".join(verdicts)
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
