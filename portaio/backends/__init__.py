"""The backends, best first, and how one is chosen.

Each backend module defines one :class:`~portaio.backends._base.Backend`
subclass (the kernel primitives :class:`~portaio.Poller` runs on) and a
module-level ``UNAVAILABLE`` (``None``, or why it cannot run here).
"""

from __future__ import annotations

import importlib
import os
import sys

from .._errors import BackendUnavailable
from ._base import Backend

__all__ = ["BACKEND_NAMES", "available_backends", "backend_class", "default_backend", "unavailable_reasons"]

BACKEND_NAMES = ("epoll", "kqueue", "afd", "poll", "select")
"""Every backend portaio knows, best first."""

_CLASSES = {
    "epoll": "EpollBackend",
    "kqueue": "KqueueBackend",
    "afd": "AfdBackend",
    "poll": "PollBackend",
    "select": "SelectBackend",
}
ENV_VAR = "PORTAIO_BACKEND"


def _probe(name: str) -> tuple[type[Backend] | None, str | None]:
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ImportError as err:
        return None, f"the {name} backend is not part of this build ({err})"
    reason: str | None = getattr(module, "UNAVAILABLE", None)
    if reason is not None:
        return None, reason
    cls: type[Backend] = getattr(module, _CLASSES[name])
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


def backend_class(name: str | None = None) -> type[Backend]:
    """The backend class for *name* (None: the default backend).

    It has the backend's ``name`` and ``capabilities``; ``Poller(name)``
    runs on an instance of it.  Raises :class:`~portaio.BackendUnavailable`
    for an unknown name or a backend that cannot run here.
    """
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
