"""Conformance: failures the kernels word differently (DESIGN item 7).

A refused connect, an ICMP error on a connected UDP socket, and pipes whose
other end was gone before the fd was registered.  epoll says EPOLLERR (and
EPOLLHUP where the connection is gone); the kqueue kernels say it with
``EV_EOF`` and the error in ``fflags``, or not at all (a UDP error fires the
filters with no flag), and FreeBSD and OpenBSD refuse a write filter on a
pipe whose reader is gone (``EPIPE``, older NetBSD ``EBADF``).  Every
backend reports the same thing: see docs/backends.rst, "kqueue on each
operating system".
"""

from __future__ import annotations

import errno
import os
import socket

import pytest

import portaio
from portaio.conformance.plugin import Closer, poll_until, ready_map

_HUP = portaio.HANGUP | portaio.ERROR


def _closed_port() -> int:
    """A loopback TCP/UDP port nobody listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _refused_connect(poller: portaio.Poller, fds: Closer) -> socket.socket:
    """A non-blocking connect to a closed loopback port, registered WRITABLE, and its events checked."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fds.add(s)
    s.setblocking(False)
    err = s.connect_ex(("127.0.0.1", _closed_port()))
    if err == errno.ECONNREFUSED:  # some kernels refuse loopback at once
        pytest.skip("the kernel refused the loopback connect synchronously: nothing to wait for")
    assert err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN), os.strerror(err)
    poller.register(s, portaio.WRITABLE, "s")
    events = poll_until(poller, lambda evs: any(e.events & _HUP for e in evs))
    assert [e.data for e in events] == ["s"]
    assert events[0].events & _HUP == _HUP
    assert events[0].events & ~(portaio.WRITABLE | _HUP) == 0
    return s


def test_refused_connect_is_error_and_hangup(poller: portaio.Poller, fds: Closer) -> None:
    _refused_connect(poller, fds)


def test_refused_connect_leaves_so_error(poller: portaio.Poller, fds: Closer) -> None:
    """Reporting the error does not consume it: SO_ERROR still says why."""
    s = _refused_connect(poller, fds)
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED


def test_udp_icmp_error_is_error(poller: portaio.Poller, fds: Closer) -> None:
    s = fds.add(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    s.setblocking(False)
    s.connect(("127.0.0.1", _closed_port()))
    poller.register(s, portaio.READABLE, "s")
    assert poller.poll(0) == []
    s.send(b"anyone?")  # the port is closed: ICMP port unreachable
    events = poll_until(poller, bool)
    assert [e.data for e in events] == ["s"]
    assert events[0].events & portaio.ERROR
    assert events[0].events & ~(portaio.READABLE | _HUP) == 0


def test_pipe_whose_reader_is_gone_registers_writable_error(poller: portaio.Poller, fds: Closer) -> None:
    r, w = os.pipe()
    fds.add(w)
    os.close(r)
    poller.register(w, portaio.WRITABLE, "w")  # never raises (FreeBSD's filter attach says EPIPE)
    flags = ready_map(poll_until(poller, bool))[w]
    assert flags & portaio.WRITABLE and flags & portaio.ERROR
    assert flags & ~(portaio.WRITABLE | _HUP) == 0
    assert ready_map(poller.poll(0)) == {w: flags}  # level: again and again
    with pytest.raises(BrokenPipeError):
        os.write(w, b"x")


def test_pipe_whose_writer_is_gone_registers_hangup(poller: portaio.Poller, fds: Closer) -> None:
    r, w = os.pipe()
    fds.add(r)
    os.write(w, b"left")
    os.close(w)
    poller.register(r, portaio.READABLE, "r")
    assert ready_map(poll_until(poller, bool)) == {r: portaio.READABLE | portaio.HANGUP}
    assert os.read(r, 100) == b"left"
    assert ready_map(poller.poll(0)) == {r: portaio.HANGUP}
