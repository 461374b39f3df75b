"""Conformance: more ready fds than ``max_events`` (DESIGN item 9).

Each call returns at most ``max_events``; the rest come with the next calls,
none lost and none starved, in every mode.
"""

from __future__ import annotations

import os

import pytest

import portaio
from portaio.conformance.plugin import Closer

_N = 10


def _ready_pipes(poller: portaio.Poller, fds: Closer, mode: int) -> list[int]:
    readers = []
    for i in range(_N):
        r, w = fds.pipe()
        os.write(w, b"x")
        poller.register(r, portaio.READABLE | mode, i)
        readers.append(r)
    return readers


@pytest.mark.parametrize("max_events", [1, 3, 4, _N - 1])
def test_level_batches_reach_every_fd(poller: portaio.Poller, fds: Closer, max_events: int) -> None:
    _ready_pipes(poller, fds, 0)
    seen: set[int] = set()
    calls = -(-_N // max_events)
    for _ in range(calls):
        batch = poller.poll(1.0, max_events)
        assert len(batch) == max_events
        assert len({e.data for e in batch}) == max_events
        seen |= {e.data for e in batch}
    assert seen == set(range(_N))
    assert len(poller.poll(0)) == _N  # level: all still ready


@pytest.mark.parametrize("mode", ["ONESHOT", "EDGE", "EDGE|ONESHOT"])
def test_single_report_modes_deliver_each_fd_exactly_once(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities, mode: str
) -> None:
    flags = 0
    for name in mode.split("|"):
        flags |= portaio.Events[name]
    if flags & portaio.EDGE and not capabilities.edge:
        r, _ = fds.pipe()
        with pytest.raises(portaio.Unsupported, match=poller.backend):
            poller.register(r, portaio.READABLE | flags)
        return
    _ready_pipes(poller, fds, flags)
    got: list[int] = []
    for size in (3, 3, 3, 1):
        batch = poller.poll(1.0, max_events=3)
        assert len(batch) == size
        got += [e.data for e in batch]
    assert sorted(got) == list(range(_N))
    assert poller.poll(0, max_events=3) == []


def test_max_events_larger_than_ready(poller: portaio.Poller, fds: Closer) -> None:
    _ready_pipes(poller, fds, 0)
    assert len(poller.poll(0, max_events=10_000)) == _N
    assert len(poller.poll(0)) == _N


def test_many_ready_fds_default_max_events(poller: portaio.Poller, fds: Closer) -> None:
    pairs = [fds.socketpair() for _ in range(300)]
    for i, (a, _) in enumerate(pairs):
        poller.register(a, portaio.WRITABLE, i)
    events = poller.poll(0)
    assert sorted(e.data for e in events) == list(range(300))
    assert len(poller.poll(0, max_events=256)) == 256


@pytest.mark.parametrize("max_events", [4, 1024])
def test_edge_both_directions_more_ready_than_fit_lose_nothing(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities, max_events: int
) -> None:
    """Edge interest in both directions, more fds ready than one call returns: every edge arrives."""
    interest = portaio.READABLE | portaio.WRITABLE | portaio.EDGE
    if not capabilities.edge:
        a, _ = fds.socketpair()
        with pytest.raises(portaio.Unsupported, match=poller.backend):
            poller.register(a, interest)
        return
    count = 10 if max_events < 10 else 300
    pairs = [fds.socketpair() for _ in range(count)]
    for i, (a, _) in enumerate(pairs):
        poller.register(a, interest, i)
    while poller.poll(0, max_events):
        pass  # the first WRITABLE edges
    for _, b in pairs:
        b.send(b"x")
    readable: set[int] = set()
    for _ in range(count + 1):
        batch = poller.poll(0.05, max_events)
        if not batch:
            break
        readable |= {e.data for e in batch if e.events & portaio.READABLE}
    assert readable == set(range(count))


def test_fds_closed_behind_the_pollers_back_take_no_room_in_a_batch(
    poller: portaio.Poller, fds: Closer
) -> None:
    """Item 9 with dead entries: poll and select get closed fds back as POLLNVAL, which yield no
    event; the rest of a batch must fill the room, and no ONESHOT event may be lost."""
    import socket

    for i in range(3):
        a, b = fds.socketpair()
        poller.register(a, portaio.READABLE | portaio.ONESHOT, i)
        b.send(b"x")
    doomed = [socket.socketpair() for _ in range(3)]  # made last: nothing here reuses their numbers
    closed = []
    for i, (x, _) in enumerate(doomed):
        poller.register(x, portaio.READABLE, f"closed {i}")
        closed.append(x.fileno())
    for x, y in doomed:
        x.close()
        y.close()
    seen: list[object] = []
    for _ in range(6):
        seen += [e.data for e in poller.poll(0.02, max_events=2)]
    assert sorted(seen) == [0, 1, 2]  # type: ignore[type-var]
    for fd in closed:
        poller.unregister(fd)
