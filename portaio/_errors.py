"""Exceptions raised by portaio, the same types on every backend."""

from __future__ import annotations

__all__ = [
    "AlreadyRegistered",
    "BackendUnavailable",
    "NotRegistered",
    "PollerClosed",
    "PortaioError",
    "Unsupported",
]


class PortaioError(Exception):
    """Base class of every exception portaio defines."""


class Unsupported(PortaioError, ValueError):
    """A backend was asked for a mode or feature it cannot honour natively.

    portaio never silently downgrades: asking the ``poll`` backend for
    :data:`~portaio.EDGE` raises this instead of delivering level-triggered
    events.
    """

    def __init__(self, backend: str, feature: str, detail: str = "") -> None:
        self.backend = backend
        self.feature = feature
        message = f"portaio[{backend}]: {feature} is not supported by the {backend} backend"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class _KeyLikeError(PortaioError, KeyError):
    """A :class:`KeyError` whose text is a sentence, not the repr of a key."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class AlreadyRegistered(_KeyLikeError):
    """The fd is already registered with this poller; use ``modify`` instead."""


class NotRegistered(_KeyLikeError):
    """The fd is not registered with this poller."""


class PollerClosed(PortaioError, RuntimeError):
    """The poller was used after :meth:`~portaio.Poller.close`."""


class BackendUnavailable(PortaioError, RuntimeError):
    """The requested backend does not exist or cannot run on this machine."""
