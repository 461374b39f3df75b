"""The signalfd signal source of the epoll backend (Linux).

A signal is read from a signalfd only while it is *blocked*: the first watch
blocks it with ``pthread_sigmask`` in the calling (main) thread and the last
removal unblocks it again unless it was blocked before.  What that means:

* threads started afterwards from the main thread inherit the blocked mask;
  a thread that does not block the signal (started earlier, or by C code)
  may be chosen by the kernel for a process-directed signal, which then runs
  Python's C-level handler instead of reaching the signalfd: that handler
  writes it to Python's wakeup fd, which the epoll backend watches as well
  (``_signal_kinds``), so it arrives all the same;
* the blocked mask survives ``execve``: a child started with
  :mod:`subprocess` while a signal is watched starts with it blocked (pass
  ``preexec_fn`` or restore it in the child if that matters);
* a signal sent to one thread (``pthread_kill``) is read only by a signalfd
  read in that thread.
"""

from __future__ import annotations

import os
import signal
import sys

if sys.platform == "win32":  # pragma: no cover - never imported there
    raise ImportError("portaio: signalfd is Linux, not Windows")

from .._signals import SignalSource, deliver

try:
    from .._epoll_cffi import ffi, lib
except ImportError:  # pragma: no cover - the epoll backend is unavailable then
    pass

__all__ = ["SignalfdSource"]

_RECORD = 128  # sizeof(struct signalfd_siginfo), fixed by the kernel ABI


class SignalfdSource(SignalSource):
    """One signalfd for the whole process, its mask the signals portaio watches."""

    def __init__(self) -> None:
        self._flags = int(lib.SFD_CLOEXEC | lib.SFD_NONBLOCK)
        self._was_blocked: dict[int, bool] = {}
        fd = lib.portaio_signalfd(-1, ffi.NULL, 0, self._flags)
        if fd < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[epoll]: signalfd: {os.strerror(err)}")
        self.fd = int(fd)

    def _set_mask(self) -> None:
        signums = list(self._was_blocked)
        array = ffi.new("int[]", signums or [0])
        if lib.portaio_signalfd(self.fd, array, len(signums), self._flags) < 0:
            err = ffi.errno
            raise OSError(err, f"portaio[epoll]: signalfd: {os.strerror(err)}")

    def _start(self, signum: int) -> None:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signum})
        self._was_blocked[signum] = signum in previous
        try:
            self._set_mask()
        except OSError:
            self._unblock(signum)
            raise

    def _stop(self, signum: int) -> None:
        # Take what is pending first, so nothing of this signal is delivered to
        # the restored disposition late; the others go to their watchers.
        for other, count in self.drain().items():
            if other != signum:
                deliver(other, count)
        was_blocked = self._was_blocked.pop(signum, True)
        try:
            self._set_mask()
        finally:
            if not was_blocked:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})

    def _unblock(self, signum: int) -> None:
        if not self._was_blocked.pop(signum, True):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})

    def drain(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        while True:
            try:
                data = os.read(self.fd, _RECORD * 64)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            for offset in range(0, len(data) - _RECORD + 1, _RECORD):
                signum = int.from_bytes(data[offset : offset + 4], sys.byteorder)
                counts[signum] = counts.get(signum, 0) + 1
            if len(data) < _RECORD * 64:
                break
        return counts

    def close(self) -> None:
        for signum in list(self._was_blocked):
            self._unblock(signum)
        try:
            os.close(self.fd)
        except OSError:
            pass

    def forget_after_fork(self) -> None:
        # The child is single-threaded: unblocking here restores its whole mask.
        self.close()
