"""``select(2)`` through the standard :mod:`select` module: the last resort.

select only says readable / writable / exceptional.  Where ``poll(2)`` exists,
the fds select found ready are classified with one zero-timeout ``poll(2)``
(O(ready)), so hang-ups and errors are reported exactly as on the other
backends.  fds at or above ``FD_SETSIZE`` are refused at ``register``.

On Windows ``select()`` waits on sockets only, and its ``FD_SETSIZE``
(512 in CPython's build) bounds how many sockets one call takes, not their
numbers: the 513th registration is refused (``EMFILE``, naming the limit),
other handles raise :class:`~portaio.Unsupported`, wake-ups go through a
socket pair, and there is no ``poll(2)`` to tell hang-ups from data, so
``capabilities.hangup`` is False there (the afd backend reports them).
"""

from __future__ import annotations

import errno
import os
import select
import sys
from typing import Any

from .._errors import Unsupported
from .._flags import PRIORITY, RDHUP, READABLE, WRITABLE
from .._types import Capabilities
from ._base import Host, Waker
from ._flag_maps import FROM_POLL, POLLRDHUP, translate
from ._userspace import UserspaceBackend

__all__ = ["FD_SETSIZE", "UNAVAILABLE", "SelectBackend"]

UNAVAILABLE: str | None = None
_WINDOWS = sys.platform == "win32"
FD_SETSIZE = 512 if _WINDOWS else 1024  # CPython's build on Windows; glibc, macOS and the BSDs' default
_WSAENOTSOCK = 10038  # select() on a closed socket handle (Windows)
_HAVE_POLL = hasattr(select, "poll")
_READ, _WRITE, _URGENT = int(READABLE), int(WRITABLE), int(PRIORITY)
_POLLNVAL: int = getattr(select, "POLLNVAL", 32)
_INVALID = 1 << 30  # our own bit: "fd closed behind our back"


class SelectBackend(UserspaceBackend):
    """The select backend: one ``select(2)`` per wait, fds below ``FD_SETSIZE``."""

    name = "select"
    capabilities = Capabilities(
        edge=False,
        oneshot=True,
        exclusive=False,
        priority=True,
        rdhup=bool(POLLRDHUP) and _HAVE_POLL,
        hangup=_HAVE_POLL,
        o1_wait=False,
        timeout_resolution=1e-6,
        max_fd=None if _WINDOWS else FD_SETSIZE - 1,
        native_timers="select timeout (µs)",
        native_signals="signal.set_wakeup_fd",
        native_wake="socketpair" if _WINDOWS else "pipe",
    )
    _invalid_bits = _INVALID

    def _open_kernel(self) -> None:
        self._readers: set[int] = set()
        self._writers: set[int] = set()
        self._urgent: set[int] = set()
        self._masks: dict[int, int] = {}

    def check_interest(self, fd: int, events: int) -> None:
        if events & RDHUP and not events & READABLE:
            # select has no word for a peer's FIN: the fd must sit in the read
            # set, which unread data keeps ready, so every select() would
            # return at once for data the interest masks out: a busy loop.
            raise Unsupported(
                self.name,
                "RDHUP without READABLE",
                f"fd {fd}; ask for READABLE | RDHUP (unread data would spin)",
            )
        if not events & (READABLE | WRITABLE):
            # Only select's read and write sets see hang-ups and errors; an fd
            # in the exceptional set alone would never report them.
            raise Unsupported(self.name, "PRIORITY alone", f"fd {fd}; add READABLE to see hang-ups")

    def _kernel_watch(self, fd: int, events: int, new: bool) -> None:
        if _WINDOWS and fd not in self._masks and len(self._masks) >= FD_SETSIZE:
            raise OSError(
                errno.EMFILE,
                f"portaio[{self.name}]: cannot watch fd {fd}: Windows' select() takes at most"
                f" {FD_SETSIZE} sockets (the afd backend has no such limit)",
            )
        self._kernel_unwatch(fd)
        if events & (READABLE | RDHUP):
            self._readers.add(fd)
        if events & WRITABLE:
            self._writers.add(fd)
        if events & PRIORITY:
            self._urgent.add(fd)
        self._masks[fd] = events

    def _kernel_unwatch(self, fd: int) -> None:
        self._readers.discard(fd)
        self._writers.discard(fd)
        self._urgent.discard(fd)
        self._masks.pop(fd, None)

    def _kernel_wait(self, timeout: float | None) -> list[Any]:
        try:
            r, w, x = select.select(list(self._readers), list(self._writers), list(self._urgent), timeout)
        except OSError as err:
            if err.errno not in (errno.EBADF, _WSAENOTSOCK):
                raise
            # select fails as a whole on a closed fd: report the culprits (the
            # slow path drops them) and ask again at once about the others, so
            # a closed fd hides no ready one.
            closed = self._closed_fds()
            bad = {fd for fd, _ in closed}
            if not bad:
                return []
            r, w, x = select.select(
                [fd for fd in self._readers if fd not in bad],
                [fd for fd in self._writers if fd not in bad],
                [fd for fd in self._urgent if fd not in bad],
                0,
            )
            return closed + self._ready(r, w, x)
        return self._ready(r, w, x)

    def _ready(self, r: list[int], w: list[int], x: list[int]) -> list[Any]:
        ready = dict.fromkeys(r, 0)
        for fd in r:
            ready[fd] = _READ
        for fd in w:
            ready[fd] = ready.get(fd, 0) | _WRITE
        for fd in x:
            ready[fd] = ready.get(fd, 0) | _URGENT
        if _HAVE_POLL and ready:
            return self._classify(ready)
        return list(ready.items())

    def _classify(self, ready: dict[int, int]) -> list[Any]:
        # One zero-timeout poll(2) of the ready fds tells hang-up from data.
        if sys.platform == "win32":
            return list(ready.items())  # no poll(2) (_HAVE_POLL is False)
        probe = select.poll()
        for fd in ready:
            mask = self._masks.get(fd, 0)
            bits = select.POLLIN if mask & READABLE else 0
            if mask & WRITABLE:
                bits |= select.POLLOUT
            if mask & PRIORITY:
                bits |= select.POLLPRI
            if mask & RDHUP:
                bits |= POLLRDHUP | select.POLLIN
            probe.register(fd, bits)
        out = []
        for fd, revents in probe.poll(0):
            if revents & _POLLNVAL:
                out.append((fd, _INVALID))
                continue
            out.append((fd, translate(revents, FROM_POLL)))
        return out

    def _closed_fds(self) -> list[Any]:
        out = []
        for fd in list(self._masks):
            if not _is_open(fd):
                out.append((fd, _INVALID))
        return out

    def events_of(self, flags: int, fd: int, interest: int) -> tuple[int, bool]:
        return flags, True  # _kernel_wait already speaks portaio's flags

    def make_waker(self, host: Host) -> Waker:
        if _WINDOWS:
            from ._socket_waker import SocketWaker

            return SocketWaker(host)
        return super().make_waker(host)


def _is_open(fd: int) -> bool:
    if _WINDOWS:
        import socket

        try:
            socket.socket(fileno=fd).detach()
        except OSError:
            return False
        return True
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
