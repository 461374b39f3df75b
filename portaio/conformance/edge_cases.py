"""Conformance: edge-triggered interest (DESIGN item 2).

Where the backend has no edge mode (poll, select) asking for it raises
:class:`portaio.Unsupported` and leaves nothing registered or changed.
"""

from __future__ import annotations

import pytest

import portaio
from portaio.conformance.plugin import Closer, ready_map


def test_edge_reports_each_arrival_once(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities
) -> None:
    a, b = fds.socketpair()
    if not capabilities.edge:
        with pytest.raises(portaio.Unsupported, match=f"{poller.backend}.*EDGE.*fd {a.fileno()}"):
            poller.register(a, portaio.READABLE | portaio.EDGE)
        assert a not in poller and len(poller) == 0
        return
    poller.register(a, portaio.READABLE | portaio.EDGE, "e")
    assert poller.poll(0) == []
    b.send(b"x" * 100)
    assert [(e.fd, e.events, e.data) for e in poller.poll(1.0)] == [(a.fileno(), portaio.READABLE, "e")]
    a.recv(10)  # partial read: still readable, but no new edge
    assert poller.poll(0) == []
    assert poller.poll(0.01) == []
    b.send(b"y")
    assert ready_map(poller.poll(1.0)) == {a.fileno(): portaio.READABLE}
    assert poller.poll(0) == []


def test_edge_writable_fires_once_until_buffer_drains(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities
) -> None:
    a, b = fds.socketpair()
    if not capabilities.edge:
        with pytest.raises(portaio.Unsupported, match=poller.backend):
            poller.register(a, portaio.WRITABLE | portaio.EDGE)
        return
    poller.register(a, portaio.WRITABLE | portaio.EDGE, "w")
    assert [(e.fd, e.events, e.data) for e in poller.poll(0)] == [(a.fileno(), portaio.WRITABLE, "w")]
    assert poller.poll(0) == []
    filled = 0
    try:
        while True:
            filled += a.send(b"x" * 65536)
    except BlockingIOError:
        pass  # the buffer is full: not writable now
    assert filled > 0
    assert poller.poll(0.01) == []
    drained = 0
    while drained < filled:
        drained += len(b.recv(1 << 20))
    # Room again: exactly one new edge, then silence while it stays writable.
    assert [(e.fd, e.events, e.data) for e in poller.poll(1.0)] == [(a.fileno(), portaio.WRITABLE, "w")]
    assert poller.poll(0) == []
    assert poller.poll(0.01) == []


def test_modify_to_edge_unsupported_keeps_old_registration(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities
) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE, "level")
    if capabilities.edge:
        poller.modify(a, portaio.READABLE | portaio.EDGE, "edge")
        b.send(b"x")
        assert [e.data for e in poller.poll(1.0)] == ["edge"]
        assert poller.poll(0) == []
        return
    with pytest.raises(portaio.Unsupported, match=f"fd {a.fileno()}"):
        poller.modify(a, portaio.READABLE | portaio.EDGE, "edge")
    b.send(b"x")
    assert [e.data for e in poller.poll(1.0)] == ["level"]
    assert [e.data for e in poller.poll(0)] == ["level"]


def test_edge_oneshot_is_silent_until_rearmed(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities
) -> None:
    a, b = fds.socketpair()
    mode = portaio.READABLE | portaio.EDGE | portaio.ONESHOT
    if not capabilities.edge:
        with pytest.raises(portaio.Unsupported, match=poller.backend):
            poller.register(a, mode)
        return
    poller.register(a, mode, 1)
    b.send(b"x")
    assert [e.data for e in poller.poll(1.0)] == [1]
    b.send(b"y")  # a new edge, but the one shot is spent
    assert poller.poll(0.01) == []
    poller.modify(a, mode, 2)  # re-armed while readable: fires at once
    assert [e.data for e in poller.poll(0)] == [2]
    assert poller.poll(0) == []
