"""The backend contract: what a kernel mechanism must provide to :class:`~portaio.Poller`.

The poller (``portaio/_poller.py``) is backend-free: it checks arguments,
keeps the registration table, hands out *tokens* and runs the one poll loop.
A backend is a small object holding one kernel object and exactly these
primitives:

========================  ==================================================
``Backend()``             open the kernel object (close-on-exec)
``add(fd, events, tok)``  start watching *fd* for portaio *events*
``modify(fd, old, new)``  replace the interest and token of a watched fd
``remove(fd, ev, tok)``   stop watching *fd* (quiet if it is already closed)
``disarm(fd, ev, tok)``   a ONESHOT registration was reported: silence it
``wait(timeout, n)``      wait, return at most *n* integer keys
``events_of(flags, fd)``  translate a key's kernel flags to portaio's
``close()``               release every fd the backend created
========================  ==================================================

Keys
----
``wait`` returns a sequence of ints (a list or a tuple); each key is one
64-bit unsigned integer,
``token | kernel_flags << 24``: the low 24 bits are the token the core gave
``add``/``modify``, the bits above the backend's own flag word (epoll's
``events``, poll's ``revents``, kqueue's merged ``PORTAIO_K_*`` bits; the C
waits share ``csrc/portaio_key.h``).  The token goes low because the event
cache is a dict: CPython hashes an int to itself, and a dict picks the first
slot from the hash's low bits, so with the flags low every key of one flag
word started on the same slot and a lookup probed several times (measured:
12 % of a wait at 256 ready fds).  Tokens have 24 bits, not 32, so that the
key of the common flags (below 64: readable, writable, error, hang-up) is
below 2**30, one digit of a CPython int: made by the unpack, hashed and
compared with the cached key in fewer steps (about 7 ns an event at 64 ready
fds); 16.7 million tokens before the counter wraps are far more than can be
allocated while a wait's keys are read, the only time a stale one exists.  The C
waits write them into a ``uint64_t`` array (one format on every
architecture), read back with one ``struct`` unpack (``_unpack.py``).  The core maps a key
straight to a cached :class:`~portaio.Event` (one dict lookup); only a miss
(new flags, an internal token, a stale token) takes the slow path, which
calls :meth:`Backend.events_of`.  A token the core no longer knows is
dropped there, so an event queued for an unregistered or modified
registration is never misdelivered.  Tokens are 1 to ``TOKEN_MAX``; the core
never hands out a token that is still live (see ``Poller._new_token``).

Sources
-------
Wake-ups, timers and signals are small objects (one file each under
``portaio/backends/``) that the backend chooses once, when the poller opens
(:meth:`Backend.make_waker`, :meth:`Backend.make_timer`,
:meth:`Backend.make_signals`).  They plug into the wait through the
:class:`Host` the core passes them: :meth:`Host.watch` adds an fd of theirs
(an eventfd, a timerfd, a pipe) under an internal token whose handler runs
when the kernel reports it; :meth:`Host.new_token` reserves a token for a
kernel object that is not an fd (kqueue's ``EVFILT_USER``/``TIMER``/
``SIGNAL`` knotes, whose key carries their data in the flag word).
Handlers never build events: they report to the host (``wake_fired``,
``timer_fired``, ``signal_arrived``) and the poll loop collects the sources
in its fixed order.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

from .._types import Capabilities

__all__ = [
    "FLAGS_SHIFT",
    "TOKEN_MASK",
    "TOKEN_MAX",
    "AlwaysReady",
    "Backend",
    "FileIdentity",
    "Host",
    "SignalMechanism",
    "TimerMechanism",
    "Waker",
    "make_key",
]

FLAGS_SHIFT = 24
"""A key is ``token | kernel_flags << FLAGS_SHIFT``: its flags are ``key >> FLAGS_SHIFT``
(``PORTAIO_FLAGS_SHIFT`` in ``csrc/portaio_key.h``)."""
TOKEN_MASK = 0xFF_FFFF
"""The token of a key: ``key & TOKEN_MASK`` (``PORTAIO_TOKEN_MASK``)."""
TOKEN_MAX = 0xFF_FFFF
"""Tokens run from 1 to this (0 is never a token)."""


FileIdentity = tuple[int, int]
"""``(st_dev, st_ino)`` of an open file (see ``_validate.file_identity``)."""


def make_key(flags: int, token: int) -> int:
    """The key of *flags* (a backend's 32-bit flag word) reported for *token*."""
    return token | (flags & 0xFFFF_FFFF) << FLAGS_SHIFT


class AlwaysReady(OSError):
    """Raised by :meth:`Backend.add` (or ``modify``) for a file whose readiness can never change.

    Regular files, directories and ``/dev/null`` on epoll (``EPERM``), regular
    files on kqueue: the core then reports the file readable and writable on
    every poll, as ``poll(2)`` does, without the kernel.  kqueue also raises it
    for a pipe whose reader is gone, where FreeBSD and OpenBSD refuse the
    write filter (``EPIPE``, older NetBSD ``EBADF``): *ready* is then
    ``WRITABLE | ERROR``, what epoll reports for it.  Construct it as the
    ``OSError`` it replaces (errno, message naming the fd and backend).
    """

    def __init__(self, err: int, message: str, ready: int = 0x3) -> None:
        super().__init__(err, message)
        self.ready = ready
        """What the core reports, masked by the interest (HANGUP, ERROR always); default READABLE|WRITABLE."""


class Host(Protocol):
    """What the core offers the wake-up, timer and signal mechanisms of one poller."""

    @property
    def name(self) -> str:
        """The backend's name, for error messages."""
        ...

    def watch(self, fd: int, handler: Callable[[int], None]) -> int:
        """Watch *fd* (READABLE, level) in the kernel under a new internal token.

        *handler(flags)* runs in the polling thread each time the kernel
        reports it.  Returns the token.  Raises what :meth:`Backend.add` raises.
        """
        ...

    def unwatch(self, fd: int, token: int) -> None:
        """Stop watching an fd added with :meth:`watch`."""
        ...

    def new_token(self, handler: Callable[[int], None]) -> int:
        """Reserve an internal token for a non-fd kernel object; *handler* gets its key's flags."""
        ...

    def drop_token(self, token: int) -> None:
        """Release a token from :meth:`new_token`."""
        ...

    def wake_fired(self) -> None:
        """The waker was drained: report WAKE if :meth:`~portaio.Poller.wake` asked for it."""
        ...

    def timer_fired(self) -> None:
        """The native timer fired: due timers are collected, the timer re-armed."""
        ...

    def signal_arrived(self, signum: int, count: int, wake: bool = False) -> None:
        """*count* deliveries of *signum* (any thread, signal-safe); *wake*: wake a waiting poll."""
        ...

    def deliver_signals(self, counts: dict[int, int]) -> None:
        """``{signum: count}`` drained from a process-wide source: to every poller watching each."""
        ...


class Waker(abc.ABC):
    """Makes a wait return, from any thread or a signal handler.

    ``post()`` never writes into an fd after ``close()`` started (a number
    may be reused by another file at once): implementations guard the write.
    """

    native: ClassVar[str]
    """The mechanism, as :attr:`Capabilities.native_wake <portaio.Capabilities.native_wake>` names it."""

    @abc.abstractmethod
    def post(self) -> None:
        """Make the current or next wait return (coalesced; never raises, never blocks)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the waker created; later posts do nothing."""

    def close_after_fork(self) -> None:
        """In a forked child: release this process's copies only."""
        self.close()


class TimerMechanism(abc.ABC):
    """A one-shot kernel timer armed to the earliest deadline, or none (the wait's timeout)."""

    @abc.abstractmethod
    def arm(self, deadline: float) -> bool:
        """Arm to fire at *deadline* (``time.monotonic()`` seconds), never early.

        Returns True if the wait will return by itself at *deadline* (the
        handler then calls :meth:`Host.timer_fired`); False if the core must
        bound the wait's timeout by the deadline.  Called under the poller's
        lock.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the timer created."""

    def close_after_fork(self) -> None:
        """In a forked child: release this process's copies only."""
        self.close()


class SignalMechanism(abc.ABC):
    """How deliveries of watched signals reach the poller (main thread for watch/unwatch)."""

    @abc.abstractmethod
    def watch(self, signum: int) -> None:
        """Start receiving *signum* (portaio's Python handler is installed already)."""

    @abc.abstractmethod
    def unwatch(self, signum: int) -> None:
        """Stop receiving *signum*; restore what :meth:`watch` changed (mask, ...)."""

    def on_python_signal(self, signum: int) -> None:
        """portaio's Python-level handler ran for *signum* (main thread); default: nothing."""
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Stop every watch and release shared sources (the poller closes)."""

    def detach(self) -> None:
        """The poller closes outside the main thread: let go of it now (its lock is held).

        Stop using the poller's own kernel object (unwatch the fds, delete
        the filters, drop the tokens it gave); keep what is process-wide (the
        mask, shared sources, Python's wakeup fd) for :meth:`unwatch` and
        :meth:`close`, which the main thread calls later, without the poller's
        lock (see ``portaio/_main_thread.py``).  Default: nothing to let go.
        """
        return None

    def close_after_fork(self) -> None:
        """In a forked child: forget watches, touch nothing shared (``_signals`` resets the rest)."""
        return None


class Backend(abc.ABC):
    """One kernel readiness object and its primitives (see the module docstring).

    Every method but :meth:`wait`, :meth:`events_of` and the wakers' ``post``
    is called under the poller's lock.  :meth:`wait` may run in several
    threads at once and concurrently with add/modify/remove.  Errors are
    :class:`OSError` (the kernel's errno) whose message names the backend and
    the fd: ``portaio[NAME]: cannot watch fd N: <strerror>``.
    """

    name: ClassVar[str]
    """``"epoll"``, ``"kqueue"``, ``"poll"``, ``"select"``."""
    capabilities: ClassVar[Capabilities]
    """What the backend honours natively; the core refuses the rest (Unsupported)."""
    interrupt_on_change: ClassVar[bool] = False
    """True where the wait takes a copy of the interest set (poll, select):
    the core then posts the waker after each change made while a thread waits."""
    refuses_files: ClassVar[bool] = False
    """True where :meth:`add` raises :class:`AlwaysReady` for regular files."""
    records_per_token: ClassVar[int] = 1
    """How many kernel records one token can have ready at once (kqueue: a
    read, a write and an exceptional filter per fd, merged into one key by the
    C wait).  The core bounds ``max_events`` passed to :meth:`wait` by live
    tokens times this, so a wait never leaves merged records behind."""
    oneshot_in_kernel: ClassVar[bool] = False
    """True where the kernel disarms a reported ONESHOT registration by itself
    (epoll): the core then caches such events and never calls :meth:`disarm`."""

    add_tells_same_file: ClassVar[bool] = False
    """True where :meth:`add` of a number already watched raises ``EEXIST`` if
    it still names the same open file, and succeeds for a new file that took
    the number after the old one was closed (epoll: its entries are keyed by
    file and number), and :meth:`modify` of such a number fails (``ENOENT``).
    Elsewhere the core records each file's identity (``st_dev``, ``st_ino``)
    at register and compares, at register and at modify (DESIGN item 6)."""

    def fileno(self) -> int:
        """The kernel object's fd, or -1 where there is none (poll, select)."""
        return -1

    def check_interest(self, fd: int, events: int) -> None:
        """Raise :class:`~portaio.Unsupported` for an interest the backend cannot honour.

        Called after the portable checks of every backend (capabilities).
        """
        return None

    @abc.abstractmethod
    def add(self, fd: int, events: int, token: int) -> FileIdentity | None:
        """Watch *fd* for *events* (portaio flags), its keys carrying *token*.

        Raises :class:`AlwaysReady` for a file the kernel refuses because it
        never blocks, :class:`OSError` otherwise (EBADF for a closed fd),
        leaving nothing behind.  The core knows *token* before this call: a
        wait in another thread may report it before ``add`` returns.
        Returns the file's ``(st_dev, st_ino)`` if it looked anyway (poll and
        select check the fd is open), else None: the core then looks itself,
        unless :attr:`add_tells_same_file`.
        """

    @abc.abstractmethod
    def modify(self, fd: int, old_events: int, old_token: int, events: int, token: int) -> None:
        """Replace the interest and token of a watched *fd*; re-arm a ONESHOT one.

        On failure raise :class:`OSError` and leave the old registration working.
        Unless :attr:`add_tells_same_file`, the core has checked (one
        ``fstat``) that *fd* is open and still names the file registered; where
        it is, a number now naming another file must raise ``ENOENT`` (no
        entry for that file) or ``EPERM`` (a file the kernel cannot watch),
        touching nothing: the core reports both as the closed registration's
        ``EBADF`` (``_register.py``).
        """

    @abc.abstractmethod
    def remove(self, fd: int, events: int, token: int) -> None:
        """Stop watching *fd*.  Quiet when the fd was closed or its number reused."""

    def disarm(self, fd: int, events: int, token: int) -> None:
        """A ONESHOT registration was reported: report nothing more for it until modify.

        Not called where :attr:`oneshot_in_kernel` is True.  Errors from a
        vanished fd are ignored.
        """
        return None

    @abc.abstractmethod
    def wait(self, timeout: float | None, max_events: int) -> Sequence[int]:
        """Wait up to *timeout* seconds (None: block; 0: don't) and return keys.

        At most *max_events* keys (the core bounds it by the live tokens
        times :attr:`records_per_token`, so buffers stay bounded by the
        registrations, never by the caller's argument).  Returns ``[]``
        on timeout and on EINTR (the core runs Python's signal handlers and
        waits again for the time left), or when the backend was closed
        meanwhile; raises :class:`OSError` for any other failure.
        """

    # ------------------------------------------------ poll(0)'s quick wait
    # Optional.  A wait with a zero timeout is most of an event loop's waits,
    # and at one ready fd the Python around a wait costs more than the system
    # call: a backend that can wait in *one* C call of *one* argument (cffi
    # makes that a METH_O function: 609 against 870 ns for four arguments, measured)
    # offers it here, and the core's fast path calls it directly, without its
    # count of threads in poll(): the C itself keeps the kernel fd open while
    # a quick wait runs and a buffer to one thread at a time.
    def quick_calls(self) -> tuple[Callable[[Any], int], Callable[[Any], None]] | None:
        """``(quick_wait, quick_release)``, the backend's C functions, or None where it has none.

        ``quick_wait(q)``: one zero-timeout wait into the buffer ``q`` of
        :meth:`quick_buffer`.  Returns the key when exactly one came; ``-2 -
        n`` when ``n != 1`` keys came (the core reads them: ``n`` native
        ``uint64_t`` from the start of the pair's ``view``, then
        give the buffer back with ``quick_release(q)``); ``-3`` when another
        thread holds the buffer or the backend is closing; ``-1`` for a
        failure (the core then takes :meth:`wait`, which says what failed).
        ``quick_release(q)`` gives back a buffer this thread holds (after
        reading its keys, or on the way out of an exception), else does nothing.
        """
        return None

    def quick_buffer(self, room: int) -> tuple[Any, Any]:
        """``(q, view)`` for the quick wait of :meth:`quick_calls`, asking for at most *room* keys.

        Called under the poller's lock whenever its room changes.  A pair's
        room never grows past what its buffer holds (a larger room gets a new
        pair), so a quick wait still running on an old pair stays in bounds.
        """
        raise NotImplementedError(f"portaio[{self.name}]: no quick wait")

    @abc.abstractmethod
    def events_of(self, flags: int, fd: int, interest: int) -> tuple[int, bool]:
        """The portaio flags a key's kernel *flags* mean for *fd*, and whether cacheable.

        The core masks the result with ``interest | ALWAYS_REPORTED``.  The
        second item is False where the answer depends on more than *flags*
        (kqueue's end-of-file probes the fd), so that no later key reuses it.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release every fd the backend created (idempotent)."""

    def close_after_fork(self) -> None:
        """In a forked child: release this process's copies, never touching the parent's.

        Default :meth:`close`; kqueue, whose descriptor a child does not
        inherit, only forgets the number.
        """
        self.close()

    # ------------------------------------------------------- the sources
    def make_waker(self, host: Host) -> Waker:
        """The wake-up mechanism of this poller (default: a pipe)."""
        from ._pipe_waker import PipeWaker

        return PipeWaker(host, max_fd=self.capabilities.max_fd)

    def make_timer(self, host: Host) -> TimerMechanism:
        """The timer mechanism (default: none, the core bounds the wait's timeout)."""
        from ._timeout_timer import WaitTimeout

        return WaitTimeout()

    def make_signals(self, host: Host) -> SignalMechanism:
        """The signal mechanism (default: Python's wakeup fd, shared by the process)."""
        from .._signals import WakeupFdSource
        from ._shared_signals import SharedSignals

        return SharedSignals(host, (WakeupFdSource,), max_fd=self.capabilities.max_fd)
