"""Closing a :class:`~portaio.Poller`, and retiring it in a forked child (its methods, defined here).

``close()`` stops every source, then releases the fds: at once, or, when
another thread is still inside the kernel wait, as soon as the last such
thread leaves it (closing an fd under a waiting thread could swallow its
wake-up).  The waker is closed first, under its own lock, so a racing
``wake()`` never writes into a number the poller gave back.  The functions
are the Poller's methods (assigned in its class body).
"""

from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._poller import Poller

__all__ = ["close"]


def close(self: Poller) -> None:
    """Release the kernel object and every fd the poller created.  Idempotent.

    A :meth:`poll` blocked in another thread raises :class:`PollerClosed`
    promptly; the fds are released as soon as it has left the kernel.
    """
    with self._lock:
        if self._closed:
            return
        self._closed = True
        self._sources = True  # poll() takes the general way, which says it is closed
        try:
            self._close_sources()
        finally:
            self._regs.clear()
            self._cache.clear()
            self._files.clear()
            if self._waiting:
                # Closing the fds under a waiting thread could swallow the
                # wake-up and leave it blocked for good: wake it, and the
                # last waiter out releases them (or we do, if it left already).
                self._close_pending = True
                self._waker.post()
            if not self._waiting:
                self._close_pending = False
                self._release()


def _close_sources(self: Poller) -> None:
    queue = self._timer_queue
    if queue is not None:
        queue.clear()
    state = self._signal_state
    if state is not None and state.watches:
        if threading.current_thread() is not threading.main_thread():
            warnings.warn(
                f"portaio[{self.name}]: a poller watching signals was closed outside the main thread;"
                " the main thread's signal handlers and mask may not be restored",
                RuntimeWarning,
                stacklevel=3,
            )
        for watch in list(state.watches.values()):
            self._drop_signal(watch)


def _release(self: Poller) -> None:
    try:
        self._waker.close()
        self._timer.close()
        self._signals.close()
    finally:
        try:
            self._backend.close()
        finally:
            self._handlers.clear()
            self._by_token.clear()
            self._add_capacity(-self._capacity)


def _release_if_last(self: Poller) -> None:
    """A poll left the kernel after close(): the last one out releases the fds."""
    with self._lock:
        if self._close_pending and not self._waiting:
            self._close_pending = False
            self._release()


def _retire_after_fork(self: Poller) -> None:
    """In a forked child: close this process's copies of the poller's fds, refuse further use."""
    if self._closed:
        return
    self._lock = threading.RLock()  # another thread of the parent may have held it
    self._closed = True
    self._sources = True  # poll() takes the general way, which says it is closed
    self._closed_why = (
        " (it was created before fork(); the child must create a new Poller,"
        " the parent's keeps working in the parent)"
    )
    if self._timer_queue is not None:
        self._timer_queue.clear()
    if self._signal_state is not None:
        for watch in self._signal_state.watches.values():
            watch._poller = None
    for close in (
        self._waker.close_after_fork,
        self._timer.close_after_fork,
        self._signals.close_after_fork,
        self._backend.close_after_fork,
    ):
        try:
            close()
        except OSError:
            pass
    self._regs.clear()
    self._by_token.clear()
    self._handlers.clear()
    self._cache.clear()
    self._files.clear()
