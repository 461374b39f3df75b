"""Conformance: signals as events of poll() (DESIGN item 12).

The cases use SIGUSR1 and SIGUSR2 (SIGALRM belongs to pytest-timeout).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

import pytest

import portaio
from portaio.conformance._child import in_child
from portaio.conformance.plugin import poll_while

if sys.platform == "win32":  # pragma: no cover
    pytest.skip("POSIX signals (SIGUSR1/2, masks, fork): Windows has none of them", allow_module_level=True)

_now = time.monotonic
USR1 = signal.SIGUSR1
USR2 = signal.SIGUSR2


def signal_events(poller: portaio.Poller, timeout: float = 5.0) -> list[portaio.Event]:
    """Poll until SIGNAL events arrive (or fail after *timeout*); any other event fails."""
    deadline = _now() + timeout
    while True:
        remaining = deadline - _now()
        assert remaining > 0, "no signal event arrived"
        events = poller.poll(remaining)
        others = [e for e in events if e.events != portaio.SIGNAL or e.fd != -1]
        assert others == [], f"only signals were expected, but the poll also gave {others}"
        if events:
            return events


def blocked() -> set[int]:
    """The signals blocked in this thread."""
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


def test_signal_arrives_as_an_event(poller: portaio.Poller) -> None:
    watch = poller.add_signal(USR1, data="usr1")
    assert watch.active and watch.signum == USR1
    os.kill(os.getpid(), USR1)
    assert signal_events(poller) == [portaio.Event(-1, portaio.SIGNAL, "usr1", 1, USR1)]
    assert poller.poll(0) == []


def test_deliveries_coalesce_with_a_count(poller: portaio.Poller) -> None:
    poller.add_signal(USR1, data="a")
    poller.add_signal(USR2, data="b")
    for _ in range(3):
        os.kill(os.getpid(), USR1)
    os.kill(os.getpid(), USR2)
    events = signal_events(poller)
    end = _now() + 0.05
    while _now() < end and len(events) < 2:
        events += signal_events(poller)
    by_signum = {e.signum: e for e in events}
    assert sorted(by_signum) == sorted([USR1, USR2])
    assert 1 <= by_signum[USR1].times <= 3  # the OS may merge pending deliveries
    assert by_signum[USR1].data == "a" and by_signum[USR2].data == "b"
    assert poller.poll(0.01) == []


def test_signal_interrupts_a_blocked_poll(poller: portaio.Poller) -> None:
    poller.add_signal(USR1, data="x")
    events, elapsed = poll_while(poller, 0.02, lambda: os.kill(os.getpid(), USR1), 5)
    assert [(e.events, e.signum) for e in events] == [(portaio.SIGNAL, USR1)]
    assert elapsed < 2.0


def test_signal_taken_by_a_thread_started_before_still_arrives(poller: portaio.Poller) -> None:
    # The thread exists before add_signal(), so it does not block the signal
    # where a backend blocks it (epoll): the kernel may deliver it there.
    go = threading.Event()

    def sender() -> None:
        go.wait(5)
        time.sleep(0.02)  # let the main thread block in poll() first
        os.kill(os.getpid(), USR1)

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        poller.add_signal(USR1, data="early thread")
        go.set()
        start = _now()
        events = signal_events(poller)
    finally:
        go.set()
        thread.join()
    assert [(e.data, e.signum) for e in events] == [("early thread", USR1)]
    assert _now() - start < 2.0


def test_remove_restores_handler_and_mask_exactly(poller: portaio.Poller) -> None:
    calls: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        calls.append(signum)

    previous = signal.signal(USR1, handler)
    try:
        mask = blocked()
        watch = poller.add_signal(USR1)
        os.kill(os.getpid(), USR1)
        signal_events(poller)
        assert calls == []  # the poller took it, not the Python handler
        assert watch.remove() is True
        assert watch.remove() is False and not watch.active
        assert signal.getsignal(USR1) is handler
        assert blocked() == mask
        os.kill(os.getpid(), USR1)
        assert calls == [USR1]  # the handler runs again
        assert poller.poll(0.01) == []
    finally:
        signal.signal(USR1, previous)


def test_close_restores_handler_and_mask(backend: str) -> None:
    before_handler = signal.getsignal(USR2)
    before_mask = blocked()
    poller = portaio.Poller(backend)
    watch = poller.add_signal(USR2)
    poller.close()
    assert not watch.active
    assert signal.getsignal(USR2) is before_handler
    assert blocked() == before_mask


def test_a_signal_blocked_before_stays_blocked(poller: portaio.Poller) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {USR2})
    try:
        watch = poller.add_signal(USR2)
        watch.remove()
        assert USR2 in blocked()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {USR2})


def test_two_pollers_both_see_the_signal(backend: str) -> None:
    with portaio.Poller(backend) as one, portaio.Poller(backend) as two:
        one.add_signal(USR1, data=1)
        watch = two.add_signal(USR1, data=2)
        os.kill(os.getpid(), USR1)
        assert [e.data for e in signal_events(one)] == [1]
        assert [e.data for e in signal_events(two)] == [2]
        watch.remove()
        os.kill(os.getpid(), USR1)
        assert [e.data for e in signal_events(one)] == [1]
        assert two.poll(0.01) == []


def test_watching_twice_in_one_poller_raises(poller: portaio.Poller) -> None:
    poller.add_signal(USR1)
    with pytest.raises(portaio.AlreadyRegistered, match="SIGUSR1"):
        poller.add_signal(USR1)


@pytest.mark.parametrize(
    ("signum", "error"),
    [
        (signal.SIGKILL, ValueError),
        (signal.SIGSTOP, ValueError),
        (0, ValueError),
        (100000, ValueError),
        ("1", TypeError),
    ],
)
def test_bad_signal_numbers_raise(poller: portaio.Poller, signum: Any, error: type) -> None:
    with pytest.raises(error, match=poller.backend):
        poller.add_signal(signum)


def test_only_from_the_main_thread(poller: portaio.Poller) -> None:
    handler_before = signal.getsignal(USR1)
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            poller.add_signal(USR1)
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    assert "main thread" in str(errors[0]) and poller.backend in str(errors[0])
    assert signal.getsignal(USR1) is handler_before
    assert poller.poll(0) == []


def test_nothing_leaks_into_a_forked_child(poller: portaio.Poller) -> None:
    handler_before = signal.getsignal(USR1)
    mask_before = blocked()
    poller.add_signal(USR1)

    def child() -> str:
        ok_mask = blocked() == mask_before
        ok_handler = signal.getsignal(USR1) is handler_before
        return f"{ok_mask} {ok_handler}"

    assert in_child(child) == "True True"
    os.kill(os.getpid(), USR1)  # the parent still watches it
    assert [e.signum for e in signal_events(poller)] == [USR1]
