"""What every demo scene is made of: steps, the stage they run on, and the checks.

A scene is a generator.  It does something real — sends bytes over a
socketpair, polls, reads — and then yields a :class:`Step` saying what it did,
what the kernel answered (which fds, which flags) and, in one line, why.  The
player may wait for Enter between two steps; the scene's sockets and pollers
stay open meanwhile, so what the user looks at is the live state.

A transcript that states a fact the kernel did not say would teach the wrong
thing, so every answer is checked before it is shown: :meth:`Stage.expect`
compares the poll result with what the scene states, and when they differ it
raises :class:`Disagreement` with both — the demo prints it plainly and exits
non-zero.  Where a backend cannot do what a scene shows (edge-triggered on
poll or select), portaio raises :exc:`portaio.Unsupported`; the scene shows
that answer as its last step, marked as not applying, and stops.

Only the public API of :mod:`portaio` is used here and in the scenes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

import portaio

__all__ = ["Disagreement", "Scene", "Stage", "Step", "describe", "flag_names"]


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a scene: what the program did, what the kernel answered, why."""

    does: str
    """What the program did (sent, read, registered, polled)."""
    kernel: str
    """What the kernel (or portaio, for a refusal) answered; may span lines."""
    why: str
    """One line of explanation."""
    applies: bool = True
    """False for the step that shows why the rest of a scene does not apply here."""


@dataclasses.dataclass(frozen=True)
class Scene:
    """A named walkthrough; ``run(stage)`` yields its steps."""

    name: str
    title: str
    summary: str
    run: Callable[[Stage], Generator[Step, None, None]]


class Disagreement(Exception):
    """The kernel answered otherwise than the scene states."""

    def __init__(self, does: str, stated: str, answered: str) -> None:
        self.does = does
        self.stated = stated
        self.answered = answered
        super().__init__(f"{does}: the demo states {stated!r}, the kernel answered {answered!r}")


def flag_names(value: int) -> str:
    """``READABLE|RDHUP`` for a flag value (0 is ``-``); the same on every Python."""
    # IntFlag names of combined values differ between Python versions: spell them out.
    names = [flag.name for flag in portaio.Events if value & flag and flag.name]
    return "|".join(names) or "-"


def _merged(events: Sequence[portaio.Event]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for event in events:
        merged[event.fd] = merged.get(event.fd, 0) | event.events
    return merged


def _describe_map(ready: dict[int, int]) -> str:
    if not ready:
        return "nothing"
    return ", ".join(f"fd {fd} {flag_names(flags)}" for fd, flags in sorted(ready.items()))


def describe(events: Sequence[portaio.Event]) -> str:
    """A poll result as the transcript shows it: ``fd 5 READABLE`` or ``nothing``."""
    return _describe_map(_merged(events))


class Stage:
    """The backend a scene runs on, and everything the scene opened (closed by :meth:`close`)."""

    def __init__(self, backend: str, live: Callable[[str], None] | None = None) -> None:
        self.backend = backend
        self.capabilities = portaio.backend_class(backend).capabilities
        self._stack = contextlib.ExitStack()
        self._live = live
        self.shows_live = live is not None
        """True where :meth:`live` draws (a terminal): worth measuring for a live counter."""

    # ------------------------------------------------------------- resources
    def keep(self, closeable: Any) -> Any:
        """Close *closeable* (anything with ``close()``) with the stage."""
        self._stack.callback(closeable.close)
        return closeable

    def poller(self, backend: str | None = None) -> portaio.Poller:
        """A poller on this stage's backend (or *backend*), closed with the stage."""
        poller: portaio.Poller = self.keep(portaio.Poller(backend or self.backend))
        return poller

    def socketpair(self) -> tuple[socket.socket, socket.socket]:
        """A connected, non-blocking pair of Unix stream sockets."""
        a, b = socket.socketpair()
        for sock in (a, b):
            self.keep(sock)
            sock.setblocking(False)
        return a, b

    def listener(self) -> socket.socket:
        """A non-blocking TCP socket listening on 127.0.0.1 (a free port)."""
        listener = self.keep(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.setblocking(False)
        return listener  # type: ignore[no-any-return]

    def tcp_pair(self) -> tuple[socket.socket, socket.socket]:
        """A connected TCP pair over loopback, non-blocking: ``(server_side, client_side)``."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            client = self.keep(socket.create_connection(listener.getsockname(), timeout=5.0))
            server, _ = listener.accept()
        self.keep(server)
        for sock in (server, client):
            sock.setblocking(False)
        return server, client

    def close(self) -> None:
        """Close every poller, socket and fd the scene opened (last opened first)."""
        self._stack.close()

    def live(self, text: str) -> None:
        """Show *text* as a live counter where the terminal can redraw a line."""
        if self._live is not None:
            self._live(text)

    # ---------------------------------------------------------------- checks
    def expect(self, does: str, events: Sequence[portaio.Event], stated: Mapping[int, int]) -> str:
        """The transcript's text for *events*, after checking they are exactly *stated*."""
        answered = describe(events)
        if _merged(events) != dict(stated):
            raise Disagreement(does, _describe_map(dict(stated)), answered)
        return answered

    def check(self, does: str, holds: bool, stated: str, answered: str) -> str:
        """Return *answered*; raise :class:`Disagreement` unless *holds*."""
        if not holds:
            raise Disagreement(does, stated, answered)
        return answered

    def refusal(self, does: str, supported: bool, attempt: Callable[[], object]) -> str | None:
        """Run *attempt* (a register with a mode); the refusal's text, or None if accepted.

        *supported* is what :attr:`portaio.Poller.capabilities` says: a backend
        that refuses what it claims, or accepts what it disclaims, disagrees.
        """
        try:
            attempt()
        except portaio.Unsupported as err:
            return self.check(does, not supported, "accepted", f"Unsupported: {err}")
        self.check(does, supported, "Unsupported", "accepted")
        return None

    def poll_until(self, poller: portaio.Poller, wanted: int, timeout: float = 1.0) -> list[portaio.Event]:
        """Poll until an event carries every flag of *wanted*, or *timeout* seconds pass.

        A TCP FIN or RST crosses loopback asynchronously: a poll may see the
        data before the hang-up.  The wait is bounded, never a sleep.
        """
        deadline = time.monotonic() + timeout
        while True:
            events = poller.poll(max(0.0, min(0.05, deadline - time.monotonic())))
            if any(e.events & wanted == wanted for e in events) or time.monotonic() >= deadline:
                return events


def pending(sock: socket.socket) -> int:
    """How many bytes wait unread in *sock*'s receive buffer (a peek; nothing is consumed)."""
    try:
        return len(sock.recv(1 << 20, socket.MSG_PEEK))
    except BlockingIOError:
        return 0


def drain(sock: socket.socket, size: int = 4096) -> list[int | str]:
    """``recv(size)`` until EAGAIN: the sizes read, then ``"EAGAIN"`` (or ``"EOF"``)."""
    reads: list[int | str] = []
    while True:
        try:
            data = sock.recv(size)
        except BlockingIOError:
            reads.append("EAGAIN")
            return reads
        if not data:
            reads.append("EOF")
            return reads
        reads.append(len(data))
