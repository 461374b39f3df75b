"""Scenes about reporting modes: level against edge, the drain-to-EAGAIN trap, ONESHOT.

Level-triggered (the default, and the only mode of poll and select) reports an
fd for as long as the condition holds: unread data is reported on every poll.
Edge-triggered (EPOLLET, kqueue's EV_CLEAR) reports a *change*: data arrives,
one event, then nothing until more data arrives — however much is still
unread.  That is why an edge-triggered reader must read until ``recv`` fails
with EAGAIN: if it stops early, the bytes it left behind are never reported
again and the connection stalls.  ONESHOT reports one event and then disarms
the registration until ``modify`` re-arms it; re-arming while the fd is still
ready reports it at once, so nothing is lost.

Each scene uses a Unix socketpair: ``b`` plays the peer, ``a`` the connection
the program watches.  Sends of a few KB fit the socket buffer, so the data is
in ``a``'s buffer by the time ``send`` returns.
"""

from __future__ import annotations

from collections.abc import Generator

import portaio

from ._stage import Stage, Step, drain, pending

__all__ = ["drain_trap", "level_edge", "oneshot"]

READABLE = portaio.READABLE
KB4 = 4096
STALL = 0.2  # how long the stalled reader's poll waits: bounded, and long enough to see nothing come


def _no_edge_step(stage: Stage, refusal: str, fd: int) -> Step:
    return Step(
        f"register fd {fd} READABLE|EDGE",
        refusal,
        f"{stage.backend} can only report levels: portaio refuses EDGE instead of silently"
        " delivering level events, so this part does not apply here.",
        applies=False,
    )


def level_edge(stage: Stage) -> Generator[Step, None, None]:
    """8 KB arrive, the reader takes 4 KB: level reports the fd again, edge does not."""
    poller = stage.poller()
    a, b = stage.socketpair()
    fd = a.fileno()
    poller.register(a, READABLE)
    yield Step(
        f"socketpair: a = fd {fd}, b = fd {b.fileno()} (the peer);"
        f" register fd {fd} READABLE, level-triggered",
        "registered",
        "Level-triggered is the default: an fd is reported for as long as it is readable.",
    )
    b.send(b"L" * 2 * KB4)
    does = "b sends 8192 bytes; poll(1.0)"
    yield Step(
        does, stage.expect(does, poller.poll(1.0), {fd: READABLE}), f"8 KB arrived: fd {fd} is readable."
    )
    got = len(a.recv(KB4))
    does = f"recv(4096) on fd {fd} reads {got} bytes, {pending(a)} left unread; poll(0)"
    stage.check(does, got == KB4 and pending(a) == KB4, "4096 read, 4096 left", f"{got} read")
    yield Step(
        does,
        stage.expect(does, poller.poll(0), {fd: READABLE}) + " (again)",
        "Level-triggered: 4 KB are still unread, so every poll reports the fd again.",
    )
    got = len(a.recv(KB4))
    does = f"recv(4096) reads the other {got} bytes; poll(0)"
    yield Step(
        does,
        stage.expect(does, poller.poll(0), {}),
        "Drained: the condition is gone, so the level-triggered poll is silent.",
    )

    c, d = stage.socketpair()
    fd = c.fileno()
    refusal = stage.refusal(
        f"register fd {fd} READABLE|EDGE",
        stage.capabilities.edge,
        lambda: poller.register(c, READABLE | portaio.EDGE),
    )
    if refusal is not None:
        yield _no_edge_step(stage, refusal, fd)
        return
    yield Step(
        f"a new socketpair: c = fd {fd}, d = fd {d.fileno()}; register fd {fd} READABLE|EDGE",
        "registered",
        "Edge-triggered: an fd is reported when it becomes readable, not while it stays readable.",
    )
    d.send(b"E" * 2 * KB4)
    does = "d sends 8192 bytes; poll(1.0)"
    yield Step(does, stage.expect(does, poller.poll(1.0), {fd: READABLE}), "New data is an edge: one event.")
    got = len(c.recv(KB4))
    does = f"recv(4096) on fd {fd} reads {got} bytes, {pending(c)} left unread; poll(0)"
    stage.check(does, got == KB4 and pending(c) == KB4, "4096 read, 4096 left", f"{got} read")
    yield Step(
        does,
        stage.expect(does, poller.poll(0), {}),
        "Edge-triggered: no new data arrived since the event, so no new event, though 4 KB are unread.",
    )
    d.send(b"!")
    does = "d sends 1 more byte; poll(1.0), then poll(0)"
    first = stage.expect(does, poller.poll(1.0), {fd: READABLE})
    second = stage.expect(does, poller.poll(0), {})
    yield Step(
        does,
        f"{first}; then {second}",
        "Each arrival is one edge and one event: a reader must take everything it is told about.",
    )


def drain_trap(stage: Stage) -> Generator[Step, None, None]:
    """An edge-triggered reader that stops before EAGAIN stalls; one that drains does not."""
    poller = stage.poller()
    a, b = stage.socketpair()
    fd = a.fileno()
    refusal = stage.refusal(
        f"register fd {fd} READABLE|EDGE",
        stage.capabilities.edge,
        lambda: poller.register(a, READABLE | portaio.EDGE),
    )
    if refusal is not None:
        yield Step(
            f"register fd {fd} READABLE|EDGE",
            refusal,
            f"The trap needs edge-triggered mode, which {stage.backend} does not have: level-triggered"
            " polls report unread data again, so a reader that stops early cannot stall. Does not apply.",
            applies=False,
        )
        return
    yield Step(
        f"socketpair: a = fd {fd}, b = fd {b.fileno()} (the peer); register fd {fd} READABLE|EDGE",
        "registered",
        "An edge-triggered server connection; the peer will send a 12 KB request and wait for a reply.",
    )
    b.send(b"R" * 3 * KB4)
    does = "b sends a 12288-byte request; poll(1.0)"
    yield Step(does, stage.expect(does, poller.poll(1.0), {fd: READABLE}), "The request arrived: one event.")
    got = len(a.recv(KB4))
    does = f"the buggy handler: one recv(4096) reads {got} bytes, then back to poll"
    left = pending(a)
    yield Step(
        does,
        stage.check(does, left == 2 * KB4, "8192 bytes left", f"{left} bytes left") + " unread (MSG_PEEK)",
        "It assumed one read gets the whole request; it did not read until EAGAIN.",
    )
    does = f"poll({STALL})"
    silence = stage.expect(does, poller.poll(STALL), {})
    yield Step(
        does,
        f"{silence} after {STALL} s — yet {pending(a)} bytes wait in fd {fd}'s buffer (MSG_PEEK)",
        "Stalled: no new data, no new edge. The peer waits for a reply that never comes; so would we.",
    )

    c, d = stage.socketpair()
    fd = c.fileno()
    poller.register(c, READABLE | portaio.EDGE)
    d.send(b"R" * 3 * KB4)
    does = f"the fix, on a new pair (c = fd {fd}, READABLE|EDGE): d sends 12288 bytes; poll(1.0)"
    yield Step(
        does,
        stage.expect(does, poller.poll(1.0), {fd: READABLE}),
        "The same request to a handler that reads until EAGAIN.",
    )
    reads = drain(c)
    does = f"recv(4096) on fd {fd} until it fails"
    answer = ", ".join(str(r) for r in reads)
    stage.check(does, reads == [KB4, KB4, KB4, "EAGAIN"], "4096, 4096, 4096, EAGAIN", answer)
    yield Step(
        does,
        answer + " (BlockingIOError)",
        "EAGAIN proves the buffer is empty: the next byte to arrive is guaranteed to be a new edge.",
    )
    does = f"poll({STALL})"
    silence = stage.expect(does, poller.poll(STALL), {})
    yield Step(does, f"{silence}; {pending(c)} bytes unread", "Silence now means there is nothing to read.")
    d.send(b"R" * KB4)
    does = "d sends the next request (4096 bytes); poll(1.0)"
    yield Step(
        does,
        stage.expect(does, poller.poll(1.0), {fd: READABLE}),
        "Every request is seen: drain to EAGAIN on every edge-triggered event.",
    )


def oneshot(stage: Stage) -> Generator[Step, None, None]:
    """ONESHOT: one event, silence until modify re-arms; re-arming while ready fires at once."""
    poller = stage.poller()
    a, b = stage.socketpair()
    fd = a.fileno()
    mode = READABLE | portaio.ONESHOT
    refusal = stage.refusal(
        f"register fd {fd} READABLE|ONESHOT",
        stage.capabilities.oneshot,
        lambda: poller.register(a, mode, "conn"),
    )
    if refusal is not None:
        yield Step(f"register fd {fd} READABLE|ONESHOT", refusal, "Does not apply here.", applies=False)
        return
    yield Step(
        f"socketpair: a = fd {fd}, b = fd {b.fileno()}; register fd {fd} READABLE|ONESHOT",
        "registered",
        "ONESHOT hands an fd to exactly one poll: the usual way to share one poller among threads.",
    )
    b.send(b"x" * 100)
    does = "b sends 100 bytes; poll(1.0)"
    yield Step(does, stage.expect(does, poller.poll(1.0), {fd: READABLE}), "One event; now disarmed.")
    does = "poll(0) again, without reading"
    yield Step(
        does,
        stage.expect(does, poller.poll(0), {}),
        "Disarmed: 100 bytes are unread, yet no other poll (or thread) is handed this fd.",
    )
    b.send(b"y" * 100)
    does = f"b sends 100 more bytes; poll({STALL})"
    yield Step(
        does, stage.expect(does, poller.poll(STALL), {}), "Still disarmed: even new data is not reported."
    )
    poller.modify(a, mode, "conn")
    does = f"modify(fd {fd}, READABLE|ONESHOT) re-arms, 200 bytes still unread; poll(0)"
    yield Step(
        does,
        stage.expect(does, poller.poll(0), {fd: READABLE}),
        "Re-arming while the fd is ready reports it at once: nothing is lost.",
    )
    reads = drain(a, 1024)
    poller.modify(a, mode, "conn")
    does = f"read until EAGAIN ({', '.join(str(r) for r in reads)}); re-arm; poll(0)"
    stage.check(does, reads == [200, "EAGAIN"], "200, EAGAIN", ", ".join(str(r) for r in reads))
    yield Step(does, stage.expect(does, poller.poll(0), {}), "Armed, and nothing to read: silent.")
    b.send(b"z")
    does = "b sends 1 byte; poll(1.0)"
    yield Step(
        does,
        stage.expect(does, poller.poll(1.0), {fd: READABLE}),
        "Armed again: the next arrival is one event, and the registration disarms once more.",
    )
