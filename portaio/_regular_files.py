"""Regular files and directories: always ready, whatever the backend.

POSIX says regular files never block, and ``poll(2)`` reports them readable
and writable at once; epoll refuses to watch them, kqueue would call a file
at its end unreadable.  Where a backend's ``add`` raises
:class:`~portaio.backends._base.AlwaysReady`, the poller keeps the
registration in an :class:`AlwaysReadyFiles` source, one of those its poll
loop asks, and reports it on every poll (once per arming for EDGE and
ONESHOT), rotating so that a small ``max_events`` serves each in turn.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._flags import ALWAYS_REPORTED, EDGE, ONESHOT

if TYPE_CHECKING:
    from ._register import _Reg

__all__ = ["AlwaysReadyFiles", "is_regular_file"]

_ALWAYS = int(ALWAYS_REPORTED)
_ONCE = int(EDGE | ONESHOT)


def is_regular_file(fd: int) -> bool:
    """True if *fd* is a regular file or directory (always ready under POSIX)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


def _flags(reg: _Reg) -> int:
    """What an always-ready registration reports: its interest (and HANGUP, ERROR) of what it is."""
    return (reg.events | _ALWAYS) & reg.always


class AlwaysReadyFiles:
    """The registrations the kernel refused as always ready (the caller holds the poller's lock)."""

    def __init__(self) -> None:
        self._regs: dict[int, _Reg] = {}

    def __len__(self) -> int:
        return len(self._regs)

    def __contains__(self, fd: int) -> bool:
        return fd in self._regs

    def put(self, reg: _Reg) -> None:
        """Add or replace (modify re-arms) the registration of ``reg.fd``."""
        self._regs[reg.fd] = reg

    def discard(self, fd: int) -> bool:
        """Forget *fd*; True if it was here."""
        return self._regs.pop(fd, None) is not None

    def clear(self) -> None:
        """Forget every registration."""
        self._regs.clear()

    def has_ready(self) -> bool:
        """True if some registration would be reported now."""
        return any(reg.armed and _flags(reg) for reg in self._regs.values())

    def collect(self, limit: int, out: list[Any], factory: Callable[[int, int, Any], Any]) -> None:
        """Append up to *limit* events; the reported go last, so the next batch starts with the others."""
        regs = self._regs
        count = 0
        for reg in list(regs.values()):
            flags = _flags(reg)
            if not reg.armed or not flags:
                continue
            if count >= limit:
                break
            out.append(factory(reg.fd, flags, reg.data))
            count += 1
            if reg.events & _ONCE:
                reg.armed = False
            del regs[reg.fd]
            regs[reg.fd] = reg
