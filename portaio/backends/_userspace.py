"""What the poll and select backends share: their kernel calls keep no state.

Both hand the kernel the whole interest set on every wait, so portaio keeps it:
ONESHOT is emulated exactly (the fd leaves the set once reported, until
``modify``), a change made while another thread waits wakes that wait through
a self-pipe, and an fd closed behind the poller's back is quietly dropped from
the set, as epoll and kqueue drop it.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from .._flags import ALWAYS_REPORTED, ONESHOT, READABLE
from .._poller import Poller, check_fd_open
from .._types import Event, Registration

__all__ = ["UserspacePoller"]


class UserspacePoller(Poller):
    """Base of backends whose wait takes the full interest set each time."""

    _self_wake = True
    _invalid_bits: ClassVar[int] = 0
    """Kernel bits meaning "this fd is not open" (POLLNVAL)."""

    _wakeup_r: int
    _wakeup_w: int

    def _open(self) -> None:
        self._rotation = 0
        self._open_kernel()
        self._wakeup_r, self._wakeup_w = os.pipe()  # close-on-exec since Python 3.4
        os.set_blocking(self._wakeup_r, False)
        os.set_blocking(self._wakeup_w, False)
        self._add_internal(self._wakeup_r, READABLE, self._drain_wakeup)

    # ----------------------------------------------------- subclass hooks
    def _open_kernel(self) -> None:
        raise NotImplementedError

    def _kernel_watch(self, fd: int, events: int, new: bool) -> None:
        raise NotImplementedError

    def _kernel_unwatch(self, fd: int) -> None:
        raise NotImplementedError

    def _kernel_wait(self, timeout: float | None) -> list[Any]:
        """Wait; return ``(fd, bits)`` pairs, *bits* in the kernel's terms."""
        raise NotImplementedError

    def _translate(self, bits: int) -> int:
        raise NotImplementedError

    # ------------------------------------------------------------ control
    def _add(self, reg: Registration) -> None:
        check_fd_open(reg.fd, self.name)
        self._kernel_watch(reg.fd, reg.events, True)

    def _modify(self, old: Registration, new: Registration) -> None:
        check_fd_open(new.fd, self.name)
        self._kernel_watch(new.fd, new.events, not old.armed)

    def _remove(self, reg: Registration) -> None:
        if reg.armed:
            self._kernel_unwatch(reg.fd)

    def _interrupt(self) -> None:
        try:
            os.write(self._wakeup_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # full: a wake-up is already pending; closed: nobody waits

    def _drain_wakeup(self) -> Event | None:
        try:
            while os.read(self._wakeup_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
        return self._wake_fired()

    # The self-pipe serves wake() too: _wake_fired() tells a user's wake-up
    # from an internal one.
    def _open_wake(self) -> None:
        pass

    def _post_wake(self) -> None:
        self._interrupt()

    def _close_wake(self) -> None:
        pass

    def _close_backend(self) -> None:
        for fd in (self._wakeup_r, self._wakeup_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._close_kernel()

    def _close_kernel(self) -> None:
        pass

    # --------------------------------------------------------------- wait
    def _wait(self, timeout: float | None, max_events: int) -> list[Event] | None:
        epoch = self._epoch
        raw = self._kernel_wait(timeout)
        if not raw:
            return None
        rest: list[Any] = []
        if len(raw) > max_events:
            # Start where the last truncated batch stopped, so the fds left
            # out come first next time, as epoll's ready list rotates.
            start = self._rotation % len(raw)
            raw = raw[start:] + raw[:start]
            raw, rest = raw[:max_events], raw[max_events:]
            self._rotation = start + max_events
        if epoch == self._epoch:
            try:
                return list(map(self._cache.__getitem__, raw))
            except KeyError:
                pass
        out = self._slow_path(raw, epoch)
        while rest and len(out) < max_events:
            # Entries that yield no event (our own fds, closed fds, spent
            # one-shots) leave room: fill it, so no ready fd waits a round.
            more, rest = rest[: max_events - len(out)], rest[max_events - len(out) :]
            self._rotation += len(more)
            out += self._slow_path(more, epoch)
        return out

    def _slow_path(self, raw: list[Any], epoch: int) -> list[Event]:
        out: list[Event] = []
        with self._lock:
            for key in raw:
                fd, bits = key
                reg = self._regs.get(fd) or self._internal.get(fd)
                if reg is None or reg.epoch > epoch or not reg.armed:
                    continue  # changed while the kernel looked, or already handed out
                if reg.handler is not None:
                    internal = reg.handler()
                    if internal is not None:
                        out.append(internal)
                    continue
                if bits & self._invalid_bits:
                    # Closed behind our back: stop asking the kernel about it.
                    self._kernel_unwatch(fd)
                    reg.armed = False
                    continue
                ready = self._translate(bits) & (reg.events | ALWAYS_REPORTED)
                if not ready:
                    continue
                if reg.events & ONESHOT:
                    self._kernel_unwatch(fd)
                    reg.armed = False
                    out.append(Event(fd, ready, reg.data))
                else:
                    out.append(self._remember(reg, key, ready))
        return out
