"""``poll(2)`` through the standard :mod:`select` module: O(registered), portable."""

from __future__ import annotations

import select
import sys
import threading
from typing import Any

from .._types import Capabilities
from ._flag_maps import FROM_POLL, POLLRDHUP, TO_POLL, translate
from ._userspace import UserspaceBackend

__all__ = ["UNAVAILABLE", "PollBackend"]

UNAVAILABLE: str | None = None if hasattr(select, "poll") else f"select.poll is missing on {sys.platform}"


class PollBackend(UserspaceBackend):
    """The poll backend: one ``poll(2)`` per wait over every registered fd."""

    name = "poll"
    capabilities = Capabilities(
        edge=False,
        oneshot=True,
        exclusive=False,
        priority=True,
        rdhup=bool(POLLRDHUP),
        hangup=True,
        o1_wait=False,
        timeout_resolution=1e-3,
        max_fd=None,
        native_timers="poll timeout (ms)",
        native_signals="signal.set_wakeup_fd",
        native_wake="pipe",
    )
    _invalid_bits = getattr(select, "POLLNVAL", 32)

    def _open_kernel(self) -> None:
        if sys.platform == "win32" or UNAVAILABLE is not None:
            raise OSError(f"portaio[poll]: {UNAVAILABLE}")
        self._pollobj = select.poll()
        self._pollobj_lock = threading.Lock()
        self._masks: dict[int, int] = {}

    def _kernel_watch(self, fd: int, events: int, new: bool) -> None:
        if sys.platform == "win32":  # never opened there (_open_kernel refuses)
            raise OSError(f"portaio[poll]: {UNAVAILABLE}")
        mask = translate(events, TO_POLL)
        if new:
            self._pollobj.register(fd, mask)
        else:
            self._pollobj.modify(fd, mask)
        self._masks[fd] = mask

    def _kernel_unwatch(self, fd: int) -> None:
        if sys.platform == "win32":
            return
        self._masks.pop(fd, None)
        try:
            self._pollobj.unregister(fd)
        except KeyError:
            pass

    def _kernel_wait(self, timeout: float | None) -> list[Any]:
        if sys.platform == "win32":
            raise OSError(f"portaio[poll]: {UNAVAILABLE}")
        # select.poll rounds a fractional millisecond up and retries EINTR
        # with the remaining time (PEP 475), running signal handlers.
        ms = None if timeout is None else timeout * 1000.0
        if self._pollobj_lock.acquire(blocking=False):
            try:
                return self._pollobj.poll(ms)
            finally:
                self._pollobj_lock.release()
        # A select.poll object refuses a second concurrent poll() (RuntimeError):
        # another thread waits on this poller, so this one waits on a copy of
        # the set.  A change made meanwhile wakes both through the self-pipe.
        copy = select.poll()
        for fd, mask in list(self._masks.items()):
            copy.register(fd, mask)
        return copy.poll(ms)

    def events_of(self, flags: int, fd: int, interest: int) -> tuple[int, bool]:
        return translate(flags, FROM_POLL), True
