"""kevent records -> portaio readiness: one pure function, tested row by row.

What each kernel puts in the records of one fd (read from their sources; the
rows of ``tests/test_kevent_table.py`` name the file and function of each):

* **Sockets, end of file.**  Every kernel's read filter sets ``EV_EOF`` when
  the receiving side is shut (``SS_CANTRCVMORE``: a peer's FIN, a reset, a
  failed connect) and its write filter when the sending side is
  (``SS_CANTSENDMORE``: our own ``shutdown(SHUT_WR)``, a reset, a failed
  connect); both copy the socket's pending error into ``fflags``
  (xnu ``filt_soread_common``/``filt_sowrite_common``, FreeBSD, OpenBSD and
  NetBSD ``filt_soread``/``filt_sowrite``).  So: read EOF is RDHUP; read EOF
  and write EOF together are HANGUP; a non-zero ``fflags`` beside ``EV_EOF``
  is ERROR and, as epoll says of a reset, HANGUP.  A kernel's ``poll()`` is no
  oracle for this: xnu's ``poll()`` is built on kqueue and registers nothing
  for ``events == 0`` (``poll_nocancel`` in ``bsd/kern/sys_generic.c``).
  When only the read filter is registered, the caller probes the write side
  with a one-off write filter and passes that record in as well.
* **Sockets, an error without EOF** (an ICMP error on a UDP socket): the
  native filters fire without any flag ("temporary udp error" in every
  ``filt_soread``), the read filter with ``data`` = bytes to read, 0 here.
  A read record with nothing to read and no EOF is therefore ERROR on a
  native kernel.  (A zero-length datagram looks the same; it is reported as
  ERROR too, and ``recv`` then returns it.)  libkqueue never fires that way:
  epoll's EPOLLERR becomes ``EV_EOF`` plus the error, and a zero-byte read
  record there is a zero-length datagram.
* **Out-of-band data.**  xnu's ``EVFILT_EXCEPT`` is the read filter under
  another name (``soexcept_filtops`` in ``bsd/kern/uipc_socket.c``): it fires
  on plain data and on EOF too, and marks urgent data only with
  ``fflags & NOTE_OOB``.  OpenBSD's pipe except filter fires on EOF with no
  ``NOTE_OOB``.  So PRIORITY is ``NOTE_OOB`` in ``fflags``, nothing else.
  FreeBSD, older NetBSD and libkqueue have no ``EVFILT_EXCEPT``.  xnu's
  ``EV_OOBAND`` output flag is never set by the socket filters (the input
  bit is stripped in ``filt_sorattach``), so it is not read at all.
* **Pipes and FIFOs.**  The read filter of a read end sets ``EV_EOF`` when the
  writer is gone (``data`` = bytes left); the write filter of a write end sets
  it when the reader is gone (``fflags`` 0).  As poll(2) and epoll say, the
  first is HANGUP (READABLE only while data is left), the second ERROR.  A
  filter on the wrong end (xnu's "neutered" ``EVFILT_ID_PIPE_N``) fires only
  with ``EV_EOF`` when the pipe dies; it never makes the end readable or
  writable.

The caller passes the records of one fd from one wait, what the fd is
(:data:`SOCKET`, :data:`READ_END`, :data:`WRITE_END`, :data:`READ_WRITE`),
the registered interest and the kernel; the function touches no fd.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from .._flags import ALWAYS_REPORTED, EDGE, ERROR, HANGUP, ONESHOT, PRIORITY, RDHUP, READABLE, WRITABLE
from .._types import Capabilities

__all__ = [
    "EV_EOF",
    "EV_ERROR",
    "EXCEPT",
    "FREEBSD",
    "KERNELS",
    "LIBKQUEUE",
    "MACOS",
    "NETBSD",
    "OPENBSD",
    "READ",
    "READ_END",
    "READ_WRITE",
    "SOCKET",
    "WRITE",
    "WRITE_END",
    "Kernel",
    "Record",
    "capabilities",
    "filters_for",
    "helper_level",
    "summarize",
    "translate",
    "translate_bits",
    "uses_helpers",
]

# portaio's own names for the three filters of an fd: the backend maps the
# kernel's numbers to these (NetBSD numbers its filters from 0 upwards, the
# others from -1 downwards).
READ = 1
WRITE = 2
EXCEPT = 3

# The same bits in every header: xnu bsd/sys/event.h, FreeBSD, OpenBSD and
# NetBSD sys/sys/event.h, libkqueue include/sys/event.h.
EV_EOF = 0x8000
EV_ERROR = 0x4000

# What the fd is, as far as the translation cares.
SOCKET = 1
READ_END = 2  # a pipe's or FIFO's end opened read-only
WRITE_END = 3  # ... write-only
READ_WRITE = 4  # a FIFO opened read-write, a tty, any other non-socket

Record = tuple[int, int, int, int]
"""One kevent of an fd: (filter as READ/WRITE/EXCEPT, flags, fflags, data)."""


@dataclasses.dataclass(frozen=True)
class Kernel:
    """What the translation (and the capability table) needs to know of a kernel family."""

    name: str
    note_oob: int
    """``NOTE_OOB`` in this family's header; 0 where there is no EVFILT_EXCEPT."""
    silent_errors: bool
    """Socket filters fire for a pending error without ``EV_EOF`` (native kernels)."""
    evfilt_user: bool | None = True
    """The header has EVFILT_USER and NOTE_TRIGGER (None: not known without a build)."""
    signals: str = "EVFILT_SIGNAL"
    """How the kqueue backend watches signals there (:attr:`Capabilities.native_signals`)."""


# xnu bsd/sys/event.h: EVFILT_EXCEPT (-15), NOTE_OOB 0x2.  psignal_internal
# (bsd/kern/kern_sig.c) calls proc_knote only without PSIG_THREAD, so a
# pthread_kill() never reaches EVFILT_SIGNAL, while a process-directed signal
# reaches it and Python's handler both: Python's wakeup fd alone counts each
# delivery once.
MACOS = Kernel("macos", note_oob=0x0002, silent_errors=True, signals="signal.set_wakeup_fd")
# FreeBSD sys/sys/event.h: no EVFILT_EXCEPT; EVFILT_USER and NOTE_TRIGGER.
FREEBSD = Kernel("freebsd", note_oob=0, silent_errors=True)
# OpenBSD sys/kern/uipc_socket.c has soexcept_filtops; NOTE_OOB is 0x0004
# there (NOTE_EOF is 0x0002).
OPENBSD = Kernel("openbsd", note_oob=0x0004, silent_errors=True, evfilt_user=None)
# NetBSD's socket filters as stored (sys/kern/uipc_socket.c soo_kqfilter) are read
# and write only; a build whose header has EVFILT_EXCEPT passes its NOTE_OOB.
NETBSD = Kernel("netbsd", note_oob=0, silent_errors=True, evfilt_user=None)
# libkqueue include/sys/event.h: no EVFILT_EXCEPT; EVFILT_USER on an eventfd;
# EVFILT_SIGNAL reads a signalfd, which misses a signal a thread not blocking
# it takes (Python's handler runs there and writes the wakeup fd).
LIBKQUEUE = Kernel(
    "libkqueue", note_oob=0, silent_errors=False, signals="EVFILT_SIGNAL and signal.set_wakeup_fd"
)
KERNELS = {k.name: k for k in (MACOS, FREEBSD, OPENBSD, NETBSD, LIBKQUEUE)}


# The summary of one fd's records in one wait: the C wait ORs one word per
# record into the fd's key (build_ffi.py, portaio_kq_bits, mirrors summarize()).
K_READ = 0x001
K_WRITE = 0x002
K_EXCEPT = 0x004
K_READ_EOF = 0x008  # EV_EOF on the read or the except filter
K_WRITE_EOF = 0x010
K_EOF_ERROR = 0x020  # EV_EOF with a non-zero fflags: the socket's pending error
K_OOB = 0x040  # NOTE_OOB in an except record's fflags (not at EOF)
K_READ_EMPTY = 0x080  # a read record with nothing to read (data <= 0)
K_FAILED = 0x100  # EV_ERROR: the kernel refused the filter
K_EOF = K_READ_EOF | K_WRITE_EOF


def summarize(record: Record, note_oob: int) -> int:
    """The summary bits of one kevent *record* (what the C wait computes per kevent)."""
    filt, flags, fflags, data = record
    if flags & EV_ERROR:
        return K_FAILED
    eof = bool(flags & EV_EOF)
    bits = K_EOF_ERROR if eof and fflags else 0
    if filt == READ:
        bits |= K_READ | (K_READ_EOF if eof else 0) | (K_READ_EMPTY if data <= 0 else 0)
    elif filt == WRITE:
        bits |= K_WRITE | (K_WRITE_EOF if eof else 0)
    elif filt == EXCEPT:
        bits |= K_EXCEPT | (K_READ_EOF if eof else (K_OOB if fflags & note_oob else 0))
    return bits


def capabilities(kernel: Kernel) -> Capabilities:
    """What the kqueue backend honours on *kernel*: the per-OS rows of the docs' table."""
    if kernel.evfilt_user is None:
        wake = "EVFILT_USER where the header has it, else a pipe"
    else:
        wake = "EVFILT_USER" if kernel.evfilt_user else "pipe"
    return Capabilities(
        edge=True,
        oneshot=True,
        exclusive=False,
        priority=bool(kernel.note_oob),
        rdhup=True,
        hangup=True,
        o1_wait=True,
        timeout_resolution=1e-9,
        max_fd=None,
        native_timers="EVFILT_TIMER",
        native_signals=kernel.signals,
        native_wake=wake,
    )


def translate(records: Iterable[Record], interest: int, kind: int, kernel: Kernel) -> int:
    """The portaio flags for the kevent *records* of one fd from one wait.

    *interest* is the registered mask; HANGUP and ERROR are reported whatever
    it says, everything else only if asked for.
    """
    bits = 0
    for record in records:
        bits |= summarize(record, kernel.note_oob)
    return translate_bits(bits, interest, kind, kernel)


def translate_bits(bits: int, interest: int, kind: int, kernel: Kernel) -> int:
    """:func:`translate` from the OR of the records' :func:`summarize` bits."""
    ready = ERROR if bits & K_FAILED else 0
    if bits & K_READ:
        ready |= READABLE
    if bits & K_WRITE:
        ready |= WRITABLE
    if bits & K_OOB:
        ready |= PRIORITY
    read_eof = bits & K_READ_EOF
    write_eof = bits & K_WRITE_EOF
    if kind == SOCKET:
        if read_eof:
            ready |= RDHUP
        if read_eof and write_eof:
            ready |= HANGUP
        if bits & K_EOF_ERROR:
            ready |= ERROR | HANGUP
        elif bits & K_READ_EMPTY and not read_eof and kernel.silent_errors:
            # Fired with nothing to read and no EOF: a pending error.
            ready = (ready | ERROR) & ~READABLE
    else:
        if (read_eof and kind != WRITE_END) or (write_eof and kind == READ_END):
            ready |= HANGUP
            if bits & K_READ_EMPTY or not bits & K_READ:
                ready &= ~READABLE  # drained: poll(2) says POLLHUP alone
        if (write_eof and kind != READ_END) or (read_eof and kind == WRITE_END) or bits & K_EOF_ERROR:
            ready |= ERROR
        if kind == READ_END:
            ready &= ~WRITABLE
        elif kind == WRITE_END:
            ready &= ~READABLE
    return ready & (interest | ALWAYS_REPORTED)


# ---------------------------------------------------------------- interest
# RDHUP or PRIORITY without READABLE ask for less than the read side says:
# the read filter (and xnu's except filter, which is the read filter under
# another name) fire for plain data that the interest masks out.  Kept level-
# triggered, a filter that fires for masked data wakes every wait at once, a
# busy loop while the data sits unread; NOTE_LOWAT cannot keep it quiet
# (FreeBSD's and OpenBSD's pipe filters ignore it, xnu caps it at the buffer
# size, libkqueue maps it to SO_RCVLOWAT, which unix sockets ignore).  So such
# "helper" filters are edge-triggered (EV_CLEAR): masked data wakes one wait
# per arrival, not every wait.  Once a helper brings something to report
# (a hang-up, urgent data), the backend re-adds them level-triggered so the
# next poll reports it again, as epoll does, and edge-triggered again as soon
# as a level report finds nothing to say.  Helpers never take EV_DISPATCH: a
# one-shot registration is disarmed by portaio when it reports, so data it
# masks out cannot spend the shot (the "ONESHOT|RDHUP loses the hang-up" bug).

_HELPER_SAYS = int(RDHUP | PRIORITY | HANGUP | ERROR)


def uses_helpers(events: int) -> bool:
    """True if the read side of *events* is watched only for RDHUP or PRIORITY."""
    return not events & READABLE and bool(events & (RDHUP | PRIORITY))


def filters_for(events: int, level: bool = False) -> list[tuple[int, bool, bool]]:
    """The filters for an interest mask: ``(filter, EV_CLEAR, EV_DISPATCH)`` each, in the order to add.

    *level* says whether the helper filters (see :func:`uses_helpers`) are
    currently level-triggered.  The write filter goes first: libkqueue keeps
    only the epoll options of the filter added last for a socket, and the
    read filter's carry EPOLLRDHUP.
    """
    edge = bool(events & EDGE)
    once = bool(events & ONESHOT)
    helpers = uses_helpers(events)
    helper = (not level or edge or once, False)
    out: list[tuple[int, bool, bool]] = []
    if events & WRITABLE:
        out.append((WRITE, edge, once))
    if events & READABLE:
        out.append((READ, edge, once))
    elif helpers:
        out.append((READ, *helper))
    if events & PRIORITY:
        out.append((EXCEPT, *(helper if helpers else (edge, once))))
    return out


def helper_level(bits: int, events: int, ready: int, level: bool) -> bool | None:
    """The helpers' new mode after a key of *bits* translated to *ready*, or None to keep it.

    True: re-add the helpers level-triggered (they brought something to
    report, which the next poll must report again); False: back to
    edge-triggered (a level report found nothing to say).  Only for level,
    non-one-shot registrations that use helpers.
    """
    if not uses_helpers(events) or events & (EDGE | ONESHOT):
        return None
    if not bits & (K_READ | K_EXCEPT):
        return None  # the key is the write filter's alone
    says = bool(ready & _HELPER_SAYS)
    if says and not level:
        return True
    if not says and level:
        return False
    return None
