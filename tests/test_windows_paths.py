"""The Windows-only pieces that can run here too.

The afd backend itself runs only on Windows (its C state machine is tested
under Wine by tools/wine-afd-test.sh, its Python binding in the Windows CI
job).  The socket-pair waker that select uses on Windows is plain socket
code: here it replaces select's pipe so that the wake-up contract is checked
on it on every run.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

import portaio
from portaio.backends import select as select_backend
from portaio.backends._base import Host, Waker
from portaio.backends._socket_waker import SocketWaker

WAKE_EVENT = portaio.Event(-1, portaio.WAKE, None, 1, 0)


@pytest.fixture
def socket_waker_poller(monkeypatch: pytest.MonkeyPatch) -> portaio.Poller:
    def make_waker(self: object, host: Host) -> Waker:
        return SocketWaker(host)

    monkeypatch.setattr(select_backend.SelectBackend, "make_waker", make_waker)
    poller = portaio.Poller("select")
    assert isinstance(poller._waker, SocketWaker)
    return poller


def test_socket_waker_wakes_a_blocked_poll(socket_waker_poller: portaio.Poller) -> None:
    with socket_waker_poller as poller:
        timer = threading.Timer(0.1, poller.wake)
        timer.start()
        start = time.monotonic()
        events = poller.poll(5)
        elapsed = time.monotonic() - start
        timer.join()
        assert events == [WAKE_EVENT]
        assert elapsed < 2.0
        assert poller.poll(0) == []


def test_socket_waker_coalesces_and_wakes_before_poll(socket_waker_poller: portaio.Poller) -> None:
    with socket_waker_poller as poller:
        for _ in range(1000):
            poller.wake()
        assert poller.poll(5) == [WAKE_EVENT]
        assert poller.poll(0) == []
        poller.wake()
        assert poller.poll(0) == [WAKE_EVENT]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds through /proc/self/fd")
def test_socket_waker_closes_its_sockets(socket_waker_poller: portaio.Poller) -> None:
    before = set(os.listdir("/proc/self/fd"))
    socket_waker_poller.close()
    waker = socket_waker_poller._waker
    assert isinstance(waker, SocketWaker)
    assert waker._r.fileno() == -1 and waker._w.fileno() == -1
    waker.post()  # after close: does nothing, raises nothing
    assert set(os.listdir("/proc/self/fd")) <= before


@pytest.mark.skipif(sys.platform == "win32", reason="checks the reason given off Windows")
def test_afd_is_unavailable_off_windows_and_says_why() -> None:
    assert "afd" in portaio.BACKEND_NAMES
    assert "afd" not in portaio.available_backends()
    assert "Windows" in portaio.unavailable_reasons()["afd"]
    with pytest.raises(portaio.BackendUnavailable, match="afd"):
        portaio.Poller("afd")
