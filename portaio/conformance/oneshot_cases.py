"""Conformance: one-shot interest (DESIGN item 3): one event, then silence until ``modify``."""

from __future__ import annotations

import portaio
from portaio.conformance.plugin import Closer, ready_map


def test_oneshot_fires_once_then_silent(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE | portaio.ONESHOT, "once")
    b.send(b"x")
    assert [(e.fd, e.events, e.data) for e in poller.poll(1.0)] == [(a.fileno(), portaio.READABLE, "once")]
    assert poller.poll(0) == []  # still readable, but spent
    b.send(b"more")
    assert poller.poll(0.01) == []
    assert a in poller  # spent, not unregistered


def test_oneshot_rearm_while_ready_fires_at_once(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE | portaio.ONESHOT, 1)
    b.send(b"x")
    assert [e.data for e in poller.poll(1.0)] == [1]
    poller.modify(a, portaio.READABLE | portaio.ONESHOT, 2)
    assert [e.data for e in poller.poll(0)] == [2]
    assert poller.poll(0) == []


def test_oneshot_rearm_when_not_ready_waits_for_data(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    poller.register(a, portaio.READABLE | portaio.ONESHOT)
    b.send(b"x")
    assert len(poller.poll(1.0)) == 1
    a.recv(10)
    poller.modify(a, portaio.READABLE | portaio.ONESHOT)
    assert poller.poll(0) == []
    b.send(b"y")
    assert ready_map(poller.poll(1.0)) == {a.fileno(): portaio.READABLE}
    assert poller.poll(0) == []


def test_oneshot_writable_and_modify_to_level(poller: portaio.Poller, fds: Closer) -> None:
    a, _ = fds.socketpair()
    poller.register(a, portaio.WRITABLE | portaio.ONESHOT, "w1")
    assert [e.data for e in poller.poll(0)] == ["w1"]
    assert poller.poll(0) == []
    poller.modify(a, portaio.WRITABLE, "level")
    for _ in range(2):
        assert [e.data for e in poller.poll(0)] == ["level"]


def test_spent_oneshot_can_be_unregistered_and_registered_again(poller: portaio.Poller, fds: Closer) -> None:
    a, _ = fds.socketpair()
    poller.register(a, portaio.WRITABLE | portaio.ONESHOT)
    assert len(poller.poll(0)) == 1
    poller.unregister(a)
    assert a not in poller
    assert poller.poll(0) == []
    poller.register(a, portaio.WRITABLE | portaio.ONESHOT, "again")
    assert [e.data for e in poller.poll(0)] == ["again"]


def test_oneshot_only_one_of_many_ready_fds_each(poller: portaio.Poller, fds: Closer) -> None:
    pairs = [fds.socketpair() for _ in range(4)]
    for i, (a, b) in enumerate(pairs):
        poller.register(a, portaio.READABLE | portaio.ONESHOT, i)
        b.send(b"x")
    seen: list[int] = []
    for _ in range(10):
        seen += [e.data for e in poller.poll(0.05)]
        if len(seen) >= 4:
            break
    assert sorted(seen) == [0, 1, 2, 3]
    assert poller.poll(0) == []
