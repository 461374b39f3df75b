"""The kqueue backend's own paths that no kernel here takes by itself.

libkqueue (the kqueue built on Linux) accepts a write filter on a pipe whose
reader is gone and never refuses an add halfway through a modify, where
FreeBSD and OpenBSD say ``EPIPE`` (``pipe_kqfilter``) and any kernel may
refuse one filter of several.  These tests make the kernel say so (a wrapper
around the backend's one kevent() call) and check what the backend does:
the pipe is always ready as WRITABLE|ERROR, a failed modify leaves the old
registration working, and a file the kernel refuses is an error naming the
fd (only regular files, directories and the null device are always ready).
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import portaio
from portaio.backends import _kevent
from portaio.backends._base import FLAGS_SHIFT, TOKEN_MASK, AlwaysReady

kqueue = pytest.importorskip("portaio.backends.kqueue")
if kqueue.UNAVAILABLE is not None:  # pragma: no cover - depends on the build
    pytest.skip(f"kqueue backend unavailable here: {kqueue.UNAVAILABLE}", allow_module_level=True)

from portaio.backends import _kqueue_flags as kf  # noqa: E402


@pytest.fixture
def backend() -> Iterator[Any]:
    b = kqueue.KqueueBackend()
    try:
        yield b
    finally:
        b.close()


def _refuse(backend: Any, monkeypatch: pytest.MonkeyPatch, filt: int, err: int, token: int) -> None:
    """Make every add of *filt* under *token* fail with *err*, as a kernel would."""
    real = backend._apply

    def apply(kq: int, ident: int, changes: list[kf.Change], tok: int) -> list[int]:
        errors = real(kq, ident, changes, tok)
        for i, (f, flags, _, _) in enumerate(changes):
            if tok == token and f == filt and flags & kf.EV_ADD:
                real(kq, ident, [(f, kf.EV_DELETE, 0, 0)], tok)
                errors[i] = err
        return errors

    monkeypatch.setattr(backend, "_apply", apply)


def _tokens(backend: Any, timeout: float = 1.0) -> set[int]:
    return {key & TOKEN_MASK for key in backend.wait(timeout, 8)}


# FreeBSD and OpenBSD pipe_kqfilter: EPIPE; NetBSD's (as stored): EBADF.
@pytest.mark.parametrize("err", [errno.EPIPE, errno.EBADF])
def test_write_filter_refused_on_pipe_without_reader_is_always_writable_error(
    backend: Any, monkeypatch: pytest.MonkeyPatch, err: int
) -> None:
    r, w = os.pipe()
    os.close(r)
    try:
        _refuse(backend, monkeypatch, kf.EVFILT_WRITE, err, token=3)
        with pytest.raises(AlwaysReady) as caught:
            backend.add(w, portaio.WRITABLE, 3)
        assert caught.value.ready == portaio.WRITABLE | portaio.ERROR
        assert f"fd {w}" in str(caught.value)
    finally:
        os.close(w)


def test_poller_reports_refused_dead_pipe_as_writable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    r, w = os.pipe()
    os.close(r)
    poller = portaio.Poller("kqueue")
    try:
        _refuse(poller._backend, monkeypatch, kf.EVFILT_WRITE, errno.EPIPE, token=poller._next_token)
        poller.register(w, portaio.WRITABLE, "w")
        for _ in range(2):
            assert [(e.fd, e.events, e.data) for e in poller.poll(0)] == [
                (w, portaio.WRITABLE | portaio.ERROR, "w")
            ]
    finally:
        poller.close()
        os.close(w)


def test_failed_modify_leaves_the_old_registration_working(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = socket.socketpair()
    try:
        backend.add(a.fileno(), portaio.READABLE, 5)
        _refuse(backend, monkeypatch, kf.EVFILT_WRITE, errno.ENOMEM, token=6)
        with pytest.raises(OSError, match=f"fd {a.fileno()}") as caught:
            backend.modify(a.fileno(), portaio.READABLE, 5, portaio.READABLE | portaio.WRITABLE, 6)
        assert caught.value.errno == errno.ENOMEM
        assert _tokens(backend, 0) == set()
        b.send(b"x")
        assert _tokens(backend) == {5}  # the old filters, under the old token
    finally:
        a.close()
        b.close()


def test_stale_registration_never_touches_the_knotes_of_the_numbers_next_file(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registration closed without unregister, its number taken by the poller's own next file.

    A native kernel drops a closed fd's knotes (knote_fdclose); the delete
    below stands for that (libkqueue keeps them, and its EV_ADD on a kept
    knote keeps the old udata).  The poller's own file under the number (a
    signal watch's wakeup socket on macOS, a waker pipe without EVFILT_USER)
    is added under another token: the stale registration's modify, disarm
    and remove must send no change for it.
    """
    a, b = socket.socketpair()
    fd = a.fileno()
    try:
        backend.add(fd, portaio.READABLE, 1)  # the registration later closed
        assert backend.apply(fd, [(kf.EVFILT_READ, kf.EV_DELETE, 0, 0)], 1) == [0]  # its close
        backend.add(fd, portaio.READABLE, 2)  # the poller's own file, same number
        sent: list[tuple[int, list[kf.Change]]] = []
        real = backend._apply

        def apply(kq: int, ident: int, changes: list[kf.Change], tok: int) -> list[int]:
            sent.append((ident, changes))
            return real(kq, ident, changes, tok)  # type: ignore[no-any-return]

        monkeypatch.setattr(backend, "_apply", apply)
        closed = rf"portaio\[kqueue\]: cannot modify fd {fd}: it was closed"
        with pytest.raises(OSError, match=closed) as caught:
            backend.modify(fd, portaio.READABLE, 1, portaio.READABLE | portaio.WRITABLE, 3)
        assert caught.value.errno == errno.EBADF
        backend.disarm(fd, portaio.READABLE, 1)
        backend.remove(fd, portaio.READABLE, 1)
        assert sent == []
        b.send(b"x")
        assert _tokens(backend) == {2}  # still watched, under the poller's token
        backend.remove(fd, portaio.READABLE, 2)
        assert sent == [(fd, [(kf.EVFILT_READ, kf.EV_DELETE, 0, 0)])]
        assert _tokens(backend, 0) == set()
    finally:
        a.close()
        b.close()


def test_refused_file_is_an_error_naming_the_fd(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tty or device the kernel cannot watch is no "always ready" file."""
    a, b = socket.socketpair()
    try:
        _refuse(backend, monkeypatch, kf.EVFILT_READ, errno.EINVAL, token=7)
        with pytest.raises(OSError, match=f"fd {a.fileno()}.*refuses") as caught:
            backend.add(a.fileno(), portaio.READABLE, 7)
        assert not isinstance(caught.value, AlwaysReady)
    finally:
        a.close()
        b.close()


def test_null_device_refused_is_always_ready(backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fd = os.open(os.devnull, os.O_RDWR)
    try:
        _refuse(backend, monkeypatch, kf.EVFILT_READ, errno.ENODEV, token=8)
        with pytest.raises(AlwaysReady):
            backend.add(fd, portaio.READABLE, 8)
    finally:
        os.close(fd)


def test_capabilities_are_the_build_kernels() -> None:
    caps = kqueue.KqueueBackend.capabilities
    assert caps == _kevent.capabilities(kf.KERNEL)
    assert caps.priority == bool(kf.NOTE_OOB)
    assert (caps.native_wake == "EVFILT_USER") == (kf.have("EVFILT_USER") and kf.have("NOTE_TRIGGER"))


def test_c_summary_bits_are_the_python_ones() -> None:
    """The C wait's PORTAIO_K_* bits are _kevent's K_* (one summary, two languages)."""
    from portaio._kqueue_cffi import lib

    for name in (
        "READ",
        "WRITE",
        "EXCEPT",
        "READ_EOF",
        "WRITE_EOF",
        "EOF_ERROR",
        "OOB",
        "READ_EMPTY",
        "FAILED",
    ):
        assert getattr(lib, f"PORTAIO_K_{name}") == getattr(_kevent, f"K_{name}"), name
    assert lib.PORTAIO_K_OTHER == kf.K_OTHER


@pytest.mark.parametrize("edge", [False, True])
def test_wait_returns_at_most_max_events_and_keeps_the_rest(backend: Any, edge: bool) -> None:
    """Read and write filters of 10 sockets, waits of 3 keys: every fd comes (edge: exactly once)."""
    if edge and kqueue.LIBKQUEUE:
        pytest.skip(
            "kqueue on libkqueue: once kevent()'s list is full libkqueue drops the epoll events left"
            " over, and an EV_CLEAR edge is never reported again (portaio.conformance.libkqueue)"
        )
    pairs = [socket.socketpair() for _ in range(10)]
    try:
        for token, (a, b) in enumerate(pairs, start=1):
            backend.add(
                a.fileno(), portaio.READABLE | portaio.WRITABLE | (portaio.EDGE if edge else 0), token
            )
            b.send(b"x")
        seen: list[int] = []
        for _ in range(4 if edge else 10):  # level: fds come round again, the others within a few waits
            keys = backend.wait(1.0, 3)
            assert 0 < len(keys) <= 3
            assert len({key & TOKEN_MASK for key in keys}) == len(keys)  # one key per registration
            seen += [key & TOKEN_MASK for key in keys]  # a key is token | bits << FLAGS_SHIFT
        assert set(seen) == set(range(1, 11))
        if edge:
            assert sorted(seen) == list(range(1, 11))
            assert backend.wait(0, 3) == []
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_merge_keys_one_per_registration_counts_apart() -> None:
    # A key is token | bits << FLAGS_SHIFT (backends/_base.py).
    other = (kf.K_OTHER | 5 << kf.K_DATA_SHIFT) << FLAGS_SHIFT
    read, write = _kevent.K_READ << FLAGS_SHIFT, _kevent.K_WRITE << FLAGS_SHIFT
    kept = [1 | read, 9 | other]
    fresh = [1 | write, 2 | read, 9 | other]
    merged = kf.merge_keys(kept, fresh)
    assert sorted(merged) == sorted([9 | other, 9 | other, 1 | read | write, 2 | read])


def test_the_quick_wait_returns_one_key_itself_and_pauses_while_keys_are_kept(backend: Any) -> None:
    # poll(0)'s quick wait (csrc/portaio_kqueue.c): the key of a single
    # ready fd as its result; keys a general wait kept for its next call
    # (more than its max_events) pause it, so that they are reported first.
    lib = kqueue.lib
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        for token, (a, _) in enumerate(pairs, start=1):
            backend.add(a.fileno(), int(portaio.READABLE), token)
        q, _view = backend.quick_buffer(9)
        pairs[0][1].send(b"x")
        got = lib.portaio_kq_wait_now(q)
        assert got >= 0 and got & TOKEN_MASK == 1
        for _, b in pairs[1:]:
            b.send(b"x")
        assert len(backend.wait(0.0, 1)) == 1  # three ready: two kept
        assert backend._handle.paused
        assert lib.portaio_kq_wait_now(q) == lib.PORTAIO_QUICK_TAKEN
        assert len(backend.wait(0.0, 9)) == 3  # the kept ones, merged with the fresh
        assert not backend._handle.paused
        assert lib.portaio_kq_wait_now(q) == -2 - 3
        lib.portaio_kq_quick_release(q)
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_close_refuses_later_quick_waits(backend: Any) -> None:
    q, _view = backend.quick_buffer(3)
    backend.close()
    assert kqueue.lib.portaio_kq_wait_now(q) == kqueue.lib.PORTAIO_QUICK_TAKEN
