"""The backends, best first, and how one is chosen.

Each backend module defines one :class:`~portaio.Poller` subclass and a
module-level ``UNAVAILABLE`` (``None``, or why it cannot run here).
"""

from __future__ import annotations

import importlib
import os
import sys

from .._errors import BackendUnavailable
from .._poller import Poller

__all__ = ["BACKEND_NAMES", "available_backends", "backend_class", "default_backend", "unavailable_reasons"]

BACKEND_NAMES = ("epoll", "kqueue", "poll", "select")
"""Every backend portaio knows, best first."""

_CLASSES = {"epoll": "EpollPoller", "kqueue": "KqueuePoller", "poll": "PollPoller", "select": "SelectPoller"}
ENV_VAR = "PORTAIO_BACKEND"


def _probe(name: str) -> tuple[type[Poller] | None, str | None]:
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ImportError as err:
        return None, f"the {name} backend is not part of this build ({err})"
    reason: str | None = getattr(module, "UNAVAILABLE", None)
    if reason is not None:
        return None, reason
    cls: type[Poller] = getattr(module, _CLASSES[name])
    return cls, None


def unavailable_reasons() -> dict[str, str]:
    """For each backend that cannot run here, why not."""
    out = {}
    for name in BACKEND_NAMES:
        cls, reason = _probe(name)
        if cls is None:
            out[name] = reason or "unavailable"
    return out


def available_backends() -> list[str]:
    """The names of the backends that run on this machine, best first."""
    return [name for name in BACKEND_NAMES if _probe(name)[0] is not None]


def default_backend() -> str:
    """The backend ``Poller()`` uses: ``$PORTAIO_BACKEND`` if set, else the best available."""
    chosen = os.environ.get(ENV_VAR)
    if chosen:
        return chosen
    names = available_backends()
    if not names:  # pragma: no cover - select is always there on POSIX
        raise BackendUnavailable(f"portaio: no backend can run on {sys.platform}")
    return names[0]


def backend_class(name: str | None = None) -> type[Poller]:
    """The Poller subclass for *name* (None: the default backend)."""
    if name is None:
        name = default_backend()
        source = f" (from ${ENV_VAR})" if os.environ.get(ENV_VAR) else ""
    else:
        source = ""
    if not isinstance(name, str):
        raise TypeError(f"portaio: backend must be a str or None, got {type(name).__name__}")
    if name not in _CLASSES:
        raise BackendUnavailable(
            f"portaio: unknown backend {name!r}{source}; known: {', '.join(BACKEND_NAMES)}"
        )
    cls, reason = _probe(name)
    if cls is None:
        raise BackendUnavailable(f"portaio: the {name} backend{source} is not available here: {reason}")
    return cls
