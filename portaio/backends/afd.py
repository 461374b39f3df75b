"""Windows: the AFD driver's poll requests, completed through an I/O completion port.

Windows has no epoll; what ``select()``, libuv, wepoll, mio and trio build
on is the kernel's socket driver, AFD: an ``IOCTL_AFD_POLL`` request on a
``\\Device\\Afd`` handle completes, through an I/O completion port, when a
socket becomes ready.  The state machine that drives it -- one poll per
socket carrying the union of read and write interest, sockets grouped 32
per AFD handle, cancellation with ``NtCancelIoFileEx``, level-triggered
reporting by re-submission, ONESHOT, the translation of ``AFD_POLL_*`` bits
to portaio's -- is C (``csrc/portaio_afd.c``, whose opening essay gives the
kernel facts); this module is its thin binding (``portaio._afd_cffi``, cffi
in API mode like epoll, so the compiler checks every declaration against
the source; ABI mode, as trio uses, would leave the struct layouts and the
NT calls' types to hand-written cdefs checked by nobody).

The C wait already speaks portaio's flags (``token | flags << 24``), so
:meth:`AfdBackend.events_of` has nothing to translate.  What AFD cannot do
is refused through the capabilities: EDGE (a new poll cannot tell "more data
arrived" from "data is still there", so edge-triggering cannot be exact),
EXCLUSIVE, and every handle that is not a socket (files, pipes, consoles:
:class:`~portaio.Unsupported`).  Timers use the wait's timeout:
``GetQueuedCompletionStatusEx`` counts whole milliseconds on the system timer
tick (15.625 ms unless a process raised the timer resolution); the C wait
rounds up and loops on ``QueryPerformanceCounter``, so it never ends early.
Signals: Python's ``signal.set_wakeup_fd`` on a socket (only SIGINT and
SIGBREAK exist for a console program).
"""

from __future__ import annotations

import errno
import sys
import threading
from typing import Any

from .._flags import EDGE, ERROR, EXCLUSIVE, HANGUP, ONESHOT, PRIORITY, RDHUP, READABLE, WAKE, WRITABLE
from .._types import Capabilities
from .._validate import check_fd_open
from ._base import Backend, Host, Waker

try:
    from .._afd_cffi import ffi, lib
except ImportError as _err:
    UNAVAILABLE: str | None = (
        f"the compiled module portaio._afd_cffi is missing ({_err})"
        if sys.platform == "win32"
        else f"the afd backend drives Windows' AFD socket driver: not on {sys.platform}"
    )
else:
    UNAVAILABLE = None

__all__ = ["UNAVAILABLE", "AfdBackend"]

_WSAENOTSOCK = 10038
_FIRST_BUFFER = 64

if UNAVAILABLE is None:
    # The C header spells portaio's flags out; a mismatch would misreport everything.
    assert (lib.PORTAIO_AFD_READABLE, lib.PORTAIO_AFD_WRITABLE, lib.PORTAIO_AFD_PRIORITY) == (
        READABLE,
        WRITABLE,
        PRIORITY,
    )
    assert (lib.PORTAIO_AFD_RDHUP, lib.PORTAIO_AFD_HANGUP, lib.PORTAIO_AFD_ERROR) == (RDHUP, HANGUP, ERROR)
    assert (lib.PORTAIO_AFD_EDGE, lib.PORTAIO_AFD_ONESHOT, lib.PORTAIO_AFD_EXCLUSIVE) == (
        EDGE,
        ONESHOT,
        EXCLUSIVE,
    )
    assert lib.PORTAIO_AFD_WAKE == WAKE


def _error(name: str, what: str) -> OSError:
    code, message = ffi.getwinerror()
    return OSError(code, f"portaio[{name}]: {what}: {message}")


class AfdBackend(Backend):
    """The afd backend (Windows): O(ready) waits on sockets through ``\\Device\\Afd``."""

    name = "afd"
    capabilities = Capabilities(
        edge=False,
        oneshot=True,
        exclusive=False,
        priority=True,
        rdhup=True,
        hangup=True,
        o1_wait=True,
        timeout_resolution=1e-3,
        max_fd=None,
        native_timers="GetQueuedCompletionStatusEx timeout (ms, on the system timer tick)",
        native_signals="signal.set_wakeup_fd (socket)",
        native_wake="PostQueuedCompletionStatus",
    )
    # The C state machine disarms a reported ONESHOT socket itself and submits
    # a change at once when a wait is blocked (its completion wakes the wait).
    oneshot_in_kernel = True

    def __init__(self) -> None:
        if UNAVAILABLE is not None:
            raise OSError(errno.ENOSYS, f"portaio[afd]: {UNAVAILABLE}")
        port = lib.portaio_afd_open()
        if port == ffi.NULL:
            raise _error(self.name, "cannot open an I/O completion port")
        self._port: Any = port
        self._socks: dict[int, Any] = {}
        # Guards self._port against close(): waits in flight are counted, and
        # close() frees the port only when none is left inside the C wait.
        self._state = threading.Condition(threading.RLock())
        self._waits = 0
        self._buffers: list[tuple[Any, int]] = [(ffi.new("uint64_t[]", _FIRST_BUFFER), _FIRST_BUFFER)]

    # ------------------------------------------------------------ control
    def add(self, fd: int, events: int, token: int) -> None:
        sock = lib.portaio_afd_add(self._port, fd, events, token)
        if sock == ffi.NULL:
            err = _error(self.name, f"cannot watch fd {fd}")
            if err.errno == _WSAENOTSOCK:
                # Not a socket: Unsupported for a file, pipe or console, EBADF if not open.
                check_fd_open(fd, self.name)
            raise err
        self._socks[fd] = sock

    def modify(self, fd: int, old_events: int, old_token: int, events: int, token: int) -> None:
        sock = self._socks.get(fd)
        if sock is None:
            raise OSError(errno.ENOENT, f"portaio[{self.name}]: fd {fd} is not watched")
        if lib.portaio_afd_modify(self._port, sock, events, token) < 0:
            raise _error(self.name, f"cannot modify fd {fd}")

    def remove(self, fd: int, events: int, token: int) -> None:
        sock = self._socks.pop(fd, None)
        if sock is not None:
            lib.portaio_afd_remove(self._port, sock)

    # --------------------------------------------------------------- wait
    def wait(self, timeout: float | None, max_events: int) -> list[int]:
        with self._state:
            port = self._port
            if port is None:
                return []
            self._waits += 1
            entry = self._buffers.pop() if self._buffers else None
        try:
            if entry is None or max_events > entry[1]:
                size = max(max_events, _FIRST_BUFFER)
                entry = (ffi.new("uint64_t[]", size), size)
            n = lib.portaio_afd_wait(port, entry[0], max_events, -1.0 if timeout is None else timeout)
            if n > 0:
                return ffi.unpack(entry[0], n)
            if n < 0 and self._port is not None:
                raise _error(self.name, "GetQueuedCompletionStatusEx")
            return []
        finally:
            with self._state:
                self._waits -= 1
                if entry is not None:
                    self._buffers.append(entry)
                self._state.notify_all()

    def events_of(self, flags: int, fd: int, interest: int) -> tuple[int, bool]:
        return flags, True  # the C wait reports portaio's flags

    def post_wake(self, token: int) -> None:
        """Make a wait return the wake key of *token* (from :class:`AfdWaker`)."""
        with self._state:
            if self._port is not None:
                lib.portaio_afd_wake(self._port, token)

    def close(self) -> None:
        with self._state:
            port, self._port = self._port, None
            if port is None:
                return
            # A wait that read the port before we cleared it may not be in
            # the C wait yet: keep waking until every one has left.
            while self._waits:
                lib.portaio_afd_wake(port, 0)
                self._state.wait(0.05)
        self._socks.clear()
        lib.portaio_afd_close(port)

    # ------------------------------------------------------------ sources
    def make_waker(self, host: Host) -> Waker:
        from ._afd_waker import AfdWaker

        return AfdWaker(host, self)
