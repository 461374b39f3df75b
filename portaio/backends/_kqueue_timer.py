"""The kqueue backend's timer: one ``EVFILT_TIMER`` knote, one-shot, re-armed to the earliest deadline.

Armed relative to now in the finest unit the system has (``NOTE_NSECONDS``,
``NOTE_USECONDS``, else milliseconds), rounded up, at most a day ahead: a
later deadline fires early, finds nothing due and is armed again.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ._base import Host, TimerMechanism

if TYPE_CHECKING:
    from .kqueue import KqueueBackend

try:
    from .._kqueue_cffi import lib
except ImportError:  # pragma: no cover - the kqueue backend is unavailable then
    pass

__all__ = ["KqueueTimer"]

_IDENT = 0  # each filter has its own ident space: this never meets an fd
_TIMER_MAX = 86400.0  # longest single arming
_monotonic = time.monotonic


class KqueueTimer(TimerMechanism):
    """Timers through ``EVFILT_TIMER``."""

    def __init__(self, host: Host, backend: KqueueBackend) -> None:
        self._host = host
        self._backend = backend
        self._token = 0

    def arm(self, deadline: float) -> bool:
        kq = self._backend.kq
        if kq < 0:
            return False
        if not self._token:
            self._token = self._host.new_token(self._fired)
        seconds = min(max(deadline - _monotonic(), 0.0), _TIMER_MAX)
        # A refusal: the poll loop bounds its wait by the deadline instead.
        return lib.portaio_kq_timer(kq, _IDENT, seconds, self._token) >= 0

    def _fired(self, _flags: int) -> None:
        self._host.timer_fired()

    def close(self) -> None:
        pass  # the knote goes with its kqueue
