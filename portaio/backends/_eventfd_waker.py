"""The epoll backend's waker: an eventfd (Linux), one 8-byte counter instead of a pipe.

``post()`` adds 1 (coalescing: a counter never fills in practice), the
handler reads it back to 0, then tells the host.  As with the pipe waker,
the write happens under a re-entrant lock that ``close()`` takes before
closing the fd, so no write reaches the number once ``close()`` started.
"""

from __future__ import annotations

import os
import sys
import threading

from ._base import Host, Waker

try:
    from .._epoll_cffi import ffi, lib
except ImportError:  # pragma: no cover - the epoll backend is unavailable then
    pass

__all__ = ["EventfdWaker"]

_ONE = (1).to_bytes(8, sys.byteorder)  # an eventfd write adds this 64-bit value


class EventfdWaker(Waker):
    """``wake()`` through an eventfd."""

    native = "eventfd"

    def __init__(self, host: Host) -> None:
        fd = lib.eventfd(0, lib.EFD_CLOEXEC | lib.EFD_NONBLOCK)
        if fd < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[{host.name}]: eventfd: {os.strerror(err)}")
        try:
            host.watch(fd, self._drain)
        except BaseException:
            os.close(fd)
            raise
        self._host = host
        self._fd = fd
        self._lock = threading.RLock()
        self._closed = False

    def post(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                os.write(self._fd, _ONE)
            except OSError:
                pass

    def _drain(self, _flags: int) -> None:
        try:
            os.read(self._fd, 8)
        except OSError:
            pass
        self._host.wake_fired()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                os.close(self._fd)
            except OSError:
                pass
