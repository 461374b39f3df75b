"""The afd backend's Python binding, over a recording stand-in for ``portaio._afd_cffi``.

The real module exists on Windows only (its C state machine is tested under
Wine by tools/wine-afd-test.sh; the binding against it in the Windows CI
job).  Here the binding's own logic is checked: which C call each primitive
makes with which arguments, the keys a wait returns, and that ``close()``
never frees the port while a wait is inside it, nor lets a wake reach it
afterwards.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import portaio
from portaio.backends import afd


class FakeFFI:
    NULL = None

    def new(self, cdecl: str, size: int) -> list[int]:
        assert cdecl == "uint64_t[]"
        return [0] * size

    def unpack(self, buf: list[int], n: int) -> list[int]:
        return buf[:n]

    def getwinerror(self) -> tuple[int, str]:
        return 10055, "no buffer space"


class FakeLib:
    """Records calls; a wait blocks until a wake (or returns queued keys)."""

    PORTAIO_AFD_READABLE, PORTAIO_AFD_WRITABLE, PORTAIO_AFD_PRIORITY = 1, 2, 4
    PORTAIO_AFD_RDHUP, PORTAIO_AFD_HANGUP, PORTAIO_AFD_ERROR = 8, 16, 32
    PORTAIO_AFD_EDGE, PORTAIO_AFD_ONESHOT, PORTAIO_AFD_EXCLUSIVE = 64, 128, 256
    PORTAIO_AFD_WAKE = 2048

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.keys: list[int] = []
        self.woken = threading.Event()
        self.in_wait = 0
        self.freed = False
        self.fail_add = False

    def portaio_afd_open(self) -> str:
        return "port"

    def portaio_afd_add(self, port: str, fd: int, events: int, token: int) -> Any:
        self.calls.append(("add", port, fd, events, token))
        return None if self.fail_add else f"sock{fd}"

    def portaio_afd_modify(self, port: str, sock: str, events: int, token: int) -> int:
        self.calls.append(("modify", port, sock, events, token))
        return 0

    def portaio_afd_remove(self, port: str, sock: str) -> int:
        self.calls.append(("remove", port, sock))
        return 0

    def portaio_afd_wait(self, port: str, buf: list[int], max_keys: int, timeout: float) -> int:
        assert not self.freed, "wait on a freed port"
        self.in_wait += 1
        try:
            if not self.keys:
                self.woken.wait(None if timeout < 0 else timeout)
                self.woken.clear()
            n = min(len(self.keys), max_keys)
            buf[:n] = self.keys[:n]
            del self.keys[:n]
            return n
        finally:
            self.in_wait -= 1

    def portaio_afd_wake(self, port: str, token: int) -> int:
        assert not self.freed, "wake on a freed port"
        self.calls.append(("wake", port, token))
        self.woken.set()
        return 0

    def portaio_afd_close(self, port: str) -> int:
        assert self.in_wait == 0, "port freed while a wait is inside it"
        self.freed = True
        self.calls.append(("close", port))
        return 0


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeLib:
    lib = FakeLib()
    monkeypatch.setattr(afd, "lib", lib, raising=False)
    monkeypatch.setattr(afd, "ffi", FakeFFI(), raising=False)
    monkeypatch.setattr(afd, "UNAVAILABLE", None)
    return lib


def test_primitives_make_one_c_call_each(fake: FakeLib) -> None:
    backend = afd.AfdBackend()
    backend.add(7, int(portaio.READABLE | portaio.ONESHOT), 3)
    backend.modify(7, 0, 3, int(portaio.WRITABLE), 4)
    backend.remove(7, int(portaio.WRITABLE), 4)
    backend.remove(7, int(portaio.WRITABLE), 4)  # unknown now: no call
    assert fake.calls == [
        ("add", "port", 7, int(portaio.READABLE | portaio.ONESHOT), 3),
        ("modify", "port", "sock7", int(portaio.WRITABLE), 4),
        ("remove", "port", "sock7"),
    ]
    with pytest.raises(OSError, match=r"portaio\[afd\]: fd 8 is not watched"):
        backend.modify(8, 0, 1, int(portaio.READABLE), 2)
    backend.close()


def test_add_failure_names_fd_and_backend(fake: FakeLib) -> None:
    fake.fail_add = True
    backend = afd.AfdBackend()
    with pytest.raises(OSError, match=r"portaio\[afd\]: cannot watch fd 9: no buffer space") as info:
        backend.add(9, int(portaio.READABLE), 1)
    assert info.value.errno == 10055
    with pytest.raises(OSError, match="not watched"):
        backend.modify(9, 0, 1, int(portaio.READABLE), 2)
    backend.close()


def test_wait_returns_the_keys_the_c_wait_wrote(fake: FakeLib) -> None:
    backend = afd.AfdBackend()
    fake.keys = [1 | 5 << 32, 2 | 6 << 32, 3 | 7 << 32]
    assert backend.wait(0, 2) == [1 | 5 << 32, 2 | 6 << 32]
    assert backend.wait(0, 500) == [3 | 7 << 32]  # a buffer larger than the first
    assert backend.events_of(int(portaio.READABLE | portaio.HANGUP), 5, 0) == (
        int(portaio.READABLE | portaio.HANGUP),
        True,
    )
    backend.close()


def test_close_waits_for_a_blocked_wait_then_frees_and_wakes_nothing(fake: FakeLib) -> None:
    backend = afd.AfdBackend()
    result: list[list[int]] = []
    waiter = threading.Thread(target=lambda: result.append(backend.wait(None, 8)))
    waiter.start()
    deadline = time.monotonic() + 5
    while fake.in_wait == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert fake.in_wait == 1
    backend.close()  # FakeLib asserts no wait is inside when the port is freed
    waiter.join(5)
    assert not waiter.is_alive() and result == [[]]
    assert fake.freed
    backend.post_wake(9)  # after close: no call into the freed port
    assert backend.wait(0, 8) == []
    backend.close()  # idempotent
    assert [c[0] for c in fake.calls].count("close") == 1


def test_waker_posts_its_token_through_the_backend(fake: FakeLib) -> None:
    from portaio.backends._afd_waker import AfdWaker

    class Host:
        name = "afd"
        dropped: list[int] = []

        def new_token(self, handler: Any) -> int:
            return 42

        def drop_token(self, token: int) -> None:
            self.dropped.append(token)

    backend = afd.AfdBackend()
    host = Host()
    waker = AfdWaker(host, backend)  # type: ignore[arg-type]
    waker.post()
    assert fake.calls[-1] == ("wake", "port", 42)
    waker.close()
    waker.post()
    assert fake.calls[-1] == ("wake", "port", 42) and len(fake.calls) == 1
    assert host.dropped == [42]
    backend.close()
