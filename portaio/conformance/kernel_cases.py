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
import socket
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
    assert_sleeps(poller, 0.25)
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
        p.add_timer(0.1, data="late")  # epoll: its timerfd is made now, at number 0
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


def test_poller_out_of_fds_is_emfile_naming_the_backend_and_leaks_nothing(backend: str) -> None:
    """With room for 0, 1, 2... more fds, ``Poller()`` fails at each fd it makes, cleanly.

    The error names the backend (an eventfd, a pipe failing inside is no
    clue to which poller could not be made) and whatever was made before the
    failing fd is closed again.
    """
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("RLIMIT_NOFILE is POSIX's")
    import resource

    with portaio.Poller(backend):  # imports whatever it needs now, not with no fd left
        pass
    collect_garbage()
    before = open_fds()
    free = [n for n in range(max(before) + 8) if n not in before]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    made = False
    for room in range(6):
        refused: OSError | None = None
        # Every fd number below free[room] but exactly *room* of them is taken.
        resource.setrlimit(resource.RLIMIT_NOFILE, (free[room], hard))
        try:
            p = portaio.Poller(backend)
        except OSError as err:
            refused = err
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        if refused is None:
            p.close()
            made = True
        else:
            assert not made, f"{backend}: Poller() failed with room for {room} fds after working with less"
            assert refused.errno == errno.EMFILE, refused
            assert str(refused.strerror).startswith(f"portaio[{backend}]: "), str(refused)
        assert open_fds() == before, f"{backend}: with room for {room} fds, Poller() leaked"
    assert made, f"{backend}: Poller() never worked with room for up to 5 fds"


def _voluntary_switches() -> int:
    """Voluntary context switches of this thread (-1 where the OS does not count them)."""
    if not sys.platform.startswith("linux"):
        return -1
    import resource

    try:
        return int(resource.getrusage(getattr(resource, "RUSAGE_THREAD", 1)).ru_nvcsw)
    except (OSError, ValueError):
        return -1


def test_a_wait_with_nothing_ready_sleeps_in_one_kernel_call(poller: portaio.Poller, fds: Closer) -> None:
    """poll(0.3) is one wait of 0.3 s in the kernel, not many short ones (poll(2) takes ms: 300, not 0.3)."""
    a, _ = fds.socketpair()
    poller.register(a, portaio.READABLE)
    poller.poll(0)
    before = _voluntary_switches()
    if before < 0:
        pytest.skip("counts the thread's voluntary context switches: Linux's RUSAGE_THREAD")
    assert poller.poll(0.3) == []
    sleeps = _voluntary_switches() - before
    # Each time the thread sleeps in the kernel is one switch; a wait cut
    # into 1 ms slices is ~300.  A few spare for the interpreter's own.
    assert sleeps <= 10, f"{poller.backend}: poll(0.3) slept {sleeps} times"


def test_urgent_data_wakes_only_priority_interest(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities
) -> None:
    """A TCP urgent byte is PRIORITY, not READABLE: interest without PRIORITY sleeps through it."""
    client, server, _ = fds.tcp_pair()
    poller.register(server, portaio.READABLE, "r")
    client.send(b"!", socket.MSG_OOB)
    assert_sleeps(poller, 0.2)
    if not capabilities.priority:
        return
    poller.modify(server, portaio.READABLE | portaio.PRIORITY, "rp")
    assert poller.poll(1.0) == [portaio.Event(server.fileno(), portaio.PRIORITY, "rp")]
    poller.modify(server, portaio.READABLE, "r again")  # PRIORITY dropped: asleep again
    assert_sleeps(poller, 0.2)


def test_fd_watched_for_priority_then_unregistered_and_closed_is_forgotten(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities
) -> None:
    """Nothing of an unregistered fd stays in the kernel's sets (select: its exceptional set)."""
    if not capabilities.priority:
        pytest.skip(f"{poller.backend} has no PRIORITY here (pinned)")
    a, b = socket.socketpair()
    fds.add(a)  # closed by hand below (closing a socket object twice is harmless)
    fds.add(b)
    poller.register(a, portaio.READABLE | portaio.PRIORITY, "gone")
    poller.unregister(a)
    a.close()  # a number left in a set would make every select() fail with EBADF
    assert_sleeps(poller, 0.3)


def test_modify_moves_the_fd_out_of_the_old_interest(poller: portaio.Poller, fds: Closer) -> None:
    """Readable but not writable: after modify(READABLE -> WRITABLE) the wait sleeps."""
    a, b = fds.socketpair()
    try:
        while True:
            a.send(b"x" * 65536)
    except BlockingIOError:
        pass  # a's send buffer (and b's receive buffer) full: a is not writable
    b.send(b"unread")  # a is readable
    poller.register(a, portaio.READABLE, "r")
    assert poller.poll(1.0) == [portaio.Event(a.fileno(), portaio.READABLE, "r")]
    poller.modify(a, portaio.WRITABLE, "w")
    assert_sleeps(poller, 0.3)


# Each refusable interest, and the features a refusal may name for it.
_REFUSABLE = [
    (portaio.EDGE | portaio.READABLE, {"EDGE"}),
    (portaio.EXCLUSIVE | portaio.READABLE, {"EXCLUSIVE"}),
    (portaio.RDHUP, {"RDHUP", "RDHUP without READABLE"}),
    (portaio.PRIORITY, {"PRIORITY", "PRIORITY alone"}),
]


@pytest.mark.parametrize(("interest", "features"), _REFUSABLE, ids=["edge", "exclusive", "rdhup", "priority"])
def test_refused_interest_names_backend_feature_and_fd(
    poller: portaio.Poller, fds: Closer, interest: int, features: set[str]
) -> None:
    a, _ = fds.socketpair()
    try:
        poller.register(a, interest)
    except portaio.Unsupported as err:
        assert err.backend == poller.backend
        assert err.feature in features, f"{poller.backend}: refused {interest!r} as {err.feature!r}"
        prefix = f"portaio[{poller.backend}]: {err.feature} is not supported by the {poller.backend} backend"
        assert str(err).startswith(f"{prefix} (fd {a.fileno()}"), str(err)
        assert len(poller) == 0
    else:
        poller.unregister(a)


def test_failed_modify_to_exclusive_leaves_the_old_registration_working(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities
) -> None:
    """epoll refuses EPOLLEXCLUSIVE for an epoll fd (EINVAL): the modify fails, nothing is lost."""
    a, b = fds.socketpair()
    if not capabilities.exclusive:
        poller.register(a, portaio.READABLE)
        with pytest.raises(portaio.Unsupported, match=rf"portaio\[{poller.backend}\]"):
            poller.modify(a, portaio.READABLE | portaio.EXCLUSIVE)
        return
    with portaio.Poller(poller.backend) as inner:
        if inner.fileno() < 0:
            pytest.skip(f"{poller.backend} has no kernel object to nest")
        inner.register(a, portaio.READABLE, "inner")
        poller.register(inner, portaio.READABLE, "old")
        with pytest.raises(OSError, match=rf"portaio\[{poller.backend}\].*fd {inner.fileno()}\b") as info:
            poller.modify(inner, portaio.READABLE | portaio.EXCLUSIVE, "new")
        assert info.value.errno == errno.EINVAL
        assert poller.get(inner) is not None and poller.get(inner).data == "old"  # type: ignore[union-attr]
        assert poller.poll(0) == []
        b.send(b"x")
        assert poller.poll(1.0) == [portaio.Event(inner.fileno(), portaio.READABLE, "old")]
        poller.unregister(inner)


def test_with_every_fd_below_fd_setsize_taken(backend: str, capabilities: portaio.Capabilities) -> None:
    """select cannot watch fds at or above FD_SETSIZE: a poller that could not watch its own wake-up
    fd is refused at ``Poller()`` (EMFILE, naming the limit); the others work with any number."""
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("fd numbers are POSIX's: Windows sockets are handles")
    import resource

    limit = 1024 if capabilities.max_fd is None else capabilities.max_fd + 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < limit + 16:
        pytest.skip(f"needs room for {limit + 16} fds, the hard limit is {hard}")
    collect_garbage()
    before = open_fds()
    fillers: list[int] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, limit + 16), hard))
    try:
        while True:
            fd = os.dup(2)
            fillers.append(fd)
            if fd >= limit - 1:
                break  # every number below the limit is taken now
        if capabilities.max_fd is not None:
            with pytest.raises(OSError) as info:
                portaio.Poller(backend)
            assert info.value.errno == errno.EMFILE
            assert info.value.strerror == (
                f"portaio[{backend}]: no fd below FD_SETSIZE ({limit}) is free for its wake-up pipe"
            )
            assert open_fds() == before | set(fillers)
        else:
            with portaio.Poller(backend) as p:
                a, b = socket.socketpair()
                try:
                    assert a.fileno() >= limit
                    p.register(a, portaio.READABLE, "high")
                    b.send(b"x")
                    assert p.poll(1.0) == [portaio.Event(a.fileno(), portaio.READABLE, "high")]
                    assert a.recv(10) == b"x"
                    p.wake()
                    assert p.poll(1.0) == [portaio.Event(-1, portaio.WAKE, None, 1, 0)]
                finally:
                    a.close()
                    b.close()
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert open_fds() == before
