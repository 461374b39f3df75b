"""Conformance: what each backend shows the kernel — the fds it makes, drops and closes.

The results of ``poll()`` can be right while the kernel side is wrong: an fd
leaked by every timer re-arm, a closed fd still handed to ``poll(2)`` on every
wait (each call returns at once: a busy loop that reports nothing), an fd of
the poller's own that happens to be number 0 treated as "none".  These cases
look at the process's fd table and the polling thread's CPU time.

fd 0 is a real case: a daemon closes its standard input, and the next fd a
poller makes (its epoll fd, its wake-up pipe, a timerfd made on the first
timer) takes the lowest free number.  The cases free 0 themselves (the test
runner's stdin is put back afterwards) and check the poller then works and
releases it like any other number.
"""

from __future__ import annotations

import errno
import os
import pathlib
import sys
from collections.abc import Callable, Iterator

import pytest

import portaio
from portaio.conformance.busyloop_cases import assert_sleeps
from portaio.conformance.plugin import Closer, collect_garbage, is_open, open_fds, poll_until


@pytest.fixture
def free_fd_zero() -> Iterator[Callable[[], None]]:
    """A function that closes fd 0 for the test; the same file is put back afterwards."""
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("fd numbers are POSIX's: Windows sockets are handles")
    saved = os.dup(0)
    try:
        yield lambda: os.close(0)
    finally:
        if is_open(0):  # a leak the test reports; close it so stdin can come back
            os.close(0)
        os.dup2(saved, 0)
        os.close(saved)


def test_fd_closed_behind_the_pollers_back_is_dropped_not_spun_on(
    poller: portaio.Poller, fds: Closer
) -> None:
    """The kernel keeps saying "not open" (POLLNVAL, select's EBADF): the fd must leave its set."""
    a, b = fds.socketpair()
    c, _ = fds.socketpair()
    poller.register(a, portaio.READABLE, "closed")
    poller.register(c, portaio.READABLE, "idle")  # keeps the kernel's set non-empty
    number = a.fileno()
    os.close(a.detach())  # not unregistered: the number stays free during the wait
    assert_sleeps(poller)
    assert_sleeps(poller, 0.1)  # dropped for good, not only for one wait
    b.close()
    assert poller.unregister(number).data == "closed"


def test_poller_made_on_fd_zero_works_and_releases_it(
    backend: str, free_fd_zero: Callable[[], None], fds: Closer
) -> None:
    a, b = fds.socketpair()
    free_fd_zero()  # the poller's first fd takes 0
    collect_garbage()
    before = open_fds()
    assert 0 not in before
    p = portaio.Poller(backend)
    try:
        assert 0 in open_fds(), f"{backend}: the poller made no fd at the lowest free number"
        p.register(a, portaio.READABLE, "a")
        p.add_timer(0.01, data="t")
        assert [e.data for e in poll_until(p, bool, timeout=2.0)] == ["t"]
        p.wake()
        assert p.poll(1.0) == [portaio.Event(-1, portaio.WAKE, None, 1, 0)]
        assert p.poll(0) == []
        b.send(b"x")
        assert [e.data for e in p.poll(1.0)] == ["a"]
    finally:
        p.close()
    assert open_fds() == before, f"{backend}: close() left fds open: {sorted(open_fds() - before)}"


def test_timer_fd_made_on_fd_zero_is_reused_and_released(
    backend: str, free_fd_zero: Callable[[], None]
) -> None:
    """A native timer whose fd is 0 is re-armed, not replaced by a new one at every earlier deadline."""
    p = portaio.Poller(backend)
    try:
        free_fd_zero()
        collect_garbage()
        before = open_fds()
        assert 0 not in before
        p.add_timer(0.3, data="late")  # epoll: its timerfd is made now, at number 0
        made = open_fds() - before
        p.add_timer(0.02, data="early")  # earlier: the same native timer is re-armed
        p.add_timer(0.01, data="earliest")
        assert open_fds() - before == made, f"{backend}: re-arming the timer made new fds"
        got: list[object] = []

        def all_three(events: list[portaio.Event]) -> bool:
            got.extend(e.data for e in events)
            return len(got) >= 3

        poll_until(p, all_three, timeout=3.0)
        assert got == ["earliest", "early", "late"]
    finally:
        p.close()
    assert 0 not in open_fds(), f"{backend}: close() left its fd 0 open"


def _stale_registration_at_zero(p: portaio.Poller) -> int:
    """Register a pipe's read end at number 0 and close it without unregistering; the write end."""
    r, w = os.pipe()
    assert r == 0, f"fd 0 was freed, but pipe() gave {r}"
    p.register(r, portaio.READABLE, "stale")
    os.close(r)  # the registration stays; the poller's next fd takes number 0
    return w


def _modify_of_stale_registration_is_ebadf(p: portaio.Poller) -> None:
    with pytest.raises(OSError, match=rf"portaio\[{p.backend}\].*fd 0\b") as info:
        p.modify(0, portaio.READABLE, "hijack")
    assert info.value.errno == errno.EBADF


def test_stale_registration_never_reaches_the_pollers_own_timer_fd(
    backend: str, free_fd_zero: Callable[[], None]
) -> None:
    """A registered fd closed without unregister, its number taken by the poller's timerfd (epoll).

    modify is EBADF (the registered file is closed) and changes nothing of
    the timer's; unregister forgets the registration and leaves the timer's
    fd watched: timers keep firing, nothing is reported under fd 0.
    """
    with portaio.Poller(backend) as p:
        free_fd_zero()  # after the poller made its own fds
        w = _stale_registration_at_zero(p)
        try:
            p.add_timer(0.02, data="first")
            _modify_of_stale_registration_is_ebadf(p)
            assert poll_until(p, bool, timeout=2.0) == [portaio.Event(-1, portaio.TIMER, "first", 1, 0)]
            assert p.poll(0.05) == []  # the timer's fd drained: not reported as fd 0
            assert p.unregister(0).data == "stale"
            p.add_timer(0.02, data="second")
            assert poll_until(p, bool, timeout=2.0) == [portaio.Event(-1, portaio.TIMER, "second", 1, 0)]
        finally:
            os.close(w)


def test_stale_registration_never_reaches_the_pollers_own_signal_fd(
    backend: str, free_fd_zero: Callable[[], None]
) -> None:
    """The same with the signal watch's fd (epoll's signalfd, the wakeup-fd pipe elsewhere)."""
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("POSIX signals: Windows has no SIGUSR1")
    import signal

    with portaio.Poller(backend) as p:
        free_fd_zero()  # after the poller made its own fds
        w = _stale_registration_at_zero(p)
        watch = p.add_signal(signal.SIGUSR1, data="usr1")
        try:
            _modify_of_stale_registration_is_ebadf(p)
            assert p.unregister(0).data == "stale"
            for _ in range(2):
                os.kill(os.getpid(), signal.SIGUSR1)
                assert poll_until(p, bool, timeout=2.0) == [
                    portaio.Event(-1, portaio.SIGNAL, "usr1", 1, signal.SIGUSR1)
                ]
                assert p.poll(0) == []
        finally:
            watch.remove()
            os.close(w)


def test_unregister_of_a_closed_fd_whose_number_names_a_regular_file_is_quiet(
    poller: portaio.Poller, free_fd_zero: Callable[[], None], tmp_path: pathlib.Path
) -> None:
    """epoll cannot watch a regular file (EPERM for every control call on it): the stale entry is gone."""
    free_fd_zero()
    w = _stale_registration_at_zero(poller)
    try:
        with open(tmp_path / "file", "wb") as f:
            assert f.fileno() == 0
            assert poller.unregister(0).data == "stale"
            assert poller.poll(0) == []
            poller.register(f, portaio.READABLE | portaio.WRITABLE, "file")
            assert poller.poll(0) == [portaio.Event(0, portaio.READABLE | portaio.WRITABLE, "file")]
            poller.unregister(f)
    finally:
        os.close(w)
