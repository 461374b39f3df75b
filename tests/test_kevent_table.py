"""kevent records -> portaio flags, row by row (portaio.backends._kevent.translate).

Each row is what a named kernel puts in the kevent records of one fd in a
named situation, with the source that says so, and what portaio must report
(what epoll reports on Linux for the same situation).  Sources read:

* xnu-11417.101.15 (apple-oss-distributions/xnu): bsd/kern/uipc_socket.c
  ``filt_soread_common`` (line ~6587), ``filt_sowrite_common`` (~6773),
  ``soexcept_filtops`` (~214), ``filt_sorattach`` (~6666);
  bsd/kern/sys_pipe.c ``filt_pipe_draincommon`` (~1404),
  ``filt_piperead_common`` (~1464), ``filt_pipewrite_common`` (~1524),
  ``pipe_kqfilter`` (~1587); bsd/kern/sys_generic.c ``poll_nocancel``
  (~1690), ``poll_callback`` (~1850).
* FreeBSD (freebsd-src, main as of 2025): sys/kern/uipc_socket.c
  ``filt_soread``, ``filt_sowrite``, ``soo_kqfilter``; sys/kern/sys_pipe.c
  ``pipe_kqfilter``, ``filt_piperead``, ``filt_pipewrite``; sys/sys/event.h.
* OpenBSD (openbsd/src): sys/kern/uipc_socket.c ``filt_soread``,
  ``filt_sowrite``, ``soexcept_filtops``; sys/kern/sys_pipe.c
  ``pipe_kqfilter``, ``filt_piperead_common``, ``filt_pipewrite_common``,
  ``filt_pipeexcept_common``.
* NetBSD (NetBSD/src): sys/kern/uipc_socket.c ``filt_soread``,
  ``filt_sowrite``; sys/kern/sys_pipe.c ``pipe_kqfilter``, ``filt_piperead``,
  ``filt_pipewrite``.
* libkqueue 2.7 (mheily/libkqueue): src/linux/read.c
  ``evfilt_read_copyout``, src/linux/write.c ``evfilt_write_copyout``.
"""

from __future__ import annotations

import errno
from typing import NamedTuple

import pytest

import portaio
from portaio import ERROR, HANGUP, PRIORITY, RDHUP, READABLE, WRITABLE, Events
from portaio.backends import _kevent as k
from portaio.backends._kevent import EV_EOF, EV_ERROR, EXCEPT, READ, WRITE

# Short names keep each row on one line.
RESET, REFUSED = errno.ECONNRESET, errno.ECONNREFUSED
RD, WR, PRI, HUP, ERR, EOF = READABLE, WRITABLE, PRIORITY, HANGUP, ERROR, EV_EOF
RW = RD | WR
ALL = RD | WR | RDHUP | PRI
SOCK, R_END, W_END, RW_END = k.SOCKET, k.READ_END, k.WRITE_END, k.READ_WRITE


class Row(NamedTuple):
    kernel: k.Kernel
    situation: str
    kind: int
    interest: int
    records: list[k.Record]
    expected: int


def _oob(kernel: k.Kernel) -> int:
    return kernel.note_oob


NATIVE = (k.MACOS, k.FREEBSD, k.OPENBSD, k.NETBSD)

ROWS: list[Row] = []

for kn in NATIVE:
    ROWS += [
        # filt_soread/filt_sowrite (every kernel): data, no flags.
        Row(kn, "socket: data to read", SOCK, RW, [(READ, 0, 0, 5), (WRITE, 0, 0, 8192)], RW),
        # filt_soread: SS_CANTRCVMORE -> EOF, fflags = so_error (0 for a FIN).
        Row(kn, "socket: peer FIN, data left", SOCK, RD | RDHUP, [(READ, EOF, 0, 4)], RD | RDHUP),
        Row(kn, "socket: peer FIN, drained", SOCK, RD | RDHUP, [(READ, EOF, 0, 0)], RD | RDHUP),
        # The half-close is no hang-up: the write filter has no EOF.
        Row(kn, "socket: peer FIN, writable", SOCK, ALL, [(READ, EOF, 0, 0), (WRITE, 0, 0, 99)], RW | RDHUP),
        # RDHUP alone: the read filter is a helper, data is masked out.
        Row(kn, "socket: RDHUP only, data", SOCK, RDHUP, [(READ, 0, 0, 10)], 0),
        Row(kn, "socket: RDHUP only, peer FIN", SOCK, RDHUP, [(READ, EOF, 0, 10)], RDHUP),
        # filt_sowrite: our own shutdown(SHUT_WR) -> SS_CANTSENDMORE.
        Row(kn, "socket: local SHUT_WR", SOCK, WR, [(WRITE, EOF, 0, 0)], WR),
        # Both sides shut (peer close() of a unix socket: unp_disconnect ->
        # soisdisconnected sets both; read filter plus the write-side probe).
        Row(kn, "socket: both directions shut", SOCK, RD, [(READ, EOF, 0, 0), (WRITE, EOF, 0, 0)], RD | HUP),
        # tcp_drop: so_error = ECONNRESET, soisdisconnected; fflags = so_error.
        Row(kn, "socket: TCP reset (read)", SOCK, RD, [(READ, EOF, RESET, 0)], RD | ERR | HUP),
        Row(kn, "socket: TCP reset (write)", SOCK, WR, [(WRITE, EOF, RESET, 0)], WR | ERR | HUP),
        Row(kn, "socket: TCP reset, RDHUP only", SOCK, RDHUP, [(READ, EOF, RESET, 0)], RDHUP | ERR | HUP),
        # Connection refused: so_error = ECONNREFUSED, both sides shut.
        Row(kn, "socket: failed connect", SOCK, WR, [(WRITE, EOF, REFUSED, 0)], WR | ERR | HUP),
        # "temporary udp error": so_error set, the filters fire with no flag;
        # the read filter's data is 0 (nothing queued).
        Row(kn, "udp: ICMP error", SOCK, RD, [(READ, 0, 0, 0)], ERR),
        Row(kn, "udp: datagram", SOCK, RD, [(READ, 0, 0, 12)], RD),
        # A failed attach or a change the kernel refused comes back as EV_ERR.
        Row(kn, "any: EV_ERROR record", SOCK, RD, [(READ, EV_ERROR, 0, errno.EBADF)], ERR),
        # Pipes (filt_piperead/filt_pipewrite, every kernel): EOF when the
        # other end is gone; data is the bytes left for the reader.
        Row(kn, "pipe: data", R_END, RD, [(READ, 0, 0, 3)], RD),
        Row(kn, "pipe: writer gone, data left", R_END, RD, [(READ, EOF, 0, 4)], RD | HUP),
        Row(kn, "pipe: writer gone, drained", R_END, RD, [(READ, EOF, 0, 0)], HUP),
        Row(kn, "pipe: reader gone", W_END, WR, [(WRITE, EOF, 0, 0)], WR | ERR),
        Row(kn, "FIFO read-write: writer side gone", RW_END, RD, [(READ, EOF, 0, 0)], HUP),
    ]

ROWS += [
    # xnu pipe_kqfilter: a filter on the wrong end is "neutered"
    # (EVFILT_ID_PIPE_N): it fires only with EOF once the pipe dies.
    Row(k.MACOS, "pipe: read end watched WR, writer gone", R_END, WR, [(WRITE, EOF, 0, 0)], HUP),
    Row(k.MACOS, "pipe: write end watched RD, reader gone", W_END, RD, [(READ, EOF, 0, 0)], ERR),
    # soexcept_filtops = the read filter: plain data fires EVFILT_EXCEPT with
    # no NOTE_OOB; urgent data sets NOTE_OOB (filt_soread_common).
    Row(k.MACOS, "socket: EXCEPT fires on plain data", SOCK, PRI, [(EXCEPT, 0, 0, 10)], 0),
    Row(k.MACOS, "socket: OOB byte", SOCK, PRI, [(EXCEPT, 0, _oob(k.MACOS), 1)], PRI),
    Row(k.MACOS, "socket: OOB and data", SOCK, RD | PRI, [(READ, 0, 0, 6), (EXCEPT, 0, 2, 5)], RD | PRI),
    # At EOF filt_soread_common overwrites fflags with so_error: ECONNRESET
    # (54 on macOS) has the NOTE_OOB bit; an EOF is never urgent data.
    Row(k.MACOS, "socket: EXCEPT at reset", SOCK, PRI, [(EXCEPT, EOF, 54, 0)], ERR | HUP),
    Row(k.MACOS, "socket: EXCEPT at peer FIN", SOCK, PRI, [(EXCEPT, EOF, 0, 0)], 0),
    # OpenBSD: soexcept_filtops runs filt_soread with NOTE_OOB saved, which
    # takes the NOTE_OOB branch only (no EOF); NOTE_OOB is 0x0004 there.
    Row(k.OPENBSD, "socket: OOB byte", SOCK, PRI, [(EXCEPT, 0, _oob(k.OPENBSD), 1)], PRI),
    # OpenBSD filt_pipeexcept_common: EOF, no NOTE_OOB, when the writer goes.
    Row(k.OPENBSD, "pipe: EXCEPT at writer gone", R_END, PRI, [(EXCEPT, EOF, 0, 0)], HUP),
    # libkqueue evfilt_read_copyout: EPOLLRDHUP/EPOLLHUP -> EOF; EPOLLERR ->
    # EOF with fflags = getsockopt(SO_ERROR); a stream socket with 0 bytes
    # queued -> EOF.
    Row(k.LIBKQUEUE, "socket: peer FIN", SOCK, RD | RDHUP, [(READ, EOF, 0, 0)], RD | RDHUP),
    Row(k.LIBKQUEUE, "socket: TCP reset", SOCK, RD, [(READ, EOF, RESET, 0)], RD | ERR | HUP),
    # An ICMP error (EPOLLERR) is EOF plus the error: libkqueue cannot tell it from a reset.
    Row(k.LIBKQUEUE, "udp: ICMP error", SOCK, RD, [(READ, EOF, REFUSED, 0)], RD | ERR | HUP),
    # A zero-length datagram: read fires with data 0 and no EOF, no error.
    Row(k.LIBKQUEUE, "udp: zero-length datagram", SOCK, RD, [(READ, 0, 0, 0)], RD),
    # evfilt_write_copyout: EPOLLHUP -> EOF; a pipe writer whose reader is
    # gone gets EPOLLERR -> EOF with fflags EIO.
    Row(k.LIBKQUEUE, "pipe: reader gone", W_END, WR, [(WRITE, EOF, errno.EIO, 0)], WR | ERR),
    Row(k.LIBKQUEUE, "pipe: writer gone, drained", R_END, RD, [(READ, EOF, 0, 0)], HUP),
]


def _id(row: Row) -> str:
    return f"{row.kernel.name}: {row.situation}"


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_row(row: Row) -> None:
    got = k.translate(row.records, row.interest, row.kind, row.kernel)
    assert Events(got) == Events(row.expected)


def test_every_kernel_has_rows() -> None:
    assert {row.kernel.name for row in ROWS} == set(k.KERNELS)


def test_priority_only_with_note_oob() -> None:
    """No kernel's EXCEPT record is PRIORITY without NOTE_OOB (xnu fires it on plain data)."""
    for kernel in k.KERNELS.values():
        for data in (0, 1, 100):
            assert not k.translate([(EXCEPT, 0, 0, data)], PRIORITY, k.SOCKET, kernel) & PRIORITY


def test_interest_masks_all_but_hangup_and_error() -> None:
    records = [(READ, EV_EOF, RESET, 3), (WRITE, EV_EOF, RESET, 0)]
    for kernel in k.KERNELS.values():
        assert k.translate(records, 0, k.SOCKET, kernel) == ERROR | HANGUP


# ------------------------------------------------ interest -> filters
_ONCE, _EDGE = portaio.ONESHOT, portaio.EDGE


@pytest.mark.parametrize(
    ("events", "level", "expected"),
    [
        # (filter, EV_CLEAR, EV_DISPATCH); the write filter first.
        (RD, False, [(READ, False, False)]),
        (RD | WR | _EDGE, False, [(WRITE, True, False), (READ, True, False)]),
        (RD | RDHUP | _ONCE, False, [(READ, False, True)]),
        # RDHUP without READABLE: an edge-triggered helper, never EV_DISPATCH.
        (RDHUP, False, [(READ, True, False)]),
        (RDHUP, True, [(READ, False, False)]),
        (RDHUP | _ONCE, False, [(READ, True, False)]),
        (RDHUP | _ONCE, True, [(READ, True, False)]),
        (WR | RDHUP | _ONCE, False, [(WRITE, False, True), (READ, True, False)]),
        # PRIORITY: with READABLE a normal filter; alone the except filter is a helper too.
        (RD | PRI, False, [(READ, False, False), (EXCEPT, False, False)]),
        (PRI, False, [(READ, True, False), (EXCEPT, True, False)]),
        (PRI, True, [(READ, False, False), (EXCEPT, False, False)]),
    ],
)
def test_filters_for(events: int, level: bool, expected: list[tuple[int, bool, bool]]) -> None:
    assert k.filters_for(events, level) == expected


def test_helpers_go_level_when_they_bring_news_and_edge_when_they_do_not() -> None:
    eof = k.K_READ | k.K_READ_EOF
    data = k.K_READ
    assert k.helper_level(eof, RDHUP, RDHUP, level=False) is True
    assert k.helper_level(eof, RDHUP, RDHUP, level=True) is None
    assert k.helper_level(data, RDHUP, 0, level=True) is False
    assert k.helper_level(data, RDHUP, 0, level=False) is None
    assert k.helper_level(k.K_WRITE, WR | RDHUP, WR, level=True) is None  # the write filter alone
    # Edge and one-shot registrations never switch; READABLE ones have no helpers.
    assert k.helper_level(eof, RDHUP | _EDGE, RDHUP, level=False) is None
    assert k.helper_level(eof, RDHUP | _ONCE, RDHUP, level=False) is None
    assert k.helper_level(eof, RD | RDHUP, RD | RDHUP, level=False) is None
