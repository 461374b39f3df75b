"""Hostile input beyond the conformance suite: bad calls over many rounds, re-entrancy.

Each bad call raising its documented exception at the call (the same type on
every backend, naming it) is conformance: ``portaio/conformance/errors_cases.py``
(with the rows this module's table used to repeat, and the ones only it had,
merged there as ``REFUSED``), ``timer_cases``, ``signal_cases`` and
``capability_cases``; the conformance guard checks after every test that no fd
leaked.  What stays here: the table of calls replayed on 200 pollers (nothing
leaks over many rounds), a signal handler re-entering the poller during
``poll()``, unregistering within a batch, and fds closed behind the poller's back.
"""

from __future__ import annotations

import errno
import math
import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

import portaio
from portaio import EDGE, EXCLUSIVE, HANGUP, ONESHOT, PRIORITY, RDHUP, READABLE, TIMER, WAKE, WRITABLE
from portaio.conformance.plugin import Closer


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Ctx:
    """What a case works on: a poller, a connected socketpair, a Closer."""

    def __init__(self, poller: portaio.Poller, fds: Closer) -> None:
        self.p = poller
        self.fds = fds
        self.a, self.b = fds.socketpair()
        self.caps = poller.capabilities

    def closed_fd(self) -> int:
        r, w = os.pipe()
        os.close(r)
        os.close(w)
        return r


class FilenoRaises:
    def fileno(self) -> int:
        raise OSError(errno.EBADF, "gone")


class FilenoReturns:
    def __init__(self, value: Any) -> None:
        self.value = value

    def fileno(self) -> Any:
        return self.value


def closed_socket() -> socket.socket:
    s = socket.socket()
    s.close()
    return s


def _twice(c: Ctx) -> None:
    c.p.register(c.a, READABLE)
    c.p.register(c.a, WRITABLE)


def _closed_then_use(call: Callable[[Ctx], Any]) -> Callable[[Ctx], Any]:
    def case(c: Ctx) -> Any:
        c.p.register(c.a, READABLE)
        c.p.close()
        return call(c)

    return case


def _edge_expected(c: Ctx) -> type[Exception] | None:
    return None if c.caps.edge else portaio.Unsupported


def _rdhup_expected(c: Ctx) -> type[Exception] | None:
    # select refuses RDHUP without READABLE (unread data would spin it).
    return None if c.caps.rdhup and c.p.backend != "select" else portaio.Unsupported


def _huge_unopened_fd(c: Ctx) -> Any:
    # Beyond select's FD_SETSIZE it is a ValueError there; elsewhere the fd is simply not open.
    return c.p.register(19_999, READABLE)


def _huge_unopened_expected(c: Ctx) -> type[Exception]:
    return ValueError if c.caps.max_fd is not None and c.caps.max_fd < 19_999 else OSError


def _signal_twice(c: Ctx) -> None:
    watch = c.p.add_signal(signal.SIGUSR2)
    try:
        c.p.add_signal(signal.SIGUSR2)
    finally:
        watch.remove()


def _signal_from_thread(c: Ctx) -> None:
    errors: list[BaseException] = []

    def body() -> None:
        try:
            c.p.add_signal(signal.SIGUSR2)
        except BaseException as err:
            errors.append(err)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if errors:
        raise errors[0]


# (id, call, expected exception type or a function of the context giving it; None = must succeed)
CASES: list[tuple[str, Callable[[Ctx], Any], Any]] = [
    ("fd-str", lambda c: c.p.register("3", READABLE), TypeError),
    ("fd-float", lambda c: c.p.register(3.0, READABLE), TypeError),
    ("fd-none", lambda c: c.p.register(None, READABLE), TypeError),
    ("fd-bool", lambda c: c.p.register(True, READABLE), TypeError),
    ("fd-bytes", lambda c: c.p.register(b"3", READABLE), TypeError),
    ("fd-object", lambda c: c.p.register(object(), READABLE), TypeError),
    ("fd-negative", lambda c: c.p.register(-1, READABLE), ValueError),
    ("fd-2**31", lambda c: c.p.register(2**31, READABLE), ValueError),
    ("fd-2**64", lambda c: c.p.register(2**64, READABLE), ValueError),
    ("fd--2**63", lambda c: c.p.register(-(2**63), READABLE), ValueError),
    ("fileno-raises", lambda c: c.p.register(FilenoRaises(), READABLE), ValueError),
    ("fileno-negative", lambda c: c.p.register(FilenoReturns(-5), READABLE), ValueError),
    ("fileno-str", lambda c: c.p.register(FilenoReturns("4"), READABLE), TypeError),
    ("closed-socket-object", lambda c: c.p.register(closed_socket(), READABLE), ValueError),
    ("closed-fd-number", lambda c: c.p.register(c.closed_fd(), READABLE), OSError),
    ("unopened-huge-fd", _huge_unopened_fd, _huge_unopened_expected),
    ("events-str", lambda c: c.p.register(c.a, "READABLE"), TypeError),
    ("events-float", lambda c: c.p.register(c.a, 1.0), TypeError),
    ("events-none", lambda c: c.p.register(c.a, None), TypeError),
    ("events-zero", lambda c: c.p.register(c.a, 0), ValueError),
    ("events-negative", lambda c: c.p.register(c.a, -1), ValueError),
    ("events-high-bit", lambda c: c.p.register(c.a, 1 << 20), ValueError),
    ("events-2**70", lambda c: c.p.register(c.a, 2**70), ValueError),
    ("events-output-only-TIMER", lambda c: c.p.register(c.a, READABLE | TIMER), ValueError),
    ("events-output-only-WAKE", lambda c: c.p.register(c.a, WAKE), ValueError),
    ("events-only-HANGUP", lambda c: c.p.register(c.a, HANGUP), ValueError),
    ("events-mode-only", lambda c: c.p.register(c.a, EDGE | ONESHOT), ValueError),
    ("exclusive-oneshot", lambda c: c.p.register(c.a, READABLE | EXCLUSIVE | ONESHOT), portaio.Unsupported),
    ("exclusive-priority", lambda c: c.p.register(c.a, READABLE | PRIORITY | EXCLUSIVE), portaio.Unsupported),
    ("exclusive-rdhup", lambda c: c.p.register(c.a, READABLE | RDHUP | EXCLUSIVE), portaio.Unsupported),
    ("edge-where-unsupported", lambda c: c.p.register(c.a, READABLE | EDGE), _edge_expected),
    ("rdhup-where-unsupported", lambda c: c.p.register(c.a, RDHUP), _rdhup_expected),
    ("register-twice", _twice, portaio.AlreadyRegistered),
    ("modify-unknown", lambda c: c.p.modify(c.a, READABLE), portaio.NotRegistered),
    ("unregister-unknown", lambda c: c.p.unregister(c.a), portaio.NotRegistered),
    ("unregister-negative", lambda c: c.p.unregister(-3), ValueError),
    ("unregister-str", lambda c: c.p.unregister("x"), TypeError),
    ("timeout-nan", lambda c: c.p.poll(math.nan), ValueError),
    ("timeout-negative", lambda c: c.p.poll(-1), ValueError),
    ("timeout-tiny-negative", lambda c: c.p.poll(-1e-9), ValueError),
    ("timeout-minus-inf", lambda c: c.p.poll(-math.inf), ValueError),
    ("timeout-above-max", lambda c: c.p.poll(portaio.TIMEOUT_MAX * 2), OverflowError),
    ("timeout-1e308", lambda c: c.p.poll(1e308), OverflowError),
    ("timeout-huge-int", lambda c: c.p.poll(10**30), OverflowError),
    ("timeout-str", lambda c: c.p.poll("1"), TypeError),
    ("timeout-bool", lambda c: c.p.poll(True), TypeError),
    ("timeout-complex", lambda c: c.p.poll(1j), TypeError),
    ("max-events-zero", lambda c: c.p.poll(0, max_events=0), ValueError),
    ("max-events-negative", lambda c: c.p.poll(0, max_events=-5), ValueError),
    ("max-events-float", lambda c: c.p.poll(0, max_events=1.5), TypeError),
    ("max-events-str", lambda c: c.p.poll(0, max_events="8"), TypeError),
    ("timer-delay-negative", lambda c: c.p.add_timer(-1), ValueError),
    ("timer-delay-nan", lambda c: c.p.add_timer(math.nan), ValueError),
    ("timer-delay-str", lambda c: c.p.add_timer("1"), TypeError),
    ("timer-delay-none", lambda c: c.p.add_timer(None), TypeError),
    ("timer-delay-huge", lambda c: c.p.add_timer(1e300), OverflowError),
    ("timer-interval-zero", lambda c: c.p.add_timer(1.0, interval=0), ValueError),
    ("timer-interval-negative", lambda c: c.p.add_timer(1.0, interval=-0.5), ValueError),
    ("timer-interval-inf", lambda c: c.p.add_timer(1.0, interval=math.inf), OverflowError),
    ("signal-str", lambda c: c.p.add_signal("SIGUSR2"), TypeError),
    ("signal-zero", lambda c: c.p.add_signal(0), ValueError),
    ("signal-negative", lambda c: c.p.add_signal(-10), ValueError),
    ("signal-huge", lambda c: c.p.add_signal(10**6), ValueError),
    ("signal-sigkill", lambda c: c.p.add_signal(signal.SIGKILL), ValueError),
    ("signal-sigstop", lambda c: c.p.add_signal(signal.SIGSTOP), ValueError),
    ("signal-twice", _signal_twice, portaio.AlreadyRegistered),
    ("signal-from-thread", _signal_from_thread, ValueError),
    ("closed-register", _closed_then_use(lambda c: c.p.register(c.b, READABLE)), portaio.PollerClosed),
    ("closed-modify", _closed_then_use(lambda c: c.p.modify(c.a, WRITABLE)), portaio.PollerClosed),
    ("closed-unregister", _closed_then_use(lambda c: c.p.unregister(c.a)), portaio.PollerClosed),
    ("closed-poll", _closed_then_use(lambda c: c.p.poll(0)), portaio.PollerClosed),
    ("closed-poll-blocking", _closed_then_use(lambda c: c.p.poll()), portaio.PollerClosed),
    ("closed-fileno", _closed_then_use(lambda c: c.p.fileno()), portaio.PollerClosed),
    ("closed-enter", _closed_then_use(lambda c: c.p.__enter__()), portaio.PollerClosed),
    ("closed-add-timer", _closed_then_use(lambda c: c.p.add_timer(0.1)), portaio.PollerClosed),
    ("closed-add-signal", _closed_then_use(lambda c: c.p.add_signal(signal.SIGUSR2)), portaio.PollerClosed),
    ("closed-wake", _closed_then_use(lambda c: c.p.wake()), portaio.PollerClosed),
    ("closed-close-again", _closed_then_use(lambda c: c.p.close()), None),
]


def test_fd_number_reused_after_close(poller: portaio.Poller, fds: Closer) -> None:
    a, _ = fds.socketpair()
    poller.register(a, READABLE, "old")
    fd = a.fileno()
    a.close()
    assert poller.poll(0) == []
    r, w = os.pipe()  # takes the lowest free number: the one just closed
    try:
        assert r == fd
        # The old file is gone (DESIGN item 6): the new one replaces its
        # stale registration, no unregister needed (issue 11 item 8).
        assert poller.register(r, READABLE, "new").data == "new"
        assert [reg.data for reg in poller.registrations()] == ["new"]
        assert poller.poll(0) == []
        os.write(w, b"x")
        assert [(e.fd, e.data) for e in poller.poll(1.0)] == [(r, "new")]
    finally:
        poller.unregister(r)
        os.close(r)
        os.close(w)


def test_failed_modify_leaves_the_old_registration_working(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, READABLE, "old")
    for bad in (READABLE | PRIORITY | EXCLUSIVE, READABLE | EXCLUSIVE | ONESHOT, 0, -1):
        with pytest.raises(ValueError):
            poller.modify(a, bad, "new")
    b.send(b"x")
    assert [(e.fd, e.events, e.data) for e in poller.poll(1.0)] == [(a.fileno(), READABLE, "old")]


@pytest.mark.skipif("epoll" not in portaio.available_backends(), reason="epoll only: the DEL+ADD path")
def test_epoll_modify_whose_readd_fails_keeps_the_old_registration(fds: Closer) -> None:
    # A change to or from EXCLUSIVE is EPOLL_CTL_DEL then ADD; when the kernel
    # refuses the ADD (here: EXCLUSIVE with ONESHOT, EINVAL, which the poller
    # itself refuses before the kernel, so the backend is driven directly),
    # the old registration must be added back and keep reporting.
    from portaio.backends._base import FLAGS_SHIFT, TOKEN_MASK, make_key
    from portaio.backends.epoll import EpollBackend

    a, b = fds.socketpair()
    backend = EpollBackend()
    try:
        backend.add(a.fileno(), READABLE | EXCLUSIVE, 7)
        with pytest.raises(OSError) as info:
            backend.modify(a.fileno(), READABLE | EXCLUSIVE, 7, READABLE | EXCLUSIVE | ONESHOT, 8)
        assert info.value.errno == errno.EINVAL
        assert f"fd {a.fileno()}" in str(info.value) and "epoll" in str(info.value)
        b.send(b"x")
        keys = backend.wait(1.0, 4)
        assert [key & TOKEN_MASK for key in keys] == [7], "the old registration (token 7) must keep reporting"
        flags, _ = backend.events_of(keys[0] >> FLAGS_SHIFT, a.fileno(), READABLE)
        assert flags == READABLE and keys[0] == make_key(keys[0] >> FLAGS_SHIFT, 7)
    finally:
        backend.close()


def test_reentrant_calls_from_a_signal_handler_during_poll(poller: portaio.Poller, fds: Closer) -> None:
    """A Python signal handler runs inside poll() and uses the same poller."""
    a, b = fds.socketpair()
    c, d = fds.socketpair()
    poller.register(a, READABLE, "a")
    seen: list[Any] = []

    def handler(signum: int, frame: Any) -> None:
        seen.append(poller.poll(0))  # nested poll on the same poller
        poller.register(c, READABLE, "c")  # change the set the outer poll waits on
        d.send(b"y")

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        events = poller.poll(2.0)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert seen == [[]]
    # The outer poll returns the fd registered by the handler (at once, not after 2 s).
    assert [(e.fd, e.data) for e in events] == [(c.fileno(), "c")]
    b.send(b"x")
    assert sorted(e.data for e in poller.poll(0)) == ["a", "c"]


def test_unregister_and_close_while_handling_a_batch(poller: portaio.Poller, fds: Closer) -> None:
    """The event loop's classic hazard: handling one event closes another fd of the same batch."""
    pairs = [fds.socketpair() for _ in range(6)]
    for i, (a, b) in enumerate(pairs):
        poller.register(a, READABLE, i)
        b.send(b"x")
    events = poller.poll(1.0)
    assert len(events) == 6
    handled = []
    gone: set[int] = set()
    for ev in events:
        if ev.data in gone:
            continue  # the loop's own bookkeeping skips what it closed
        handled.append(ev.data)
        victim = (ev.data + 1) % 6
        if victim not in gone and victim not in handled:
            poller.unregister(pairs[victim][0])
            gone.add(victim)
    assert poller.poll(0) and all(e.data not in gone for e in poller.poll(0))
    poller.close()
    with pytest.raises(portaio.PollerClosed):
        poller.poll(0)


def test_bad_calls_leak_nothing_over_many_rounds(backend: str) -> None:
    before = open_fds()
    for _ in range(200):
        with portaio.Poller(backend) as p:
            a, b = socket.socketpair()
            try:
                for call in [case[1] for case in CASES[:30]]:
                    ctx = Ctx.__new__(Ctx)
                    ctx.p, ctx.a, ctx.b, ctx.caps = p, a, b, p.capabilities
                    try:
                        call(ctx)
                    except Exception:
                        pass
                    if p.closed:
                        break
                    for fd in list(r.fd for r in p.registrations()):
                        p.unregister(fd)
            finally:
                a.close()
                b.close()
    assert open_fds() == before
