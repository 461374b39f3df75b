"""Conformance: the turns of the one poll loop (contract items 16, 17).

With a short ``max_events`` the sources (timers, signals, the wake-up,
always-ready files) and the kernel's fds take turns: a batch that leaves the
kernel out makes it *owed*, so the next poll asks the kernel first, unless a
timer was already due when it was passed over.  These cases pin the exact
order of the polls that follow and that a poll whose turn is the kernel's
still returns at once when a source holds something (it must not block
waiting for the kernel while a reportable event sits in a source).

Every wait is a poll with a timeout; timing is asserted only as "returned
well before the timeout", never as a short sleep.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import portaio
from portaio.conformance.plugin import Closer

_now = time.monotonic
_USR1: int = getattr(signal, "SIGUSR1", 0)  # POSIX: the cases sending it skip on Windows


def _what(events: list[portaio.Event]) -> list[Any]:
    """Each event as its data, or "WAKE" for the wake-up (whose data is None)."""
    return ["WAKE" if e.events == portaio.WAKE and e.fd == -1 else e.data for e in events]


def _pending(poller: portaio.Poller, source: str) -> None:
    """Make *source* hold one report the kernel will not announce again."""
    if source == "wake":
        poller.wake()
    elif source == "signal":
        os.kill(os.getpid(), _USR1)
    else:
        raise AssertionError(source)


@pytest.mark.parametrize("third", ["short", "plain"])
@pytest.mark.parametrize("source", ["wake", "signal"])
def test_kernel_turn_does_not_block_while_a_source_holds_a_report(
    poller: portaio.Poller, source: str, third: str
) -> None:
    # 1. poll(max_events=2): timer "t1" comes first, the kernel gets the room
    #    left (1) and its one key is the wake-up's (or the signal source's):
    #    the report now sits in its source, not yet listed (the sources came
    #    first this round).
    # 2. poll(max_events=1): the sources fill the batch, so the kernel is owed.
    #    The sources rotate: if the timer "t2" is listed, the report is still
    #    pending while the kernel is owed, which is what step 3 needs.
    # 3. "short": poll(5, max_events=1): the kernel's turn, nothing ready there, yet the
    #    pending report must come at once, not after the 5 s wait.  "plain":
    #    poll(0), which must not take the fast path (the kernel alone) while
    #    a source holds a report.
    if source == "signal":
        if sys.platform == "win32":  # pragma: no cover
            pytest.skip("SIGUSR1 and os.kill of a handled signal are POSIX")
        poller.add_signal(_USR1, data="SIG")
    expected = "WAKE" if source == "wake" else "SIG"
    exercised = 0
    for attempt in range(8):
        # Two polls that each list one due timer with room to spare: the
        # kernel is not owed (whatever an earlier attempt left) and the
        # rotation of the sources moves on from one attempt to the next.
        for _ in range(2):
            poller.add_timer(0.0, data="reset")
            assert _what(poller.poll(5, max_events=5)) == ["reset"]
        poller.add_timer(0.0, data="t1")
        _pending(poller, source)
        first = _what(poller.poll(5, max_events=2))
        assert first == ["t1"], (attempt, first)
        poller.add_timer(0.0, data="t2")
        second = _what(poller.poll(0, max_events=1))
        start = _now()
        last = _what(poller.poll(0) if third == "plain" else poller.poll(5, max_events=1))
        elapsed = _now() - start
        if second == ["t2"]:
            assert last == [expected], f"attempt {attempt}: the pending report was lost: {last}"
            assert elapsed < 2.5, f"the kernel's turn blocked {elapsed:.2f} s with {expected} pending"
            exercised += 1
        else:
            # The rotation listed the report first; the timer due when the
            # kernel was passed over comes before the kernel's turn.
            assert (second, last) == ([expected], ["t2"]), (attempt, second, last)
        assert poller.poll(0) == []
        if exercised >= 2:
            break
    assert exercised >= 2, "the rotation never listed the timer before the pending report"


def test_passed_over_kernel_gets_the_next_turn_after_timers_already_due(
    poller: portaio.Poller, fds: Closer
) -> None:
    # max_events=1 throughout.  The socket is always readable (level).  The
    # timers t1 and t2 are due before the first poll, which lists t1 and
    # passes the kernel over; t3 falls due after that.  So: t2 (due when the
    # kernel was passed over), then the kernel's socket, then t3 (which
    # passes the kernel over again), then the kernel, whose turn it stays.
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "sock")
    b.send(b"x")
    t1 = poller.add_timer(0.0, data="t1")
    t2 = poller.add_timer(0.0, data="t2")
    _spin_until(max(t1.deadline or 0.0, t2.deadline or 0.0))
    assert _what(poller.poll(1, max_events=1)) == ["t1"]
    poller.add_timer(0.0, data="t3")
    order = [_what(poller.poll(1, max_events=1)) for _ in range(5)]
    assert order == [["t2"], ["sock"], ["t3"], ["sock"], ["sock"]]
    assert _what(poller.poll(0)) == ["sock"]


def _spin_until(instant: float) -> None:
    """Busy-wait until the monotonic clock reaches *instant* (microseconds here)."""
    while _now() < instant:
        pass


def test_an_internal_key_before_an_fd_in_one_wait_loses_nothing(poller: portaio.Poller, fds: Closer) -> None:
    # The wake-up's key comes first (it was ready first), the socket's after
    # it: handling the internal key must go on to the rest of the batch.
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "sock")
    assert poller.poll(0) == []
    poller.wake()
    b.send(b"x")
    assert _what(poller.poll(1)) == ["WAKE", "sock"]
    assert _what(poller.poll(0)) == ["sock"]


def test_one_batch_lists_timers_signals_wake_files_then_fds(
    poller: portaio.Poller, fds: Closer, tmp_path: Path
) -> None:
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("SIGUSR1 and os.kill of a handled signal are POSIX")
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "sock")
    fd = fds.add(os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT))
    poller.register(fd, portaio.READABLE, "file")
    poller.add_signal(_USR1, data="SIG")
    b.send(b"x")
    poller.add_timer(0.0, data="t1")
    os.kill(os.getpid(), _USR1)
    poller.wake()
    # The sources came first (the timer, the file); the wake-up and the
    # signal reach portaio through the kernel wait that follows, so they
    # are listed by the next poll, in the contract's order.  The file is an
    # always-ready source where the kernel refuses it (epoll), or one of the
    # kernel's fds (poll): either way listed after the wake-up.
    expected = [["t1", "sock"], ["t2", "SIG", "WAKE", "sock"], ["sock"]]
    for i, want in enumerate(expected):
        if i == 1:
            poller.add_timer(0.0, data="t2")
        got = _what(poller.poll(1 if i < 2 else 0))
        assert [x for x in got if x != "file"] == want, got
        assert got.count("file") == 1, got
        assert got.index("file") >= len([e for e in want if e != "sock"]), f"the file listed too early: {got}"
    poller.unregister(fd)


def _made(poller: portaio.Poller, timeout: float) -> list[Any]:
    """What poll() returned, built by the poller's event factory."""
    made: list[Any] = list(poller.poll(timeout))
    return made


def test_event_factory_runs_once_per_registration_and_flags(backend: str, fds: Closer) -> None:
    # Poller(event_factory=...): its results are cached per registration and
    # flags, so the factory runs once for each, whatever else the wait holds.
    calls: list[tuple[int, int, Any]] = []

    def factory(fd: int, events: int, data: Any) -> tuple[str, int, int, Any]:
        calls.append((fd, events, data))
        return ("made", fd, events, data)

    poller = portaio.Poller(backend, event_factory=factory)
    try:
        a, a_peer = fds.socketpair()
        c, c_peer = fds.socketpair()
        poller.register(a, portaio.READABLE, "a")
        a_peer.send(b"x")
        [made_a] = _made(poller, 1)
        assert made_a == ("made", a.fileno(), portaio.READABLE, "a")
        assert _made(poller, 1)[0] is made_a
        # A new key beside a cached one in one wait: only the new one is built.
        poller.register(c, portaio.READABLE, "c")
        c_peer.send(b"x")
        both = sorted(_made(poller, 1), key=lambda made: made[1])
        assert both == sorted([made_a, ("made", c.fileno(), portaio.READABLE, "c")], key=lambda made: made[1])
        assert next(made for made in both if made[3] == "a") is made_a
        assert calls == [(a.fileno(), portaio.READABLE, "a"), (c.fileno(), portaio.READABLE, "c")]
        # New data: built afresh, once.
        poller.modify(a, portaio.READABLE, "a2")
        poller.unregister(c)
        assert _made(poller, 1) == [("made", a.fileno(), portaio.READABLE, "a2")]
        assert _made(poller, 1) == [("made", a.fileno(), portaio.READABLE, "a2")]
        assert calls[2:] == [(a.fileno(), portaio.READABLE, "a2")]
    finally:
        poller.close()


def test_unregistered_while_its_event_is_built_leaves_nothing_for_a_reused_token(
    backend: str, fds: Closer
) -> None:
    # The factory runs outside the poller's lock, as another thread's
    # unregister() may: here the factory itself unregisters the fd, so the
    # race is deterministic.  The event built for it must not stay cached
    # under its token, which a later registration reuses.
    doomed: list[Any] = []

    def factory(fd: int, events: int, data: Any) -> tuple[int, int, Any]:
        if doomed:
            poller.unregister(doomed.pop())
        return (fd, events, data)

    poller = portaio.Poller(backend, event_factory=factory)
    try:
        a, a_peer = fds.socketpair()
        b, b_peer = fds.socketpair()
        poller._set_next_token_for_tests(1000)  # the documented test hook (token wrap)
        poller.register(a, portaio.READABLE, "old")
        a_peer.send(b"x")
        doomed.append(a)
        assert _made(poller, 1) == [(a.fileno(), portaio.READABLE, "old")]
        assert a not in poller
        poller._set_next_token_for_tests(1000)  # b gets a's token
        poller.register(b, portaio.READABLE, "new")
        b_peer.send(b"x")
        assert _made(poller, 1) == [(b.fileno(), portaio.READABLE, "new")]
        assert _made(poller, 0) == [(b.fileno(), portaio.READABLE, "new")]
    finally:
        poller.close()
