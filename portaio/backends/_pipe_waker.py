"""The portable waker: a non-blocking pipe whose read end the poller watches.

Used by poll and select, and by kqueue where ``EVFILT_USER`` is missing.
Nothing here runs at import (no ``fcntl``), so the module loads on any
platform; a platform without pipes supplies its own waker (a socketpair).

``post()`` writes one byte; the handler drains the pipe, then tells the
host, so a ``wake()`` racing the drain is never lost.  The write happens
under a re-entrant lock that ``close()`` takes before closing the fds: once
``close()`` has started, no byte can reach the number, whichever file reuses
it.  Re-entrant, so a signal handler posting while the interrupted code of
the same thread posts does not deadlock; the write itself never blocks.
"""

from __future__ import annotations

import errno
import os
import sys
import threading

from ._base import Host, Waker

__all__ = ["PipeWaker"]


class PipeWaker(Waker):
    """``wake()`` through a self-pipe."""

    native = "pipe"

    def __init__(self, host: Host, max_fd: int | None = None) -> None:
        try:
            r, w = os.pipe()  # close-on-exec since Python 3.4
        except OSError as err:  # EMFILE, ENFILE: say which poller could not be made
            raise OSError(
                err.errno, f"portaio[{host.name}]: cannot make its wake-up pipe: {err.strerror}"
            ) from None
        try:
            if sys.platform != "win32":  # Windows uses SocketWaker: its select() takes sockets only
                os.set_blocking(r, False)
                os.set_blocking(w, False)
            if max_fd is not None and max(r, w) > max_fd:
                # pipe() returns the lowest free numbers: none is left below the limit.
                raise OSError(
                    errno.EMFILE,
                    f"portaio[{host.name}]: no fd below FD_SETSIZE ({max_fd + 1})"
                    " is free for its wake-up pipe",
                )
            self._token = host.watch(r, self._drain)
        except BaseException:
            os.close(r)
            os.close(w)
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
                os.write(self._w, b"\0")
            except OSError:
                pass  # full: a wake-up is already pending

    def _drain(self, _flags: int) -> None:
        try:
            while os.read(self._r, 4096):
                pass
        except OSError:
            pass
        self._host.wake_fired()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._r, self._w):
                try:
                    os.close(fd)
                except OSError:
                    pass
