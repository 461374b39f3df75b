"""Linux epoll, on portaio's own cffi bindings (``portaio._epoll_cffi``, ``csrc/portaio_epoll.c``).

Each registration's ``epoll_data`` holds its 24-bit token (a modify makes a
new one).  The C wait turns every ``struct epoll_event`` into one
``uint64_t`` key, ``token | events << 24``, the same on every architecture
(x86-64 packs the struct to 12 bytes, the others pad it to 16: Python never
sees it), and one ``struct`` unpack (``_unpack.py``) makes the integers the
poller maps to cached events.

Kernel facts this backend relies on:

* ``EPOLL_CTL_ADD`` refuses files without a poll method (regular files,
  directories, ``/dev/null``) with ``EPERM``, and only those; ``poll(2)``
  reports them always readable and writable, so :class:`AlwaysReady`.
* ``EPOLLONESHOT`` disarms the registration in the kernel once reported;
  ``EPOLL_CTL_MOD`` re-arms it and re-evaluates readiness.
* ``EPOLL_CTL_MOD`` refuses ``EPOLLEXCLUSIVE`` (EINVAL): a change to or from
  it is a delete and an add, the old registration added back on failure.
* an entry is keyed by the open file *and* the number: ``EPOLL_CTL_ADD``
  says ``EEXIST`` for a number still naming the file it was added for, and
  succeeds for a new file that took the number of a closed one (the old
  entry went with its file, or stays under that file's key while a dup holds
  it open).  So the core needs no ``fstat`` to tell a reused number
  (``add_tells_same_file``);
* ``EPOLL_CTL_DEL`` says ``EBADF`` for a closed fd (epoll dropped it with
  the file's last reference), ``ENOENT`` for a number now naming another
  file and ``EPERM`` for one now naming a file epoll cannot watch (a regular
  file): either way the registration is gone and its token unknown, so an
  event still queued for it is dropped, never misdelivered;
* ``EPOLL_CTL_MOD`` and ``EPOLL_CTL_DEL`` name the entry by the file the
  number names *now*: if a registered fd is closed without ``unregister``
  and the poller's own next fd (a timerfd made on the first timer, the
  signalfd) takes its number, a modify or delete of the stale registration
  would reach the poller's entry.  So the backend remembers the token each
  number was last added or modified under, and touches the kernel only for
  the token it is given: a stale modify is ``EBADF`` (its file is closed), a
  stale remove does nothing (its entry went with its file).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from typing import Any

from .._flags import EDGE, ERROR, EXCLUSIVE, HANGUP, ONESHOT, PRIORITY, RDHUP, READABLE, WRITABLE
from .._signals import WakeupFdSource
from .._types import Capabilities
from ._base import AlwaysReady, Backend, Host, SignalMechanism, TimerMechanism, Waker
from ._flag_maps import translate
from ._quick import QuickBuffers
from ._unpack import unpacker, unpackers

try:
    from .._epoll_cffi import ffi, lib
except ImportError as _err:  # pragma: no cover - depends on the build
    UNAVAILABLE: str | None = f"the compiled module portaio._epoll_cffi is missing ({_err})"
else:
    UNAVAILABLE = None

__all__ = ["UNAVAILABLE", "EpollBackend"]

_FIRST_BUFFER = 64  # keys; grown up to what the poller asks (bounded by its registrations)

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
    _wait = lib.portaio_epoll_wait
else:  # pragma: no cover
    _TO_KERNEL = _FROM_KERNEL = []


def _new_buffer(records: int) -> tuple[Any, Any]:
    """Room for *records* kernel records (at most 16 bytes each) and its bytes for the unpack."""
    keys = ffi.new("uint64_t[]", 2 * records)
    return keys, ffi.buffer(keys)


class EpollBackend(Backend):
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
    refuses_files = True
    oneshot_in_kernel = True
    add_tells_same_file = True

    def __init__(self) -> None:
        if UNAVAILABLE is not None:
            raise OSError(errno.ENOSYS, f"portaio[epoll]: {UNAVAILABLE}")
        epfd = lib.epoll_create1(lib.EPOLL_CLOEXEC)
        if epfd < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[epoll]: epoll_create1: {os.strerror(err)}")
        self._epfd = epfd
        self._tokens: dict[int, int] = {}  # fd -> the token it was last added or modified under
        self._size = _FIRST_BUFFER  # records every buffer of the pool has room for (see wait())
        self._pool: list[tuple[Any, Any]] = [_new_buffer(_FIRST_BUFFER)]
        # The quick wait's: the handle that closes the fd under a quick wait
        # in flight, and its buffers.
        self._handle = ffi.new("struct portaio_quick_handle *")
        self._handle.fd = epfd
        self._quick = QuickBuffers(self._new_quick, _FIRST_BUFFER)

    def fileno(self) -> int:
        return self._epfd

    # ------------------------------------------------------------ control
    def _ctl(self, op: int, fd: int, events: int, token: int) -> int:
        if lib.portaio_epoll_ctl(self._epfd, op, fd, translate(events, _TO_KERNEL), token) < 0:
            return ffi.errno
        return 0

    def add(self, fd: int, events: int, token: int) -> None:
        err = self._ctl(lib.EPOLL_CTL_ADD, fd, events, token)
        if err == errno.EPERM:
            raise AlwaysReady(err, f"portaio[epoll]: fd {fd} cannot be watched: always ready")
        if err:
            raise OSError(err, f"portaio[epoll]: cannot watch fd {fd}: {os.strerror(err)}")
        self._tokens[fd] = token

    def modify(self, fd: int, old_events: int, old_token: int, events: int, token: int) -> None:
        if self._tokens.get(fd) != old_token:
            # Closed, and the number added again since under another token
            # (the poller's own timerfd or signalfd): not this registration's entry.
            raise OSError(
                errno.EBADF,
                f"portaio[epoll]: cannot modify fd {fd}: it was closed (its number names another file now)",
            )
        if (old_events | events) & EXCLUSIVE:
            # EPOLL_CTL_MOD refuses EPOLLEXCLUSIVE (EINVAL): delete and add again.
            err = self._ctl(lib.EPOLL_CTL_DEL, fd, old_events, old_token)
            if not err:
                err = self._ctl(lib.EPOLL_CTL_ADD, fd, events, token)
                if err:
                    self._ctl(lib.EPOLL_CTL_ADD, fd, old_events, old_token)  # keep the old one working
        else:
            err = self._ctl(lib.EPOLL_CTL_MOD, fd, events, token)
        if err:
            raise OSError(err, f"portaio[epoll]: cannot modify fd {fd}: {os.strerror(err)}")
        self._tokens[fd] = token

    def remove(self, fd: int, events: int, token: int) -> None:
        if self._tokens.get(fd) != token:
            return  # closed, and its number added again since: that entry is another's
        del self._tokens[fd]
        err = self._ctl(lib.EPOLL_CTL_DEL, fd, 0, token)
        if err and err not in (errno.EBADF, errno.ENOENT, errno.EPERM):
            raise OSError(err, f"portaio[epoll]: cannot unwatch fd {fd}: {os.strerror(err)}")

    # --------------------------------------------------------------- wait
    # The hot path.  A buffer is a ``uint64_t[2 * size]`` (room for size
    # kernel records, which the C wait turns into keys in place) and a
    # ``ffi.buffer`` over it for the struct unpack.  The poller's buffer
    # waits in ``_pool``; a thread that finds the pool empty (another thread
    # is waiting) makes its own, and both go back, so the pool holds as many
    # buffers as threads ever waited at once.  ``pop`` and ``append`` are
    # atomic: two waits never share a buffer, and one goes back only once its
    # keys are read.  No try/finally: a buffer lost to an exception is
    # garbage, and the next wait makes another.
    def wait(self, timeout: float | None, max_events: int) -> Sequence[int]:
        if max_events > self._size:
            self._grow(max_events)
        pool = self._pool  # read after the size: see _grow()
        try:
            entry = pool.pop()
        except IndexError:
            entry = _new_buffer(self._size)
        keys = entry[0]
        n = _wait(self._epfd, keys, max_events, -1.0 if timeout is None else timeout)
        if n == 1:
            one = [keys[0]]  # one ready fd, the commonest wait: cheaper than an unpack
            pool.append(entry)
            return one
        if n > 0:
            got = (unpackers.get(n) or unpacker(n))(entry[1])
            pool.append(entry)
            return got
        pool.append(entry)
        if n < 0:
            err = ffi.errno
            # EINTR: return to Python, where pending signal handlers run
            # (and may raise); the poller then waits for the time left.
            if err != errno.EINTR and self._epfd >= 0:
                raise OSError(err, f"portaio[epoll]: epoll_wait: {os.strerror(err)}")
        return ()

    # poll(0)'s quick wait (csrc/portaio_epoll.c): ``portaio_epoll_wait_now(q)``
    # for a ``struct portaio_epoll_quick`` q: the handle, a key buffer and the
    # room, which the poller sets through quick_buffer() when it changes, so
    # that the call needs no other argument.  The C guards the buffer (one
    # thread at a time) and the fd (closed by the last quick wait out).
    def quick_calls(self) -> tuple[Callable[[Any], int], Callable[[Any], None]] | None:
        return lib.portaio_epoll_wait_now, lib.portaio_epoll_quick_release

    def quick_buffer(self, room: int) -> tuple[Any, Any]:
        return self._quick.for_room(room)

    def _new_quick(self, size: int) -> tuple[Any, Any, tuple[Any, ...]]:
        keys = ffi.new("uint64_t[]", 2 * size)  # size records, then size keys
        quick = ffi.new("struct portaio_epoll_quick *")
        quick.handle, quick.keys = self._handle, keys
        return quick, ffi.buffer(keys), (keys,)

    def _grow(self, max_events: int) -> None:
        # Every buffer of a pool has room for the size published with it: the
        # new pool goes first, then its size, so a wait that read the new
        # size takes from the new pool, and one that read an older size asks
        # for no more than any buffer of either pool holds.  Buffers of an
        # old pool go back to it and are dropped with it.
        size = max(max_events, 2 * self._size)
        self._pool = [_new_buffer(size)]
        self._size = size

    def events_of(self, flags: int, fd: int, interest: int) -> tuple[int, bool]:
        return translate(flags, _FROM_KERNEL), True

    def close(self) -> None:
        epfd, self._epfd = self._epfd, -1
        # Closed now, or by the last quick wait in flight (poll(0) in another
        # thread does not defer close(), see csrc/portaio_quick.h).
        if epfd >= 0 and lib.portaio_epoll_handle_close(self._handle):
            os.close(epfd)

    def close_after_fork(self) -> None:
        # The child's copy: no quick wait is in flight here, whatever the
        # parent's count says (a thread of the parent may have been waiting).
        epfd, self._epfd = self._epfd, -1
        if epfd >= 0:
            lib.portaio_epoll_handle_close(self._handle)
            os.close(epfd)

    # ------------------------------------------------------------ sources
    # eventfd for wake(), a timerfd armed to the earliest deadline (absolute,
    # CLOCK_MONOTONIC, no timer slack, unlike epoll_pwait2's timeout) and the
    # process-wide signalfd of ``_signalfd.py``; all CLOEXEC | NONBLOCK.
    # Signals: the signalfd takes what the kernel delivers while they are
    # blocked; Python's wakeup fd catches those a thread that does not block
    # them took (it runs Python's C-level handler, which writes there).
    def make_waker(self, host: Host) -> Waker:
        from ._eventfd_waker import EventfdWaker

        return EventfdWaker(host)

    def make_timer(self, host: Host) -> TimerMechanism:
        from ._timerfd_timer import TimerfdTimer

        return TimerfdTimer(host)

    def make_signals(self, host: Host) -> SignalMechanism:
        from ._shared_signals import SharedSignals
        from ._signalfd import SignalfdSource

        return SharedSignals(host, (SignalfdSource, WakeupFdSource))
