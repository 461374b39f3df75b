"""Conformance: a kqueue fd registered in a poller (DESIGN item 8).

A kqueue is readable while events are pending in it, so any backend can watch
one, as the files cases check for an epoll fd.
"""

from __future__ import annotations

import pytest

import portaio
from portaio.conformance.libkqueue import KQUEUE_FD_NOT_POLLABLE
from portaio.conformance.plugin import Closer, ready_map


def test_kqueue_fd_registered_in_any_poller(backend: str, poller: portaio.Poller, fds: Closer) -> None:
    if "kqueue" not in portaio.available_backends():
        pytest.skip("no kqueue backend on this machine to nest")
    from portaio.backends import kqueue

    if kqueue.LIBKQUEUE:
        pytest.skip(f"kqueue on libkqueue: {KQUEUE_FD_NOT_POLLABLE}")
    a, b = fds.socketpair()
    with portaio.Poller("kqueue") as inner:
        inner.register(a, portaio.READABLE, "inner")
        poller.register(inner, portaio.READABLE, "outer")
        assert poller.poll(0) == []
        b.send(b"x")
        assert ready_map(poller.poll(1.0)) == {inner.fileno(): portaio.READABLE}
        assert [e.data for e in inner.poll(0)] == ["inner"]
        a.recv(10)
        assert poller.poll(0) == []
        poller.unregister(inner)
