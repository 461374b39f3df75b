"""What a forked child does with the pollers it inherited: retire them.

A child inherits the parent's epoll instance, timerfd, eventfd, self-pipes and
signal mask, all *shared* with the parent: waiting on the epoll fd would steal
the parent's edge-triggered and one-shot events, re-arming the timerfd would
move the parent's timer.  So right after ``fork()``, in the child, every live
poller closes its own copies of those fds (the parent's stay open) and is
marked closed; any further use raises :class:`~portaio.PollerClosed` saying
to create a new poller, which works normally.  Signal handlers, the signal
mask and Python's wakeup fd are put back as they were before portaio touched
them, so nothing of the parent's signal watching leaks into the child.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING

from . import _signals

if TYPE_CHECKING:
    from ._poller import Poller

__all__ = ["track"]

_pollers: weakref.WeakSet[Poller] = weakref.WeakSet()
_lock = threading.Lock()
_hooked = False


def track(poller: Poller) -> None:
    """Retire *poller* in any child forked while it is open."""
    global _hooked
    with _lock:
        if not _hooked and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _hooked = True
        _pollers.add(poller)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # the parent may have held it in another thread
    for poller in list(_pollers):
        poller._retire_after_fork()
    _pollers.clear()
    _signals.forget_after_fork()
