"""Conformance: level-triggered readiness and basic registration (DESIGN items 1, 4)."""

from __future__ import annotations

import pytest

import portaio
from portaio.conformance.plugin import Closer, ready_map


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
