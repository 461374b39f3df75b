"""fork(): the child starts clean, the parent is undisturbed.

A poller with registrations, a timer and a signal watch exists when the
process forks.  The child can create and use new
pollers and receives none of the parent's events through the inherited one;
whatever the child does with the inherited poller (close it included), the
parent's registrations keep reporting, one-shot events included.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable

import pytest

import portaio
from portaio import EDGE, ONESHOT, READABLE

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")


def run_in_child(body: Callable[[], None]) -> None:
    """Fork, run *body* in the child, fail here with the child's traceback if it fails."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(r)
        code = 0
        try:
            body()
        except BaseException:
            os.write(w, traceback.format_exc().encode())
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as report:
        text = report.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child failed:\n{text}"


def test_child_starts_clean_and_parent_is_undisturbed(backend: str) -> None:
    caps = portaio.backend_class(backend).capabilities
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    parent = portaio.Poller(backend)
    try:
        parent.register(a, READABLE | ONESHOT, "oneshot")
        parent.register(c, READABLE | (EDGE if caps.edge else 0), "level-or-edge")
        parent.add_timer(0.05, data="timer")
        parent.add_signal(signal.SIGUSR2, data="sig")
        b.send(b"x")  # ready before the fork: the child must not consume the one-shot
        d.send(b"y")

        def child() -> None:
            # A new poller works normally: fds, timers, signals, wake-ups.
            with portaio.Poller(backend) as mine:
                e, f = socket.socketpair()
                mine.register(e, READABLE, "child")
                f.send(b"z")
                assert [(ev.fd, ev.data) for ev in mine.poll(2.0)] == [(e.fileno(), "child")]
                mine.unregister(e)
                mine.add_timer(0.01, data="child-timer")
                mine.add_signal(signal.SIGUSR1, data="child-sig")
                os.kill(os.getpid(), signal.SIGUSR1)
                mine.wake()
                got: set[object] = set()
                until = time.monotonic() + 5.0
                while time.monotonic() < until and not {"child-timer", "child-sig", None} <= got:
                    got |= {ev.data for ev in mine.poll(0.5)}
                assert {"child-timer", "child-sig", None} <= got, got
            # The inherited poller yields none of the parent's events: it is
            # retired (PollerClosed) or, at the very least, silent.
            try:
                leaked = parent.poll(0.1)
            except portaio.PollerClosed:
                leaked = []
            assert leaked == [], f"the child received the parent's events: {leaked}"
            parent.close()  # closing the child's copy must not touch the parent's

        run_in_child(child)

        # The parent still sees everything, the one-shot included, exactly once.
        seen: dict[object, int] = {}
        deadline_polls = 40
        while deadline_polls and not {"oneshot", "level-or-edge"} <= set(seen):
            deadline_polls -= 1
            for ev in parent.poll(0.05):
                seen[ev.data] = seen.get(ev.data, 0) + 1
        assert "level-or-edge" in seen, seen
        os.kill(os.getpid(), signal.SIGUSR2)
        # Time-bounded, not count-bounded: a level-triggered fd stays ready,
        # so each poll returns at once, long before the timer is due.
        until = time.monotonic() + 5.0
        while time.monotonic() < until and not {"timer", "sig"} <= set(seen):
            for ev in parent.poll(0.05):
                seen[ev.data] = seen.get(ev.data, 0) + 1
        assert {"timer", "sig"} <= set(seen), seen
        assert seen.get("oneshot") == 1, seen  # still once, however many polls followed
    finally:
        parent.close()
        for s in (a, b, c, d):
            s.close()


def test_child_creates_and_closes_many_pollers(backend: str) -> None:
    with portaio.Poller(backend) as parent:
        a, b = socket.socketpair()
        with a, b:
            parent.register(a, READABLE, "parent")

            def child() -> None:
                before = len(os.listdir("/proc/self/fd"))
                for _ in range(200):
                    with portaio.Poller(backend) as p:
                        p.register(a, READABLE)  # an fd inherited from the parent
                        p.poll(0)
                assert len(os.listdir("/proc/self/fd")) == before

            run_in_child(child)
            b.send(b"x")
            assert [ev.data for ev in parent.poll(1.0)] == ["parent"]


def test_fork_from_a_thread_while_the_parent_polls(backend: str) -> None:
    """A fork while another thread blocks in poll(): the child must not deadlock on portaio's locks."""
    import threading

    with portaio.Poller(backend) as parent:
        a, b = socket.socketpair()
        with a, b:
            parent.register(a, READABLE, "parent")
            results: list[object] = []
            t = threading.Thread(target=lambda: results.append(parent.poll(5.0)))
            t.start()

            def child() -> None:
                with portaio.Poller(backend) as p:
                    e, f = socket.socketpair()
                    p.register(e, READABLE)
                    f.send(b"z")
                    assert len(p.poll(2.0)) == 1

            run_in_child(child)
            b.send(b"x")
            t.join(10)
            assert results and [ev.data for ev in results[0]] == ["parent"]  # type: ignore[attr-defined]


if sys.platform == "darwin":  # pragma: no cover
    pytestmark = [pytestmark, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
