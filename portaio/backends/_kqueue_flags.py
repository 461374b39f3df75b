"""kqueue's words and portaio's: the one place the kqueue backend translates flags.

Interest to filters (:func:`adds`, :func:`each`) and a key's merged
``PORTAIO_K_*`` bits back to :class:`~portaio.Events` (:func:`events_of`).
kqueue's words differ from epoll's; :func:`events_of` translates them so
every backend reports the same thing:

* ``EV_EOF`` on the read filter of a socket is RDHUP; HANGUP and ERROR after
  an EOF are what ``poll(2)`` says of the fd (both directions closed, an error
  pending), so a local ``shutdown(SHUT_WR)``, which sets ``EV_EOF`` on the
  write filter, is no hang-up.  EOF answers are never cached (they probe the
  fd).
* ``EV_EOF`` with a non-zero ``fflags`` (the socket's pending error, e.g. a
  reset) is ERROR (``PORTAIO_K_ERROR``, set by the C wait).
* A pipe, FIFO or tty whose other end is gone: a hang-up for the reading end
  (alone once drained, ``PORTAIO_K_DRAINED``), an error for the writing end.
"""

from __future__ import annotations

import os
import select
import stat

from .._flags import EDGE, ERROR, HANGUP, ONESHOT, PRIORITY, RDHUP, READABLE, WRITABLE

try:
    from .._kqueue_cffi import lib
except ImportError:  # pragma: no cover - depends on the build
    HAVE_KQUEUE = False
else:
    HAVE_KQUEUE = True

__all__ = ["adds", "each", "events_of", "have"]

_INT_MAX = 2**31 - 1


def have(name: str) -> bool:
    """True if the kqueue header defines *name* (``PORTAIO_HAVE_<name>``)."""
    return HAVE_KQUEUE and bool(getattr(lib, f"PORTAIO_HAVE_{name}"))


if HAVE_KQUEUE:
    EVFILT_READ = int(lib.EVFILT_READ)
    EVFILT_WRITE = int(lib.EVFILT_WRITE)
    EVFILT_EXCEPT = int(lib.PORTAIO_EVFILT_EXCEPT)
    EVFILT_SIGNAL = int(lib.PORTAIO_EVFILT_SIGNAL)
    EV_ADD, EV_DELETE = int(lib.EV_ADD), int(lib.EV_DELETE)
    EV_DISABLE = int(lib.EV_DISABLE)
    EV_CLEAR = int(lib.EV_CLEAR)
    # EV_DISPATCH disables a fired filter so modify can re-enable it; where
    # it is missing EV_ONESHOT deletes it and modify adds it again.
    EV_ONCE = int(lib.PORTAIO_EV_DISPATCH) if have("EV_DISPATCH") else int(lib.EV_ONESHOT)
    NOTE_OOB = int(lib.PORTAIO_NOTE_OOB)
    NOTE_LOWAT = int(lib.PORTAIO_NOTE_LOWAT) if have("NOTE_LOWAT") else 0
    K_READ, K_READ_EOF = int(lib.PORTAIO_K_READ), int(lib.PORTAIO_K_READ_EOF)
    K_WRITE, K_WRITE_EOF = int(lib.PORTAIO_K_WRITE), int(lib.PORTAIO_K_WRITE_EOF)
    K_ERROR, K_PRIORITY = int(lib.PORTAIO_K_ERROR), int(lib.PORTAIO_K_PRIORITY)
    K_OTHER, K_DRAINED = int(lib.PORTAIO_K_OTHER), int(lib.PORTAIO_K_DRAINED)
    K_DATA_SHIFT = int(lib.PORTAIO_K_DATA_SHIFT)
else:  # pragma: no cover
    EVFILT_READ = EVFILT_WRITE = EVFILT_EXCEPT = EVFILT_SIGNAL = 0
    EV_ADD = EV_DELETE = EV_DISABLE = EV_CLEAR = EV_ONCE = 0
    NOTE_OOB = NOTE_LOWAT = 0
    K_READ = K_READ_EOF = K_WRITE = K_WRITE_EOF = K_ERROR = K_PRIORITY = K_OTHER = K_DRAINED = 0
    K_DATA_SHIFT = 8
K_EOF = K_READ_EOF | K_WRITE_EOF
_POLLHUP: int = getattr(select, "POLLHUP", 16)
_POLLERR: int = getattr(select, "POLLERR", 8)

Change = tuple[int, int, int, int]
"""``(filter, flags, fflags, data)``, one kevent change for an fd."""


def adds(events: int) -> list[Change]:
    """The changes that add the filters for an interest mask."""
    mode = EV_ADD
    if events & EDGE:
        mode |= EV_CLEAR
    if events & ONESHOT:
        mode |= EV_ONCE
    out = []
    # The write filter goes first: libkqueue watches a socket's two filters
    # through one epoll registration and keeps only the option bits of the
    # filter added last, so a read filter added before the write filter loses
    # EPOLLRDHUP, and a peer's shutdown is no EV_EOF while data is unread.
    if events & WRITABLE:
        out.append((EVFILT_WRITE, mode, 0, 0))
    if events & READABLE:
        out.append((EVFILT_READ, mode, 0, 0))
    elif events & (RDHUP | PRIORITY):
        # Without READABLE, the read filter is there for end of file: a
        # socket's reports it whatever its low-water mark, so a huge one
        # keeps plain data from waking the poll.  For PRIORITY alone it only
        # brings hang-ups (EVFILT_EXCEPT says nothing of them); a half-close
        # is no hang-up and nothing to report, so it is edge-triggered there
        # to never wake a poll again and again for nothing.
        lowat = (NOTE_LOWAT, _INT_MAX) if NOTE_LOWAT else (0, 0)
        helper = mode if events & RDHUP else mode | EV_CLEAR
        out.append((EVFILT_READ, helper, *lowat))
    if events & PRIORITY:
        out.append((EVFILT_EXCEPT, mode, NOTE_OOB, 0))
    return out


def each(events: int, flags: int) -> list[Change]:
    """The changes applying *flags* (EV_DELETE, EV_DISABLE) to every filter of an interest mask."""
    return [(f, flags, 0, 0) for f, _, _, _ in adds(events)]


def events_of(bits: int, fd: int, interest: int) -> tuple[int, bool]:
    """The portaio flags of a key's ``PORTAIO_K_*`` *bits* for *fd*, and whether cacheable."""
    if bits & K_OTHER:
        return 0, False
    ready = 0
    if bits & K_READ:
        ready |= READABLE
    if bits & K_WRITE:
        ready |= WRITABLE
    if bits & K_PRIORITY:
        ready |= PRIORITY
    if bits & K_ERROR:
        ready |= ERROR
    if not bits & K_EOF:
        return ready, True
    if is_socket(fd):
        # Half a socket's end is no hang-up: poll(2) says when both
        # directions are closed.
        if bits & K_READ_EOF:
            ready |= RDHUP
        ready |= _poll_says(fd)
    else:
        # A pipe, FIFO or tty whose other end is gone: as poll(2) and epoll
        # say, a hang-up for the reading end (alone once drained, where
        # kqueue says readable), an error for the writing end, whichever
        # filter noticed.  An end that cannot read (write) is never readable
        # (writable).
        mode = _access_mode(fd)
        drained = bits & K_DRAINED
        if mode == os.O_WRONLY:
            ready = (ready | ERROR) & ~READABLE
        elif mode == os.O_RDONLY:
            ready = (ready | HANGUP) & ~(WRITABLE | (READABLE if drained else 0))
        else:  # read-write (a FIFO, a tty): the filter says which side
            if bits & K_READ_EOF:
                ready = (ready | HANGUP) & ~(READABLE if drained else 0)
            if bits & K_WRITE_EOF:
                ready |= ERROR
    return ready, False


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


def is_socket(fd: int) -> bool:
    """True if *fd* is a socket."""
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


def is_fifo(fd: int) -> bool:
    """True if *fd* is a pipe or FIFO."""
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False


def _access_mode(fd: int) -> int:
    import fcntl  # kqueue systems are POSIX; imported here so the module loads anywhere

    try:
        return fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError:
        return -1
