"""The Windows waker of the select backend: a connected socket pair.

Windows' ``select()`` waits on sockets only, so the self-pipe of
``_pipe_waker.py`` cannot be used there; a connected pair of sockets
(:func:`socket.socketpair`, loopback TCP on Windows) plays its part: the
poller watches one end, ``post()`` sends a byte on the other.  Both ends are
non-blocking and not inheritable.  As with the pipe, the send happens under a
re-entrant lock that ``close()`` takes before closing, so no byte reaches a
socket after ``close()`` started, and the handler drains before it tells the
host, so a ``wake()`` racing the drain is never lost.
"""

from __future__ import annotations

import socket
import threading

from ._base import Host, Waker

__all__ = ["SocketWaker"]


class SocketWaker(Waker):
    """``wake()`` through a connected socket pair."""

    native = "socketpair"

    def __init__(self, host: Host) -> None:
        r, w = socket.socketpair()
        try:
            r.setblocking(False)
            w.setblocking(False)
            self._token = host.watch(r.fileno(), self._drain)
        except BaseException:
            r.close()
            w.close()
            raise
        self._host = host
        self._r, self._w = r, w
        self._lock = threading.RLock()
        self._closed = False

    def post(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._w.send(b"\0")
            except OSError:
                pass  # full: a wake-up is already pending

    def _drain(self, _flags: int) -> None:
        try:
            while self._r.recv(4096):
                pass
        except OSError:
            pass
        self._host.wake_fired()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._r.close()
            self._w.close()
