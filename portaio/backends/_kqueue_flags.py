"""kqueue's constants as this build has them, and interest to kevent changes.

What the filters are for an interest mask is decided by the pure
:func:`portaio.backends._kevent.filters_for`; this module gives it the
build's numbers (:func:`adds`, :func:`each`).  The other direction, a key's
summary bits to :class:`~portaio.Events`, is
:func:`portaio.backends._kevent.translate_bits`, called by the backend.
"""

from __future__ import annotations

import os
import stat
import sys

from .._flags import PRIORITY
from . import _kevent
from ._base import FLAGS_SHIFT, TOKEN_MASK

try:
    from .._kqueue_cffi import lib
except ImportError:  # pragma: no cover - depends on the build
    HAVE_KQUEUE = False
else:
    HAVE_KQUEUE = True

__all__ = [
    "KERNEL",
    "adds",
    "each",
    "have",
    "is_fifo",
    "is_null_device",
    "is_socket",
    "kind_of",
    "merge_keys",
    "outcome",
]


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
    EV_ONESHOT = int(lib.EV_ONESHOT)
    # EV_DISPATCH disables a fired filter so modify can re-enable it; where
    # it is missing EV_ONESHOT deletes it and modify adds it again.
    EV_ONCE = int(lib.PORTAIO_EV_DISPATCH) if have("EV_DISPATCH") else int(lib.EV_ONESHOT)
    NOTE_OOB = int(lib.PORTAIO_NOTE_OOB) if have("EVFILT_EXCEPT") and have("NOTE_OOB") else 0
    K_OTHER = int(lib.PORTAIO_K_OTHER)
    K_DATA_SHIFT = int(lib.PORTAIO_K_DATA_SHIFT)
    LIBKQUEUE = bool(lib.PORTAIO_LIBKQUEUE)
else:  # pragma: no cover
    EVFILT_READ = EVFILT_WRITE = EVFILT_EXCEPT = EVFILT_SIGNAL = 0
    EV_ADD = EV_DELETE = EV_DISABLE = EV_CLEAR = EV_ONESHOT = EV_ONCE = 0
    NOTE_OOB = 0
    K_OTHER = 0x200
    K_DATA_SHIFT = 10
    LIBKQUEUE = False

_FILTERS = {_kevent.READ: EVFILT_READ, _kevent.WRITE: EVFILT_WRITE, _kevent.EXCEPT: EVFILT_EXCEPT}


def _family() -> _kevent.Kernel:
    if LIBKQUEUE:
        return _kevent.LIBKQUEUE
    for prefix, kernel in (
        ("darwin", _kevent.MACOS),
        ("freebsd", _kevent.FREEBSD),
        ("openbsd", _kevent.OPENBSD),
        ("netbsd", _kevent.NETBSD),
    ):
        if sys.platform.startswith(prefix):
            return kernel
    return _kevent.FREEBSD  # DragonFly and other FreeBSD descendants


KERNEL = _kevent.Kernel(
    _family().name,
    note_oob=NOTE_OOB,
    silent_errors=not LIBKQUEUE,
    evfilt_user=have("EVFILT_USER") and have("NOTE_TRIGGER"),
    signals=_family().signals,
)
"""The kernel family this build runs on, with what its header really has."""

Change = tuple[int, int, int, int]
"""``(filter, flags, fflags, data)``, one kevent change for an fd."""


def adds(events: int, level: bool = False) -> list[Change]:
    """The changes that add the filters for an interest mask (*level*: helpers level-triggered)."""
    out = []
    for filt, clear, once in _kevent.filters_for(events & ~(0 if NOTE_OOB else PRIORITY), level):
        flags = EV_ADD | (EV_CLEAR if clear else 0) | (EV_ONCE if once else 0)
        out.append((_FILTERS[filt], flags, NOTE_OOB if filt == _kevent.EXCEPT else 0, 0))
    return out


def each(events: int, flags: int) -> list[Change]:
    """The changes applying *flags* (EV_DELETE, EV_DISABLE) to every filter of an interest mask."""
    return [(f, flags, 0, 0) for f, _, _, _ in adds(events)]


def kind_of(fd: int) -> int:
    """What *fd* is for the translation: a socket, a pipe or FIFO end, or another file."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return _kevent.READ_WRITE
    if stat.S_ISSOCK(mode):
        return _kevent.SOCKET
    if sys.platform == "win32":  # pragma: no cover - no kqueue there; the module loads anywhere
        return _kevent.READ_WRITE
    import fcntl

    try:
        access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError:
        return _kevent.READ_WRITE
    if access == os.O_RDONLY:
        return _kevent.READ_END
    if access == os.O_WRONLY:
        return _kevent.WRITE_END
    return _kevent.READ_WRITE


def is_socket(fd: int) -> bool:
    """True if *fd* is a socket."""
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


def _null_device() -> int | None:
    if sys.platform == "win32":  # pragma: no cover - no st_rdev, and no kqueue
        return None
    try:
        return os.stat(os.devnull).st_rdev
    except OSError:  # pragma: no cover
        return None


_DEV_NULL = _null_device()


def is_null_device(fd: int) -> bool:
    """True if *fd* is the null device, which no kqueue watches and which never blocks."""
    if sys.platform == "win32":  # pragma: no cover - no st_rdev, and no kqueue
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == _DEV_NULL


def is_fifo(fd: int) -> bool:
    """True if *fd* is a pipe or FIFO."""
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False


def outcome(adds: list[Change], errors: list[int]) -> tuple[list[tuple[Change, int]], list[Change]]:
    """(the adds that failed with their errno, the deletes undoing those that did not)."""
    failed = [(adds[i], err) for i, err in enumerate(errors) if err]
    undo = [(adds[i][0], EV_DELETE, 0, 0) for i, err in enumerate(errors) if not err]
    return failed, undo


def merge_keys(kept: list[int], fresh: list[int]) -> list[int]:
    """Keys kept from an earlier wait, then fresh ones; one key per registration (bits ORed).

    The poller's own knotes (timers, signals) carry a count, not bits: never merged.
    """
    merged: dict[int, int] = {}
    own: list[int] = []
    for key in kept + fresh:
        if (key >> FLAGS_SHIFT) & K_OTHER:  # a key is token | bits << FLAGS_SHIFT (_base.py)
            own.append(key)
        else:
            token = key & TOKEN_MASK
            merged[token] = merged.get(token, 0) | key
    return own + list(merged.values())
