"""What a poller offers its wake-up, timer and signal mechanisms (the ``Host`` of the contract).

The mechanisms (``portaio/backends/_*_waker.py``, ``_*_timer.py``,
``_*_signals.py``) plug into the poll loop only through this object: they
watch their fds, or reserve tokens for kernel objects that are not fds,
under internal tokens whose handlers run when the kernel reports them, and
they report what happened (a drained waker, a fired timer, signal
deliveries).  It holds the poller weakly, so it makes no reference cycle.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import _main_thread, _signals
from ._flags import READABLE

if TYPE_CHECKING:
    from ._poller import Poller

__all__ = ["PollerHost"]

_READABLE = int(READABLE)


class PollerHost:
    """The :class:`~portaio.backends._base.Host` of one poller."""

    __slots__ = ("__weakref__", "_poller", "name")

    def __init__(self, poller: Poller) -> None:
        self._poller = weakref.ref(poller)
        self.name = poller.name

    def _get(self) -> Poller:
        poller = self._poller()
        if poller is None:  # pragma: no cover - the poller owns its mechanisms
            raise ReferenceError("portaio: the poller is gone")
        return poller

    def new_token(self, handler: Callable[[int], None]) -> int:
        poller = self._get()
        with poller._lock:
            token = poller._new_token()
            poller._handlers[token] = handler
            poller._add_capacity(poller._per_token)
        return token

    def drop_token(self, token: int) -> None:
        poller = self._poller()
        if poller is not None and poller._handlers.pop(token, None) is not None:
            poller._add_capacity(-poller._per_token)

    def watch(self, fd: int, handler: Callable[[int], None]) -> int:
        poller = self._get()
        with poller._lock:
            token = self.new_token(handler)
            try:
                poller._backend.add(fd, _READABLE, token)
            except BaseException:
                self.drop_token(token)
                raise
            poller._changed()
        return token

    def unwatch(self, fd: int, token: int) -> None:
        poller = self._poller()
        if poller is None:
            return
        with poller._lock:
            try:
                poller._backend.remove(fd, _READABLE, token)
            finally:
                self.drop_token(token)
            poller._changed()

    def wake_fired(self) -> None:
        poller = self._poller()
        if poller is None:
            return
        if poller._wake_pending:
            poller._wake_pending = False
            poller._wake_ready = True
        poller._sources = True  # go round the sources: a change may be why we woke

    def timer_fired(self) -> None:
        poller = self._poller()
        if poller is not None:
            poller._timer_fired()

    def signal_arrived(self, signum: int, count: int, wake: bool = False) -> None:
        poller = self._poller()
        if poller is not None:
            poller._signal_arrived(signum, count, wake)

    def deliver_signals(self, counts: dict[int, int]) -> None:
        """Deliveries drained from a shared source: to every poller watching each signal."""
        _main_thread.run_pending()  # in the main thread: what a closed poller handed over
        poller = self._poller()
        for signum, count in counts.items():
            _signals.deliver(signum, count, poller)
