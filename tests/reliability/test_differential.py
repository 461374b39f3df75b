"""Differential stateful testing: every backend at once against a model of the kernel.

Hypothesis drives random sequences of socketpair/pipe creation, writes, partial
reads, drains, shutdowns, closes (clean, or behind the pollers' back) and
register/modify/unregister calls with random interest and modes, then a
zero-timeout poll.  The same sequence is applied to one poller of every
available backend; a model predicts what each must report.  Agreement with the
model implies agreement between the backends.

What the contract leaves unspecified, and the model therefore allows:

* EDGE (where a backend has it): an edge event may be reported without a new
  readiness change (the kernel wakes a waiter on any wait-queue activity); it
  must be reported after a change, and never while the fd is not ready.
* An fd closed behind the pollers' back whose registration was not removed:
  its number is excluded from the comparison until the registration goes
  (a userspace backend cannot tell a reused number from the original file
  in a wait); a ``modify`` of it is ``OSError(EBADF)`` on every backend,
  reused or not.
* select sees a hang-up only through the sets the interest puts the fd in
  (``select(2)`` has no hang-up set): a pipe's read end registered for
  WRITABLE alone never shows its writer closing there.

CI runs a few hundred examples; ``PORTAIO_FUZZ_EXAMPLES=10000`` (or the slow
test) runs the long form.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import portaio
from portaio import EDGE, ERROR, HANGUP, ONESHOT, PRIORITY, RDHUP, READABLE, WRITABLE


def _libkqueue() -> bool:
    from portaio.backends import kqueue

    return bool(kqueue.LIBKQUEUE)


# kqueue polls last: where it is libkqueue (Linux), its EV_EOF handling reads
# the socket's pending error with getsockopt(SO_ERROR) and so clears it for
# every other watcher (a BSD kernel reports it without clearing it); the
# model follows suit after each kqueue poll.
BACKENDS = sorted(portaio.available_backends(), key=lambda name: name == "kqueue")
KQUEUE_CLEARS_SOCKET_ERRORS = "kqueue" in BACKENDS and _libkqueue()
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="the model encodes Linux's readiness rules for unix sockets and pipes",
)
ALWAYS = HANGUP | ERROR
MAX_PENDING = 16 * 1024  # unread bytes per direction: far below every buffer, so writers stay writable
MAX_WRITES = 8  # unread writes per direction (each unix skb costs ~1 KiB of send buffer)
MAX_ENDS = 12

# Unix socket shutdown bits, as the kernel keeps them per socket.
RCV, SEND = 1, 2


class End:
    """The model of one fd: a unix stream socket end or one end of a pipe."""

    def __init__(self, kind: str, obj: Any, fd: int) -> None:
        self.kind = kind  # "sock", "pipe_r", "pipe_w"
        self.obj = obj  # the socket, or the int fd of a pipe end
        self.fd = fd
        self.peer: End | None = None
        self.inbox = bytearray()  # bytes readable here
        self.writes = 0  # unread write() calls sitting in inbox
        self.shut = 0  # RCV/SEND bits (sockets)
        self.err = 0  # pending socket error (ECONNRESET: the peer closed with unread data)
        self.peer_closed = False
        self.closed = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.inbox)} unread, shut={self.shut}"
        return f"<{self.kind} fd {self.fd}: {state}>"

    def readiness(self) -> int:
        """The flags the kernel reports for this fd now (all interests)."""
        flags = 0
        if self.kind == "sock":
            if self.err:
                flags |= ERROR
            if self.shut == RCV | SEND:
                flags |= HANGUP
            if self.shut & RCV:
                flags |= RDHUP | READABLE
            if self.inbox:
                flags |= READABLE
            flags |= WRITABLE  # unix_writable(): only the send buffer matters, bounded here
        elif self.kind == "pipe_r":
            if self.inbox:
                flags |= READABLE
            if self.peer_closed:
                flags |= HANGUP
        else:  # pipe_w
            flags |= WRITABLE
            if self.peer_closed:
                flags |= ERROR
        return flags

    def close(self) -> None:
        if isinstance(self.obj, int):
            os.close(self.obj)
        else:
            self.obj.close()
        self.closed = True


@dataclass
class Reg:
    """The model of one backend's registration of an fd."""

    interest: int
    data: int
    armed: bool = True
    edge_pending: bool = False
    stale: bool = False  # the fd was closed behind the poller's back


def _select_sees(interest: int, kernel: int) -> bool:
    # select(2) puts POLLIN|POLLHUP|POLLERR in its read set, POLLOUT|POLLERR in
    # its write set and POLLPRI in its except set.
    if interest & (READABLE | RDHUP) and kernel & (READABLE | RDHUP | HANGUP | ERROR):
        return True
    if interest & WRITABLE and kernel & (WRITABLE | ERROR):
        return True
    return bool(interest & PRIORITY and kernel & PRIORITY)


interests = st.integers(1, 15).map(lambda bits: bits)  # any non-empty READABLE|WRITABLE|PRIORITY|RDHUP
modes = st.sampled_from([0, 0, int(ONESHOT), int(ONESHOT), int(EDGE), int(EDGE | ONESHOT)])
always_bits = st.sampled_from([0, int(HANGUP), int(ERROR), int(ALWAYS)])


class PollerAgreement(RuleBasedStateMachine):
    """One poller per backend, one model; every poll must match the model."""

    def __init__(self) -> None:
        super().__init__()
        self.pollers = {name: portaio.Poller(name) for name in BACKENDS}
        self.regs: dict[str, dict[int, Reg]] = {name: {} for name in BACKENDS}
        self.live: list[End] = []
        self.next_data = 0

    # ------------------------------------------------------------ helpers
    def _count_live(self) -> int:
        return sum(1 for e in self.live if not e.closed)

    def _note_change(self, end: End) -> None:
        """New readiness on *end*: edge registrations owe an event."""
        for regs in self.regs.values():
            reg = regs.get(end.fd)
            if reg is not None and not reg.stale and reg.interest & EDGE:
                reg.edge_pending = True

    def _on_all(self, end: End, call: str, *args: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, poller in self.pollers.items():
            try:
                out[name] = getattr(poller, call)(end.obj, *args)
            except Exception as err:
                out[name] = err
        return out

    # -------------------------------------------------------------- fds
    @precondition(lambda self: self._count_live() <= MAX_ENDS - 2)
    @rule()
    def socketpair(self) -> None:
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        ea, eb = End("sock", a, a.fileno()), End("sock", b, b.fileno())
        ea.peer, eb.peer = eb, ea
        self.live += [ea, eb]

    @precondition(lambda self: self._count_live() <= MAX_ENDS - 2)
    @rule()
    def pipe(self) -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        er, ew = End("pipe_r", r, r), End("pipe_w", w, w)
        er.peer, ew.peer = ew, er
        self.live += [er, ew]

    def _pick(self, data: st.DataObject, pred: Any = None) -> End | None:
        choices = [e for e in self.live if not e.closed and (pred is None or pred(e))]
        if not choices:
            return None
        return data.draw(st.sampled_from(choices), label="end")

    @rule(data=st.data(), size=st.integers(1, 4096))
    def write(self, data: st.DataObject, size: int) -> None:
        end = self._pick(data, lambda e: e.kind in ("sock", "pipe_w"))
        if end is None:
            return
        peer = end.peer
        assert peer is not None
        if peer.writes >= MAX_WRITES or len(peer.inbox) + size > MAX_PENDING:
            return
        payload = os.urandom(size)
        if end.kind == "sock":
            broken = bool(end.shut & SEND) or (peer.closed or bool(peer.shut & RCV))
        else:
            broken = peer.closed
        try:
            n = end.obj.send(payload) if end.kind == "sock" else os.write(end.fd, payload)
        except (BrokenPipeError, ConnectionResetError):
            assert broken, f"write on fd {end.fd} failed, the model expected it to succeed"
            return
        assert not broken, f"write on fd {end.fd} succeeded, the model expected EPIPE"
        assert n == size
        if not peer.closed:
            peer.inbox += payload
            peer.writes += 1
            self._note_change(peer)

    def _read(self, end: End, size: int) -> None:
        try:
            got = end.obj.recv(size) if end.kind == "sock" else os.read(end.fd, size)
        except BlockingIOError:
            assert not end.inbox and not (end.shut & RCV) and not end.peer_closed, (
                f"read on fd {end.fd} would block, the model has {len(end.inbox)} bytes or EOF"
            )
            return
        except ConnectionResetError:
            assert end.err and not end.inbox, f"unexpected ECONNRESET on fd {end.fd}"
            end.err = 0
            return
        if not got:
            assert not end.inbox, f"EOF on fd {end.fd} with {len(end.inbox)} bytes unread in the model"
            assert (end.kind == "pipe_r" and end.peer_closed) or (end.kind == "sock" and end.shut & RCV)
            return
        expected = bytes(end.inbox[: len(got)])
        assert got == expected, f"fd {end.fd}: read bytes differ from what was written"
        assert len(got) == min(size, len(end.inbox))
        del end.inbox[: len(got)]
        if not end.inbox:
            end.writes = 0
        # Freed space may wake the writer (an allowed spurious edge); it is never owed one.

    @rule(data=st.data(), size=st.integers(1, 2048))
    def read_part(self, data: st.DataObject, size: int) -> None:
        end = self._pick(data, lambda e: e.kind in ("sock", "pipe_r"))
        if end is not None:
            self._read(end, size)

    @rule(data=st.data())
    def drain(self, data: st.DataObject) -> None:
        end = self._pick(data, lambda e: e.kind in ("sock", "pipe_r") and bool(e.inbox))
        if end is not None:
            self._read(end, MAX_PENDING + 1)

    @rule(data=st.data(), how=st.sampled_from([socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR]))
    def shutdown(self, data: st.DataObject, how: int) -> None:
        end = self._pick(data, lambda e: e.kind == "sock")
        if end is None:
            return
        peer = end.peer
        assert peer is not None
        end.obj.shutdown(how)
        mine = {socket.SHUT_RD: RCV, socket.SHUT_WR: SEND, socket.SHUT_RDWR: RCV | SEND}[how]
        end.shut |= mine
        self._note_change(end)
        if not peer.closed:
            theirs = (SEND if mine & RCV else 0) | (RCV if mine & SEND else 0)
            peer.shut |= theirs
            self._note_change(peer)

    def _close(self, end: End) -> None:
        peer = end.peer
        assert peer is not None
        end.close()
        if peer.closed:
            return
        peer.peer_closed = True
        if end.kind == "sock":
            peer.shut = RCV | SEND
            if end.inbox:
                peer.err = errno.ECONNRESET
        self._note_change(peer)

    @rule(data=st.data())
    def close_clean(self, data: st.DataObject) -> None:
        end = self._pick(data)
        if end is None:
            return
        for name, poller in self.pollers.items():
            if end.fd in self.regs[name]:
                poller.unregister(end.obj)
                del self.regs[name][end.fd]
        self._close(end)

    @rule(data=st.data())
    def close_behind_back(self, data: st.DataObject) -> None:
        end = self._pick(data)
        if end is None:
            return
        for regs in self.regs.values():
            if end.fd in regs:
                regs[end.fd].stale = True
        self._close(end)

    # ---------------------------------------------------- registrations
    def _stale_fd(self, fd: int) -> bool:
        return any(fd in regs and regs[fd].stale for regs in self.regs.values())

    def _expect_error(self, name: str, interest: int) -> type[Exception] | None:
        caps = self.pollers[name].capabilities
        if interest & EDGE and not caps.edge:
            return portaio.Unsupported
        if interest & RDHUP and not caps.rdhup:
            return portaio.Unsupported
        if interest & PRIORITY and not caps.priority:
            return portaio.Unsupported  # kqueue without EVFILT_EXCEPT (libkqueue, older BSDs)
        if name == "select" and interest & RDHUP and not interest & READABLE:
            return portaio.Unsupported  # unread data would keep select's read set ready: a busy loop
        if name == "select" and not interest & (READABLE | WRITABLE):
            return portaio.Unsupported  # select sees hang-ups only through its read and write sets
        return None

    def _new_reg(self, end: End, interest: int) -> Reg:
        self.next_data += 1
        reg = Reg(interest, self.next_data)
        if interest & EDGE and end.readiness() & (interest | ALWAYS):
            reg.edge_pending = True  # epoll_ctl reports a file already ready once
        return reg

    @rule(data=st.data(), bits=interests, mode=modes, extra=always_bits)
    def register(self, data: st.DataObject, bits: int, mode: int, extra: int) -> None:
        end = self._pick(data, lambda e: not self._stale_fd(e.fd))
        if end is None:
            return
        interest = bits | mode | extra
        results = self._on_all(end, "register", interest, self.next_data + 1)
        reg = self._new_reg(end, interest)
        for name, result in results.items():
            expected = self._expect_error(name, interest)  # the interest is checked first
            if expected is None and end.fd in self.regs[name]:
                expected = portaio.AlreadyRegistered
            if expected is not None:
                assert isinstance(result, expected), f"{name}: register gave {result!r}, expected {expected}"
                continue
            assert isinstance(result, portaio.Registration), f"{name}: register raised {result!r}"
            self.regs[name][end.fd] = Reg(reg.interest, reg.data, edge_pending=reg.edge_pending)

    @rule(data=st.data(), bits=interests, mode=modes, extra=always_bits)
    def modify(self, data: st.DataObject, bits: int, mode: int, extra: int) -> None:
        end = self._pick(data, lambda e: not self._stale_fd(e.fd))
        if end is None:
            return
        interest = bits | mode | extra
        results = self._on_all(end, "modify", interest, self.next_data + 1)
        reg = self._new_reg(end, interest)
        for name, result in results.items():
            expected = self._expect_error(name, interest)
            if expected is None and end.fd not in self.regs[name]:
                expected = portaio.NotRegistered
            if expected is not None:
                assert isinstance(result, expected), f"{name}: modify gave {result!r}, expected {expected}"
                continue
            assert isinstance(result, portaio.Registration), f"{name}: modify raised {result!r}"
            self.regs[name][end.fd] = Reg(reg.interest, reg.data, edge_pending=reg.edge_pending)

    @rule(data=st.data(), bits=interests, mode=modes)
    def modify_stale(self, data: st.DataObject, bits: int, mode: int) -> None:
        """A number closed behind the pollers' back, reused since or not: EBADF everywhere.

        Reliability item 9: the registered file is gone; whatever took the
        number (a later pipe or socket here) must not be watched under it.
        """
        stale = sorted({fd for regs in self.regs.values() for fd, reg in regs.items() if reg.stale})
        if not stale:
            return
        fd = data.draw(st.sampled_from(stale), label="fd")
        interest = bits | mode
        for name, poller in self.pollers.items():
            try:
                result: Any = poller.modify(fd, interest, -1)
            except Exception as err:
                result = err
            expected = self._expect_error(name, interest)
            if expected is None and fd not in self.regs[name]:
                expected = portaio.NotRegistered
            if expected is not None:
                assert isinstance(result, expected), f"{name}: modify gave {result!r}, expected {expected}"
                continue
            assert type(result) is OSError and result.errno == errno.EBADF, (
                f"{name}: modify of fd {fd}, closed behind its back, gave {result!r}"
            )

    @rule(data=st.data())
    def unregister(self, data: st.DataObject) -> None:
        registered = sorted({fd for regs in self.regs.values() for fd in regs})
        others = sorted({e.fd for e in self.live if not e.closed} - set(registered))
        mostly_registered = not others or data.draw(st.integers(0, 3), label="pick") > 0
        pool = registered if registered and mostly_registered else others
        if not pool:
            return
        fd = data.draw(st.sampled_from(pool), label="fd")
        for name, poller in self.pollers.items():
            try:
                result: Any = poller.unregister(fd)
            except Exception as err:
                result = err
            if fd in self.regs[name]:
                assert isinstance(result, portaio.Registration), f"{name}: unregister raised {result!r}"
                del self.regs[name][fd]
            else:
                assert isinstance(result, portaio.NotRegistered), f"{name}: unregister gave {result!r}"

    # ------------------------------------------------------------- poll
    @rule()
    def poll(self) -> None:
        by_fd = {e.fd: e for e in self.live if not e.closed}
        for name, poller in self.pollers.items():
            got: dict[int, Any] = {}
            evs = poller.poll(0)
            reported = [ev.fd for ev in evs]
            for ev in evs:
                assert ev.fd not in got, f"{name}: fd {ev.fd} reported twice in one poll"
                got[ev.fd] = ev
            for fd, reg in self.regs[name].items():
                if reg.stale or self._stale_fd(fd):
                    got.pop(fd, None)
                    continue
                end = by_fd[fd]
                kernel = end.readiness()
                level = kernel & (reg.interest | ALWAYS) & ~(EDGE | ONESHOT)
                if name == "select" and not _select_sees(reg.interest, kernel):
                    level = 0
                ev = got.pop(fd, None)
                if ev is not None:
                    assert ev.data == reg.data, f"{name}: fd {fd} reported with stale data"
                    assert ev.events == level, (
                        f"{name}: fd {fd} ({end.kind}) reported {portaio.Events(ev.events)!r},"
                        f" the model says {portaio.Events(level)!r}"
                        f" (interest {portaio.Events(reg.interest)!r})"
                    )
                if not reg.armed:
                    assert ev is None, f"{name}: disarmed ONESHOT fd {fd} reported {ev!r}"
                    continue
                if reg.interest & EDGE:
                    must = reg.edge_pending and bool(level)
                    if must:
                        assert ev is not None, f"{name}: edge fd {fd} ({end.kind}) owed an event: {level!r}"
                    if ev is not None:
                        reg.edge_pending = False
                        if reg.interest & ONESHOT:
                            reg.armed = False
                    elif not level:
                        reg.edge_pending = False
                    continue
                if level:
                    assert ev is not None, (
                        f"{name}: fd {fd} ({end.kind}) is ready ({portaio.Events(level)!r}), nothing reported"
                    )
                    if reg.interest & ONESHOT:
                        reg.armed = False
            assert not got, f"{name}: events for unregistered fds: {list(got.values())}"
            if name == "kqueue" and KQUEUE_CLEARS_SOCKET_ERRORS:
                for fd in reported:
                    if fd in by_fd and by_fd[fd].kind == "sock":
                        by_fd[fd].err = 0

    @invariant()
    def registrations_agree(self) -> None:
        for name, poller in self.pollers.items():
            assert {r.fd for r in poller.registrations()} == set(self.regs[name]), name

    def teardown(self) -> None:
        for poller in self.pollers.values():
            poller.close()
        for end in self.live:
            if not end.closed:
                end.close()


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=40,
        # CI explores a fixed sequence of examples, so its verdict is reproducible;
        # elsewhere every run explores new ones.
        derandomize=bool(os.environ.get("CI")),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


_EXAMPLES = int(os.environ.get("PORTAIO_FUZZ_EXAMPLES", "300"))

TestBackendsAgree = PollerAgreement.TestCase
TestBackendsAgree.settings = _settings(_EXAMPLES)


class TestBackendsAgreeLong(PollerAgreement.TestCase):  # type: ignore[name-defined,misc]
    """The long form: >= 10,000 examples (``-m slow``)."""

    settings = _settings(max(_EXAMPLES, 10_000))
    pytestmark = [pytest.mark.slow, pytest.mark.timeout(0)]
