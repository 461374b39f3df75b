"""Conformance: several threads poll one poller while others register, modify,
unregister and wake it (DESIGN items 10, 16, 18).

Checked: nothing raises; every message sent through a ONESHOT fd arrives
exactly once, handed to exactly one thread per arming; no poll that started
after an ``unregister`` returned reports the unregistered registration (the
stale-token check of epoll, the epoch check of poll and select).  Each
backend runs for ``PORTAIO_THREADS_SECONDS`` (2 s); the repository's
``tests/reliability/test_threads.py`` runs the same for minutes under ``-m slow``.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import threading
import time
from typing import Any

import portaio
from portaio import ONESHOT, READABLE, WRITABLE

SECONDS = float(os.environ.get("PORTAIO_THREADS_SECONDS", "2.0"))
POLLERS = 3
STABLE = 8  # ONESHOT fds carrying numbered messages
CHURN = 6  # fds registered and unregistered over and over


class Shared:
    """State shared by the threads of one run."""

    def __init__(self, backend: str) -> None:
        self.p = portaio.Poller(backend)
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.seq = itertools.count()  # a global clock: next() is atomic under the GIL
        self.unregistered_at: dict[Any, int] = {}  # churn data -> clock after its unregister returned
        self.lock = threading.Lock()
        self.stable = [socket.socketpair() for _ in range(STABLE)]
        self.inflight = [False] * STABLE
        self.sent = [0] * STABLE
        self.received = [0] * STABLE
        self.delivered_to: list[set[str]] = [set() for _ in range(STABLE)]
        self.slots = [threading.Semaphore(1) for _ in range(STABLE)]  # one message in flight per fd
        self.by_fd = {a.fileno(): i for i, (a, _) in enumerate(self.stable)}
        self.wakes = 0
        self.stale: list[str] = []
        for i, (a, _) in enumerate(self.stable):
            a.setblocking(False)
            self.p.register(a, READABLE | ONESHOT, ("stable", i))

    def guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as err:
            self.errors.append(err)
            self.stop.set()

    def close(self) -> None:
        self.p.close()
        for a, b in self.stable:
            a.close()
            b.close()


def poller_thread(s: Shared, name: str) -> None:
    while not s.stop.is_set():
        started = next(s.seq)
        for ev in s.p.poll(0.02):
            if ev.fd == -1:
                s.wakes += 1
                continue
            data = ev.data
            if isinstance(data, tuple) and data[0] == "stable":
                i = data[1]
                with s.lock:
                    assert not s.inflight[i], f"ONESHOT fd {ev.fd} handed to two threads at once"
                    s.inflight[i] = True
                a = s.stable[i][0]
                msg = a.recv(4)
                assert int.from_bytes(msg, "big") == s.received[i], "message lost or duplicated"
                s.received[i] += 1
                s.delivered_to[i].add(name)
                with s.lock:
                    s.inflight[i] = False
                s.p.modify(a, READABLE | ONESHOT, data)  # re-arm
                s.slots[i].release()
            elif isinstance(data, tuple) and data[0] == "churn":
                gone = s.unregistered_at.get(data)
                if gone is not None and gone < started:
                    s.stale.append(f"{data} reported by a poll started after its unregister")


def sender_thread(s: Shared) -> None:
    rng = random.Random(1)
    while not s.stop.is_set():
        i = rng.randrange(STABLE)
        if s.slots[i].acquire(timeout=0.05):
            s.stable[i][1].send(s.sent[i].to_bytes(4, "big"))
            s.sent[i] += 1


def churn_thread(s: Shared, seed: int) -> None:
    rng = random.Random(seed)
    generation = 0
    while not s.stop.is_set():
        a, b = socket.socketpair()
        generation += 1
        data = ("churn", seed, generation)
        s.p.register(a, rng.choice([READABLE, WRITABLE, READABLE | WRITABLE]), data)
        b.send(b"x")
        if rng.random() < 0.5:
            s.p.modify(a, READABLE | (ONESHOT if rng.random() < 0.5 else 0), data)
        time.sleep(rng.random() * 0.002)
        s.p.unregister(a)
        s.unregistered_at[data] = next(s.seq)
        a.close()
        b.close()


def waker_thread(s: Shared) -> None:
    while not s.stop.is_set():
        s.p.wake()
        time.sleep(0.001)


def run(backend: str, seconds: float) -> Shared:
    s = Shared(backend)
    threads = [
        threading.Thread(target=s.guard, args=(poller_thread, s, f"poller{i}")) for i in range(POLLERS)
    ]
    threads.append(threading.Thread(target=s.guard, args=(sender_thread, s)))
    threads += [threading.Thread(target=s.guard, args=(churn_thread, s, seed)) for seed in range(2)]
    threads += [threading.Thread(target=s.guard, args=(waker_thread, s)) for _ in range(2)]
    for t in threads:
        t.start()
    s.stop.wait(seconds)
    s.stop.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    try:
        assert not s.errors, s.errors
        assert not s.stale, s.stale[:5]
        # Every message sent was received, except at most the one in flight per fd at the stop.
        pending = set()
        for i in range(STABLE):
            assert s.sent[i] - s.received[i] in (0, 1), (i, s.sent[i], s.received[i])
            if s.sent[i] != s.received[i]:
                pending.add(("stable", i))
        # Those are still there, armed: final polls must hand each over (once: ONESHOT).
        deadline = time.monotonic() + 5.0
        while pending and time.monotonic() < deadline:
            pending -= {ev.data for ev in s.p.poll(0.5)}
        assert not pending, f"in-flight messages lost on {sorted(pending)}"
        assert sum(s.received) > 20, "the threads hardly ran"
        print(
            f"\n{backend}: {seconds:g} s, {sum(s.received)} ONESHOT messages, {len(s.unregistered_at)}"
            f" register/unregister cycles, {s.wakes} wake events"
        )
    finally:
        s.close()
    return s


def test_threads_share_one_poller(backend: str) -> None:
    s = run(backend, SECONDS)
    # The work really was spread over the polling threads.
    assert len(set().union(*s.delivered_to)) >= 2
