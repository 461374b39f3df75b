"""Conformance: EXCLUSIVE wake-ups (DESIGN item 15).

Several threads, each with its own poller, wait on one listening socket.
Without EXCLUSIVE one incoming connection wakes them all; with it, fewer
(the kernel promises "one or more", in practice one).  The wake-ups are
counted.  A backend without the mode raises :class:`portaio.Unsupported`.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

import portaio
from portaio.conformance.plugin import Closer

_WAITERS = 4
_WAIT = 0.3  # how long each waiter polls; a woken one returns at once


def _count_wakeups(backend: str, listener: socket.socket, mode: int) -> int:
    pollers = [portaio.Poller(backend) for _ in range(_WAITERS)]
    try:
        for p in pollers:
            p.register(listener, portaio.READABLE | mode)
        ready = threading.Barrier(_WAITERS + 1)
        woken = [False] * _WAITERS

        def wait(i: int) -> None:
            ready.wait(2.0)
            woken[i] = bool(pollers[i].poll(_WAIT))

        threads = [threading.Thread(target=wait, args=(i,), daemon=True) for i in range(_WAITERS)]
        for t in threads:
            t.start()
        ready.wait(2.0)
        time.sleep(0.05)  # let every waiter get into the kernel before the connection
        client = socket.create_connection(listener.getsockname(), timeout=2.0)
        for t in threads:
            t.join(_WAIT + 2.0)
        client.close()
        conn, _ = listener.accept()
        conn.close()
        return sum(woken)
    finally:
        for p in pollers:
            p.close()


def test_exclusive_wakes_fewer_waiters(backend: str, fds: Closer, capabilities: portaio.Capabilities) -> None:
    listener = fds.add(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    if not capabilities.exclusive:
        with portaio.Poller(backend) as p, pytest.raises(portaio.Unsupported, match=f"{backend}.*EXCLUSIVE"):
            p.register(listener, portaio.READABLE | portaio.EXCLUSIVE)
        return
    without = _count_wakeups(backend, listener, 0)
    assert without == _WAITERS, f"one connection woke {without} of {_WAITERS} plain waiters"
    # A waiter not yet blocked when the connection comes is woken regardless:
    # allow a retry before calling the mode broken.
    counts = []
    for _ in range(3):
        counts.append(_count_wakeups(backend, listener, portaio.EXCLUSIVE))
        if counts[-1] < _WAITERS:
            break
    assert 1 <= counts[-1] < _WAITERS, f"EXCLUSIVE waiters woken per connection: {counts}"


def test_exclusive_modify_keeps_working(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities
) -> None:
    a, b = fds.socketpair()
    if not capabilities.exclusive:
        poller.register(a, portaio.READABLE)
        with pytest.raises(portaio.Unsupported, match=f"fd {a.fileno()}"):
            poller.modify(a, portaio.READABLE | portaio.EXCLUSIVE)
        return
    poller.register(a, portaio.READABLE | portaio.EXCLUSIVE, 1)
    b.send(b"x")
    assert [e.data for e in poller.poll(1.0)] == [1]
    poller.modify(a, portaio.WRITABLE | portaio.EXCLUSIVE, 2)
    assert [e.data for e in poller.poll(0)] == [2]
    poller.modify(a, portaio.READABLE, 3)
    assert [e.data for e in poller.poll(0)] == [3]
    poller.unregister(a)
    assert poller.poll(0) == []
