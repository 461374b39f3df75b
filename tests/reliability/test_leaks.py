"""Leaks: thousands of poller lifecycles return the fd count to where it started,
and every fd portaio creates is close-on-exec (a child started with
``subprocess`` sees none of them)."""

from __future__ import annotations

import errno
import gc
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import portaio
from portaio import ONESHOT, READABLE, WRITABLE

fcntl = pytest.importorskip("fcntl", reason="fd inheritance and fork: POSIX (Windows has neither)")

CYCLES = int(os.environ.get("PORTAIO_LEAK_CYCLES", "10000"))


def open_fds() -> set[int]:
    """The fds open now (without the one ``listdir`` used to read the list)."""
    out = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            fcntl.fcntl(int(name), fcntl.F_GETFD)
        except OSError:
            continue
        out.add(int(name))
    return out


def exercise(p: portaio.Poller, a: socket.socket, b: socket.socket, i: int) -> None:
    """One short life of a poller: registrations, timers, a signal, a wake-up, polls."""
    p.register(a, READABLE | (ONESHOT if i % 2 else 0), i)
    p.register(b, WRITABLE)
    timer = p.add_timer(0.0 if i % 3 == 0 else 10.0, interval=None if i % 2 else 5.0, data="t")
    if i % 5 == 0:
        p.add_signal(signal.SIGUSR2, "sig")
    p.wake()
    if i % 7 == 0:
        timer.cancel()
    events = p.poll(0)
    assert any(e.fd == b.fileno() for e in events)
    if i % 4 == 0:
        p.modify(b, READABLE | WRITABLE, "m")
        p.unregister(a)


def test_poller_lifecycles_leak_no_fd(backend: str) -> None:
    a, b = socket.socketpair()
    try:
        gc.collect()
        before = open_fds()
        for i in range(CYCLES):
            if i % 10 == 9:
                # Dropped without close(): the finaliser must release everything.
                exercise(portaio.Poller(backend), a, b, i)
                continue
            with portaio.Poller(backend) as p:
                exercise(p, a, b, i)
            if i % 1000 == 0:
                gc.collect()  # pollers dropped without close() may sit in reference cycles
                assert len(open_fds()) <= len(before) + 8, f"fds grow after {i} cycles"
        gc.collect()
        assert open_fds() == before
    finally:
        a.close()
        b.close()


def test_failed_opens_and_registrations_leak_no_fd(backend: str) -> None:
    gc.collect()
    before = open_fds()
    r, w = os.pipe()
    closed = os.dup2(r, 900)  # far above the numbers the pollers take next
    for fd in (r, w, closed):
        os.close(fd)
    for _ in range(500):
        with portaio.Poller(backend) as p, pytest.raises(OSError):
            p.register(closed, READABLE)
    assert open_fds() == before


def _library_fds(backend: str, keep: list[Any]) -> set[int]:
    """Make pollers with everything they can own; return the fds portaio made."""
    a, b = socket.socketpair()
    keep += [a, b]
    before = open_fds()
    p = portaio.Poller(backend)
    keep.append(p)
    p.register(a, READABLE)
    keep.append(p.add_timer(100.0))
    keep.append(p.add_timer(0.001, interval=0.001))
    keep.append(p.add_signal(signal.SIGUSR2))
    p.wake()
    p.poll(0)
    return open_fds() - before


@pytest.mark.parametrize("child_sees", ["fcntl", "subprocess"])
def test_every_library_fd_is_close_on_exec(backend: str, child_sees: str) -> None:
    keep: list[Any] = []
    try:
        made = _library_fds(backend, keep)
        if child_sees == "fcntl":
            for fd in made:
                assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC, (
                    f"{backend}: fd {fd} lacks FD_CLOEXEC"
                )
            return
        listing = subprocess.run(
            [sys.executable, "-c", "import os; print(sorted(map(int, os.listdir('/proc/self/fd'))))"],
            close_fds=False,  # inherit every fd that is not close-on-exec
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        inherited = set(eval(listing))  # a list of ints printed by the child
        assert not made & inherited, f"{backend}: the child inherited portaio's fds {made & inherited}"
    finally:
        for item in reversed(keep):
            if hasattr(item, "remove"):
                item.remove()
            elif hasattr(item, "cancel"):
                item.cancel()
            elif hasattr(item, "close"):
                item.close()


def test_signal_disposition_restored_after_many_cycles(backend: str) -> None:
    handler_before = signal.getsignal(signal.SIGUSR2)
    for _ in range(200):
        with portaio.Poller(backend) as p:
            p.add_signal(signal.SIGUSR2)
    assert signal.getsignal(signal.SIGUSR2) is handler_before
    if hasattr(signal, "pthread_sigmask"):
        assert signal.SIGUSR2 not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_select_without_a_free_fd_below_fd_setsize_refuses_and_leaks_nothing() -> None:
    reason = portaio.unavailable_reasons().get("select")
    if reason is not None:
        pytest.skip(f"select backend unavailable here: {reason}")
    from portaio.backends.select import FD_SETSIZE

    gc.collect()
    src = os.open(os.devnull, os.O_RDONLY)
    before = open_fds()
    fillers = [os.dup2(src, fd) for fd in range(FD_SETSIZE) if fd not in before]
    try:
        with pytest.raises(OSError, match=r"portaio\[select\]: no fd below FD_SETSIZE") as info:
            portaio.Poller("select")
        assert info.value.errno == errno.EMFILE
        assert open_fds() == before | set(fillers)
    finally:
        for fd in fillers:
            os.close(fd)
        os.close(src)


_DROPPED_WATCH = """
import gc, os, signal, sys
import portaio
def fds():
    return len(os.listdir("/proc/self/fd"))
gc.collect()
before, handler = fds(), signal.getsignal(signal.SIGUSR2)
for _ in range(5):
    p = portaio.Poller(sys.argv[1])
    p.add_signal(signal.SIGUSR2)
    p.poll(0)
    del p
gc.collect()
print(fds() - before, signal.getsignal(signal.SIGUSR2) is handler)
"""


def test_poller_with_a_signal_watch_dropped_without_close_is_released(backend: str, tmp_path: Path) -> None:
    # In a child process: the leaked watches must not outlive this test.  The
    # child imports the portaio under test (not a source tree in its cwd).
    out = subprocess.run(
        [sys.executable, "-c", _DROPPED_WATCH, backend],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(portaio.__file__))},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    assert out == ["0", "True"], f"{out[0]} fds left open; handler restored: {out[1]}"
