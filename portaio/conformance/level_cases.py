"""Conformance: level-triggered readiness and basic registration (DESIGN items 1, 4)."""

from __future__ import annotations

import pytest

import portaio
from portaio.conformance.plugin import Closer, poll_until, ready_map


def test_level_reports_again_until_drained(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "a")
    assert poller.poll(0) == []
    b.send(b"x" * 100)
    first = poller.poll(1.0)
    assert [(e.fd, e.events & portaio.READABLE, e.data) for e in first] == [
        (a.fileno(), portaio.READABLE, "a")
    ]
    a.recv(10)
    assert ready_map(poller.poll(0)) == {a.fileno(): portaio.READABLE}
    a.recv(1000)
    assert poller.poll(0) == []


def test_register_twice_and_unknown_fd_raise_the_same_types(poller: portaio.Poller, fds: Closer) -> None:
    a, _ = fds.socketpair()
    poller.register(a, portaio.READABLE)
    with pytest.raises(portaio.AlreadyRegistered, match=f"fd {a.fileno()}"):
        poller.register(a.fileno(), portaio.WRITABLE)
    other, _ = fds.socketpair()
    with pytest.raises(portaio.NotRegistered, match=poller.backend):
        poller.modify(other, portaio.READABLE)
    with pytest.raises(portaio.NotRegistered):
        poller.unregister(other)
    assert isinstance(portaio.NotRegistered("x"), KeyError)


def test_level_writable_reported_on_every_poll(poller: portaio.Poller, fds: Closer) -> None:
    a, _ = fds.socketpair()
    poller.register(a, portaio.WRITABLE, "w")
    for _ in range(3):
        assert [(e.fd, e.events, e.data) for e in poller.poll(0)] == [(a.fileno(), portaio.WRITABLE, "w")]


def test_only_asked_flags_are_reported(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE)
    assert poller.poll(0) == []  # writable, but nobody asked
    b.send(b"x")
    assert ready_map(poller.poll(1.0)) == {a.fileno(): portaio.READABLE}


def test_register_accepts_fd_and_fileobj_and_returns_data(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    c, d = fds.socketpair()
    reg = poller.register(a, portaio.READABLE, {"k": 1})
    poller.register(c.fileno(), portaio.READABLE, None)
    assert reg.fd == a.fileno() and reg.data == {"k": 1}
    assert a in poller and c.fileno() in poller and b not in poller
    assert len(poller) == 2
    assert poller.get(a) is reg
    b.send(b"1")
    d.send(b"2")
    got = {e.fd: e.data for e in poll_until(poller, lambda evs: len(evs) == 2)}
    assert got == {a.fileno(): {"k": 1}, c.fileno(): None}


def test_modify_replaces_interest_and_data(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "old")
    b.send(b"x")
    assert [e.data for e in poller.poll(1.0)] == ["old"]
    poller.modify(a, portaio.READABLE, "new")
    assert [(e.events, e.data) for e in poller.poll(0)] == [(portaio.READABLE, "new")]
    poller.modify(a, portaio.WRITABLE, "w")
    assert [(e.events, e.data) for e in poller.poll(0)] == [(portaio.WRITABLE, "w")]
    poller.modify(a, portaio.READABLE | portaio.WRITABLE, "rw")
    assert [(e.events, e.data) for e in poller.poll(0)] == [(portaio.READABLE | portaio.WRITABLE, "rw")]


def test_events_are_portaio_flags_with_selectors_values(poller: portaio.Poller, fds: Closer) -> None:
    import selectors

    a, _ = fds.socketpair()
    poller.register(a, selectors.EVENT_READ | selectors.EVENT_WRITE)
    (event,) = poller.poll(0)
    assert event.events == selectors.EVENT_WRITE == portaio.WRITABLE
    assert event.times == 1 and event.signum == 0


def test_priority_reports_out_of_band_data(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities
) -> None:
    import socket

    client, server, _ = fds.tcp_pair()
    if not capabilities.priority:
        with pytest.raises(portaio.Unsupported, match=poller.backend):
            poller.register(server, portaio.PRIORITY)
        return
    poller.register(server, portaio.PRIORITY | portaio.READABLE, "oob")
    assert poller.poll(0) == []
    client.send(b"!", socket.MSG_OOB)
    events = poll_until(poller, lambda evs: bool(evs))
    assert [(e.fd, e.events, e.data) for e in events] == [(server.fileno(), portaio.PRIORITY, "oob")]
    assert server.recv(1, socket.MSG_OOB) == b"!"
    assert poller.poll(0) == []
    client.send(b"plain")
    events = poll_until(poller, lambda evs: bool(evs))
    assert [(e.fd, e.events, e.data) for e in events] == [(server.fileno(), portaio.READABLE, "oob")]


def test_priority_alone(poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities) -> None:
    """PRIORITY without READABLE: where hang-ups could not be seen, refused."""
    import socket

    client, server, _ = fds.tcp_pair()
    if not capabilities.priority or poller.backend == "select":
        # select(2)'s exceptional set sees no hang-up: refused, not downgraded.
        with pytest.raises(portaio.Unsupported, match=f"{poller.backend}.*PRIORITY.*fd {server.fileno()}"):
            poller.register(server, portaio.PRIORITY)
        assert server not in poller
        return
    poller.register(server, portaio.PRIORITY, "oob")
    client.send(b"plain")
    assert poller.poll(0.02) == []
    client.send(b"!", socket.MSG_OOB)
    events = poll_until(poller, bool)
    assert [(e.fd, e.events, e.data) for e in events] == [(server.fileno(), portaio.PRIORITY, "oob")]


def test_empty_poller_poll_zero_returns_empty_list(poller: portaio.Poller) -> None:
    assert poller.poll(0) == []
    assert poller.poll(0.001) == []
