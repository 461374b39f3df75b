"""Regular files and directories: always ready, whatever the backend.

POSIX says regular files never block, and ``poll(2)`` reports them readable
and writable at once; epoll refuses to watch them, kqueue would call a file
at its end unreadable.  Where a backend's ``_add`` refuses such a file
(``Poller._kernel_refuses``), :class:`AlwaysReadyFiles` keeps it in
``_always_ready`` and reports it on every poll, taking turns with the
kernel's events so neither starves the other.
"""

from __future__ import annotations

import os
import stat
import threading
from typing import TYPE_CHECKING

from ._flags import EDGE, ONESHOT, READABLE, WRITABLE
from ._types import Event, Registration

__all__ = ["AlwaysReadyFiles", "is_regular_file"]


def is_regular_file(fd: int) -> bool:
    """True if *fd* is a regular file or directory (always ready under POSIX)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


class AlwaysReadyFiles:
    """The part of :class:`~portaio.Poller` that emulates always-ready files."""

    _always_ready: dict[int, Registration]
    _emulated_first: bool
    _lock: threading.RLock

    if TYPE_CHECKING:

        def _add(self, reg: Registration) -> None: ...
        def _wait(self, timeout: float | None, max_events: int) -> list[Event] | None: ...
        def _kernel_refuses(self, reg: Registration, err: OSError) -> bool: ...

    def _add_or_emulate(self, reg: Registration) -> None:
        try:
            self._add(reg)
        except OSError as err:
            if not self._kernel_refuses(reg, err):
                raise
            self._always_ready[reg.fd] = reg

    def _ready_with_emulated(self, max_events: int) -> list[Event]:
        # Always-ready fds and the kernel's events take turns at the front of
        # the batch, so that with a small max_events neither starves the other.
        self._emulated_first = first = not self._emulated_first
        if first:
            ready = self._emulated_ready(max_events)
            if len(ready) < max_events:
                ready.extend(self._wait(0, max_events - len(ready)) or [])
        else:
            ready = self._wait(0, max_events) or []
            if len(ready) < max_events:
                ready.extend(self._emulated_ready(max_events - len(ready)))
        return ready

    def _emulated_ready(self, max_events: int) -> list[Event]:
        # Regular files are always ready (POSIX); the kernel refused to watch them.
        ready: list[Event] = []
        with self._lock:
            regs = self._always_ready
            for reg in list(regs.values()):
                flags = reg.events & (READABLE | WRITABLE)
                if not reg.armed or not flags:
                    continue
                if len(ready) >= max_events:
                    break
                ready.append(Event(reg.fd, flags, reg.data))
                if reg.events & (ONESHOT | EDGE):
                    reg.armed = False
                # Reported fds go last, so the next batch starts with the others.
                del regs[reg.fd]
                regs[reg.fd] = reg
        return ready
