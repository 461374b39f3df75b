"""Small value types shared by every backend: events, registrations, capabilities."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

__all__ = ["Capabilities", "Event", "FileLike", "Registration"]


class Event(NamedTuple):
    """One readiness event returned by :meth:`Poller.poll`.

    Events are immutable; portaio reuses one object for the same
    registration and flags, so compare them by value, not identity.
    """

    fd: int
    """The file descriptor, or -1 for timer, signal and wake events."""
    events: int
    """Bitmask of :class:`~portaio.Events` flags that are ready."""
    data: Any
    """The object given to :meth:`Poller.register` (or ``add_timer``, ...)."""
    times: int = 1
    """Expirations (timers) or deliveries (signals) since the last report; 1 for fds."""
    signum: int = 0
    """The signal number for :data:`~portaio.SIGNAL` events, else 0."""


class Registration:
    """What :meth:`Poller.register` and :meth:`Poller.modify` return: a read-only view.

    The fd, the file object as given, the interest and the data of one
    registration, as they were when it was made; the poller's bookkeeping
    (tokens, one-shot state, cached events) is private to it.
    """

    __slots__ = ("data", "events", "fd", "fileobj")

    fd: int
    """The file descriptor."""
    fileobj: Any
    """The object given to ``register`` (an int fd or an object with ``fileno()``)."""
    events: int
    """The interest: a mask of :class:`~portaio.Events` flags."""
    data: Any
    """The object reported as the events' ``data``."""

    def __init__(self, fd: int, fileobj: Any, events: int, data: Any) -> None:
        set_ = object.__setattr__
        set_(self, "fd", fd)
        set_(self, "fileobj", fileobj)
        set_(self, "events", events)
        set_(self, "data", data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Registration is read-only (use Poller.modify or Poller.replace_data): {name}")

    def __repr__(self) -> str:
        return f"Registration(fd={self.fd}, events={self.events:#x}, data={self.data!r})"


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a backend honours natively; everything else raises :class:`~portaio.Unsupported`."""

    edge: bool
    """:data:`~portaio.EDGE` (edge-triggered) interest."""
    oneshot: bool
    """:data:`~portaio.ONESHOT` interest (native or exactly emulated)."""
    exclusive: bool
    """:data:`~portaio.EXCLUSIVE` wake-one interest."""
    priority: bool
    """:data:`~portaio.PRIORITY` (out-of-band data) interest."""
    rdhup: bool
    """:data:`~portaio.RDHUP` (peer closed its write side) interest."""
    hangup: bool
    """:data:`~portaio.HANGUP` and :data:`~portaio.ERROR` are reported."""
    o1_wait: bool
    """Wait cost is O(ready), not O(registered)."""
    timeout_resolution: float
    """Finest timeout the kernel call honours, in seconds."""
    max_fd: int | None
    """Largest fd number accepted (``FD_SETSIZE - 1`` for select), or None."""
    native_timers: str
    """Kernel mechanism used for timers."""
    native_signals: str
    """Kernel mechanism used for signals."""
    native_wake: str
    """Kernel mechanism used for :meth:`~portaio.Poller.wake`."""

    def as_dict(self) -> dict[str, Any]:
        """The capabilities as a plain dict (for JSON output)."""
        return dataclasses.asdict(self)


FileLike = Any
"""An int fd or any object with a ``fileno()`` method."""
