"""Readiness flags, interest modes and the event kinds portaio reports."""

from __future__ import annotations

import enum

__all__ = [
    "ALWAYS_REPORTED",
    "EDGE",
    "ERROR",
    "EXCLUSIVE",
    "HANGUP",
    "INTEREST_FLAGS",
    "MODE_FLAGS",
    "ONESHOT",
    "PRIORITY",
    "RDHUP",
    "READABLE",
    "SIGNAL",
    "TIMER",
    "WAKE",
    "WRITABLE",
    "Events",
]


class Events(enum.IntFlag):
    """Bit flags for interest (what to watch) and readiness (what happened).

    The values are portaio's own and identical on every backend; each backend
    translates them to and from its kernel's bits.  ``READABLE`` and
    ``WRITABLE`` equal :data:`selectors.EVENT_READ` and
    :data:`selectors.EVENT_WRITE`.
    """

    READABLE = 0x001
    """Data can be read, a peer connected to a listening socket, or EOF."""
    WRITABLE = 0x002
    """Data can be written without blocking."""
    PRIORITY = 0x004
    """Out-of-band / urgent data is pending (``POLLPRI``)."""
    RDHUP = 0x008
    """The peer closed its writing side (stream sockets)."""
    HANGUP = 0x010
    """Hang-up: both directions closed, or a pipe lost its other end.  Always reported."""
    ERROR = 0x020
    """An error condition is pending on the fd.  Always reported."""
    EDGE = 0x040
    """Mode: report a readiness change once instead of as long as it lasts."""
    ONESHOT = 0x080
    """Mode: report one event, then stay silent until :meth:`Poller.modify` re-arms."""
    EXCLUSIVE = 0x100
    """Mode: wake only one of several pollers waiting on the same file."""
    TIMER = 0x200
    """Event kind: a timer from :meth:`Poller.add_timer` expired."""
    SIGNAL = 0x400
    """Event kind: a signal watched with :meth:`Poller.add_signal` arrived."""
    WAKE = 0x800
    """Event kind: :meth:`Poller.wake` was called."""


READABLE = Events.READABLE
WRITABLE = Events.WRITABLE
PRIORITY = Events.PRIORITY
RDHUP = Events.RDHUP
HANGUP = Events.HANGUP
ERROR = Events.ERROR
EDGE = Events.EDGE
ONESHOT = Events.ONESHOT
EXCLUSIVE = Events.EXCLUSIVE
TIMER = Events.TIMER
SIGNAL = Events.SIGNAL
WAKE = Events.WAKE

INTEREST_FLAGS = int(READABLE | WRITABLE | PRIORITY | RDHUP)
"""The bits that ask for a kind of readiness."""
ALWAYS_REPORTED = int(HANGUP | ERROR)
"""Bits reported whether asked for or not; accepted in an interest mask as no-ops."""
MODE_FLAGS = int(EDGE | ONESHOT | EXCLUSIVE)
"""The bits that change how readiness is reported."""
