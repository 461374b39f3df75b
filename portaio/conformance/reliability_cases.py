"""Conformance: arguments that must not hang or exhaust, and drop-in details (issue 11).

Each case pins one item of the issue "races, wrap-arounds and drop-in
deviations" where the behaviour is the contract (DESIGN items 6, 18, 19 and
the selectors drop-in); the races and long runs are in the repository's
``tests/reliability/``.  Each failed before its fix.
"""

from __future__ import annotations

import os
import selectors
import sys
import time

import pytest

import portaio
from portaio.conformance.plugin import Closer, is_open, reuse_closed_number
from portaio.selectors import PortaioSelector

_now = time.monotonic


# ----------------------------------------------------- 1. tiny repeating intervals
@pytest.mark.parametrize("interval", [5e-324, 1e-100, 1e-9, 9.99e-7])
def test_repeating_interval_below_the_floor_is_refused_at_the_call(
    poller: portaio.Poller, interval: float
) -> None:
    # 1e-100 made the next poll() spin for ever (a deadline float spacing
    # swallows never advances); 5e-324 made every poll() raise OverflowError.
    with pytest.raises(ValueError, match=rf"{poller.backend}.*TIMER_MIN_INTERVAL.*1e-06 s"):
        poller.add_timer(0, interval=interval)
    timer = poller.add_timer(30.0, data="kept")
    with pytest.raises(ValueError, match=rf"{poller.backend}.*TIMER_MIN_INTERVAL"):
        timer.rearm(0, interval=interval)
    assert poller.poll(0) == []  # nothing half-made is left to fire


def test_smallest_interval_is_honoured_and_poll_returns(poller: portaio.Poller) -> None:
    floor = portaio.TIMER_MIN_INTERVAL
    assert floor == 1e-6
    start = _now()
    poller.add_timer(0, interval=floor, data="fast")
    first = poller.poll(2.0)
    assert [(e.data, e.events) for e in first] == [("fast", portaio.TIMER)]
    time.sleep(0.02)  # a wait nothing can report: let 20,000 periods go by
    again = poller.poll(2.0)
    elapsed = _now() - start
    assert [e.data for e in again] == ["fast"]
    # Every period missed is counted (20 ms / 1 us), none invented.
    assert 10_000 <= again[0].times <= elapsed / floor + 1
    assert elapsed < 1.5  # both polls returned with the timer, not at their timeout


@pytest.mark.parametrize("delay", [0.0, 1e-6, 0.003])
@pytest.mark.parametrize("interval", [1e-6, 1.5e-6, 7e-6, 1e-3])
def test_intervals_near_the_floor_never_hang_poll(
    poller: portaio.Poller, delay: float, interval: float
) -> None:
    poller.add_timer(delay, interval=interval, data="t")
    for _ in range(5):
        # Each poll returns with the timer (due within 3 ms), long before its
        # timeout: no interval makes the catch-up spin.
        start = _now()
        events = poller.poll(2.0)
        assert _now() - start < 1.5
        assert [(e.data, e.events) for e in events] == [("t", portaio.TIMER)]
        assert events[0].times >= 1


# ----------------------------------------------------------- 5. huge max_events
@pytest.mark.parametrize("max_events", [10**9, 2**31, 2**63])
def test_huge_max_events_is_bounded_by_what_can_be_ready(
    poller: portaio.Poller, fds: Closer, max_events: int
) -> None:
    # epoll and kqueue sized their buffer by the argument: EINVAL from the
    # kernel, MemoryError, OverflowError, where poll and select return normally.
    a, _ = fds.socketpair()
    poller.register(a, portaio.WRITABLE, "a")
    poller.wake()
    events = poller.poll(0, max_events=max_events)
    assert sorted(events, key=lambda e: e.fd) == [
        portaio.Event(-1, portaio.WAKE, None, 1),
        portaio.Event(a.fileno(), portaio.WRITABLE, "a"),
    ]


# ------------------------------------------------- 6. select() returns every fd
def _raise_fd_limit(needed: int) -> tuple[int, int] | None:
    """Lift the soft fd limit to *needed* (restore with the tuple returned), or skip."""
    if sys.platform == "win32":  # sockets are handles: no fd limit to lift
        return None
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return None
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} fds, the hard RLIMIT_NOFILE is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return soft, hard


def test_selector_select_returns_every_ready_fd(backend: str, fds: Closer) -> None:
    if portaio.backend_class(backend).capabilities.max_fd is not None:
        pytest.skip(f"{backend} watches fds below FD_SETSIZE only: never more than fits in one select()")
    count = 1_500  # more than portaio.DEFAULT_MAX_EVENTS
    restore = _raise_fd_limit(2 * count + 200)
    try:
        sel = PortaioSelector(backend)
        try:
            ends = [fds.socketpair()[0] for _ in range(count)]
            for end in ends:
                sel.register(end, selectors.EVENT_WRITE)
            ready = sel.select(0)
            # As EpollSelector: room for every registered fd, in one call.
            assert len(ready) == count
            assert {key.fd for key, _ in ready} == {end.fileno() for end in ends}
        finally:
            sel.close()
            fds.close()
    finally:
        if restore is not None and sys.platform != "win32":
            import resource

            resource.setrlimit(resource.RLIMIT_NOFILE, restore)


# ------------------------------------------------- 7. fileno() as the stdlib class
# The standard class of the same mechanism: EpollSelector, KqueueSelector have
# fileno(); PollSelector, SelectSelector have no such attribute at all.
_KERNEL_OBJECT = {"epoll": True, "kqueue": True, "poll": False, "select": False}


def test_selector_fileno_exists_only_where_the_standard_class_has_one(backend: str) -> None:
    standard = {"epoll": "EpollSelector", "poll": "PollSelector", "select": "SelectSelector"}.get(backend)
    if standard is not None and hasattr(selectors, standard):
        assert hasattr(getattr(selectors, standard), "fileno") is _KERNEL_OBJECT[backend]
    sel = PortaioSelector(backend)
    try:
        if _KERNEL_OBJECT[backend]:
            fd = sel.fileno()
            assert isinstance(fd, int) and fd >= 0 and is_open(fd)
        else:
            assert not hasattr(sel, "fileno"), (
                f"{backend}: code testing hasattr(sel, 'fileno') gets a bogus fd"
            )
            with pytest.raises(AttributeError):
                sel.fileno()
    finally:
        sel.close()


# --------------------------------- 8. a closed-without-unregister number reused
def test_number_of_a_closed_unregistered_fd_can_be_registered_again(
    poller: portaio.Poller, fds: Closer
) -> None:
    # DESIGN item 6: the old file is provably gone (epoll accepts the ADD;
    # poll/select compare the file's identity recorded at register time), so
    # the stale registration is replaced, not an AlreadyRegistered.
    number, peer = reuse_closed_number(poller, fds)
    reg = poller.register(number, portaio.READABLE, "new")
    assert reg.data == "new"
    assert [r.data for r in poller.registrations()] == ["new"]
    assert poller.poll(0) == []
    peer.send(b"x")
    assert poller.poll(1.0) == [portaio.Event(number, portaio.READABLE, "new")]
    poller.unregister(number)
    assert poller.poll(0) == []


def test_same_open_file_under_its_number_is_still_already_registered(
    poller: portaio.Poller, fds: Closer
) -> None:
    a, _ = fds.socketpair()
    number = a.fileno()
    poller.register(a, portaio.READABLE, "a")
    with pytest.raises(portaio.AlreadyRegistered, match=rf"{poller.backend}.*fd {number}"):
        poller.register(number, portaio.WRITABLE)
    # The same open file put back under its number (dup, close, dup2) is no new file.
    spare = fds.add(os.dup(number))
    os.close(number)
    assert os.dup2(spare, number) == number
    with pytest.raises(portaio.AlreadyRegistered, match=rf"{poller.backend}.*fd {number}"):
        poller.register(number, portaio.WRITABLE)
    assert poller.get(number).data == "a"  # type: ignore[union-attr]


def test_selector_keeps_key_error_for_a_reused_unregistered_number(backend: str, fds: Closer) -> None:
    # EpollSelector refuses from its own map before the kernel: KeyError.
    sel = PortaioSelector(backend)
    try:
        r, w = os.pipe()
        fds.add(w)
        sel.register(r, selectors.EVENT_READ, "old")
        os.close(r)
        c, _ = fds.socketpair()
        assert os.dup2(c.fileno(), r) == r
        fds.add(r)
        with pytest.raises(KeyError):
            sel.register(r, selectors.EVENT_READ, "new")
        assert sel.get_key(r).data == "old"
    finally:
        sel.close()
