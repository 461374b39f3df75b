"""kqueue (macOS and the BSDs; libkqueue elsewhere), on portaio's own cffi bindings.

Each registration's filters carry its 32-bit token in ``udata`` (a modify
makes a new one).  The C side of one wait (``portaio_kq_wait`` in
``csrc/portaio_kqueue.c``) merges the read and write filters of one fd into
a single 64-bit key, ``token | PORTAIO_K_* bits << 32``, so the fast path is
one ``kevent`` call, one ``struct`` unpack and one dict lookup per fd.  The
poller's own knotes (``EVFILT_USER`` wake-up, ``EVFILT_TIMER``,
``EVFILT_SIGNAL``) get keys with ``PORTAIO_K_OTHER`` and their data (a
signal's count) in the flag word.  The translation of flags, both ways, is
``_kqueue_flags.py``.

Kernel facts this backend relies on:

* ONESHOT is ``EV_DISPATCH``: the fired filter is disabled by the kernel,
  the registration's other filters by :meth:`KqueueBackend.disarm`, until
  ``modify`` re-enables them.
* A knote keeps the ``EV_CLEAR``/``EV_DISPATCH`` it was added with (and
  libkqueue its first ``udata``): ``modify`` deletes and adds again, in one
  ``kevent()`` call.
* Regular files and directories are always ready, as on the other backends
  (kqueue would call a file at its end unreadable): :class:`AlwaysReady`.
* kqueue descriptors are not inherited by ``fork()``: in a child the poller
  is retired (see ``_fork.py``) and this backend forgets the number without
  closing it, as it may already name another file of the child.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import Any

from .._types import Capabilities
from . import _kqueue_flags as kf
from ._base import AlwaysReady, Backend, Host, SignalMechanism, TimerMechanism, Waker
from ._kqueue_flags import have
from ._unpack import unpacker, unpackers

LIBKQUEUE = False
"""True when the module was built against libkqueue (an emulation on Linux),
not a native kqueue; the conformance suite marks libkqueue's known deviations."""

try:
    from .._kqueue_cffi import ffi, lib
except ImportError as _err:  # pragma: no cover - depends on the build
    import sys as _sys

    if _sys.platform.startswith("linux"):
        UNAVAILABLE: str | None = (
            "Linux has no kqueue and this build found no libkqueue"
            " (to test the backend, rebuild with PKG_CONFIG_PATH naming a libkqueue's pkgconfig directory)"
        )
    else:
        UNAVAILABLE = f"the compiled module portaio._kqueue_cffi is missing ({_err})"
else:
    UNAVAILABLE = None
    LIBKQUEUE = bool(lib.PORTAIO_LIBKQUEUE)

__all__ = ["LIBKQUEUE", "UNAVAILABLE", "KqueueBackend"]

_BATCH = 8  # most changes one register/modify sends in one kevent() call
_FIRST_BUFFER = 64  # events; grown up to what the poller asks (bounded by its registrations)

_REFUSALS = frozenset(
    getattr(errno, name)
    for name in ("EPERM", "EINVAL", "ENODEV", "ENOTSUP", "EOPNOTSUPP")
    if hasattr(errno, name)
)


class KqueueBackend(Backend):
    """The kqueue backend (macOS, the BSDs): O(ready) waits, edge and one-shot modes."""

    name = "kqueue"
    capabilities = Capabilities(
        edge=True,
        oneshot=True,
        exclusive=False,
        priority=have("EVFILT_EXCEPT") and have("NOTE_OOB"),
        rdhup=True,
        hangup=True,
        o1_wait=True,
        timeout_resolution=1e-9,
        max_fd=None,
        native_timers="EVFILT_TIMER",
        native_signals="EVFILT_SIGNAL",
        native_wake="EVFILT_USER",
    )
    refuses_files = True
    records_per_token = 3  # EVFILT_READ, EVFILT_WRITE, EVFILT_EXCEPT

    def __init__(self) -> None:
        if UNAVAILABLE is not None:
            raise OSError(errno.ENOSYS, f"portaio[kqueue]: {UNAVAILABLE}")
        kq = int(lib.portaio_kq_open())
        if kq < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[kqueue]: kqueue: {os.strerror(err)}")
        self.kq = kq
        """The kqueue's fd (-1 once closed, or forgotten after fork)."""
        self._changes = ffi.new("struct kevent[]", _BATCH)
        self._errors = ffi.new("int[]", _BATCH)
        self._buffers: list[tuple[Any, ...]] = [self._buffer(_FIRST_BUFFER)]

    def fileno(self) -> int:
        return self.kq

    # ------------------------------------------------------------ control
    def apply(self, ident: int, changes: list[kf.Change], token: int) -> list[int]:
        """Send (filter, flags, fflags, data) changes for *ident* in one call; each one's errno.

        Under the poller's lock (the change buffer is shared).
        """
        buf = self._changes
        for i, (filt, flags, fflags, data) in enumerate(changes):
            lib.portaio_kq_set(buf, i, ident, filt, flags, fflags, data, token)
        if lib.portaio_kq_apply(self.kq, buf, len(changes), self._errors) < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[kqueue]: kevent on fd {ident}: {os.strerror(err)}")
        return list(self._errors[0 : len(changes)])

    @staticmethod
    def _raise(err: int, what: str, fd: int) -> None:
        raise OSError(err, f"portaio[kqueue]: {what} fd {fd}: {os.strerror(err)}")

    def add(self, fd: int, events: int, token: int) -> None:
        from .._regular_files import is_regular_file

        if is_regular_file(fd):
            raise AlwaysReady(errno.EPERM, f"portaio[kqueue]: fd {fd} is a regular file: always ready")
        adds = kf.adds(events)
        errors = self.apply(fd, adds, token)
        failed = [e for e in errors if e]
        if failed:
            done = [(adds[i][0], kf.EV_DELETE, 0, 0) for i, e in enumerate(errors) if not e]
            if done:
                self.apply(fd, done, token)
            # Files kqueue cannot watch at all (/dev/null: EINVAL, ENODEV or
            # ENOTSUP natively, EPERM from libkqueue's epoll) are always
            # ready, as poll(2) reports them.
            if failed[0] in _REFUSALS and not kf.is_socket(fd) and not kf.is_fifo(fd):
                raise AlwaysReady(failed[0], f"portaio[kqueue]: fd {fd} cannot be watched: always ready")
            self._raise(failed[0], "cannot watch", fd)

    def modify(self, fd: int, old_events: int, old_token: int, events: int, token: int) -> None:
        # Delete and add again, in one kevent() call: a knote keeps the
        # EV_CLEAR/EV_DISPATCH it was added with, libkqueue keeps its first
        # udata, and epoll's EPOLL_CTL_MOD likewise re-evaluates readiness
        # (a re-armed one-shot that is ready fires at once).
        changes = kf.each(old_events, kf.EV_DELETE)
        n_deletes = len(changes)
        changes += kf.adds(events)
        for i, err in enumerate(self.apply(fd, changes, token)):
            # ENOENT on delete: an EV_ONESHOT filter the kernel already dropped.
            if err and not (i < n_deletes and err == errno.ENOENT):
                self._raise(err, "cannot modify", fd)

    def remove(self, fd: int, events: int, token: int) -> None:
        # EBADF: the fd was closed (kqueue dropped its filters then).  ENOENT:
        # the number now names a file never watched here, or a fired
        # EV_ONESHOT filter.
        for err in self.apply(fd, kf.each(events, kf.EV_DELETE), token):
            if err and err not in (errno.EBADF, errno.ENOENT):
                self._raise(err, "cannot unwatch", fd)

    def disarm(self, fd: int, events: int, token: int) -> None:
        self.apply(fd, kf.each(events, kf.EV_DISABLE), token)  # ENOENT/EBADF: already gone

    # --------------------------------------------------------------- wait
    @staticmethod
    def _buffer(size: int) -> tuple[Any, ...]:
        slots = 1
        while slots < 2 * size:
            slots *= 2
        keys = ffi.new("uint64_t[]", size)
        return (
            ffi.new("struct kevent[]", size),
            keys,
            ffi.new("int[]", [-1] * (size + slots)),
            slots,
            size,
            ffi.buffer(keys),
        )

    def wait(self, timeout: float | None, max_events: int) -> Sequence[int]:
        # Several threads may wait on one poller: each takes its own buffers.
        buffers = self._buffers
        entry = buffers.pop() if buffers else self._buffer(_FIRST_BUFFER)
        try:
            if max_events > entry[4]:
                entry = self._buffer(max(max_events, 2 * entry[4]))
            events, keys, scratch, slots, _, keybuf = entry
            n = lib.portaio_kq_wait(
                self.kq, events, max_events, -1.0 if timeout is None else timeout, keys, scratch, slots
            )
            if n > 0:
                return (unpackers.get(n) or unpacker(n))(keybuf)
            if n < 0:
                err = ffi.errno
                if err != errno.EINTR and self.kq >= 0:  # EINTR: Python signal handlers run as we return
                    raise OSError(err, f"portaio[kqueue]: kevent: {os.strerror(err)}")
            return []
        finally:
            buffers.append(entry)

    def events_of(self, flags: int, fd: int, interest: int) -> tuple[int, bool]:
        return kf.events_of(flags, fd, interest)

    def close(self) -> None:
        kq, self.kq = self.kq, -1
        if kq >= 0 and lib.portaio_kq_close(kq) < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[kqueue]: close: {os.strerror(err)}")

    def close_after_fork(self) -> None:
        # A forked child has no kqueue (libkqueue closes its emulation's fds
        # too): forget the number without closing it.
        self.kq = -1

    # ------------------------------------------------------------ sources
    # EVFILT_USER for wake(), one EVFILT_TIMER armed to the earliest deadline
    # in the finest unit the system has, and EVFILT_SIGNAL per watched signal
    # (each kqueue hears of every delivery by itself, no shared source).
    # Where the header lacks one, the portable default is used.
    def make_waker(self, host: Host) -> Waker:
        if have("EVFILT_USER") and have("NOTE_TRIGGER"):
            from ._kqueue_user_waker import UserWaker

            return UserWaker(host, self)
        return super().make_waker(host)

    def make_timer(self, host: Host) -> TimerMechanism:
        if have("EVFILT_TIMER"):
            from ._kqueue_timer import KqueueTimer

            return KqueueTimer(host, self)
        return super().make_timer(host)

    def make_signals(self, host: Host) -> SignalMechanism:
        if have("EVFILT_SIGNAL"):
            from ._kqueue_signals import KqueueSignals

            return KqueueSignals(host, self, LIBKQUEUE)
        return super().make_signals(host)
