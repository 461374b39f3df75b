"""The epoll backend's quick wait: poll(0)'s one-argument C call and its guards.

``portaio_epoll_wait_now`` runs without the poller's count of threads in
``poll()``, so it guards two things itself (csrc/portaio_epoll.c): a buffer is
one thread's at a time (a second thread is told ``-3`` and takes the general
way; a buffer left with several keys stays its holder's until the holder
releases it), and the epoll fd is never closed under a quick wait (the last
one out closes it).  These tests drive the C calls directly, then the poller
around them.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import portaio
from portaio import _poll_loop
from portaio.backends._base import FLAGS_SHIFT, TOKEN_MASK, make_key

epoll = pytest.importorskip("portaio.backends.epoll")
if epoll.UNAVAILABLE is not None:  # pragma: no cover - depends on the platform
    pytest.skip(f"epoll backend unavailable here: {epoll.UNAVAILABLE}", allow_module_level=True)

TAKEN = epoll.lib.PORTAIO_QUICK_TAKEN


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made = [socket.socketpair() for _ in range(3)]
    try:
        yield made
    finally:
        for a, b in made:
            a.close()
            b.close()


def _backend_with_ready(pairs: list[tuple[socket.socket, socket.socket]], ready: int) -> Any:
    backend = epoll.EpollBackend()
    for token, (a, _) in enumerate(pairs, start=1):
        backend.add(a.fileno(), int(portaio.READABLE), token)
    for _, b in pairs[:ready]:
        b.send(b"x")
    return backend


def _in_thread(fn: Any) -> Any:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(10)
    assert not t.is_alive()
    return out[0]


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_the_c_waits_and_the_core_agree_on_the_key_layout() -> None:
    assert epoll.lib.PORTAIO_FLAGS_SHIFT == FLAGS_SHIFT
    assert TOKEN_MASK == (1 << FLAGS_SHIFT) - 1


def test_one_ready_fd_comes_back_as_the_key_itself_and_leaves_the_buffer_free(pairs: Any) -> None:
    backend = _backend_with_ready(pairs, 1)
    try:
        q, _view = backend.quick_buffer(len(pairs))
        assert epoll.lib.portaio_epoll_wait_now(q) == make_key(1, 1)  # EPOLLIN for token 1
        # Free: another thread's quick wait is served, not told "taken".
        assert _in_thread(lambda: epoll.lib.portaio_epoll_wait_now(q)) == make_key(1, 1)
    finally:
        backend.close()


def test_no_ready_fd_is_minus_two_and_no_room_asks_no_kernel(pairs: Any) -> None:
    backend = _backend_with_ready(pairs, 0)
    try:
        q, _view = backend.quick_buffer(len(pairs))
        assert epoll.lib.portaio_epoll_wait_now(q) == -2
        pairs[0][1].send(b"x")
        q0, _ = backend.quick_buffer(0)
        assert epoll.lib.portaio_epoll_wait_now(q0) == -2  # room 0: epoll_wait would say EINVAL
    finally:
        backend.close()


def test_a_buffer_with_several_keys_is_its_holders_until_the_holder_releases_it(pairs: Any) -> None:
    backend = _backend_with_ready(pairs, 2)
    try:
        q, view = backend.quick_buffer(len(pairs))
        got = epoll.lib.portaio_epoll_wait_now(q)
        assert got == -2 - 2
        assert sorted(k & TOKEN_MASK for k in struct.unpack_from("=2Q", view)) == [1, 2]
        # Held: another thread is told it is taken, and cannot release it.
        assert _in_thread(lambda: epoll.lib.portaio_epoll_wait_now(q)) == TAKEN
        _in_thread(lambda: epoll.lib.portaio_epoll_quick_release(q))
        assert _in_thread(lambda: epoll.lib.portaio_epoll_wait_now(q)) == TAKEN
        epoll.lib.portaio_epoll_quick_release(q)
        assert epoll.lib.portaio_epoll_wait_now(q) == -2 - 2  # level-triggered: reported again
        epoll.lib.portaio_epoll_quick_release(q)
        epoll.lib.portaio_epoll_quick_release(q)  # twice is harmless
    finally:
        backend.close()


def test_a_grown_room_gets_a_new_buffer_and_the_old_keeps_its_room(pairs: Any) -> None:
    backend = _backend_with_ready(pairs, 0)
    try:
        old, _ = backend.quick_buffer(8)
        size = backend._quick._size
        new, _ = backend.quick_buffer(size + 1)
        assert new is not old
        assert (old.room, new.room) == (8, size + 1)
        assert backend.quick_buffer(3)[0] is new  # a smaller room reuses the buffer
    finally:
        backend.close()


def test_close_with_no_quick_wait_in_flight_closes_the_fd_at_once_and_refuses_quick_waits(
    pairs: Any,
) -> None:
    backend = _backend_with_ready(pairs, 1)
    q, _ = backend.quick_buffer(len(pairs))
    epfd = backend.fileno()
    backend.close()
    assert not _fd_open(epfd)
    assert epoll.lib.portaio_epoll_wait_now(q) == TAKEN  # closing: the general way says closed
    backend.close()  # idempotent


def test_a_signal_handler_exception_after_a_quick_wait_gives_the_buffer_back(
    pairs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The window between the C wait and the release, where a Python signal
    # handler can raise: simulated by the key read (the unpack) raising.
    poller = portaio.Poller("epoll")
    try:
        for a, _ in pairs:
            poller.register(a, portaio.READABLE)
        for _, b in pairs[:2]:
            b.send(b"x")

        class Interrupted(dict):  # type: ignore[type-arg]
            def get(self, n: Any, default: Any = None) -> Any:
                raise KeyboardInterrupt

        monkeypatch.setattr(_poll_loop, "unpackers", Interrupted())
        with pytest.raises(KeyboardInterrupt):
            poller.poll(0)
        monkeypatch.undo()
        q = poller._quick[0]
        assert epoll.lib.portaio_epoll_wait_now(q) == -2 - 2  # not left taken
        epoll.lib.portaio_epoll_quick_release(q)
        assert len(poller.poll(0)) == 2
    finally:
        poller.close()


def _spin(poller: portaio.Poller, warm: threading.Event, errors: list[BaseException]) -> None:
    polls = 0
    try:
        while True:
            for event in poller.poll(0):
                assert event.data == "a"
            polls += 1
            if polls == 200:
                warm.set()
    except portaio.PollerClosed:
        return
    except BaseException as exc:  # pragma: no cover - the failure shown
        errors.append(exc)
    finally:
        warm.set()


def test_close_racing_quick_waits_closes_the_epoll_fd_and_leaks_nothing() -> None:
    # Threads spin in poll(0) (the quick wait, or the general way when the
    # buffer is taken) while the main thread closes the poller: every poll
    # returns events or raises PollerClosed, and the epoll fd is closed
    # exactly once, by close() or by the last quick wait out.
    before = set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for _round in range(30):
        a, b = socket.socketpair()
        poller = portaio.Poller("epoll")
        poller.register(a, portaio.READABLE, "a")
        b.send(b"x")
        epfd = poller.fileno()
        errors: list[BaseException] = []
        warmed = [threading.Event(), threading.Event()]
        threads = [threading.Thread(target=_spin, args=(poller, w, errors)) for w in warmed]
        for t in threads:
            t.start()
        for w in warmed:
            assert w.wait(10)
        poller.close()
        for t in threads:
            t.join(10)
            assert not t.is_alive()
        assert errors == []
        assert not _fd_open(epfd)
        a.close()
        b.close()
    if before is not None:
        assert set(os.listdir("/proc/self/fd")) == before


def _spin_quick(q: Any, spinning: threading.Event) -> None:
    calls = 0
    while epoll.lib.portaio_epoll_wait_now(q) != TAKEN:
        calls += 1
        if calls == 20:
            spinning.set()
    spinning.set()


def test_a_close_during_quick_waits_in_flight_is_completed_by_the_last_one_out() -> None:
    # Two threads spin in the quick wait (one buffer each, as after a grown
    # room) while the main thread asks to close: when a wait is in flight the
    # request returns 0 and that wait, the last one out, closes the epoll fd.
    # Both paths must leave the fd closed, never open, never closed twice.
    in_flight = rounds = 0
    while in_flight < 3 and rounds < 2000:
        rounds += 1
        a, b = socket.socketpair()
        b.send(b"x")
        backend = epoll.EpollBackend()
        backend.add(a.fileno(), int(portaio.READABLE), 1)
        first, _ = backend.quick_buffer(4)
        second, _ = backend.quick_buffer(backend._quick._size + 1)  # grown: a second buffer
        # Both spinning before the close: most of a spin is the C call, with
        # the GIL released, and this thread gets the GIL back as one enters it.
        spinning = [threading.Event(), threading.Event()]
        threads = [threading.Thread(target=_spin_quick, args=qs) for qs in zip((first, second), spinning)]
        for t in threads:
            t.start()
        for s in spinning:
            assert s.wait(10)
        # What EpollBackend.close() does, with the answer kept.
        epfd, backend._epfd = backend._epfd, -1
        if epoll.lib.portaio_epoll_handle_close(backend._handle):
            os.close(epfd)
        else:
            in_flight += 1
        for t in threads:
            t.join(10)
            assert not t.is_alive()
        assert not _fd_open(epfd), f"round {rounds}: the epoll fd {epfd} was left open"
        a.close()
        b.close()
    assert in_flight, f"no close met a quick wait in flight in {rounds} rounds: the path went untested"
