"""What the poll and select backends share: their kernel calls keep no state.

Both hand the kernel the whole interest set on every wait, so the backend
keeps it (``fd -> (token, epoch)``, the *watched* set) and builds each key
from the fd the kernel names:

* a change made while another thread waits is seen by that wait only when
  it starts again: the poller posts its waker (``interrupt_on_change``);
* an fd the kernel reports after it changed during the wait (its epoch is
  newer than the wait) is skipped: the report was for the old interest;
* the set is keyed by number, so a registration closed without
  ``unregister`` whose number the poller's own next fd took (its wakeup-fd
  pipe) must not reach that fd: ``remove`` and ``modify`` act only for the
  token the number is watched under;
* ONESHOT is emulated exactly: ``disarm`` takes the fd out of the set until
  ``modify`` puts it back;
* an fd closed behind the poller's back (``POLLNVAL``) is quietly dropped
  from the set, as epoll and kqueue drop it;
* when more fds are ready than asked for, the next wait starts where the
  last one stopped, so every ready fd is served in turn, as epoll's ready
  list rotates.
"""

from __future__ import annotations

import errno
import threading
from typing import Any, ClassVar

from .._validate import file_identity
from ._base import FLAGS_SHIFT, Backend, FileIdentity

__all__ = ["UserspaceBackend"]


class UserspaceBackend(Backend):
    """Base of backends whose wait takes the full interest set each time."""

    interrupt_on_change = True
    _invalid_bits: ClassVar[int] = 0
    """Kernel bits meaning "this fd is not open" (POLLNVAL)."""

    def __init__(self) -> None:
        self._rotation = 0
        self._epoch = 0
        self._watched: dict[int, tuple[int, int]] = {}
        self._set_lock = threading.Lock()  # the watched set: control calls vs a wait dropping closed fds
        self._open_kernel()

    # ----------------------------------------------------- subclass hooks
    def _open_kernel(self) -> None:
        raise NotImplementedError

    def _kernel_watch(self, fd: int, events: int, new: bool) -> None:
        raise NotImplementedError

    def _kernel_unwatch(self, fd: int) -> None:
        raise NotImplementedError

    def _kernel_wait(self, timeout: float | None) -> list[Any]:
        """Wait; return ``(fd, bits)`` pairs, *bits* in the kernel's terms."""
        raise NotImplementedError

    # ------------------------------------------------------------ control
    def add(self, fd: int, events: int, token: int) -> FileIdentity | None:
        identity = file_identity(fd, self.name)  # EBADF named, as epoll's add would say
        with self._set_lock:
            self._kernel_watch(fd, events, fd not in self._watched)
            self._epoch += 1
            self._watched[fd] = (token, self._epoch)
        return identity

    def modify(self, fd: int, old_events: int, old_token: int, events: int, token: int) -> None:
        # No fstat here: the core made one (the number is open and still
        # names the registered file; see _register.py), the only one a modify costs.
        with self._set_lock:
            entry = self._watched.get(fd)
            if entry is not None and entry[0] != old_token:
                # Closed, and its number watched since under another token
                # (the poller's own wakeup-fd pipe): not this registration's.
                raise OSError(
                    errno.EBADF,
                    f"portaio[{self.name}]: cannot modify fd {fd}: it was closed"
                    " (its number names another file now)",
                )
            self._kernel_watch(fd, events, fd not in self._watched)
            self._epoch += 1
            self._watched[fd] = (token, self._epoch)

    def remove(self, fd: int, events: int, token: int) -> None:
        with self._set_lock:
            entry = self._watched.get(fd)
            if entry is not None and entry[0] == token:
                del self._watched[fd]
                self._epoch += 1
                self._kernel_unwatch(fd)

    disarm = remove

    def close(self) -> None:
        with self._set_lock:
            self._watched.clear()

    # --------------------------------------------------------------- wait
    def wait(self, timeout: float | None, max_events: int) -> list[int]:
        epoch = self._epoch
        raw = self._kernel_wait(timeout)
        if not raw:
            return []
        if len(raw) > max_events:
            # Start where the last truncated batch stopped, so the fds left
            # out come first next time.
            start = self._rotation % len(raw)
            raw = raw[start:] + raw[:start]
        watched = self._watched
        invalid = self._invalid_bits
        keys: list[int] = []
        used = 0
        for fd, bits in raw:
            if len(keys) >= max_events:
                break
            used += 1
            entry = watched.get(fd)
            if entry is None or entry[1] > epoch:
                continue  # changed while the kernel looked, or disarmed
            if bits & invalid:
                self._drop_closed(fd, entry)
                continue
            keys.append(entry[0] | bits << FLAGS_SHIFT)  # token | flags << FLAGS_SHIFT (see _base.py)
        if used < len(raw):
            self._rotation += used
        return keys

    def _drop_closed(self, fd: int, entry: tuple[int, int]) -> None:
        # Closed behind our back: stop asking the kernel about it.
        with self._set_lock:
            if self._watched.get(fd) == entry:
                del self._watched[fd]
                self._kernel_unwatch(fd)
