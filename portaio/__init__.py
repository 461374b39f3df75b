"""portaio: one readiness API over epoll, kqueue, AFD (Windows), poll and select.

>>> import portaio
>>> with portaio.Poller() as poller:
...     poller.backend in portaio.available_backends()
True
"""

from __future__ import annotations

from ._errors import (
    AlreadyRegistered,
    BackendUnavailable,
    NotRegistered,
    PollerClosed,
    PortaioError,
    Unsupported,
)
from ._flags import (
    EDGE,
    ERROR,
    EXCLUSIVE,
    HANGUP,
    ONESHOT,
    PRIORITY,
    RDHUP,
    READABLE,
    SIGNAL,
    TIMER,
    WAKE,
    WRITABLE,
    Events,
)
from ._poller import DEFAULT_MAX_EVENTS, TIMEOUT_MAX, Poller
from ._signals import SignalWatch
from ._timers import TIMER_MAX, TIMER_MIN_INTERVAL, Timer
from ._types import Capabilities, Event, Registration
from .backends import BACKEND_NAMES, available_backends, backend_class, default_backend, unavailable_reasons

__version__ = "0.1.0"

__all__ = [
    "BACKEND_NAMES",
    "DEFAULT_MAX_EVENTS",
    "EDGE",
    "ERROR",
    "EXCLUSIVE",
    "HANGUP",
    "ONESHOT",
    "PRIORITY",
    "RDHUP",
    "READABLE",
    "SIGNAL",
    "TIMEOUT_MAX",
    "TIMER",
    "TIMER_MAX",
    "TIMER_MIN_INTERVAL",
    "WAKE",
    "WRITABLE",
    "AlreadyRegistered",
    "BackendUnavailable",
    "Capabilities",
    "Event",
    "Events",
    "NotRegistered",
    "Poller",
    "PollerClosed",
    "PortaioError",
    "Registration",
    "SignalWatch",
    "Timer",
    "Unsupported",
    "__version__",
    "available_backends",
    "backend_class",
    "default_backend",
    "unavailable_reasons",
]
