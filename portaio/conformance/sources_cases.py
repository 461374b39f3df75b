"""Conformance: one poll loop over every source (contract items 16, 17, 18, 19).

Timers, signals, wake-ups, always-ready files and the kernel's fds are all
sources of one ``poll()``: a source added by another thread wakes a blocked
poll; due timers are listed before the fds of the same call; with a short
``max_events`` every source is served within a bounded number of polls
(measured as a count, not a time); a plain poll stops consulting the timers
once none is left; a registration's token is never reused while it is live;
``max_events`` bounds the result, never the memory.

Every wait here is a poll with a timeout: a failing case returns at its
timeout instead of hanging.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import portaio
from portaio.backends._base import TOKEN_MAX
from portaio.conformance.plugin import Closer, poll_while

_now = time.monotonic
USR1: int = getattr(signal, "SIGUSR1", 0)  # POSIX: the case sending it skips on Windows


def _fd_events(events: list[portaio.Event]) -> list[Any]:
    return [e.data for e in events if e.fd >= 0]


# ------------------------------------------- 16: sources added while a poll blocks
def test_first_timer_added_while_a_poll_blocks_is_reported_by_that_poll(poller: portaio.Poller) -> None:
    events, elapsed = poll_while(poller, 0.05, lambda: poller.add_timer(0.01, data="t"), 5)
    assert [(e.events, e.data) for e in events] == [(portaio.TIMER, "t")]
    assert elapsed < 2.5, f"the timer waited for the poll's timeout ({elapsed:.2f} s)"


def test_first_timer_added_while_a_poll_blocks_forever(poller: portaio.Poller) -> None:
    # poll(None) in a thread; if the timer never ends it, close() does (PollerClosed).
    got: list[Any] = []

    def blocked() -> None:
        try:
            got.append(poller.poll(None))
        except portaio.PollerClosed as err:
            got.append(err)

    thread = threading.Thread(target=blocked)
    thread.start()
    try:
        threading.Event().wait(0.05)  # let it block first
        poller.add_timer(0.01, data="t")
        thread.join(3)
    finally:
        if thread.is_alive():
            poller.close()
        thread.join(5)
    assert got and isinstance(got[0], list), f"poll(None) never reported the first timer: {got!r}"
    assert [(e.events, e.data) for e in got[0]] == [(portaio.TIMER, "t")]


def test_first_signal_watch_added_while_a_poll_blocks_is_reported_by_that_poll(
    poller: portaio.Poller,
) -> None:
    # add_signal() belongs to the main thread: the poll runs in another one.
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("SIGUSR1 and os.kill of a handled signal are POSIX")
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(poller.poll(5)))
    start = _now()
    thread.start()
    try:
        threading.Event().wait(0.05)  # let it block first
        poller.add_signal(USR1, data="s")
        os.kill(os.getpid(), USR1)
    finally:
        thread.join(10)
    assert got, "the poll never returned"
    assert [(e.events, e.data, e.signum) for e in got[0]] == [(portaio.SIGNAL, "s", USR1)]
    assert _now() - start < 2.5, "the signal waited for the poll's timeout"


def test_always_ready_file_registered_while_a_poll_blocks_wakes_it(
    poller: portaio.Poller, tmp_path: Path, fds: Closer
) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    fds.add(fd)
    events, elapsed = poll_while(poller, 0.05, lambda: poller.register(fd, portaio.READABLE, "f"), 5)
    assert [(e.fd, e.data) for e in events] == [(fd, "f")]
    assert elapsed < 2.5, f"the file waited for the poll's timeout ({elapsed:.2f} s)"


def test_oneshot_file_rearmed_while_a_poll_blocks_wakes_it(
    poller: portaio.Poller, tmp_path: Path, fds: Closer
) -> None:
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    fds.add(fd)
    poller.register(fd, portaio.READABLE | portaio.ONESHOT, 1)
    assert [e.data for e in poller.poll(0)] == [1]
    assert poller.poll(0) == []
    events, elapsed = poll_while(
        poller, 0.05, lambda: poller.modify(fd, portaio.READABLE | portaio.ONESHOT, 2), 5
    )
    assert [e.data for e in events] == [2]
    assert elapsed < 2.5, f"the re-armed file waited for the poll's timeout ({elapsed:.2f} s)"


# ------------------------------------------------------------- 17: order, fairness
def test_due_timers_are_listed_before_the_fds_of_the_same_call(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "sock")
    b.send(b"x")
    poller.add_timer(0.0, data="t1")
    assert [e.data for e in poller.poll(1)] == ["t1", "sock"]
    # The kernel goes first after a batch that left it out: timers still lead.
    poller.add_timer(0.0, data="t2")
    poller.add_timer(0.0, data="t3")
    assert [e.data for e in poller.poll(1, max_events=1)] == ["t2"]
    poller.add_timer(0.0, data="t4")
    for _ in range(4):
        batch = poller.poll(1)
        kinds = ["fd" if e.fd >= 0 else "timer" for e in batch]
        assert kinds == sorted(kinds, key=lambda k: k == "fd"), f"a timer listed after an fd: {batch!r}"


def test_timer_fired_in_the_wait_is_listed_before_the_fds(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "sock")
    poller.add_timer(0.02, data="t")
    assert poller.poll(0) == []
    # The timer's kernel timer (timerfd, EVFILT_TIMER) fires, then the socket
    # becomes ready: one wait reports both, and the timer is listed first.
    end = _now() + 0.03
    while _now() < end:
        pass
    b.send(b"x")
    assert [e.data for e in poller.poll(1)] == ["t", "sock"]


def _serve_counts(
    poller: portaio.Poller, socks: list[socket.socket], polls: int, before_each: Any = None
) -> dict[Any, list[int]]:
    """Poll *polls* times with max_events=1: which polls served each fd, the timer and the wake-up."""
    served: dict[Any, list[int]] = {s.fileno(): [] for s in socks}
    served["timer"] = []
    served["wake"] = []
    for i in range(polls):
        if before_each is not None:
            before_each()
        for e in poller.poll(1, max_events=1):
            if e.fd >= 0:
                served[e.fd].append(i)
            elif e.events & portaio.TIMER:
                served["timer"].append(i)
            elif e.events & portaio.WAKE:
                served["wake"].append(i)
    return served


def _max_gap(indices: list[int], polls: int) -> int:
    """The most polls between two services (from the start, to the end)."""
    marks = [-1, *indices, polls]
    return max(marks[i + 1] - marks[i] for i in range(len(marks) - 1))


def test_an_always_due_timer_does_not_starve_fds(poller: portaio.Poller, fds: Closer) -> None:
    socks = []
    for i in range(10):
        a, b = fds.socketpair()
        poller.register(a, portaio.READABLE, i)
        b.send(b"x")  # level: ready on every poll
        socks.append(a)
    poller.add_timer(0.0, interval=1e-5, data="t")  # due again before every poll
    polls = 200
    served = _serve_counts(poller, socks, polls)
    del served["wake"]
    starved = [fd for fd, hits in served.items() if not hits]
    assert not starved, f"never served in {polls} polls beside an always-due timer: {starved}"
    gaps = {fd: _max_gap(hits, polls) for fd, hits in served.items()}
    # 10 fds and one timer taking turns: each within about 2 * 11 polls.
    assert max(gaps.values()) <= 40, f"polls waited between two services (bound 40): {gaps}"


def test_wake_and_timers_and_fds_all_served(poller: portaio.Poller, fds: Closer) -> None:
    socks = []
    for i in range(5):
        a, b = fds.socketpair()
        poller.register(a, portaio.READABLE, i)
        b.send(b"x")
        socks.append(a)
    poller.add_timer(0.0, interval=1e-5, data="t")
    polls = 120
    served = _serve_counts(poller, socks, polls, before_each=poller.wake)  # a wake-up always pending
    gaps = {fd: _max_gap(hits, polls) for fd, hits in served.items()}
    assert max(gaps.values()) <= 40, f"polls waited between two services (bound 40): {gaps}"


# ------------------------------------------------------------ the plain poll again
def test_no_timer_left_means_polls_stop_consulting_timers(
    poller: portaio.Poller, fds: Closer, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "sock")
    poller.add_timer(0.001, data="once")
    assert [e.data for e in poller.poll(1)] == ["once"]
    poller.add_timer(100.0, data="cancelled").cancel()
    assert poller.poll(0) == []  # one round notices nothing is left

    from portaio import _timers

    def consulted(*args: object, **kwargs: object) -> Any:
        raise AssertionError("a poll consulted the timers with none left")

    monkeypatch.setattr(_timers.TimerQueue, "collect", consulted)
    monkeypatch.setattr(_timers.TimerQueue, "next_deadline", consulted)
    b.send(b"x")
    for _ in range(3):
        assert [e.data for e in poller.poll(0)] == ["sock"]
    a.recv(1)
    assert poller.poll(0.01) == []


# ------------------------------------------------------------ 18: token identity
def test_a_live_token_is_never_reused_after_a_wrap(poller: portaio.Poller, fds: Closer) -> None:
    # Poller._set_next_token_for_tests is the documented test hook for the
    # wrap at TOKEN_MAX: back to 1, the allocator meets every token in use.
    a, a_peer = fds.socketpair()
    poller.register(a, portaio.READABLE, "a")
    poller._set_next_token_for_tests(1)
    b, b_peer = fds.socketpair()
    poller.register(b, portaio.READABLE, "b")
    poller._set_next_token_for_tests(TOKEN_MAX)
    c, c_peer = fds.socketpair()
    poller.register(c, portaio.READABLE, "c")
    d, d_peer = fds.socketpair()
    poller.register(d, portaio.READABLE, "d")  # wraps past TOKEN_MAX to 1
    poller.wake()
    assert [(e.fd, e.events) for e in poller.poll(1)] == [(-1, portaio.WAKE)]
    for sock, peer, name in ((a, a_peer, "a"), (b, b_peer, "b"), (c, c_peer, "c"), (d, d_peer, "d")):
        peer.send(b"x")
        assert [(e.fd, e.data) for e in poller.poll(1)] == [(sock.fileno(), name)]
        sock.recv(1)
    assert poller.poll(0) == []


# ------------------------------------------------------------ 19: bounded by registrations
@pytest.mark.parametrize("max_events", [10**9, 2**31, 2**63])
def test_huge_max_events_is_a_bound_not_an_allocation(
    poller: portaio.Poller, fds: Closer, max_events: int
) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "a")
    assert poller.poll(0, max_events=max_events) == []
    b.send(b"x")
    poller.add_timer(0.0, data="t")
    poller.wake()
    got = poller.poll(1, max_events=max_events)
    assert [e.data for e in got if e.events & portaio.TIMER] == ["t"]
    assert [e.data for e in got if e.fd >= 0] == ["a"]
