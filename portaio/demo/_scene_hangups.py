"""The hang-ups scene: how a TCP connection's end looks to each backend.

A peer's ``shutdown(SHUT_WR)`` sends a FIN: our side becomes readable (EOF
after any data still unread) and, if asked for, RDHUP — it is a half-close,
we may still write.  Our own ``shutdown(SHUT_WR)`` is no hang-up of ours.
When both directions are shut the socket reports HANGUP.  A reset (the peer
closes with ``SO_LINGER`` 0, or had closed and receives data) is ERROR and
HANGUP.  HANGUP and ERROR are reported whether asked for or not, on every
backend: the kernels do so for epoll and poll; select has only "readable",
so portaio classifies what select reports with poll(2), and kqueue's EV_EOF
is translated to the same flags.  The last step runs the four cases on every
backend here, side by side.
"""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Callable, Generator

import portaio

from ._stage import Stage, Step, flag_names

__all__ = ["hangups"]

READABLE = portaio.READABLE
RDHUP = portaio.RDHUP
HANGUP = portaio.HANGUP
ERROR = portaio.ERROR


class _Cases:
    """The four cases on one poller; ``both_shut`` continues ``half_close``'s connection."""

    def __init__(self, stage: Stage, poller: portaio.Poller) -> None:
        self.stage = stage
        self.poller = poller
        # Ask for RDHUP only where the backend has it (all four do today; a port might not).
        self.rdhup = RDHUP if poller.capabilities.rdhup else portaio.Events(0)
        self.half_closed: socket.socket | None = None

    def half_close(self) -> tuple[str, str]:
        stage, poller = self.stage, self.poller
        server, client = stage.tcp_pair()
        fd = server.fileno()
        poller.register(server, READABLE | self.rdhup)
        client.send(b"last words")
        client.shutdown(socket.SHUT_WR)
        does = (
            f"TCP pair on loopback, watch fd {fd} READABLE|RDHUP;"
            " the peer sends 10 bytes, then shutdown(SHUT_WR)"
        )
        answer = stage.expect(
            does, stage.poll_until(poller, READABLE | self.rdhup), {fd: READABLE | self.rdhup}
        )
        first, second = server.recv(100), server.recv(100)
        stage.check(
            does, (first, second) == (b"last words", b""), "the data, then EOF", f"{first!r}, {second!r}"
        )
        self.half_closed = server
        return does, f"{answer}; recv() gives {first!r}, then {second!r} (EOF)"

    def own_shutdown(self) -> tuple[str, str]:
        stage, poller = self.stage, self.poller
        server, client = stage.tcp_pair()
        fd = server.fileno()
        poller.register(server, READABLE | self.rdhup)
        server.shutdown(socket.SHUT_WR)
        does = f"a new pair, watch fd {fd}; we shutdown(SHUT_WR) our own side; poll(0.05)"
        answer = stage.expect(does, poller.poll(0.05), {})
        client.send(b"x")
        reply = stage.expect(does, stage.poll_until(poller, READABLE), {fd: READABLE})
        poller.unregister(server)
        return does, f"{answer}; then the peer sends 1 byte: {reply}"

    def both_shut(self) -> tuple[str, str]:
        assert self.half_closed is not None, "half_close runs first"
        server = self.half_closed
        fd = server.fileno()
        server.shutdown(socket.SHUT_WR)
        does = f"back on fd {fd}, the peer's FIN read: we shutdown(SHUT_WR) too"
        stated = {fd: int(READABLE | self.rdhup | HANGUP)}
        answer = self.stage.expect(does, self.stage.poll_until(self.poller, HANGUP), stated)
        self.poller.unregister(server)
        return does, answer

    def reset(self) -> tuple[str, str]:
        stage, poller = self.stage, self.poller
        server, client = stage.tcp_pair()
        fd = server.fileno()
        poller.register(server, READABLE)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # linger 0: the kernel sends an RST instead of a FIN
        does = f"a new pair, watch fd {fd} READABLE only; the peer closes with SO_LINGER 0"
        events = stage.poll_until(poller, ERROR | HANGUP)
        flags = {e.fd: e.events for e in events}.get(fd, 0)
        holds = flags & (ERROR | HANGUP) == ERROR | HANGUP and not flags & ~(READABLE | ERROR | HANGUP)
        answered = f"fd {fd} {flag_names(flags)}"
        stage.check(does, holds, "ERROR|HANGUP (READABLE allowed)", answered)
        try:
            got = f"recv() returns {server.recv(10)!r}"
        except ConnectionResetError:
            got = "recv() raises ConnectionResetError"
        if poller.backend == "kqueue" and sys.platform.startswith("linux"):
            # Linux has no kqueue: this is libkqueue, which fills the event's EV_EOF fflags with
            # getsockopt(SO_ERROR), and that read consumes the pending ECONNRESET.
            stated = "recv() returns b''"
            got += " (libkqueue read SO_ERROR for the event, consuming the reset; native kqueue raises)"
        else:
            stated = "recv() raises ConnectionResetError"
        stage.check(does, got.startswith(stated), stated, got)
        poller.unregister(server)
        return does, f"{answered}; {got}"


CASES: list[tuple[str, Callable[[_Cases], tuple[str, str]], str]] = [
    (
        "own shutdown",
        _Cases.own_shutdown,
        "Shutting our own writing side is no hang-up: we can still receive.",
    ),
    (
        "peer FIN",
        _Cases.half_close,
        "A FIN is a half-close: data sent before it is still readable, then EOF; we may still write.",
    ),
    ("both shut", _Cases.both_shut, "Both directions shut: HANGUP, reported whether asked for or not."),
    (
        "peer RST",
        _Cases.reset,
        "A reset is ERROR|HANGUP even on a READABLE-only watch: always check for them.",
    ),
]
"""The cases in order: (label, run, why); each leaves no fd registered but ``peer FIN``."""


def _flags_only(answer: str) -> str:
    head = answer.split(";")[0]
    return head.split(" ", 2)[2] if head.startswith("fd ") else head


def hangups(stage: Stage) -> Generator[Step, None, None]:
    """FIN, own shutdown, both shut, RST on this backend, then every backend side by side."""
    cases = _Cases(stage, stage.poller())
    for label, run, why in CASES:
        does, answer = run(cases)
        yield Step(f"{label}: {does}", answer, why)
    table = [["backend", *(label for label, _, _ in CASES)]]
    for name in portaio.available_backends():
        other = stage.poller(name)
        on_other = _Cases(stage, other)
        table.append([name, *(_flags_only(run(on_other)[1]) for _, run, _ in CASES)])
        other.close()
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in table]
    yield Step(
        "the four cases on every backend here",
        "\n".join(lines),
        "The same flags for the same event on every backend: that is portaio's contract.",
    )
