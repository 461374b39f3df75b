"""The epoll backend's timer: one timerfd armed to the earliest deadline (Linux).

``TFD_TIMER_ABSTIME`` on ``CLOCK_MONOTONIC`` (the clock of
:func:`time.monotonic`), rounded up a nanosecond so it never fires before
the float deadline, with no timer slack (epoll_pwait2's timeout has some).
Created on the first ``arm()``; if the kernel refuses, ``arm()`` says False
and the poll loop bounds its wait by the deadline instead.
"""

from __future__ import annotations

import os

from ._base import Host, TimerMechanism

try:
    from .._epoll_cffi import ffi, lib
except ImportError:  # pragma: no cover - the epoll backend is unavailable then
    pass

__all__ = ["TimerfdTimer"]


class TimerfdTimer(TimerMechanism):
    """Timers through a timerfd."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._fd = -1

    def arm(self, deadline: float) -> bool:
        if self._fd < 0:
            fd = lib.timerfd_create(lib.CLOCK_MONOTONIC, lib.TFD_CLOEXEC | lib.TFD_NONBLOCK)
            if fd < 0:
                return False
            try:
                self._host.watch(fd, self._drain)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        if lib.portaio_timerfd_arm(self._fd, deadline) < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[{self._host.name}]: timerfd_settime: {os.strerror(err)}")
        return True

    def _drain(self, _flags: int) -> None:
        try:
            os.read(self._fd, 8)
        except OSError:
            pass
        self._host.timer_fired()

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
