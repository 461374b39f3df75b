"""Conformance: interest that masks out part of what the kernel reports.

RDHUP without READABLE (and PRIORITY without READABLE) asks for less than the
kernel's read side reports: unread data makes the fd readable, and the
poller must stay asleep anyway, in one kernel wait, not in a loop of waits
that each find only masked data.  A one-shot registration is spent only on an
event it reports: masked data before a peer's FIN must not use it up.

Waits are counted by CPU time: one ``poll(timeout)`` with nothing to report
sleeps in a handful of kernel waits and spends microseconds on the CPU; a
loop of waits spends most of the timeout there.  This needs no hook in any
backend.
"""

from __future__ import annotations

import socket
import time

import pytest

import portaio
from portaio.conformance.plugin import Closer, poll_until, ready_map

_WAIT = 0.5
_MAX_CPU = 0.05  # a loop of waits spends far more of the 0.5 s on the CPU
_cpu_clock = getattr(time, "thread_time", time.process_time)


def _stream_pair(fds: Closer, kind: str) -> tuple[socket.socket, socket.socket]:
    if kind == "unix":
        return fds.socketpair()
    client, server, _ = fds.tcp_pair()
    return client, server


def _quiet_poll(poller: portaio.Poller) -> tuple[list[portaio.Event], float, float]:
    """One ``poll(_WAIT)``: its events, wall seconds and this thread's CPU seconds."""
    wall0, cpu0 = time.monotonic(), _cpu_clock()
    events = poller.poll(_WAIT)
    return events, time.monotonic() - wall0, _cpu_clock() - cpu0


def _register_or_refused(poller: portaio.Poller, fd: socket.socket, interest: int, supported: bool) -> bool:
    # select refuses RDHUP without READABLE: the fd would sit in its read
    # set, which unread data keeps ready, and no select() would ever sleep.
    if not supported or (interest & portaio.RDHUP and poller.backend == "select"):
        with pytest.raises(portaio.Unsupported, match=poller.backend):
            poller.register(fd, interest)
        return False
    poller.register(fd, interest, "a")
    return True


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_rdhup_only_with_unread_data_sleeps(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities, kind: str
) -> None:
    a, b = _stream_pair(fds, kind)
    if not _register_or_refused(poller, a, portaio.RDHUP, capabilities.rdhup):
        return
    b.send(b"0123456789")
    events, wall, cpu = _quiet_poll(poller)
    assert events == []
    assert wall >= _WAIT * 0.9
    assert cpu < _MAX_CPU, f"one poll({_WAIT}) spent {cpu:.3f} s on the CPU: a loop of kernel waits"
    b.shutdown(socket.SHUT_WR)  # and the hang-up still comes through
    assert ready_map(poll_until(poller, bool)) == {a.fileno(): portaio.RDHUP}


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_rdhup_only_with_data_arriving_during_the_wait(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities, kind: str
) -> None:
    """Data that arrives while the poll sleeps is masked too, and costs no loop."""
    a, b = _stream_pair(fds, kind)
    if not _register_or_refused(poller, a, portaio.RDHUP, capabilities.rdhup):
        return
    b.send(b"before")
    assert poller.poll(0) == []
    b.send(b"more")
    events, _, cpu = _quiet_poll(poller)
    assert events == []
    assert cpu < _MAX_CPU, f"one poll({_WAIT}) spent {cpu:.3f} s on the CPU: a loop of kernel waits"


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_rdhup_only_is_level_triggered(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities, kind: str
) -> None:
    """Once the peer's FIN is in, every poll reports RDHUP, data unread or not."""
    a, b = _stream_pair(fds, kind)
    if not _register_or_refused(poller, a, portaio.RDHUP, capabilities.rdhup):
        return
    b.send(b"unread")
    b.shutdown(socket.SHUT_WR)
    assert ready_map(poll_until(poller, bool)) == {a.fileno(): portaio.RDHUP}
    for _ in range(3):
        assert ready_map(poller.poll(0)) == {a.fileno(): portaio.RDHUP}
    assert a.recv(100) == b"unread"
    assert ready_map(poller.poll(0)) == {a.fileno(): portaio.RDHUP}


def test_priority_only_with_unread_data_sleeps(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities
) -> None:
    a, b = _stream_pair(fds, "tcp")
    try:
        poller.register(a, portaio.PRIORITY, "a")
    except portaio.Unsupported as err:
        # select cannot see PRIORITY's hang-ups; elsewhere only if not native.
        assert poller.backend == "select" or not capabilities.priority, err
        return
    b.send(b"0123456789")
    events, wall, cpu = _quiet_poll(poller)
    assert events == []
    assert wall >= _WAIT * 0.9
    assert cpu < _MAX_CPU, f"one poll({_WAIT}) spent {cpu:.3f} s on the CPU: a loop of kernel waits"


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_oneshot_rdhup_reports_the_hangup_after_masked_data(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities, kind: str
) -> None:
    a, b = _stream_pair(fds, kind)
    interest = portaio.RDHUP | portaio.ONESHOT
    if not _register_or_refused(poller, a, interest, capabilities.rdhup and capabilities.oneshot):
        return
    b.send(b"masked")
    assert poller.poll(0.05) == []  # data is no event here, and spends no shot
    b.shutdown(socket.SHUT_WR)
    assert ready_map(poll_until(poller, bool)) == {a.fileno(): portaio.RDHUP}
    assert poller.poll(0.05) == []  # the shot is spent
    poller.modify(a, interest, "a")  # re-armed: still hung up
    assert ready_map(poll_until(poller, bool)) == {a.fileno(): portaio.RDHUP}
    assert poller.poll(0) == []
