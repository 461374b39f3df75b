"""Conformance: hang-ups, resets and errors (DESIGN item 7).

HANGUP and ERROR are reported whether asked for or not.  A peer's
``shutdown(SHUT_WR)`` is RDHUP with the unread data still readable; a local
``shutdown(SHUT_WR)`` is not a hang-up; a TCP reset is ERROR|HANGUP; a pipe
whose writer closed is HANGUP (and READABLE while data is left); a pipe whose
reader closed makes the writer WRITABLE|ERROR.
"""

from __future__ import annotations

import os
import socket
import struct

import pytest

import portaio
from portaio.conformance.plugin import Closer, poll_until, ready_map

_HUP = portaio.HANGUP | portaio.ERROR


def _stream_pair(fds: Closer, kind: str) -> tuple[socket.socket, socket.socket]:
    if kind == "unix":
        return fds.socketpair()
    client, server, _ = fds.tcp_pair()
    return client, server


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_peer_shutdown_write_is_rdhup_with_data_readable(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities, kind: str
) -> None:
    a, b = _stream_pair(fds, kind)
    if not capabilities.rdhup:
        with pytest.raises(portaio.Unsupported, match=poller.backend):
            poller.register(a, portaio.READABLE | portaio.RDHUP)
        return
    poller.register(a, portaio.READABLE | portaio.RDHUP, "a")
    b.send(b"tail")
    b.shutdown(socket.SHUT_WR)
    events = poll_until(poller, lambda evs: any(e.events & portaio.RDHUP for e in evs))
    assert ready_map(events) == {a.fileno(): portaio.READABLE | portaio.RDHUP}
    assert a.recv(100) == b"tail"
    assert a.recv(100) == b""
    assert ready_map(poller.poll(0)) == {a.fileno(): portaio.READABLE | portaio.RDHUP}
    a.send(b"still writable")  # our half stays open
    assert b.recv(100) == b"still writable"


@pytest.mark.parametrize("edge", [False, True])
@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_peer_shutdown_with_data_unread_is_rdhup_when_writable_is_watched_too(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities, kind: str, edge: bool
) -> None:
    """Data and a peer's FIN already in when the fd is registered for both directions.

    An edge-triggered reader that sees no RDHUP stops at a short read and waits
    for an edge that never comes (the echo server's half-close hung so on
    libkqueue, which kept EPOLLRDHUP only for the filter added last).
    """
    a, b = _stream_pair(fds, kind)
    interest = portaio.READABLE | portaio.WRITABLE | portaio.RDHUP | (portaio.EDGE if edge else 0)
    if not capabilities.rdhup or (edge and not capabilities.edge):
        with pytest.raises(portaio.Unsupported, match=poller.backend):
            poller.register(a, interest)
        return
    b.send(b"last words")
    b.shutdown(socket.SHUT_WR)
    poller.register(a, interest)
    events = poll_until(poller, lambda evs: any(e.events & portaio.RDHUP for e in evs), timeout=1.0)
    assert ready_map(events) == {a.fileno(): portaio.READABLE | portaio.WRITABLE | portaio.RDHUP}
    assert a.recv(100) == b"last words"


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_rdhup_alone_reports_only_rdhup(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities, kind: str
) -> None:
    a, b = _stream_pair(fds, kind)
    if not capabilities.rdhup or poller.backend == "select":
        # select refuses RDHUP without READABLE: unread data would spin it.
        with pytest.raises(portaio.Unsupported, match=poller.backend):
            poller.register(a, portaio.RDHUP)
        return
    poller.register(a, portaio.RDHUP)
    b.send(b"data")
    assert poller.poll(0.02) == []  # data is not a hang-up
    b.shutdown(socket.SHUT_WR)
    events = poll_until(poller, bool)
    assert ready_map(events) == {a.fileno(): portaio.RDHUP}


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_local_shutdown_write_is_not_a_hangup(poller: portaio.Poller, fds: Closer, kind: str) -> None:
    a, b = _stream_pair(fds, kind)
    poller.register(a, portaio.READABLE, "a")
    a.shutdown(socket.SHUT_WR)
    assert poller.poll(0.02) == []
    b.send(b"x")  # the other direction still works
    assert ready_map(poll_until(poller, bool)) == {a.fileno(): portaio.READABLE}


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_both_directions_shut_is_hangup(poller: portaio.Poller, fds: Closer, kind: str) -> None:
    a, b = _stream_pair(fds, kind)
    poller.register(a, portaio.READABLE, "a")
    b.shutdown(socket.SHUT_WR)
    a.shutdown(socket.SHUT_WR)
    events = poll_until(poller, lambda evs: any(e.events & portaio.HANGUP for e in evs))
    assert ready_map(events) == {a.fileno(): portaio.READABLE | portaio.HANGUP}


def test_peer_close_reported_without_asking_for_hangup(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE)
    b.close()
    events = poll_until(poller, bool)
    assert ready_map(events) == {a.fileno(): portaio.READABLE | portaio.HANGUP}
    assert a.recv(10) == b""


def test_tcp_reset_is_error_and_hangup(poller: portaio.Poller, fds: Closer) -> None:
    client, server, _ = fds.tcp_pair()
    poller.register(server, portaio.READABLE, "s")
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # linger 0: an RST instead of a FIN
    events = poll_until(poller, lambda evs: any(e.events & _HUP for e in evs))
    (event,) = events
    assert event.fd == server.fileno() and event.data == "s"
    assert event.events & (portaio.ERROR | portaio.HANGUP) == portaio.ERROR | portaio.HANGUP
    assert event.events & ~(portaio.READABLE | portaio.ERROR | portaio.HANGUP) == 0
    with pytest.raises(ConnectionResetError):
        server.recv(10)


def test_tcp_reset_reported_to_writable_interest(poller: portaio.Poller, fds: Closer) -> None:
    client, server, _ = fds.tcp_pair()
    poller.register(server, portaio.WRITABLE, "s")
    assert ready_map(poller.poll(0)) == {server.fileno(): portaio.WRITABLE}
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    events = poll_until(poller, lambda evs: any(e.events & _HUP for e in evs))
    assert events[0].events & _HUP == _HUP
    assert events[0].events & ~(portaio.WRITABLE | _HUP) == 0


def test_pipe_writer_closed_is_hangup_readable_while_data_left(poller: portaio.Poller, fds: Closer) -> None:
    r, w = os.pipe()
    fds.add(r)
    poller.register(r, portaio.READABLE, "r")
    os.write(w, b"left")
    os.close(w)
    assert ready_map(poll_until(poller, bool)) == {r: portaio.READABLE | portaio.HANGUP}
    assert os.read(r, 100) == b"left"
    # Drained: Linux reports the hang-up alone (read gives EOF).
    assert ready_map(poller.poll(0)) == {r: portaio.HANGUP}
    assert os.read(r, 100) == b""


def test_pipe_reader_closed_makes_writer_error(poller: portaio.Poller, fds: Closer) -> None:
    r, w = os.pipe()
    fds.add(w)
    poller.register(w, portaio.WRITABLE, "w")
    assert ready_map(poller.poll(0)) == {w: portaio.WRITABLE}
    os.close(r)
    flags = ready_map(poll_until(poller, lambda evs: any(e.events & _HUP for e in evs)))[w]
    assert flags & portaio.WRITABLE and flags & _HUP
    with pytest.raises(BrokenPipeError):
        os.write(w, b"x")


def test_hangup_never_reported_for_plain_data(poller: portaio.Poller, fds: Closer) -> None:
    r, w = fds.pipe()
    a, b = fds.socketpair()
    poller.register(r, portaio.READABLE)
    poller.register(a, portaio.READABLE | portaio.WRITABLE)
    os.write(w, b"x")
    b.send(b"x")
    got = ready_map(poll_until(poller, lambda evs: len(evs) == 2))
    assert got == {r: portaio.READABLE, a.fileno(): portaio.READABLE | portaio.WRITABLE}


@pytest.mark.parametrize("interest", ["READABLE", "WRITABLE", "RDHUP", "PRIORITY"])
@pytest.mark.parametrize("kind", ["unix", "tcp-reset"])
def test_hangup_reported_whatever_the_interest(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities, interest: str, kind: str
) -> None:
    flag = portaio.Events[interest]
    if kind == "unix":
        a, b = fds.socketpair()
    else:
        a, b = _stream_pair(fds, "tcp")
        b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    try:
        poller.register(a, flag, "a")
    except portaio.Unsupported as err:
        # Refused only where the backend could not report the hang-up.
        refusable = {portaio.PRIORITY: poller.backend == "select" or not capabilities.priority}
        refusable[portaio.RDHUP] = not capabilities.rdhup or poller.backend == "select"
        assert refusable.get(flag), err
        return
    b.close()
    events = poll_until(poller, lambda evs: any(e.events & _HUP for e in evs))
    assert [e.data for e in events] == ["a"]
    assert events[0].events & ~(flag | _HUP) == 0
