"""The kqueue backend's signals: one ``EVFILT_SIGNAL`` knote per watched signal.

Each kqueue hears of every delivery by itself (handled or not), with a count
in the event's data, which the C wait puts in the key's flag word.

On libkqueue (an emulation on Linux), ``EVFILT_SIGNAL`` reads a signalfd,
which misses the deliveries taken by a thread not blocking the signal (one
started before, say); only Python's C handler sees those, in that thread, and
a poll blocked in ``kevent()`` in this thread would not wake for them.
Python's wakeup fd, watched too (:class:`SharedSignals`), counts them and
wakes it.  libkqueue also blocks the signal in the thread that adds it and
leaves it blocked after ``EV_DELETE``; :class:`_LibkqueueMask` unblocks what
it blocked once no kqueue poller of the process watches the signal.
"""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING

if sys.platform == "win32":  # pragma: no cover - never imported there
    raise ImportError("portaio: kqueue signals are POSIX, not Windows")

from .._signals import WakeupFdSource
from . import _kqueue_flags as kf
from ._base import Host, SignalMechanism
from ._shared_signals import SharedSignals

if TYPE_CHECKING:
    from .kqueue import KqueueBackend

__all__ = ["KqueueSignals"]


class _LibkqueueMask:
    """Undo libkqueue's signal blocking when the last watch of a signal goes."""

    def __init__(self) -> None:
        self.watches: dict[int, int] = {}
        self.was_blocked: dict[int, bool] = {}

    def watch(self, signum: int) -> None:
        if not self.watches.get(signum):
            self.was_blocked[signum] = signum in signal.pthread_sigmask(signal.SIG_BLOCK, ())
        self.watches[signum] = self.watches.get(signum, 0) + 1

    def unwatch(self, signum: int) -> None:
        left = self.watches.get(signum, 0) - 1
        if left > 0:
            self.watches[signum] = left
            return
        self.watches.pop(signum, None)
        if not self.was_blocked.pop(signum, True):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})


_libkqueue_mask = _LibkqueueMask()


class KqueueSignals(SignalMechanism):
    """Signals through ``EVFILT_SIGNAL`` (plus Python's wakeup fd on libkqueue)."""

    def __init__(self, host: Host, backend: KqueueBackend, libkqueue: bool) -> None:
        self._host = host
        self._backend = backend
        self._tokens: dict[int, int] = {}
        self._wakeup: SharedSignals | None = SharedSignals(host, (WakeupFdSource,)) if libkqueue else None

    def watch(self, signum: int) -> None:
        host = self._host

        def arrived(flags: int) -> None:
            host.signal_arrived(signum, flags >> kf.K_DATA_SHIFT)

        token = host.new_token(arrived)
        self._tokens[signum] = token
        wakeup = self._wakeup
        if wakeup is not None:
            wakeup.watch(signum)
            _libkqueue_mask.watch(signum)
        err = self._backend.apply(signum, [(kf.EVFILT_SIGNAL, kf.EV_ADD, 0, 0)], token)[0]
        if err:
            del self._tokens[signum]
            host.drop_token(token)
            if wakeup is not None:
                _libkqueue_mask.unwatch(signum)
                wakeup.unwatch(signum)
            self._backend._raise(err, "cannot watch signal", signum)

    def unwatch(self, signum: int) -> None:
        token = self._tokens.pop(signum, None)
        if token is None:
            return
        if token:  # 0: detached, the knote went already
            self._delete(signum, token)
        if self._wakeup is not None:
            _libkqueue_mask.unwatch(signum)
            self._wakeup.unwatch(signum)

    def _delete(self, signum: int, token: int) -> None:
        self._host.drop_token(token)
        if self._backend.kq >= 0:
            self._backend.apply(signum, [(kf.EVFILT_SIGNAL, kf.EV_DELETE, 0, 0)], token)

    def close(self) -> None:
        for signum in list(self._tokens):
            self.unwatch(signum)

    def detach(self) -> None:
        # The knotes are this kqueue's: delete them now; the mask and the
        # wakeup fd are process-wide, left to unwatch() in the main thread.
        for signum, token in list(self._tokens.items()):
            if token:
                self._tokens[signum] = 0
                self._delete(signum, token)
        if self._wakeup is not None:
            self._wakeup.detach()

    def close_after_fork(self) -> None:
        if self._wakeup is not None:
            for signum in self._tokens:
                _libkqueue_mask.unwatch(signum)
            self._wakeup.close_after_fork()
        self._tokens.clear()
