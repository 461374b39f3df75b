"""The kqueue backend's waker: an ``EVFILT_USER`` knote triggered with ``NOTE_TRIGGER``.

No fd and no buffer: a trigger is one ``kevent()`` change, safe from any
thread and from a signal handler, coalesced by ``EV_CLEAR``.  The knote goes
with its kqueue; ``close()`` (under the same re-entrant lock as ``post()``)
makes later posts do nothing, so no trigger reaches a kqueue number that was
closed and reused.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from ._base import Host, Waker

if TYPE_CHECKING:
    from .kqueue import KqueueBackend

try:
    from .._kqueue_cffi import ffi, lib
except ImportError:  # pragma: no cover - the kqueue backend is unavailable then
    pass

__all__ = ["UserWaker"]

_IDENT = 0  # each filter has its own ident space: this never meets an fd


class UserWaker(Waker):
    """``wake()`` through ``EVFILT_USER``."""

    native = "EVFILT_USER"

    def __init__(self, host: Host, backend: KqueueBackend) -> None:
        self._host = host
        self._backend = backend
        self._token = host.new_token(self._fired)
        if lib.portaio_kq_user_add(backend.kq, _IDENT, self._token) < 0:
            err = ffi.errno
            host.drop_token(self._token)
            raise OSError(err, f"portaio[kqueue]: EVFILT_USER: {os.strerror(err)}")
        self._lock = threading.RLock()
        self._closed = False

    def post(self) -> None:
        with self._lock:
            if self._closed:
                return
            # A trigger replaces udata too: pass the same token.
            lib.portaio_kq_user_trigger(self._backend.kq, _IDENT, self._token)

    def _fired(self, _flags: int) -> None:
        self._host.wake_fired()

    def close(self) -> None:
        with self._lock:
            self._closed = True
