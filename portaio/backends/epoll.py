"""Linux epoll, on portaio's own cffi bindings (``portaio._epoll_cffi``).

Each registration's ``epoll_data`` holds a 32-bit token unique to that
registration (a modify makes a new one).  Reading the packed 12-byte
``struct epoll_event`` as ``<QI`` puts the kernel's flags in the low half and
the token in the high half of one integer, so the fast path is one
``epoll_pwait2`` call, one ``struct`` unpack and one dict lookup per event
into a cache of ready-made :class:`~portaio.Event` objects.  A miss (new
flag combination, an internal fd, or a token that is no longer registered)
takes the slow path.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
from collections.abc import Callable
from typing import Any

from .._flags import (
    ALWAYS_REPORTED,
    EDGE,
    ERROR,
    EXCLUSIVE,
    HANGUP,
    ONESHOT,
    PRIORITY,
    RDHUP,
    READABLE,
    WRITABLE,
)
from .._poller import DEFAULT_MAX_EVENTS, Poller
from .._signals import SignalSource
from .._types import Capabilities, Event, Registration
from ._flag_maps import translate

try:
    from .._epoll_cffi import ffi, lib
except ImportError as _err:  # pragma: no cover - depends on the build
    UNAVAILABLE: str | None = f"the compiled module portaio._epoll_cffi is missing ({_err})"
else:
    UNAVAILABLE = None

__all__ = ["UNAVAILABLE", "EpollPoller"]

_ONE = (1).to_bytes(8, sys.byteorder)  # an eventfd write adds this 64-bit value
_CHUNK = 256  # struct formats are cached per event count up to this size

if UNAVAILABLE is None:
    _RECORD_SIZE = ffi.sizeof("struct epoll_event")
    _DATA_OFFSET = ffi.offsetof("struct epoll_event", "data")
else:  # pragma: no cover
    _RECORD_SIZE, _DATA_OFFSET = 12, 4
# Packed little-endian records (x86-64) read as one 64-bit key: flags in the low
# half, the token in the high half.  Elsewhere the key is a (flags, token) pair.
_PACKED_KEYS = _RECORD_SIZE == 12 and _DATA_OFFSET == 4 and sys.byteorder == "little"
if _PACKED_KEYS:
    _BYTE_ORDER, _RECORD_FORMAT = "<", "Q4x"
else:  # pragma: no cover - 16-byte layout of the other architectures
    _BYTE_ORDER = "="
    _RECORD_FORMAT = "I" + "x" * (_DATA_OFFSET - 4) + "Q" + "x" * (_RECORD_SIZE - _DATA_OFFSET - 8)


if UNAVAILABLE is None:
    _TO_KERNEL = [
        (int(ours), int(theirs))
        for ours, theirs in [
            (READABLE, lib.EPOLLIN),
            (WRITABLE, lib.EPOLLOUT),
            (PRIORITY, lib.EPOLLPRI),
            (RDHUP, lib.EPOLLRDHUP),
            (EDGE, lib.EPOLLET),
            (ONESHOT, lib.EPOLLONESHOT),
            (EXCLUSIVE, lib.EPOLLEXCLUSIVE),
        ]
    ]
    _FROM_KERNEL = [
        (int(theirs), int(ours))
        for theirs, ours in [
            (lib.EPOLLIN, READABLE),
            (lib.EPOLLOUT, WRITABLE),
            (lib.EPOLLPRI, PRIORITY),
            (lib.EPOLLRDHUP, RDHUP),
            (lib.EPOLLHUP, HANGUP),
            (lib.EPOLLERR, ERROR),
        ]
    ]
else:  # pragma: no cover
    _TO_KERNEL = _FROM_KERNEL = []


class EpollPoller(Poller):
    """The epoll backend (Linux): O(ready) waits, edge, one-shot and exclusive modes."""

    name = "epoll"
    capabilities = Capabilities(
        edge=True,
        oneshot=True,
        exclusive=True,
        priority=True,
        rdhup=True,
        hangup=True,
        o1_wait=True,
        timeout_resolution=1e-9,
        max_fd=None,
        native_timers="timerfd",
        native_signals="signalfd",
        native_wake="eventfd",
    )

    _epfd: int

    def _open(self) -> None:
        if UNAVAILABLE is not None:
            raise OSError(errno.ENOSYS, f"portaio[epoll]: {UNAVAILABLE}")
        epfd = lib.epoll_create1(lib.EPOLL_CLOEXEC)
        if epfd < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[epoll]: epoll_create1: {os.strerror(err)}")
        self._epfd = epfd
        self._by_token: dict[int, Registration] = {}
        self._ctl_event = ffi.new("struct epoll_event *")
        self._buffers: list[tuple[Any, Any, int]] = []
        self._unpackers: dict[int, Callable[..., tuple[int, ...]]] = {}

    def _backend_fileno(self) -> int:
        return self._epfd

    # ------------------------------------------------------------ control
    def _ctl(self, op: int, reg: Registration) -> int:
        ev = self._ctl_event
        ev.events = translate(reg.events, _TO_KERNEL)
        ev.data.u64 = reg.token
        if lib.epoll_ctl(self._epfd, op, reg.fd, ev) < 0:
            return int(ffi.errno)
        return 0

    def _raise(self, err: int, what: str, fd: int) -> None:
        raise OSError(err, f"portaio[epoll]: {what} fd {fd}: {os.strerror(err)}")

    def _add(self, reg: Registration) -> None:
        # Known before the kernel can report it: a poll() in another thread may
        # see the event before epoll_ctl returns, and would drop an unknown token.
        self._by_token[reg.token] = reg
        err = self._ctl(lib.EPOLL_CTL_ADD, reg)
        if err:
            del self._by_token[reg.token]
            self._raise(err, "cannot watch", reg.fd)

    def _kernel_refuses(self, reg: Registration, err: OSError) -> bool:
        # epoll refuses files without a poll method (regular files,
        # directories, /dev/null) with EPERM, and only those; poll(2) reports
        # such files always readable and writable, so the poller does too.
        return err.errno == errno.EPERM

    def _modify(self, old: Registration, new: Registration) -> None:
        # The new token is known before the kernel can report it (see _add):
        # otherwise a ONESHOT re-armed while another thread polls could fire
        # into a lookup that drops it, and never fire again.
        self._by_token[new.token] = new
        if (old.events | new.events) & EXCLUSIVE:
            # EPOLL_CTL_MOD refuses EPOLLEXCLUSIVE (EINVAL): delete and add again.
            err = self._ctl(lib.EPOLL_CTL_DEL, old)
            if not err:
                err = self._ctl(lib.EPOLL_CTL_ADD, new)
                if err:
                    self._ctl(lib.EPOLL_CTL_ADD, old)  # keep the old registration working
        else:
            err = self._ctl(lib.EPOLL_CTL_MOD, new)
        if err:
            del self._by_token[new.token]
            self._raise(err, "cannot modify", new.fd)
        del self._by_token[old.token]

    def _remove(self, reg: Registration) -> None:
        # EBADF: the fd was closed (epoll dropped it with its last reference).
        # ENOENT: the number now names another file, never registered here.
        # Either way the registration goes; the token makes any event still
        # queued for it unrecognisable, so it is dropped, never misdelivered.
        err = self._ctl(lib.EPOLL_CTL_DEL, reg)
        self._by_token.pop(reg.token, None)
        if err and err not in (errno.EBADF, errno.ENOENT):
            self._raise(err, "cannot unwatch", reg.fd)

    # --------------------------------------------------------------- wait
    def _buffer(self, max_events: int) -> tuple[Any, Any, int]:
        size = max(max_events, DEFAULT_MAX_EVENTS)
        buf = ffi.new("struct epoll_event[]", size)
        return buf, ffi.buffer(buf), size

    def _unpacker(self, n: int) -> Callable[..., tuple[int, ...]]:
        unpack = self._unpackers[n] = struct.Struct(_BYTE_ORDER + _RECORD_FORMAT * n).unpack_from
        return unpack

    def _wait(self, timeout: float | None, max_events: int) -> list[Event] | None:
        # Several threads may wait on one poller: each takes its own buffer.
        buffers = self._buffers
        entry = buffers.pop() if buffers else self._buffer(max_events)
        try:
            if max_events > entry[2]:
                entry = self._buffer(max_events)
            n = lib.portaio_epoll_wait(self._epfd, entry[0], max_events, -1.0 if timeout is None else timeout)
            if n <= 0:
                if n < 0:
                    self._wait_failed(ffi.errno)
                return None
            if n <= _CHUNK:
                flat = (self._unpackers.get(n) or self._unpacker(n))(entry[1])
            else:
                flat = ()
                for start in range(0, n, _CHUNK):
                    count = min(_CHUNK, n - start)
                    flat += (self._unpackers.get(count) or self._unpacker(count))(
                        entry[1], start * _RECORD_SIZE
                    )
        finally:
            buffers.append(entry)
        keys: Any = flat if _PACKED_KEYS else list(zip(flat[0::2], flat[1::2]))
        try:
            return list(map(self._cache.__getitem__, keys))
        except KeyError:
            return self._slow_path(keys)

    def _wait_failed(self, err: int) -> None:
        # EINTR: return to Python, where pending signal handlers run (and may
        # raise); the caller then waits again for the time that is left.
        if err != errno.EINTR and not self._closed:
            raise OSError(err, f"portaio[epoll]: epoll_wait: {os.strerror(err)}")

    def _slow_path(self, keys: Any) -> list[Event]:
        out: list[Event] = []
        cache = self._cache
        by_token = self._by_token
        for key in keys:
            event = cache.get(key)
            if event is not None:
                out.append(event)
                continue
            if _PACKED_KEYS:
                raw, token = key & 0xFFFFFFFF, key >> 32
            else:
                raw, token = key
            reg = by_token.get(token)
            if reg is None:
                continue  # unregistered or modified since the kernel queued it
            if reg.handler is not None:
                internal = reg.handler()
                if internal is not None:
                    out.append(internal)
                continue
            ready = translate(raw, _FROM_KERNEL) & (reg.events | ALWAYS_REPORTED)
            if ready:
                out.append(self._remember(reg, key, ready))
        return out

    def _close_backend(self) -> None:
        self._by_token.clear()
        os.close(self._epfd)

    # ------------------------------------ timers, signals, wake-ups (native)
    # eventfd for wake(), a timerfd armed to the earliest deadline (absolute,
    # CLOCK_MONOTONIC, no timer slack, unlike epoll_pwait2's timeout) and the
    # process-wide signalfd of ``_signalfd.py``; all CLOEXEC | NONBLOCK.
    # Signals: the signalfd takes what the kernel delivers while they are
    # blocked; Python's wakeup fd catches those a thread that does not block
    # them took (it runs Python's C-level handler, which writes there).
    _signal_kinds = ("signalfd", "wakeup-fd")
    _timerfd = -1

    def _open_wake(self) -> None:
        fd = lib.eventfd(0, lib.EFD_CLOEXEC | lib.EFD_NONBLOCK)
        if fd < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[epoll]: eventfd: {os.strerror(err)}")
        self._eventfd = int(fd)
        self._add_internal(self._eventfd, READABLE, self._drain_eventfd)

    def _post_wake(self) -> None:
        try:
            os.write(self._eventfd, _ONE)
        except OSError:
            pass  # closed meanwhile: nobody waits any more

    def _drain_eventfd(self) -> Event | None:
        try:
            os.read(self._eventfd, 8)
        except OSError:
            pass
        return self._wake_fired()

    def _close_wake(self) -> None:
        # The eventfd and the timerfd (the fds of wake-ups and timers).
        for fd in (getattr(self, "_eventfd", -1), self._timerfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._timerfd = -1

    def _arm_timer(self, deadline: float) -> bool:
        if self._timerfd < 0:
            fd = lib.timerfd_create(lib.CLOCK_MONOTONIC, lib.TFD_CLOEXEC | lib.TFD_NONBLOCK)
            if fd < 0:
                return False  # poll() falls back on epoll_pwait2's own timeout
            self._timerfd = int(fd)
            self._add_internal(self._timerfd, READABLE, self._drain_timerfd)
        if lib.portaio_timerfd_arm(self._timerfd, deadline) < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[epoll]: timerfd_settime: {os.strerror(err)}")
        return True

    def _drain_timerfd(self) -> Event | None:
        try:
            os.read(self._timerfd, 8)
        except OSError:
            pass
        self._timer_fired()
        return None

    def _new_signal_source(self, kind: str) -> SignalSource:
        if kind != "signalfd":
            return super()._new_signal_source(kind)
        from ._signalfd import SignalfdSource

        return SignalfdSource()
