"""pytest fixtures of the conformance suite, parametrised over every backend.

A backend that cannot run on this machine shows as *skipped* with the reason
``portaio.unavailable_reasons()`` gives, never silently left out.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import portaio

# Known libkqueue deviations are skipped for kqueue-on-libkqueue only; the
# guard fails a test that leaves handlers, mask, wakeup fd or fds changed.
pytest_plugins = ["portaio.conformance.libkqueue", "portaio.conformance.guard"]

_selected = os.environ.get("PORTAIO_TEST_BACKENDS")
BACKENDS = tuple(_selected.split(",")) if _selected else portaio.BACKEND_NAMES
_required = set(filter(None, os.environ.get("PORTAIO_REQUIRE_BACKENDS", "").split(",")))


def pytest_report_header(config: Any) -> list[str]:
    """Say which portaio is under test and what each backend can do here."""
    reasons = portaio.unavailable_reasons()
    lines = [f"portaio {portaio.__version__} from {os.path.dirname(portaio.__file__)}"]
    for name in portaio.BACKEND_NAMES:
        lines.append(
            f"  backend {name}: {'available' if name not in reasons else 'skipped: ' + reasons[name]}"
        )
    return lines


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of each backend in turn; skipped with the reason where unavailable."""
    name: str = request.param
    reason = portaio.unavailable_reasons().get(name)
    if reason is not None:
        if name in _required:
            # Mutation testing and CI name what must run: a missing compiled
            # module there must fail, not turn every case into a quiet skip.
            pytest.fail(f"{name} backend required by PORTAIO_REQUIRE_BACKENDS but unavailable: {reason}")
        pytest.skip(f"{name} backend unavailable here: {reason}")
    return name


@pytest.fixture
def poller(backend: str) -> Iterator[portaio.Poller]:
    """A fresh poller of the backend under test, closed afterwards."""
    p = portaio.Poller(backend)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def capabilities(backend: str) -> portaio.Capabilities:
    """The capabilities the contract pins for the backend under test on this OS.

    Not the backend's own claim: a case that branches on a capability then
    fails when the backend drops a pinned feature (see
    :mod:`portaio.conformance.expected`).  Where this OS has no pinned row
    yet, the backend's claim stands in.
    """
    from portaio.conformance.expected import pinned_capabilities

    return pinned_capabilities(backend) or portaio.backend_class(backend).capabilities


class Closer:
    """Collects fds and sockets made by a test and closes them at the end."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def add(self, item: Any) -> Any:
        self.items.append(item)
        return item

    def socketpair(
        self, family: int = -1, type: int = socket.SOCK_STREAM
    ) -> tuple[socket.socket, socket.socket]:
        # AF_UNIX where it exists; Windows' socketpair() is loopback TCP.
        if family == -1:
            if sys.platform == "win32":
                family = socket.AF_INET
            else:
                family = socket.AF_UNIX
        a, b = socket.socketpair(family, type)
        for s in (a, b):
            s.setblocking(False)
            self.add(s)
        return a, b

    def pipe(self) -> tuple[int, int]:
        if sys.platform == "win32":  # pragma: no cover
            pytest.skip("a pipe is not a socket: Windows' select() and AFD poll sockets only")
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self.add(r)
        self.add(w)
        return r, w

    def tcp_pair(self) -> tuple[socket.socket, socket.socket, socket.socket]:
        """A connected TCP pair over loopback plus its listener: (client, server, listener)."""
        listener = self.add(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        client = self.add(socket.create_connection(listener.getsockname(), timeout=5))
        server, _ = listener.accept()
        self.add(server)
        client.setblocking(False)
        server.setblocking(False)
        return client, server, listener

    def close(self) -> None:
        for item in reversed(self.items):
            try:
                if isinstance(item, int):
                    os.close(item)
                else:
                    item.close()
            except OSError:
                pass


@pytest.fixture
def fds() -> Iterator[Closer]:
    """Make sockets and pipes that are closed when the test ends."""
    closer = Closer()
    try:
        yield closer
    finally:
        closer.close()


def ready_map(events: list[portaio.Event]) -> dict[int, int]:
    """``{fd: flags}`` of a poll result (flags merged per fd)."""
    out: dict[int, int] = {}
    for ev in events:
        out[ev.fd] = out.get(ev.fd, 0) | ev.events
    return out


def poll_until(
    poller: portaio.Poller, predicate: Callable[[list[portaio.Event]], bool], timeout: float = 5.0
) -> list[portaio.Event]:
    """Poll until *predicate* holds for a result, or fail after *timeout* seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        events = poller.poll(max(0.0, min(remaining, 0.5)))
        if predicate(events):
            return events
        if remaining <= 0:
            raise AssertionError(f"condition not met within {timeout} s; last poll gave {events}")


def poll_while(
    poller: portaio.Poller, delay: float, action: Callable[[], object], timeout: float | None
) -> tuple[list[portaio.Event], float]:
    """Poll once with *timeout* while another thread calls *action* after *delay* seconds.

    Returns the events and the seconds from just before the thread started
    until it had finished after the poll.
    """
    thread = threading.Timer(delay, action)
    start = time.monotonic()
    thread.start()
    try:
        events = poller.poll(timeout)
    finally:
        thread.join()
    return events, time.monotonic() - start


def nest_and_check(poller: portaio.Poller, inner: portaio.Poller, fds: Closer) -> None:
    """Register the poller *inner* in *poller*: readable exactly while *inner* has an event."""
    a, b = fds.socketpair()
    inner.register(a, portaio.READABLE, "inner")
    poller.register(inner, portaio.READABLE, "outer")
    assert poller.poll(0) == []
    b.send(b"x")
    assert ready_map(poller.poll(1.0)) == {inner.fileno(): portaio.READABLE}
    assert [e.data for e in inner.poll(0)] == ["inner"]
    a.recv(10)
    assert poller.poll(0) == []
    poller.unregister(inner)


def reuse_closed_number(poller: portaio.Poller, fds: Closer) -> tuple[int, socket.socket]:
    """Register a pipe's read end (data ``"old"``), close it, and put a socket under its number.

    Returns the number, still registered, and the socket's peer.
    """
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("needs a pipe and dup2() onto a socket: Windows sockets are handles, not fds")
    r, w = os.pipe()
    fds.add(w)
    poller.register(r, portaio.READABLE, "old")
    os.close(r)
    c, d = fds.socketpair()
    assert os.dup2(c.fileno(), r) == r
    fds.add(r)
    return r, d


def collect_garbage() -> None:
    """Collect until a collection frees nothing more (then fds held by garbage are closed).

    One ``gc.collect()`` is not enough on PyPy: an object reachable from one
    with a finaliser (the registered sockets of a poller an earlier test
    dropped, a ``Popen``'s pipes) is freed only by the collection after the
    finaliser ran, so an fd snapshot taken after one collection would still
    hold fds that the next one closes.
    """
    gc.collect()
    fds = open_fds()
    for _ in range(10):
        gc.collect()
        now = open_fds()
        if now == fds:
            return
        fds = now


def open_fds() -> set[int]:
    """The fds open in this process (via ``/proc/self/fd`` where there is one)."""
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("counts POSIX fds: Windows sockets are handles, which os.fstat does not see")
    try:
        listed = {int(name) for name in os.listdir("/proc/self/fd")}
    except FileNotFoundError:  # pragma: no cover - no /proc (macOS, BSD)
        listed = set(range(4096))
    # The listing's own directory fd shows in it, closed by now.
    return {fd for fd in listed if is_open(fd)}


def is_open(fd: int) -> bool:
    """True if *fd* is an open file descriptor."""
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
