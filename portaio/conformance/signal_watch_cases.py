"""Conformance: signal watches removed one by one, shared, counted and refused (DESIGN item 12).

What ``remove()`` restores is exact per signal (handler, mask, wakeup fd,
fds) while other watches go on; a signal several pollers watch is restored
by the last; queued deliveries are each counted; refusals name the backend
and change nothing.  SIGUSR1/SIGUSR2 and one real-time signal only, sent
by the main thread to itself (never SIGALRM: pytest-timeout's).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Iterator

import pytest

import portaio
from portaio.conformance.guard import compare, process_state
from portaio.conformance.plugin import is_open, open_fds
from portaio.conformance.signal_cases import blocked, signal_events
from portaio.conformance.signalling import counting_handlers

if sys.platform == "win32":  # pragma: no cover
    pytest.skip("POSIX signals (SIGUSR1/2, masks): Windows has none of them", allow_module_level=True)

USR1 = signal.SIGUSR1
USR2 = signal.SIGUSR2


def _event(data: object, signum: int, times: int = 1) -> portaio.Event:
    return portaio.Event(-1, portaio.SIGNAL, data, times, signum)


def _kill(signum: int) -> None:
    os.kill(os.getpid(), signum)


def _blocked_while_watched(capabilities: portaio.Capabilities, signums: set[int]) -> set[int]:
    # docs/timers.rst: with a signalfd (epoll) a watched signal is blocked in
    # the main thread; the other mechanisms leave the mask alone.
    return signums if capabilities.native_signals == "signalfd" else set()


def test_removing_one_watch_restores_that_signal_only(
    poller: portaio.Poller, capabilities: portaio.Capabilities
) -> None:
    with counting_handlers() as calls:
        handler = signal.getsignal(USR2)
        mask = blocked()
        one = poller.add_signal(USR1, data="one")
        two = poller.add_signal(USR2, data="two")
        assert blocked() == mask | _blocked_while_watched(capabilities, {USR1, USR2})
        _kill(USR1)
        _kill(USR2)
        assert two.remove() is True  # both still unreported
        assert blocked() == mask | _blocked_while_watched(capabilities, {USR1})
        assert signal.getsignal(USR2) is handler
        assert calls == []  # the USR2 sent while watched was the watch's
        assert signal_events(poller) == [_event("one", USR1)]
        assert poller.poll(0) == []
        _kill(USR2)
        assert calls == [USR2]  # handler and mask of USR2 are back
        _kill(USR1)
        assert signal_events(poller) == [_event("one", USR1)]
        assert one.remove() is True
        assert blocked() == mask
        assert poller.poll(0) == []


def test_a_signal_several_pollers_watch_is_restored_by_the_last(
    backend: str, capabilities: portaio.Capabilities
) -> None:
    with counting_handlers() as calls:
        handler = signal.getsignal(USR2)
        mask = blocked()
        with portaio.Poller(backend) as one, portaio.Poller(backend) as two, portaio.Poller(backend) as three:
            one.add_signal(USR1, data="1a")
            one_usr2 = one.add_signal(USR2, data="2a")
            two_usr2 = two.add_signal(USR2, data="2b")
            three.add_signal(USR1, data="1c")
            assert blocked() == mask | _blocked_while_watched(capabilities, {USR1, USR2})
            assert two_usr2.remove() is True
            # one still watches USR2: still portaio's, still blocked where watching blocks.
            assert blocked() == mask | _blocked_while_watched(capabilities, {USR1, USR2})
            _kill(USR2)
            assert signal_events(one) == [_event("2a", USR2)]
            assert calls == [] and two.poll(0) == []
            assert one_usr2.remove() is True
            assert signal.getsignal(USR2) is handler
            assert blocked() == mask | _blocked_while_watched(capabilities, {USR1})
            _kill(USR2)
            assert calls == [USR2]
            # Two of the three pollers let go of the shared source: the third keeps it.
            two.close()
            one.close()
            _kill(USR1)
            assert signal_events(three) == [_event("1c", USR1)]
            assert three.poll(0) == []
        assert blocked() == mask


def test_remove_releases_the_signal_sources_at_once(poller: portaio.Poller) -> None:
    before = process_state()
    watch = poller.add_signal(USR1, data="x")
    assert watch.remove() is True
    # The poller stays open: its signal pipe/signalfd and the wakeup fd must not,
    # and no trace of them stays in its kernel set.
    assert compare(before, process_state()) == {}
    # A file that takes the source's old numbers is none of the poller's business.
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)  # a poller that read it fails the case, not hangs it
        os.write(w, b"mine")
        assert poller.poll(0.01) == []
        assert os.read(r, 16) == b"mine"
    finally:
        os.close(r)
        os.close(w)
    again = poller.add_signal(USR1, data="again")
    _kill(USR1)
    assert signal_events(poller) == [_event("again", USR1)]
    assert again.remove() is True
    assert compare(before, process_state()) == {}


def test_queued_real_time_deliveries_are_each_counted(poller: portaio.Poller) -> None:
    rtmin = getattr(signal, "SIGRTMIN", None)
    if rtmin is None:
        pytest.skip("no real-time signals on this OS: standard signals merge while pending")
    signum = rtmin + 1  # queued, and no member of signal.Signals: named by its number
    assert signum in signal.valid_signals()
    watch = poller.add_signal(signum, data="rt")
    with pytest.raises(portaio.AlreadyRegistered) as info:
        poller.add_signal(signum)
    assert str(info.value) == f"portaio[{poller.backend}]: signal {signum} is already watched by this poller"
    for _ in range(3):
        _kill(signum)  # each one queued (or handled) before the next is sent
    assert signal_events(poller) == [_event("rt", signum, times=3)]
    assert poller.poll(0) == []
    assert watch.remove() is True


def test_watch_calls_outside_the_main_thread_raise_naming_the_backend(poller: portaio.Poller) -> None:
    watch = poller.add_signal(USR1, data="main")
    errors: list[BaseException] = []

    def attempt() -> None:
        for call in (watch.remove, lambda: poller.add_signal(USR2)):
            try:
                call()
            except BaseException as exc:
                errors.append(exc)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join(10.0)
    why = "must be called from the main thread (signal dispositions and masks are set there)"
    assert [(type(e), str(e)) for e in errors] == [
        (ValueError, f"portaio[{poller.backend}]: SignalWatch.remove() {why}"),
        (ValueError, f"portaio[{poller.backend}]: add_signal() {why}"),
    ]
    assert watch.active  # refused: still watched
    _kill(USR1)
    assert signal_events(poller) == [_event("main", USR1)]
    assert watch.remove() is True


@contextlib.contextmanager
def _fd_0_free() -> Iterator[None]:
    """Close fd 0 (stdin) for the block, so the next fd made is 0; put it back after."""
    try:
        saved: int | None = os.dup(0)
    except OSError:
        saved = None  # no stdin: 0 is free already
    try:
        if saved is not None:
            os.close(0)
        yield
    finally:
        if saved is not None:
            os.dup2(saved, 0)
            os.close(saved)


def test_a_signal_source_on_fd_0_works(backend: str) -> None:
    # fd 0 is a valid fd: a "fd < 1" or "result <= 0" error check would refuse it.
    poller = portaio.Poller(backend)
    try:
        with _fd_0_free():
            watch = poller.add_signal(USR1, data="zero")
            assert is_open(0), "the signal source was expected to take fd 0"
            _kill(USR1)
            assert signal_events(poller) == [_event("zero", USR1)]
            assert watch.remove() is True
            assert not is_open(0)
    finally:
        poller.close()  # before fd 0 is given back: a source still holding 0 closes it first


@contextlib.contextmanager
def _fds_taken(below: int) -> Iterator[None]:
    """Make every free fd number below *below* open (``/dev/null``) for the block.

    Call it before lowering ``RLIMIT_NOFILE`` to *below*: the ``/dev/null``
    it duplicates must be opened while a number is still free (with no hole
    in the fd table below the limit, as under mutmut, it would be EMFILE).
    """
    taken: list[int] = []
    null = os.open(os.devnull, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        opened = open_fds()
        for fd in range(below):
            if fd not in opened and fd != null:
                os.dup2(null, fd, inheritable=False)
                taken.append(fd)
        yield
    finally:
        for fd in taken:
            os.close(fd)
        os.close(null)


def test_a_signal_source_above_the_fd_limit(
    poller: portaio.Poller, capabilities: portaio.Capabilities
) -> None:
    # Every fd below 1024 taken: the signal source gets a higher number, which
    # select (FD_SETSIZE) refuses at the call, changing nothing; the others take it.
    watch: portaio.SignalWatch | None = None
    with counting_handlers() as calls:
        before = process_state()
        with _fds_taken(1024):
            if capabilities.max_fd is not None and capabilities.max_fd < 1024:
                with pytest.raises(ValueError) as info:
                    poller.add_signal(USR1, data="high")
                text = str(info.value)
                assert text.startswith(f"portaio[{poller.backend}]: the signal source's fd ")
                assert text.endswith(f" is above the backend's limit {capabilities.max_fd}")
                state = process_state()
                assert compare(before, state).keys() <= {"fds"}  # the filler, nothing else
                assert not (set(state.fds) - set(before.fds)) - set(range(1024))
                _kill(USR1)
                assert calls == [USR1]  # the handler stayed
            else:
                watch = poller.add_signal(USR1, data="high")
                assert max(open_fds()) >= 1024
                _kill(USR1)
                assert signal_events(poller) == [_event("high", USR1)]
        # With fds below the limit free again, the watch is made (nothing of the refusal stuck).
        if watch is None:
            watch = poller.add_signal(USR1, data="high")
            _kill(USR1)
            assert signal_events(poller) == [_event("high", USR1)]
        assert watch.remove() is True
        assert compare(before, process_state()) == {}


def test_add_signal_without_free_fds_raises_and_changes_nothing(poller: portaio.Poller) -> None:
    resource = pytest.importorskip("resource", reason="RLIMIT_NOFILE needs the resource module (POSIX)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = max(open_fds()) + 1
    with counting_handlers() as calls:
        before = process_state()
        # 0 free fds, then 1: a source that opened before another failed is released too.
        for free in (0, 1):
            with _fds_taken(top - free):
                resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))
                try:
                    with pytest.raises(OSError) as info:
                        poller.add_signal(USR1)
                    assert info.value.errno == errno.EMFILE
                finally:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            assert compare(before, process_state()) == {}
            _kill(USR1)
            assert calls == [USR1]  # the handler stayed
            calls.clear()
        watch = poller.add_signal(USR1, data="after")  # not left half-registered
        _kill(USR1)
        assert signal_events(poller) == [_event("after", USR1)]
        assert watch.remove() is True


def test_a_signal_event_left_over_by_max_events_comes_from_the_next_poll(poller: portaio.Poller) -> None:
    poller.add_signal(USR1, data=1)
    poller.add_signal(USR2, data=2)
    _kill(USR1)
    _kill(USR2)  # both read together by the next poll, which has room for one
    first = poller.poll(5.0, max_events=1)
    assert len(first) == 1
    # The other one is due now: even a poll that does not wait reports it.
    second = poller.poll(0, max_events=1)
    assert sorted(first + second, key=lambda e: e.signum) == [_event(1, USR1), _event(2, USR2)]
    assert poller.poll(0) == []
