"""kqueue (macOS and the BSDs; libkqueue elsewhere), on portaio's own cffi bindings.

Each registration's filters carry its 24-bit token in ``udata`` (a modify
makes a new one).  The C side of one wait (``portaio_kq_wait`` in
``csrc/portaio_kqueue.c``) merges the records of one fd into a single 64-bit
key, ``token | PORTAIO_K_* bits << 24`` (a summary of the records: which
filters fired, EOF on which side, an error in ``fflags``, urgent data,
nothing to read), so the fast path is one ``kevent`` call, one
``struct`` unpack and one dict lookup per fd.  The poller's own knotes
(``EVFILT_USER`` wake-up, ``EVFILT_TIMER``, ``EVFILT_SIGNAL``) get keys with
``PORTAIO_K_OTHER`` and their data (a signal's count) in the flag word.
What the bits mean in portaio's words is decided in one pure function,
:func:`portaio.backends._kevent.translate_bits`, tested row by row against
what each kernel's source says it reports; the filters an interest needs
come from :func:`portaio.backends._kevent.filters_for`.

Kernel facts this backend relies on:

* ONESHOT is ``EV_DISPATCH``: the fired filter is disabled by the kernel,
  the registration's other filters by :meth:`KqueueBackend.disarm`, until
  ``modify`` re-enables them.  RDHUP or PRIORITY without READABLE use
  edge-triggered "helper" filters without ``EV_DISPATCH`` (the data they
  mask must neither spin the wait nor spend the shot); see ``_kevent``.
* A knote keeps the ``EV_CLEAR``/``EV_DISPATCH`` it was added with (and
  libkqueue its first ``udata``): ``modify`` deletes and adds again, in one
  ``kevent()`` call, and puts the old filters back if an add fails.
* A hang-up is ``EV_EOF`` on both the read and the write filter of a socket.
  Where the registration has only one of them, a one-off filter on a small
  kqueue of the backend's own asks the other side (xnu's ``poll()`` says
  nothing of an fd registered with no events, so it cannot be asked).
* Regular files, directories and the null device are always ready, as on the
  other backends (kqueue would call a file at its end unreadable):
  :class:`AlwaysReady`.  A pipe whose reader is gone is always WRITABLE|ERROR
  where the kernel refuses its write filter (FreeBSD and OpenBSD ``EPIPE``,
  older NetBSD ``EBADF``).  Any other file the kernel refuses is an error at
  ``register`` naming the fd and the reason (a macOS tty, a kqueue watched
  for writing).
* Closing an fd drops its knotes from every kqueue (``knote_fdclose``,
  called by FreeBSD's ``closefp`` and xnu's ``fp_close_and_unlock``, both in
  ``kern_descrip.c``), but a change names a knote by *number*: if a
  registered fd is closed without ``unregister`` and the poller's own next
  fd takes its number (a signal watch's wakeup-fd socket, the waker's pipe
  where there is no ``EVFILT_USER``), an ``EV_DELETE``/``EV_ADD`` for the
  stale registration would delete or take over the poller's knote.  So, as
  on epoll, the backend remembers the token each number was last added or
  modified under and touches the kernel only for the token it is given: a
  stale modify is ``EBADF``, a stale remove or disarm does nothing.  Where
  nothing of ours took the number, ``EV_DELETE`` finds no knote: ``EBADF``
  for a closed number (FreeBSD ``kqueue_register`` calls ``fget`` first),
  else ``ENOENT`` (FreeBSD, and xnu ``kevent_register`` without looking
  the file up), a regular file's number included.
* kqueue descriptors are not inherited by ``fork()``: in a child the poller
  is retired (see ``_fork.py``) and this backend forgets the numbers without
  closing them, as they may already name other files of the child.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .._flags import ERROR, WRITABLE
from . import _kevent
from . import _kqueue_flags as kf
from ._base import FLAGS_SHIFT, AlwaysReady, Backend, Host, SignalMechanism, TimerMechanism, Waker
from ._kqueue_flags import have
from ._quick import QuickBuffers
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
# A pipe whose reader is gone: FreeBSD's and OpenBSD's pipe_kqfilter refuse
# the write filter with EPIPE, older NetBSD's with EBADF.
_READER_GONE = frozenset((errno.EPIPE, errno.EBADF))
_K_READ_SIDE = _kevent.K_READ | _kevent.K_EXCEPT


class _Helpers:
    """A registration that watches the read side only for RDHUP or PRIORITY (see _kevent)."""

    __slots__ = ("events", "level", "token")

    def __init__(self, token: int, events: int) -> None:
        self.token = token
        self.events = events
        self.level = False


class KqueueBackend(Backend):
    """The kqueue backend (macOS, the BSDs): O(ready) waits, edge and one-shot modes."""

    name = "kqueue"
    capabilities = _kevent.capabilities(kf.KERNEL)
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
        # Changes made outside the poller's lock (events_of) take this one,
        # and so do add/modify/remove around them: the helpers' mode and the
        # probe below.
        self._control = threading.Lock()
        self._helpers: dict[int, _Helpers] = {}
        self._tokens: dict[int, int] = {}  # fd -> the token it was last added or modified under
        self._probe_kq = -1  # a kqueue of its own for one-off write filters, opened when needed
        self._probe_buf = self._buffer(1)
        self._pending: list[int] = []  # keys of one wait beyond its max_events, for the next
        # poll(0)'s quick wait: the handle that closes the kqueue under a
        # quick wait in flight, and its buffers.
        self._handle = ffi.new("struct portaio_quick_handle *")
        self._handle.fd = kq
        self._quick = QuickBuffers(self._new_quick, _FIRST_BUFFER)

    def fileno(self) -> int:
        return self.kq

    # ------------------------------------------------------------ control
    def apply(self, ident: int, changes: list[kf.Change], token: int) -> list[int]:
        """Send (filter, flags, fflags, data) changes for *ident* in one call; each one's errno.

        The change buffer is shared: under the backend's own lock.
        """
        with self._control:
            return self._apply(self.kq, ident, changes, token)

    def _apply(self, kq: int, ident: int, changes: list[kf.Change], token: int) -> list[int]:
        buf = self._changes
        for i, (filt, flags, fflags, data) in enumerate(changes):
            lib.portaio_kq_set(buf, i, ident, filt, flags, fflags, data, token)
        if lib.portaio_kq_apply(kq, buf, len(changes), self._errors) < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[kqueue]: kevent on fd {ident}: {os.strerror(err)}")
        return list(self._errors[0 : len(changes)])

    @staticmethod
    def _raise(err: int, what: str, fd: int) -> None:
        raise OSError(err, f"portaio[kqueue]: {what} fd {fd}: {os.strerror(err)}")

    def _refused(self, fd: int, events: int, changes: list[kf.Change], err: int, what: str) -> OSError:
        """The exception for a filter the kernel refused: always ready, or an error naming why."""
        write_refused = any(f == kf.EVFILT_WRITE for f, _, _, _ in changes)
        if write_refused and err in _READER_GONE and events & WRITABLE and kf.is_fifo(fd):
            return AlwaysReady(
                err,
                f"portaio[kqueue]: fd {fd} is a pipe whose reader is gone ({os.strerror(err)}):"
                " writable, error",
                ready=int(WRITABLE | ERROR),
            )
        if err in _REFUSALS and kf.is_null_device(fd):
            return AlwaysReady(err, f"portaio[kqueue]: fd {fd} is the null device: always ready")
        return OSError(err, f"portaio[kqueue]: {what} fd {fd}: {os.strerror(err)} (kqueue refuses this file)")

    def add(self, fd: int, events: int, token: int) -> None:
        from .._regular_files import is_regular_file

        if is_regular_file(fd):
            raise AlwaysReady(errno.EPERM, f"portaio[kqueue]: fd {fd} is a regular file: always ready")
        adds = kf.adds(events)
        with self._control:
            errors = self._apply(self.kq, fd, adds, token)
            failed, undo = kf.outcome(adds, errors)
            if not failed:
                self._tokens[fd] = token
                if _kevent.uses_helpers(events):
                    self._helpers[fd] = _Helpers(token, events)
                else:
                    self._helpers.pop(fd, None)  # a closed registration's
                return
            if undo:
                self._apply(self.kq, fd, undo, token)
        change, err = failed[0]
        raise self._refused(fd, events, [change], err, "cannot watch")

    def modify(self, fd: int, old_events: int, old_token: int, events: int, token: int) -> None:
        # Delete and add again, in one kevent() call: a knote keeps the
        # EV_CLEAR/EV_DISPATCH it was added with, libkqueue keeps its first
        # udata, and epoll's EPOLL_CTL_MOD likewise re-evaluates readiness
        # (a re-armed one-shot that is ready fires at once).  If an add
        # fails, the old filters come back: the fd is never left half-watched
        # under a token the core has already forgotten.
        with self._control:
            if self._tokens.get(fd) != old_token:
                # Closed, and the number added again since under another
                # token (the poller's own wakeup socket or waker pipe): its
                # knotes are not this registration's (see the module's essay).
                raise OSError(
                    errno.EBADF,
                    f"portaio[kqueue]: cannot modify fd {fd}: it was closed"
                    " (its number names another file now)",
                )
            old = self._helpers.get(fd)
            old_level = old is not None and old.token == old_token and old.level
            deletes = kf.each(old_events, kf.EV_DELETE)
            adds = kf.adds(events)
            errors = self._apply(self.kq, fd, deletes + adds, token)
            # ENOENT on delete: an EV_ONESHOT filter the kernel already dropped.
            bad = [e for e in errors[: len(deletes)] if e and e != errno.ENOENT]
            failed, undo = kf.outcome(adds, errors[len(deletes) :])
            if not bad and not failed:
                self._tokens[fd] = token
                if _kevent.uses_helpers(events):
                    self._helpers[fd] = _Helpers(token, events)
                else:
                    self._helpers.pop(fd, None)
                return
            if undo:
                self._apply(self.kq, fd, undo, token)
            restored = self._apply(self.kq, fd, kf.adds(old_events, old_level), old_token)
        if bad:
            self._raise(bad[0], "cannot modify", fd)
        change, err = failed[0]
        if any(restored):  # pragma: no cover - the old filters went with the file
            self._raise(err, "cannot modify (and the old filters are gone)", fd)
        raise self._refused(fd, events, [change], err, "cannot modify")

    def remove(self, fd: int, events: int, token: int) -> None:
        # EBADF: the fd was closed (kqueue dropped its filters then).  ENOENT:
        # the number now names a file never watched here, or a fired
        # EV_ONESHOT filter.
        with self._control:
            if self._tokens.get(fd) != token:
                return  # closed, and its number added again since: those knotes are another's
            del self._tokens[fd]
            helpers = self._helpers.get(fd)
            if helpers is not None and helpers.token == token:
                del self._helpers[fd]
            errors = self._apply(self.kq, fd, kf.each(events, kf.EV_DELETE), token)
        for err in errors:
            if err and err not in (errno.EBADF, errno.ENOENT):
                self._raise(err, "cannot unwatch", fd)

    def disarm(self, fd: int, events: int, token: int) -> None:
        with self._control:
            if self._tokens.get(fd) == token:  # else another's knotes now (see remove)
                self._apply(self.kq, fd, kf.each(events, kf.EV_DISABLE), token)  # ENOENT/EBADF: gone

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
        # One fd can bring a record per filter (records_per_token), merged
        # into one key: the kernel is asked for that many records, so that
        # max_events fds fit in one call (a list of max_events records would
        # stop at max_events / 3 fds watched three ways).  Keys beyond
        # max_events are kept for the next call, never dropped (an EV_CLEAR
        # edge taken from the kernel is not reported again; libkqueue would
        # lose one left in its epoll list): that call then only polls the
        # kernel, and merges what it finds with them per registration.
        if self._pending:
            with self._control:
                kept, self._pending = self._pending, []
                self._handle.paused = 0
            keys: Sequence[int] = self._kernel_wait(0.0 if kept else timeout, max_events)
            if kept:
                keys = kf.merge_keys(kept, list(keys))
        else:
            keys = self._kernel_wait(timeout, max_events)
        if len(keys) > max_events:
            with self._control:
                self._pending[:0] = keys[max_events:]
                self._handle.paused = 1  # they come first: no quick wait until reported
            keys = keys[:max_events]
        return keys

    def _kernel_wait(self, timeout: float | None, max_events: int) -> Sequence[int]:
        records = max_events * self.records_per_token
        # Several threads may wait on one poller: each takes its own buffers.
        buffers = self._buffers
        entry = buffers.pop() if buffers else self._buffer(_FIRST_BUFFER)
        try:
            if records > entry[4]:
                entry = self._buffer(max(records, 2 * entry[4]))
            events, keys, scratch, slots, _, keybuf = entry
            n = lib.portaio_kq_wait(
                self.kq, events, records, -1.0 if timeout is None else timeout, keys, scratch, slots
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

    # poll(0)'s quick wait (csrc/portaio_kqueue.c, portaio_quick.h).  It asks
    # for room records (the core's room already counts records_per_token per
    # registration), and merged keys are never more than the records: it
    # never has keys over.
    def quick_calls(self) -> tuple[Callable[[Any], int], Callable[[Any], None]] | None:
        return lib.portaio_kq_wait_now, lib.portaio_kq_quick_release

    def quick_buffer(self, room: int) -> tuple[Any, Any]:
        return self._quick.for_room(room)

    def _new_quick(self, size: int) -> tuple[Any, Any, tuple[Any, ...]]:
        events, keys, scratch, slots, _, view = arrays = self._buffer(size)
        quick = ffi.new("struct portaio_kq_quick *")
        quick.handle, quick.events, quick.keys, quick.scratch, quick.slots = (
            self._handle,
            events,
            keys,
            scratch,
            slots,
        )
        return quick, view, arrays

    def events_of(self, flags: int, fd: int, interest: int) -> tuple[int, bool]:
        if not flags & (_kevent.K_EOF | _kevent.K_READ_EMPTY):
            kind = _kevent.SOCKET  # no end of file, nothing odd: what the fd is changes nothing
        else:
            kind = kf.kind_of(fd)
            if kind == _kevent.SOCKET and not flags & _kevent.K_EOF_ERROR:
                # One side shut; the other too (a hang-up)?  Only that side's
                # filter says so (xnu's poll() answers nothing unasked), so a
                # one-off filter asks where the registration has none.
                if flags & _kevent.K_READ_EOF and not flags & _kevent.K_WRITE:
                    flags |= self._probe(fd, kf.EVFILT_WRITE) & (_kevent.K_WRITE_EOF | _kevent.K_EOF_ERROR)
                elif flags & _kevent.K_WRITE_EOF and not flags & _K_READ_SIDE:
                    flags |= self._probe(fd, kf.EVFILT_READ) & (_kevent.K_READ_EOF | _kevent.K_EOF_ERROR)
        ready = _kevent.translate_bits(flags, interest, kind, kf.KERNEL)
        cacheable = not flags & _kevent.K_EOF
        if flags & _K_READ_SIDE and _kevent.uses_helpers(interest):
            cacheable = False
            self._switch_helpers(fd, flags, ready)
        return ready, cacheable

    def _switch_helpers(self, fd: int, flags: int, ready: int) -> None:
        """Re-add a registration's helper filters level- or edge-triggered (see _kevent)."""
        with self._control:
            helpers = self._helpers.get(fd)
            if helpers is None or self.kq < 0:
                return
            level = _kevent.helper_level(flags, helpers.events, ready, helpers.level)
            if level is None:
                return
            new = [c for c in kf.adds(helpers.events, level) if c[0] != kf.EVFILT_WRITE]
            changes = [(f, kf.EV_DELETE, 0, 0) for f, _, _, _ in new] + new
            if not any(self._apply(self.kq, fd, changes, helpers.token)):
                helpers.level = level

    def _probe(self, fd: int, filt: int) -> int:
        """The summary bits of a one-off *filt* filter on *fd*, in a kqueue of its own."""
        with self._control:
            if self._probe_kq < 0:
                kq = int(lib.portaio_kq_open())
                if kq < 0:
                    return 0
                self._probe_kq = kq
            kq = self._probe_kq
            if self._apply(kq, fd, [(filt, kf.EV_ADD | kf.EV_ONESHOT, 0, 0)], 0)[0]:
                return 0
            events, keys, scratch, slots, _, _ = self._probe_buf
            n = lib.portaio_kq_wait(kq, events, 1, 0.0, keys, scratch, slots)
            bits = int(keys[0]) >> FLAGS_SHIFT if n > 0 else 0  # token | bits << FLAGS_SHIFT
            self._apply(kq, fd, [(filt, kf.EV_DELETE, 0, 0)], 0)  # ENOENT: it fired
            return bits

    def close(self) -> None:
        with self._control:
            probe, self._probe_kq = self._probe_kq, -1
            self._helpers.clear()
            self._tokens.clear()
            self._pending.clear()
        if probe >= 0:
            lib.portaio_kq_close(probe)
        kq, self.kq = self.kq, -1
        # Closed now, or by the last quick wait in flight (poll(0) in another
        # thread does not defer close(), see csrc/portaio_quick.h).
        if kq >= 0 and lib.portaio_kq_handle_close(self._handle) and lib.portaio_kq_close(kq) < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[kqueue]: close: {os.strerror(err)}")

    def close_after_fork(self) -> None:
        # A forked child has no kqueue (libkqueue closes its emulation's fds
        # too): forget the numbers without closing them.
        self.kq = self._probe_kq = -1
        lib.portaio_kq_handle_close(self._handle)  # no quick wait on the forgotten number
        self._helpers.clear()
        self._tokens.clear()
        self._pending.clear()

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
        # xnu's EVFILT_SIGNAL misses a signal sent to one thread and sees a
        # process-directed one beside Python's handler: there Python's
        # wakeup fd alone counts every delivery once (the portable default).
        if have("EVFILT_SIGNAL") and kf.KERNEL.signals != _kevent.MACOS.signals:
            from ._kqueue_signals import KqueueSignals

            return KqueueSignals(host, self, LIBKQUEUE)
        return super().make_signals(host)
