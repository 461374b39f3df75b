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
from typing import TYPE_CHECKING

from . import _main_thread, _signals
from .backends._base import SignalMechanism

if TYPE_CHECKING:
    from ._poller import Poller
    from ._signals import PollerSignals

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
    if state is None or not state.watches:
        return
    if threading.current_thread() is threading.main_thread():
        _main_thread.run_pending()
        for watch in list(state.watches.values()):
            self._drop_signal(watch)
    else:
        _hand_over_signals(self, state)


def _hand_over_signals(self: Poller, state: PollerSignals) -> None:
    """Closing outside the main thread (a finaliser, say): restore the signals there.

    Handlers, Python's wakeup fd and the mask can be put back by the main
    thread only (see ``_main_thread.py``).  This poller stops counting
    deliveries now; its signal mechanism, with the shared sources it holds
    open, is handed over whole and closed there, so nothing writes into a
    number that was released before the handler stopped writing.
    """
    signums = list(state.watches)
    for signum in signums:
        state.watches[signum]._poller = None
        state.discard(signum)
        _signals.drop_watcher(self, signum)
    mechanism, self._signals = self._signals, _HandedOver()
    # Under this poller's lock, with its backend still open.  The job then
    # never takes the lock: a main thread running it from a signal handler
    # may hold _signals' lock, which this thread takes below.
    mechanism.detach()
    _main_thread.hand_over_signals(mechanism, signums)


class _HandedOver(SignalMechanism):
    """In place of a signal mechanism handed to the main thread (see :func:`_hand_over_signals`)."""

    def watch(self, signum: int) -> None:  # pragma: no cover - the poller is closed
        raise AssertionError("portaio: a closed poller watches no signal")

    def unwatch(self, signum: int) -> None:
        return None

    def close(self) -> None:
        return None


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
