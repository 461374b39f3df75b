"""asyncio on portaio, in uvloop's style.

Switch a program in one line::

    import portaio.asyncio
    portaio.asyncio.run(main())          # or: portaio.asyncio.install(); asyncio.run(main())

The loop is a plain :class:`asyncio.SelectorEventLoop` on
:class:`portaio.selectors.PortaioSelector`, so streams, servers,
subprocesses, ``add_signal_handler``, ``sock_*`` calls, sendfile and timeouts
behave exactly as on the default loop.  Signals go through Python's handlers
and ``signal.set_wakeup_fd`` as asyncio expects; portaio's signalfd is never
used here (it would take signals away from Python's handlers).

On Windows the loop is a selector loop on the afd backend: ``add_reader``,
``add_writer``, ``sock_*`` calls and streams without ``select()``'s 512-socket
cap.  What asyncio's selector loops lack on Windows stays missing
(subprocesses, ``add_signal_handler``: use the default Proactor loop for those).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from .selectors import PortaioSelector

__all__ = ["EventLoopPolicy", "Loop", "install", "new_event_loop", "run"]

_T = TypeVar("_T")


class Loop(asyncio.SelectorEventLoop):
    """An :class:`asyncio.SelectorEventLoop` on a :class:`~portaio.selectors.PortaioSelector`.

    *backend* picks the selector's backend (``None``: ``$PORTAIO_BACKEND`` or
    the best one here).
    """

    def __init__(self, backend: str | None = None) -> None:
        selector = PortaioSelector(backend)
        self._portaio_backend = selector.backend
        super().__init__(selector)

    @property
    def portaio_backend(self) -> str:
        """The name of the backend the loop's selector runs on."""
        return self._portaio_backend


def new_event_loop(backend: str | None = None) -> Loop:
    """A new event loop on portaio (not set as the current loop)."""
    return Loop(backend)


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """The default policy, making portaio loops (child watchers and all else unchanged)."""

    def __init__(self, backend: str | None = None) -> None:
        super().__init__()
        self._portaio_backend = backend

    def new_event_loop(self) -> Loop:
        """A new portaio loop (on Windows too, where the default policy's loop is a Proactor)."""
        return new_event_loop(self._portaio_backend)


def install(backend: str | None = None) -> None:
    """Make every new asyncio event loop a portaio loop (sets the policy)."""
    asyncio.set_event_loop_policy(EventLoopPolicy(backend))


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None, backend: str | None = None) -> _T:
    """Run *main* on a new portaio loop, as :func:`asyncio.run` does, and return its result."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=lambda: new_event_loop(backend), debug=debug) as runner:
            return runner.run(main)
    old = asyncio.get_event_loop_policy()  # pragma: no cover - Python 3.10
    asyncio.set_event_loop_policy(EventLoopPolicy(backend))  # pragma: no cover
    try:  # pragma: no cover
        return asyncio.run(main, debug=bool(debug))
    finally:  # pragma: no cover
        asyncio.set_event_loop_policy(old)
