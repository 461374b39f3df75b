"""The afd backend's waker: a packet posted to the I/O completion port.

``PostQueuedCompletionStatus`` queues a completion of our own on the port
the wait dequeues from: no handle, no buffer, safe from any thread.  The C
side (``portaio_afd_wake``) coalesces: one packet is in flight at a time,
and the wait reports it as the key ``token | WAKE << 24`` for the token this
waker reserved with :meth:`Host.new_token`.  Posting goes through the
backend, which never touches a port that ``close()`` has started freeing.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ._base import Host, Waker

if TYPE_CHECKING:
    from .afd import AfdBackend

__all__ = ["AfdWaker"]


class AfdWaker(Waker):
    """``wake()`` through ``PostQueuedCompletionStatus``."""

    native = "PostQueuedCompletionStatus"

    def __init__(self, host: Host, backend: AfdBackend) -> None:
        self._host = host
        self._backend = backend
        self._token = host.new_token(self._fired)
        self._lock = threading.RLock()
        self._closed = False

    def post(self) -> None:
        with self._lock:
            if not self._closed:
                self._backend.post_wake(self._token)

    def _fired(self, _flags: int) -> None:
        self._host.wake_fired()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._host.drop_token(self._token)
