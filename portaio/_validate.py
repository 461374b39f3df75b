"""Argument validation shared by every backend: the same error, worded the same way.

Each check names the backend (``portaio[<backend>]: ...``) and, where there
is one, the fd, so a mistake reads the same whichever backend caught it.
"""

from __future__ import annotations

import errno
import math
import os
import socket
import sys
from typing import Any

from ._errors import Unsupported
from ._flags import ALWAYS_REPORTED, EDGE, EXCLUSIVE, INTEREST_FLAGS, MODE_FLAGS, ONESHOT, PRIORITY, RDHUP
from ._types import Capabilities

__all__ = [
    "FD_MAX",
    "TIMEOUT_MAX",
    "check_events",
    "check_fd_open",
    "check_max_events",
    "check_timeout",
    "fd_of",
]

TIMEOUT_MAX = (2**31 - 1) / 1000.0
"""The largest finite timeout accepted, in seconds (about 24.8 days): the most
``poll(2)`` can express in one call, so every backend takes the same range."""

FD_MAX = 2**31 - 1
"""The largest fd number accepted (a C ``int``)."""

_VALID_INTEREST = INTEREST_FLAGS | ALWAYS_REPORTED | MODE_FLAGS


def fd_of(fileobj: Any, backend: str) -> int:
    """The fd of *fileobj* (an int or an object with ``fileno()``), checked for range."""
    if fileobj.__class__ is int:
        fd = fileobj
    elif isinstance(fileobj, int) and not isinstance(fileobj, bool):
        fd = int(fileobj)
    else:
        if isinstance(fileobj, (bool, float, str, bytes)) or not hasattr(fileobj, "fileno"):
            raise TypeError(
                f"portaio[{backend}]: expected an int fd or an object with fileno(),"
                f" got {type(fileobj).__name__}"
            )
        try:
            fd = fileobj.fileno()
        except (AttributeError, TypeError, ValueError, OSError) as err:
            raise ValueError(f"portaio[{backend}]: invalid file object {fileobj!r}: {err}") from None
        if not isinstance(fd, int) or isinstance(fd, bool):
            raise TypeError(f"portaio[{backend}]: fileno() of {fileobj!r} returned {fd!r}, not an int")
    if fd < 0:
        raise ValueError(f"portaio[{backend}]: fd {fd} is negative")
    if fd > FD_MAX:
        raise ValueError(f"portaio[{backend}]: fd {fd} is out of range")
    return fd


def check_events(fd: int, events: Any, backend: str, caps: Capabilities) -> int:
    """The interest mask *events* for *fd*, refused if malformed or beyond what *caps* honour."""
    if not isinstance(events, int) or isinstance(events, bool):
        raise TypeError(f"portaio[{backend}]: events for fd {fd} must be an int, got {type(events).__name__}")
    mask = int(events)
    if mask & ~_VALID_INTEREST or mask < 0:
        raise ValueError(f"portaio[{backend}]: fd {fd}: unknown or output-only flag bits {mask:#x}")
    if not mask & INTEREST_FLAGS:
        raise ValueError(
            f"portaio[{backend}]: fd {fd}: events {mask:#x} ask for no readiness"
            " (READABLE, WRITABLE, PRIORITY or RDHUP)"
        )
    for flag, supported in (
        (EDGE, caps.edge),
        (ONESHOT, caps.oneshot),
        (EXCLUSIVE, caps.exclusive),
        (PRIORITY, caps.priority),
        (RDHUP, caps.rdhup),
    ):
        if mask & flag and not supported:
            raise Unsupported(backend, flag.name or str(flag), f"fd {fd}")
    if mask & EXCLUSIVE and mask & ONESHOT:
        raise Unsupported(backend, "EXCLUSIVE with ONESHOT", f"fd {fd}; the kernel refuses it")
    if mask & EXCLUSIVE and mask & (PRIORITY | RDHUP):
        raise Unsupported(backend, "EXCLUSIVE with PRIORITY or RDHUP", f"fd {fd}; the kernel refuses it")
    if caps.max_fd is not None and fd > caps.max_fd:
        raise ValueError(f"portaio[{backend}]: fd {fd} is above the backend's limit {caps.max_fd}")
    return mask


def check_timeout(timeout: Any, backend: str) -> float | None:
    """*timeout* in seconds as a float, ``None`` for infinity; refused if not a number in range."""
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise TypeError(
            f"portaio[{backend}]: timeout must be None or a number of seconds, got {type(timeout).__name__}"
        )
    seconds = float(timeout)
    if math.isnan(seconds):
        raise ValueError(f"portaio[{backend}]: timeout is NaN")
    if seconds < 0:
        raise ValueError(f"portaio[{backend}]: timeout {seconds} is negative (use 0 to poll, None to block)")
    if seconds == math.inf:
        return None
    if seconds > TIMEOUT_MAX:
        raise OverflowError(f"portaio[{backend}]: timeout {seconds} exceeds TIMEOUT_MAX ({TIMEOUT_MAX} s)")
    return seconds


def check_max_events(max_events: Any, backend: str) -> int:
    """*max_events*, refused unless a positive int."""
    if not isinstance(max_events, int) or isinstance(max_events, bool):
        raise TypeError(f"portaio[{backend}]: max_events must be an int, got {type(max_events).__name__}")
    if max_events < 1:
        raise ValueError(f"portaio[{backend}]: max_events {max_events} is less than 1")
    return max_events


def check_fd_open(fd: int, backend: str) -> None:
    """Raise ``OSError(EBADF)`` naming *fd* and *backend* if *fd* is not open.

    On Windows, where portaio watches sockets only, a handle that is open but
    not a socket (a file, pipe or console fd) raises :class:`~portaio.Unsupported`.
    """
    file_identity(fd, backend)


def file_identity(fd: int, backend: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the open file *fd* names; ``OSError(EBADF)`` naming both if closed.

    Numbers naming the same open file (a dup, or the same file put back
    under its number) have the same identity; a new pipe or socket under a
    reused number has another.  Two opens of one path share it too, and an
    inode freed (its file deleted and closed) may be given to a new file: an
    equal identity may be another open of the same inode, never a different
    file that is still open.  None on Windows (a socket has no such
    identity), after checking it is an open socket.
    """
    if sys.platform == "win32":
        _check_socket_open(fd, backend)
        return None
    try:
        st = os.fstat(fd)
    except OSError as err:
        if err.errno == errno.EBADF:
            raise OSError(
                errno.EBADF, f"portaio[{backend}]: fd {fd} is not an open file descriptor"
            ) from None
        raise
    return st.st_dev, st.st_ino


def _check_socket_open(fd: int, backend: str) -> None:
    # Windows: a socket's fileno() is a SOCKET handle, unknown to os.fstat;
    # os.fstat knows the C runtime's fds (files, pipes, consoles) only.
    try:
        socket.socket(fileno=fd).detach()
        return
    except OSError:
        pass
    try:
        os.fstat(fd)
    except OSError:
        raise OSError(errno.EBADF, f"portaio[{backend}]: fd {fd} is not an open socket") from None
    raise Unsupported(backend, "non-socket handles", f"fd {fd} is not a socket; Windows polls sockets only")
