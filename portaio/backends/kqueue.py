"""kqueue (macOS and the BSDs; libkqueue elsewhere), on portaio's own cffi bindings.

Each registration's filters carry a 32-bit token in ``udata`` (a modify makes
a new one).  The C side of one wait (``portaio_kq_wait``) merges the read and
write filters of one fd into a single 64-bit key, ``token << 32 | bits``
(``PORTAIO_K_*``), so the fast path is one ``kevent`` call, one
``ffi.unpack`` and one dict lookup per fd into a cache of ready-made
:class:`~portaio.Event` objects.  A miss (new combination, end of file, a
one-shot registration, an internal fd, or a token no longer registered) takes
the slow path.

kqueue's words differ from epoll's; the slow path translates them so every
backend reports the same thing:

* ``EV_EOF`` on the read filter of a socket is RDHUP; HANGUP and ERROR after
  an EOF are what ``poll(2)`` says of the fd (both directions closed, an error
  pending), so a local ``shutdown(SHUT_WR)``, which sets ``EV_EOF`` on the
  write filter, is no hang-up.  EOF events are never cached.
* ``EV_EOF`` with a non-zero ``fflags`` (the socket's pending error, e.g. a
  reset) is ERROR.
* ONESHOT is ``EV_DISPATCH``: the fired filter is disabled by the kernel, the
  registration's other filters by portaio, until ``modify`` re-enables them.
* Regular files and directories are always ready, as on the other backends
  (kqueue would call a file at its end unreadable).
* kqueue descriptors are not inherited by ``fork()``: a child's poller makes a
  new kqueue and registers everything again before its first use, never
  touching the parent's descriptor number.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import stat
import time
from collections.abc import Callable
from typing import Any

from .._flags import (
    ALWAYS_REPORTED,
    EDGE,
    ERROR,
    HANGUP,
    ONESHOT,
    PRIORITY,
    RDHUP,
    READABLE,
    WRITABLE,
)
from .._poller import DEFAULT_MAX_EVENTS, Poller
from .._regular_files import is_regular_file
from .._types import Capabilities, Event, Registration

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

__all__ = ["LIBKQUEUE", "UNAVAILABLE", "KqueuePoller"]

_BATCH = 8  # most changes one register/modify sends in one kevent() call
_INT_MAX = 2**31 - 1


def _have(name: str) -> bool:
    return UNAVAILABLE is None and bool(getattr(lib, f"PORTAIO_HAVE_{name}"))


_HAVE_PRIORITY = _have("EVFILT_EXCEPT") and _have("NOTE_OOB")
if UNAVAILABLE is None:
    _EVFILT_READ = int(lib.EVFILT_READ)
    _EVFILT_WRITE = int(lib.EVFILT_WRITE)
    _EVFILT_EXCEPT = int(lib.PORTAIO_EVFILT_EXCEPT)
    _EVFILT_SIGNAL = int(lib.PORTAIO_EVFILT_SIGNAL)
    _EV_ADD, _EV_DELETE = int(lib.EV_ADD), int(lib.EV_DELETE)
    _EV_DISABLE = int(lib.EV_DISABLE)
    _EV_CLEAR = int(lib.EV_CLEAR)
    # EV_DISPATCH disables a fired filter so modify can re-enable it; where
    # it is missing EV_ONESHOT deletes it and modify adds it again.
    _EV_ONCE = int(lib.PORTAIO_EV_DISPATCH) if _have("EV_DISPATCH") else int(lib.EV_ONESHOT)
    _NOTE_OOB = int(lib.PORTAIO_NOTE_OOB)
    _NOTE_LOWAT = int(lib.PORTAIO_NOTE_LOWAT) if _have("NOTE_LOWAT") else 0
    _K_READ, _K_READ_EOF = int(lib.PORTAIO_K_READ), int(lib.PORTAIO_K_READ_EOF)
    _K_WRITE, _K_WRITE_EOF = int(lib.PORTAIO_K_WRITE), int(lib.PORTAIO_K_WRITE_EOF)
    _K_ERROR, _K_PRIORITY = int(lib.PORTAIO_K_ERROR), int(lib.PORTAIO_K_PRIORITY)
    _K_OTHER = int(lib.PORTAIO_K_OTHER)
else:  # pragma: no cover
    _EVFILT_READ = _EVFILT_WRITE = _EVFILT_EXCEPT = _EVFILT_SIGNAL = 0
    _EV_ADD = _EV_DELETE = _EV_DISABLE = _EV_CLEAR = _EV_ONCE = 0
    _NOTE_OOB = _NOTE_LOWAT = 0
    _K_READ = _K_READ_EOF = _K_WRITE = _K_WRITE_EOF = _K_ERROR = _K_PRIORITY = _K_OTHER = 0
_K_EOF = _K_READ_EOF | _K_WRITE_EOF
_POLLHUP: int = getattr(select, "POLLHUP", 16)
_POLLERR: int = getattr(select, "POLLERR", 8)

_REFUSALS = frozenset(
    getattr(errno, name)
    for name in ("EPERM", "EINVAL", "ENODEV", "ENOTSUP", "EOPNOTSUPP")
    if hasattr(errno, name)
)

# The idents of the poller's own EVFILT_USER (wake) and EVFILT_TIMER knotes;
# each filter has its own ident space, so they never meet an fd's.
_WAKE_IDENT = 0
_TIMER_IDENT = 0
_TIMER_MAX = 86400.0  # longest single arming; a later deadline is re-armed on firing
_monotonic = time.monotonic


class _LibkqueueMask:
    """Undo libkqueue's signal blocking when the last watch of a signal goes.

    libkqueue's EVFILT_SIGNAL blocks the signal in the thread that adds it
    (signalfd only sees blocked signals) and leaves it blocked after
    ``EV_DELETE``; a native kqueue never touches the mask.  portaio promises
    the mask as it was, so it unblocks what libkqueue blocked, once no kqueue
    poller of the process watches the signal any more.
    """

    def __init__(self) -> None:
        self.watches: dict[int, int] = {}
        self.was_blocked: dict[int, bool] = {}

    def watch(self, signum: int) -> None:
        if not self.watches.get(signum):
            self.was_blocked[signum] = signum in signal.pthread_sigmask(signal.SIG_BLOCK, ())
        self.watches[signum] = self.watches.get(signum, 0) + 1

    def unwatch(self, signum: int) -> None:
        left = self.watches.get(signum, 0) - 1
        if left > 0:
            self.watches[signum] = left
            return
        self.watches.pop(signum, None)
        if not self.was_blocked.pop(signum, True):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})


_libkqueue_mask = _LibkqueueMask()


class _AlwaysReady(OSError):
    """Raised by ``_add`` for regular files, which the poller reports as always ready."""


def _poll_says(fd: int) -> int:
    """What ``poll(2)`` reports of *fd* unasked: HANGUP and ERROR bits, in portaio's terms."""
    probe = select.poll()
    probe.register(fd, 0)
    ready = 0
    for _, bits in probe.poll(0):
        if bits & _POLLHUP:
            ready |= HANGUP
        if bits & _POLLERR:
            ready |= ERROR
    return ready


def _is_fifo(fd: int) -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False


def _access_mode(fd: int) -> int:
    try:
        return fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError:
        return -1


def _is_socket(fd: int) -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


def _adds(events: int) -> list[tuple[int, int, int, int]]:
    """The (filter, flags, fflags, data) changes that add the filters for an interest mask."""
    mode = _EV_ADD
    if events & EDGE:
        mode |= _EV_CLEAR
    if events & ONESHOT:
        mode |= _EV_ONCE
    out = []
    # The write filter goes first: libkqueue watches a socket's two filters
    # through one epoll registration and keeps only the option bits of the
    # filter added last, so a read filter added before the write filter loses
    # EPOLLRDHUP, and a peer's shutdown is no EV_EOF while data is unread.
    if events & WRITABLE:
        out.append((_EVFILT_WRITE, mode, 0, 0))
    if events & READABLE:
        out.append((_EVFILT_READ, mode, 0, 0))
    elif events & (RDHUP | PRIORITY):
        # Without READABLE, the read filter is there for end of file: a
        # socket's reports it whatever its low-water mark, so a huge one
        # keeps plain data from waking the poll.  For PRIORITY alone it only
        # brings hang-ups (EVFILT_EXCEPT says nothing of them); a half-close
        # is no hang-up and nothing to report, so it is edge-triggered there
        # to never wake a poll again and again for nothing.
        lowat = (_NOTE_LOWAT, _INT_MAX) if _NOTE_LOWAT else (0, 0)
        helper = mode if events & RDHUP else mode | _EV_CLEAR
        out.append((_EVFILT_READ, helper, *lowat))
    if events & PRIORITY:
        out.append((_EVFILT_EXCEPT, mode, _NOTE_OOB, 0))
    return out


def _each(events: int, flags: int) -> list[tuple[int, int, int, int]]:
    """The changes applying *flags* (EV_DELETE, EV_DISABLE) to every filter of an interest mask."""
    return [(f, flags, 0, 0) for f, _, _, _ in _adds(events)]


class KqueuePoller(Poller):
    """The kqueue backend (macOS, the BSDs): O(ready) waits, edge and one-shot modes."""

    name = "kqueue"
    capabilities = Capabilities(
        edge=True,
        oneshot=True,
        exclusive=False,
        priority=_HAVE_PRIORITY,
        rdhup=True,
        hangup=True,
        o1_wait=True,
        timeout_resolution=1e-9,
        max_fd=None,
        native_timers="EVFILT_TIMER",
        native_signals="EVFILT_SIGNAL",
        native_wake="EVFILT_USER",
    )

    _kq: int

    def _open(self) -> None:
        if UNAVAILABLE is not None:
            raise OSError(errno.ENOSYS, f"portaio[kqueue]: {UNAVAILABLE}")
        kq = int(lib.portaio_kq_open())
        if kq < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[kqueue]: kqueue: {os.strerror(err)}")
        self._kq = kq
        self._by_token: dict[int, Registration] = {}
        # Tokens of the poller's own knotes (wake-up, timer, signals): their
        # handler gets the event's data (a count for signals).
        self._own: dict[int, Callable[[int], Event | None]] = {}
        self._wake_token = 0
        self._timer_token = 0
        self._signal_tokens: dict[int, int] = {}
        self._changes = ffi.new("struct kevent[]", _BATCH)
        self._errors = ffi.new("int[]", _BATCH)
        self._buffers: list[tuple[Any, ...]] = []

    def _backend_fileno(self) -> int:
        return self._kq

    # ------------------------------------------------------------ control
    def _apply(self, fd: int, changes: list[tuple[int, int, int, int]], token: int) -> list[int]:
        """Send (filter, flags, fflags, data) changes for *fd* in one call; each one's errno."""
        kq = self._kq
        buf = self._changes
        for i, (filt, flags, fflags, data) in enumerate(changes):
            lib.portaio_kq_set(buf, i, fd, filt, flags, fflags, data, token)
        if lib.portaio_kq_apply(kq, buf, len(changes), self._errors) < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[kqueue]: kevent on fd {fd}: {os.strerror(err)}")
        return list(self._errors[0 : len(changes)])

    def _raise(self, err: int, what: str, fd: int) -> None:
        raise OSError(err, f"portaio[kqueue]: {what} fd {fd}: {os.strerror(err)}")

    def _add(self, reg: Registration) -> None:
        if reg.handler is None and is_regular_file(reg.fd):
            raise _AlwaysReady(errno.EPERM, "regular file")
        adds = _adds(reg.events)
        with self._lock:
            # Known before the kernel hears of it: a thread already waiting
            # may get its first event before kevent() returns here.
            self._by_token[reg.token] = reg
            try:
                errors = self._apply(reg.fd, adds, reg.token)
            except OSError:
                del self._by_token[reg.token]
                raise
            failed = [e for e in errors if e]
            if failed:
                del self._by_token[reg.token]
                done = [(f, _EV_DELETE, 0, 0) for (f, *_), e in zip(adds, errors) if not e]
                if done:
                    self._apply(reg.fd, done, reg.token)
                self._raise(failed[0], "cannot watch", reg.fd)

    def _kernel_refuses(self, reg: Registration, err: OSError) -> bool:
        # Regular files and directories, and files kqueue cannot watch at all
        # (/dev/null: EINVAL, ENODEV or ENOTSUP natively, EPERM from libkqueue's
        # epoll), are always ready, as poll(2) reports them.
        if isinstance(err, _AlwaysReady):
            return True
        return err.errno in _REFUSALS and not _is_socket(reg.fd) and not _is_fifo(reg.fd)

    def _modify(self, old: Registration, new: Registration) -> None:
        # Delete and add again, in one kevent() call: a knote keeps the
        # EV_CLEAR/EV_DISPATCH it was added with, libkqueue keeps its first
        # udata, and epoll's EPOLL_CTL_MOD likewise re-evaluates readiness
        # (a re-armed one-shot that is ready fires at once).
        changes = _each(old.events, _EV_DELETE)
        n_deletes = len(changes)
        changes += _adds(new.events)
        with self._lock:
            self._by_token[new.token] = new  # before the kernel: see _add
            try:
                errors = self._apply(new.fd, changes, new.token)
            except OSError:
                del self._by_token[new.token]
                raise
            for i, err in enumerate(errors):
                # ENOENT on delete: an EV_ONESHOT filter the kernel already dropped.
                if err and not (i < n_deletes and err == errno.ENOENT):
                    del self._by_token[new.token]
                    self._raise(err, "cannot modify", new.fd)
            self._by_token.pop(old.token, None)

    def _remove(self, reg: Registration) -> None:
        # EBADF: the fd was closed (kqueue dropped its filters then).  ENOENT:
        # the number now names a file never watched here, or a fired
        # EV_ONESHOT filter.  Either way the token makes any event still
        # queued for it unrecognisable, so it is dropped, never misdelivered.
        with self._lock:
            self._by_token.pop(reg.token, None)
            changes = _each(reg.events, _EV_DELETE)
            for err in self._apply(reg.fd, changes, reg.token):
                if err and err not in (errno.EBADF, errno.ENOENT):
                    self._raise(err, "cannot unwatch", reg.fd)

    def _disarm(self, reg: Registration) -> None:
        """A ONESHOT registration fired: silence its other filters until modify."""
        reg.armed = False
        changes = _each(reg.events, _EV_DISABLE)
        self._apply(reg.fd, changes, reg.token)  # ENOENT/EBADF: already gone

    # --------------------------------------------------------------- wait
    def _buffer(self, max_events: int) -> tuple[Any, ...]:
        size = max(max_events, DEFAULT_MAX_EVENTS)
        slots = 1
        while slots < 2 * size:
            slots *= 2
        return (
            ffi.new("struct kevent[]", size),
            ffi.new("uint64_t[]", size),
            ffi.new("int64_t[]", size),
            ffi.new("int[]", [-1] * (size + slots)),
            slots,
            size,
        )

    def _wait(self, timeout: float | None, max_events: int) -> list[Event] | None:
        kq = self._kq
        # Several threads may wait on one poller: each takes its own buffers.
        buffers = self._buffers
        entry = buffers.pop() if buffers else self._buffer(max_events)
        try:
            if max_events > entry[5]:
                entry = self._buffer(max_events)
            events, keys, datas, scratch, slots, _ = entry
            n = lib.portaio_kq_wait(
                kq, events, max_events, -1.0 if timeout is None else timeout, keys, datas, scratch, slots
            )
            if n <= 0:
                if n < 0:
                    err = ffi.errno
                    if err == errno.EINTR or self._closed:
                        return None  # Python signal handlers run as we return
                    raise OSError(err, f"portaio[kqueue]: kevent: {os.strerror(err)}")
                return None
            flat: list[int] = ffi.unpack(keys, n)
            try:
                return list(map(self._cache.__getitem__, flat))
            except KeyError:
                return self._slow_path(flat, datas)
        finally:
            buffers.append(entry)

    def _slow_path(self, keys: list[int], datas: Any) -> list[Event]:
        out: list[Event] = []
        cache = self._cache
        by_token = self._by_token
        for i, key in enumerate(keys):
            event = cache.get(key)
            if event is not None:
                out.append(event)
                continue
            bits = key & 0xFFFFFFFF
            reg = by_token.get(key >> 32)
            if reg is None:
                own = self._own.get(key >> 32)
                if own is not None:
                    internal = own(int(datas[i]))
                    if internal is not None:
                        out.append(internal)
                continue  # else unregistered or modified since the kernel queued it
            if reg.handler is not None:
                internal = reg.handler()
                if internal is not None:
                    out.append(internal)
                continue
            if bits & _K_OTHER:
                continue
            ready = 0
            if bits & _K_READ:
                ready |= READABLE
            if bits & _K_WRITE:
                ready |= WRITABLE
            if bits & _K_PRIORITY:
                ready |= PRIORITY
            if bits & _K_ERROR:
                ready |= ERROR
            if bits & _K_EOF:
                if _is_socket(reg.fd):
                    # Half a socket's end is no hang-up: poll(2) says when
                    # both directions are closed.
                    if bits & _K_READ_EOF:
                        ready |= RDHUP
                    ready |= _poll_says(reg.fd)
                else:
                    # A pipe, FIFO or tty whose other end is gone: as poll(2)
                    # and epoll say, a hang-up for the reading end (alone
                    # once drained, where kqueue says readable), an error
                    # for the writing end, whichever filter noticed.
                    # An end that cannot read (write) is never readable (writable).
                    mode = _access_mode(reg.fd)
                    drained = bits & _K_READ_EOF and datas[i] <= 0
                    if mode == os.O_WRONLY:
                        ready = (ready | ERROR) & ~READABLE
                    elif mode == os.O_RDONLY:
                        ready = (ready | HANGUP) & ~(WRITABLE | (READABLE if drained else 0))
                    else:  # read-write (a FIFO, a tty): the filter says which side
                        if bits & _K_READ_EOF:
                            ready = (ready | HANGUP) & ~(READABLE if drained else 0)
                        if bits & _K_WRITE_EOF:
                            ready |= ERROR
            ready &= reg.events | ALWAYS_REPORTED
            if not ready:
                continue
            if reg.events & ONESHOT:
                with self._lock:
                    if not reg.armed or by_token.get(reg.token) is not reg:
                        continue
                    self._disarm(reg)
                out.append(Event(reg.fd, ready, reg.data))
            else:
                out.append(self._remember(reg, key, ready, cache=not bits & _K_EOF))
        return out

    def _close_backend(self) -> None:
        self._by_token.clear()
        self._own.clear()
        kq, self._kq = self._kq, -1
        if kq >= 0 and lib.portaio_kq_close(kq) < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[kqueue]: close: {os.strerror(err)}")

    def _close_after_fork(self) -> None:
        # A forked child has no kqueue (libkqueue closes its emulation's fds
        # too): forget the number without closing it, as it may already name
        # another file of the child.  Only a fallback wake-up pipe is ours.
        if not self._wake_token:
            self._close_wake()
        if LIBKQUEUE:
            for signum in self._signal_tokens:
                _libkqueue_mask.unwatch(signum)
        self._signal_tokens.clear()
        self._by_token.clear()
        self._own.clear()
        self._kq = -1

    # ------------------------------------ timers, signals, wake-ups (native)
    # EVFILT_USER for wake(), one EVFILT_TIMER armed to the earliest deadline
    # in the finest unit the system has, and EVFILT_SIGNAL per watched signal
    # (each kqueue hears of every delivery by itself, no shared source).
    # Where the header lacks one, the portable default of Poller is used.

    def _new_own(self, handler: Callable[[int], Event | None]) -> int:
        token = self._new_token()
        self._own[token] = handler
        return token

    def _open_wake(self) -> None:
        if not (_have("EVFILT_USER") and _have("NOTE_TRIGGER")):
            super()._open_wake()
            return
        token = self._new_own(lambda _data: self._wake_fired())
        if lib.portaio_kq_user_add(self._kq, _WAKE_IDENT, token) < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[kqueue]: EVFILT_USER: {os.strerror(err)}")
        self._wake_token = token

    def _post_wake(self) -> None:
        if not self._wake_token:
            super()._post_wake()
            return
        # Safe from any thread and from a signal handler: no shared buffer.
        # EBADF: closed meanwhile, nobody waits any more.
        lib.portaio_kq_user_trigger(self._kq, _WAKE_IDENT, self._wake_token)

    def _close_wake(self) -> None:
        if not self._wake_token:
            super()._close_wake()
        # An EVFILT_USER knote goes with its kqueue.

    def _arm_timer(self, deadline: float | None) -> bool:
        if not _have("EVFILT_TIMER") or self._kq < 0:
            return False
        if not self._timer_token:
            if deadline is None:
                return True
            self._timer_token = self._new_own(self._on_timer)
        seconds = -1.0 if deadline is None else min(max(deadline - _monotonic(), 0.0), _TIMER_MAX)
        if lib.portaio_kq_timer(self._kq, _TIMER_IDENT, seconds, self._timer_token) < 0:
            err = ffi.errno
            if deadline is None and err == errno.ENOENT:
                return True  # the one-shot timer fired and went
            if deadline is None:
                raise OSError(err, f"portaio[kqueue]: EVFILT_TIMER: {os.strerror(err)}")
            return False  # poll() bounds its wait by the deadline instead
        return True

    def _on_timer(self, _expirations: int) -> Event | None:
        self._timer_fired()
        return None

    def _watch_signal(self, signum: int) -> None:
        if not _have("EVFILT_SIGNAL"):
            super()._watch_signal(signum)
            return
        token = self._new_own(lambda count: self._signal_arrived(signum, count))
        self._signal_tokens[signum] = token
        if LIBKQUEUE:
            # Native EVFILT_SIGNAL records every delivery, handled or not.
            # libkqueue reads a signalfd, which misses the deliveries taken by
            # a thread not blocking the signal (one started before, say); only
            # Python's C handler sees those, in that thread, and a poll()
            # blocked in kevent() in this thread would not wake for them.
            # Python's wakeup fd, watched here, counts them and wakes it.
            super()._watch_signal(signum)
            _libkqueue_mask.watch(signum)
        err = self._apply(signum, [(_EVFILT_SIGNAL, _EV_ADD, 0, 0)], token)[0]
        if err:
            del self._signal_tokens[signum], self._own[token]
            if LIBKQUEUE:
                _libkqueue_mask.unwatch(signum)
                super()._unwatch_signal(signum)
            self._raise(err, "cannot watch signal", signum)

    def _unwatch_signal(self, signum: int) -> None:
        token = self._signal_tokens.pop(signum, 0)
        if not token:
            super()._unwatch_signal(signum)
            return
        self._own.pop(token, None)
        if self._kq >= 0:
            self._apply(signum, [(_EVFILT_SIGNAL, _EV_DELETE, 0, 0)], token)
        if LIBKQUEUE:
            _libkqueue_mask.unwatch(signum)
            super()._unwatch_signal(signum)
