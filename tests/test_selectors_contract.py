"""The selectors adapter honours the standard library's contract on every backend.

Modelled on the ``selectors`` documentation and the behaviours CPython's
``Lib/test/test_selectors.py`` checks; where the standard classes differ, the
expected behaviour is ``EpollSelector``'s.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from selectors import EVENT_READ, EVENT_WRITE, BaseSelector, SelectorKey

import pytest

from portaio.conformance.plugin import Closer
from portaio.conformance.signalling import handler_installed, signal_main_after
from portaio.selectors import DefaultSelector, PortaioSelector


@pytest.fixture
def sel(backend: str) -> Iterator[PortaioSelector]:
    s = PortaioSelector(backend)
    try:
        yield s
    finally:
        s.close()


def test_is_a_base_selector(sel: PortaioSelector, backend: str) -> None:
    assert isinstance(sel, BaseSelector)
    assert sel.backend == backend
    assert DefaultSelector is PortaioSelector


def test_register_returns_key(sel: PortaioSelector, fds: Closer) -> None:
    a, _ = fds.socketpair()
    key = sel.register(a, EVENT_READ, "data")
    assert isinstance(key, SelectorKey)
    assert key == SelectorKey(a, a.fileno(), EVENT_READ, "data")
    assert sel.get_key(a) is key
    assert sel.get_key(a.fileno()) is key


@pytest.mark.parametrize("events", [0, 4, 8, EVENT_READ | 4, -1])
def test_register_bad_events_is_value_error(sel: PortaioSelector, fds: Closer, events: int) -> None:
    a, _ = fds.socketpair()
    with pytest.raises(ValueError):
        sel.register(a, events)
    assert len(sel.get_map()) == 0  # type: ignore[arg-type]


@pytest.mark.parametrize("fileobj", [-1, object(), "x", 1.5])
def test_register_bad_fileobj_is_value_error(sel: PortaioSelector, fileobj: object) -> None:
    with pytest.raises(ValueError):
        sel.register(fileobj, EVENT_READ)
    assert len(sel.get_map()) == 0  # type: ignore[arg-type]


def test_fileno_raising_or_negative_is_value_error(sel: PortaioSelector) -> None:
    class Bad:
        def fileno(self) -> int:
            raise ValueError("closed")

    class Negative:
        def fileno(self) -> int:
            return -5

    for obj in (Bad(), Negative()):
        with pytest.raises(ValueError):
            sel.register(obj, EVENT_READ)


def test_duplicate_is_key_error_also_through_another_object(sel: PortaioSelector, fds: Closer) -> None:
    a, _ = fds.socketpair()
    sel.register(a, EVENT_READ)
    with pytest.raises(KeyError):
        sel.register(a, EVENT_WRITE)
    with pytest.raises(KeyError):
        sel.register(a.fileno(), EVENT_READ)
    assert sel.get_key(a).events == EVENT_READ


def test_unknown_unregister_and_modify_are_key_errors(sel: PortaioSelector, fds: Closer) -> None:
    a, _ = fds.socketpair()
    with pytest.raises(KeyError):
        sel.unregister(a)
    with pytest.raises(KeyError):
        sel.modify(a, EVENT_READ)
    with pytest.raises(KeyError):
        sel.get_key(a)
    sel.register(a, EVENT_READ)
    sel.unregister(a.fileno())  # through another object with the same fd
    with pytest.raises(KeyError):
        sel.unregister(a)


def test_kernel_error_leaves_no_key(sel: PortaioSelector) -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as info:
        sel.register(r, EVENT_READ)
    assert info.value.errno == errno.EBADF
    assert r not in sel.get_map()  # type: ignore[operator]
    with pytest.raises(KeyError):
        sel.get_key(r)


def test_regular_file_is_permission_error_as_epoll(sel: PortaioSelector) -> None:
    with tempfile.TemporaryFile() as f:
        with pytest.raises(PermissionError):
            sel.register(f, EVENT_READ)
        assert len(sel.get_map()) == 0  # type: ignore[arg-type]
        with pytest.raises(KeyError):
            sel.get_key(f)


def test_unregister_after_close_of_the_file(sel: PortaioSelector, fds: Closer) -> None:
    a, _b = fds.socketpair()
    key = sel.register(a, EVENT_READ)
    a.close()  # fileno() is now -1: found by identity
    assert sel.unregister(a) is key
    assert len(sel.get_map()) == 0  # type: ignore[arg-type]


def test_unregister_after_fd_reuse_is_quiet(sel: PortaioSelector, fds: Closer) -> None:
    r, w = os.pipe()
    sel.register(r, EVENT_READ)
    os.close(r)
    os.close(w)
    r2, w2 = fds.pipe()  # likely reuses the numbers
    sel.unregister(r)
    assert len(sel.get_map()) == 0  # type: ignore[arg-type]
    os.write(w2, b"x")
    sel.register(r2, EVENT_READ)
    assert [k.fd for k, _ in sel.select(0)] == [r2]


def test_modify(sel: PortaioSelector, fds: Closer) -> None:
    a, _b = fds.socketpair()
    key = sel.register(a, EVENT_READ, "one")
    assert sel.modify(a, EVENT_READ, "one") is key  # nothing changed: the same key
    key2 = sel.modify(a, EVENT_WRITE, "two")
    assert key2 == SelectorKey(a, a.fileno(), EVENT_WRITE, "two")
    assert sel.get_key(a) is key2
    assert sel.select(0) == [(key2, EVENT_WRITE)]
    key3 = sel.modify(a, EVENT_WRITE, "three")
    assert sel.select(0) == [(key3, EVENT_WRITE)]


def test_data_only_modify_makes_no_kernel_call(
    sel: PortaioSelector, fds: Closer, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _b = fds.socketpair()
    sel.register(a, EVENT_WRITE, "old")
    assert sel.select(0)[0][0].data == "old"  # the (key, mask) pair is cached now

    def forbidden(*args: object) -> None:
        raise AssertionError("the kernel was asked")

    backend = sel._poller._backend  # the kernel primitives (portaio/backends/_base.py)
    for name in ("add", "modify", "remove"):
        monkeypatch.setattr(backend, name, forbidden)
    new = sel.modify(a, EVENT_WRITE, "new")
    assert new.data == "new"
    assert sel.select(0) == [(new, EVENT_WRITE)]


def test_modify_bad_events_keeps_registration(sel: PortaioSelector, fds: Closer) -> None:
    a, _ = fds.socketpair()
    key = sel.register(a, EVENT_READ)
    with pytest.raises(ValueError):
        sel.modify(a, 0)
    assert sel.get_key(a) is key


def test_select_reports_read_and_write(sel: PortaioSelector, fds: Closer) -> None:
    a, b = fds.socketpair()
    ka = sel.register(a, EVENT_READ | EVENT_WRITE, "a")
    kb = sel.register(b, EVENT_READ, "b")
    assert sel.select(0) == [(ka, EVENT_WRITE)]
    a.send(b"x")
    b.send(b"y")
    ready = dict(sel.select(0))
    assert ready == {ka: EVENT_READ | EVENT_WRITE, kb: EVENT_READ}


def test_hangup_is_read_and_write_limited_to_interest(sel: PortaioSelector, fds: Closer) -> None:
    r, w = fds.pipe()
    kr = sel.register(r, EVENT_READ)
    os.close(w)
    fds.items.remove(w)
    assert sel.select(0) == [(kr, EVENT_READ)]
    sel.unregister(r)
    r2, w2 = fds.pipe()
    kw = sel.register(w2, EVENT_WRITE)
    os.close(r2)
    fds.items.remove(r2)
    assert sel.select(0) == [(kw, EVENT_WRITE)]


def test_error_reported_as_both(sel: PortaioSelector, fds: Closer) -> None:
    client, server, _ = fds.tcp_pair()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    key = sel.register(client, EVENT_READ | EVENT_WRITE)
    server.close()  # RST
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        ready = sel.select(0.5)
        if ready and ready[0][1] == EVENT_READ | EVENT_WRITE:
            break
    assert ready == [(key, EVENT_READ | EVENT_WRITE)]


def test_unregistered_fd_is_never_reported(sel: PortaioSelector, fds: Closer) -> None:
    a, b = fds.socketpair()
    sel.register(a, EVENT_READ)
    b.send(b"x")
    sel.unregister(a)
    assert sel.select(0) == []


def test_select_timeouts(sel: PortaioSelector, fds: Closer) -> None:
    a, _ = fds.socketpair()
    sel.register(a, EVENT_READ)
    for timeout in (0, -1, 0.0, -0.5):
        t0 = time.monotonic()
        assert sel.select(timeout) == []
        assert time.monotonic() - t0 < 0.5
    t0 = time.monotonic()
    assert sel.select(0.05) == []
    assert time.monotonic() - t0 >= 0.05
    with pytest.raises(TypeError):
        sel.select("1")  # type: ignore[arg-type]


def test_select_none_blocks_until_ready(sel: PortaioSelector, fds: Closer) -> None:
    a, b = fds.socketpair()
    key = sel.register(a, EVENT_READ)
    timer = threading.Timer(0.05, b.send, (b"x",))
    timer.start()
    try:
        assert sel.select(None) == [(key, EVENT_READ)]
    finally:
        timer.join()


def test_select_with_nothing_registered(sel: PortaioSelector) -> None:
    assert sel.select(0) == []
    assert sel.select(0.01) == []


def test_select_eintr_resumes_for_the_time_left(sel: PortaioSelector, fds: Closer) -> None:
    """PEP 475: a signal handler runs, the wait goes on for the rest of its timeout."""
    a, _ = fds.socketpair()
    sel.register(a, EVENT_READ)
    caught: list[int] = []

    def handler(signum: int, frame: object) -> None:
        caught.append(signum)

    with handler_installed(signal.SIGUSR1, handler), signal_main_after(0.05, signal.SIGUSR1):
        t0 = time.monotonic()
        assert sel.select(0.3) == []
        elapsed = time.monotonic() - t0
    assert caught == [signal.SIGUSR1]
    assert 0.3 <= elapsed < 2.0


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_select_eintr_handler_exception_propagates(
    sel: PortaioSelector, fds: Closer, timeout: float | None
) -> None:
    a, _ = fds.socketpair()
    sel.register(a, EVENT_READ)

    class Stop(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        raise Stop

    with handler_installed(signal.SIGUSR1, handler), signal_main_after(0.05, signal.SIGUSR1):
        t0 = time.monotonic()
        with pytest.raises(Stop):
            sel.select(timeout)
        assert time.monotonic() - t0 < 2.0


def test_get_map_is_live_and_read_only(sel: PortaioSelector, fds: Closer) -> None:
    a, b = fds.socketpair()
    m = sel.get_map()
    assert isinstance(m, Mapping)
    assert len(m) == 0
    ka = sel.register(a, EVENT_READ)
    assert len(m) == 1
    assert m[a] is ka
    assert m[a.fileno()] is ka
    assert list(m) == [a.fileno()]
    assert a in m and b not in m
    with pytest.raises(KeyError):
        m[b]
    with pytest.raises(TypeError):
        m[b] = ka  # type: ignore[index]
    with pytest.raises(TypeError):
        del m[a]  # type: ignore[attr-defined]
    sel.unregister(a)
    assert len(m) == 0


def test_close(backend: str, fds: Closer) -> None:
    sel = PortaioSelector(backend)
    a, _ = fds.socketpair()
    sel.register(a, EVENT_READ)
    sel.close()
    sel.close()  # idempotent
    assert sel.get_map() is None
    with pytest.raises(RuntimeError):
        sel.get_key(a)
    with pytest.raises(KeyError):
        sel.unregister(a)
    with pytest.raises(KeyError):
        sel.modify(a, EVENT_READ)
    with pytest.raises(ValueError):
        sel.register(a, EVENT_READ)
    with pytest.raises(ValueError):
        sel.select(0)


def test_context_manager(backend: str, fds: Closer) -> None:
    a, _ = fds.socketpair()
    with PortaioSelector(backend) as sel:
        sel.register(a, EVENT_WRITE)
        assert len(sel.select(0)) == 1
    assert sel.get_map() is None


def test_many_fds(sel: PortaioSelector, fds: Closer) -> None:
    pairs = [fds.socketpair() for _ in range(200)]
    keys = {sel.register(a, EVENT_READ, i).fd for i, (a, _) in enumerate(pairs)}
    for _, b in pairs[::3]:
        b.send(b"x")
    ready = sel.select(0)
    assert {k.fd for k, _ in ready} == {a.fileno() for a, _ in pairs[::3]}
    assert all(mask == EVENT_READ for _, mask in ready)
    assert len(keys) == 200


def test_key_replaced_after_unregister_and_register(sel: PortaioSelector, fds: Closer) -> None:
    a, b = fds.socketpair()
    b.send(b"x")
    sel.register(a, EVENT_READ, "first")
    assert sel.select(0)[0][0].data == "first"
    sel.unregister(a)
    key = sel.register(a, EVENT_READ, "second")
    assert sel.select(0) == [(key, EVENT_READ)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_inherited_selector_is_retired_in_a_forked_child(sel: PortaioSelector, fds: Closer) -> None:
    """As portaio's pollers: the child must make its own; the parent is unaffected."""
    a, b = fds.socketpair()
    key = sel.register(a, EVENT_READ)
    b.send(b"x")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            try:
                sel.select(0)
            except ValueError:
                with PortaioSelector(sel.backend) as fresh:
                    fresh.register(a, EVENT_READ)
                    code = 0 if len(fresh.select(0)) == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sel.select(0) == [(key, EVENT_READ)]
