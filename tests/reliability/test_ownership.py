"""A poller never touches what it no longer owns (DESIGN item 18; issue 11 items 2, 3, 4).

* Item 2: a registration's token is never reused while it is live, even after
  the counter wraps (``TOKEN_MAX`` = 2**24 - 1 register/modify calls: about
  a minute of nonstop ONESHOT re-arming).  Simulating the wrap needs a test hook on the poller,
  ``poller._set_next_token_for_tests(token)``: "the next token drawn is
  *token*" (a no-op where a backend has no tokens).  It is private on
  purpose and exists for this test only.
* Item 3: ``wake()`` racing ``close()`` never writes into a file that reuses
  the wake-up fd's number.
* Item 4: a poller with a signal watch, dropped without ``close()`` and
  collected by the garbage collector in a worker thread, still restores the
  signal's handler and mask (in the main thread if it must) and leaves no
  wakeup fd pointing at a number it no longer owns; so does an explicit
  ``close()`` in a worker thread, and a delivery arriving before the main
  thread restored it reaches the restored disposition.

Races run in bounded loops and stop at the first misdelivery.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import portaio
from portaio import ONESHOT, READABLE
from portaio.backends._base import TOKEN_MAX
from portaio.conformance.plugin import Closer

WAKE_EVENT = portaio.Event(-1, portaio.WAKE, None, 1, 0)
TOKEN_HOOK = "_set_next_token_for_tests"


# ------------------------------------------------------------ 2. token wrap
def test_token_wrap_never_reuses_a_live_token(backend: str, fds: Closer) -> None:
    with portaio.Poller(backend) as poller:
        poller.add_timer(30.0, data="timer")  # a native timer fd takes an early token too
        a, a_peer = fds.socketpair()
        poller.register(a, READABLE, "a")
        set_next_token = getattr(poller, TOKEN_HOOK)
        set_next_token(TOKEN_MAX - 1)
        fresh: list[tuple[socket.socket, socket.socket]] = []
        for i in range(4):  # the third and later draws wrap past TOKEN_MAX
            c, d = fds.socketpair()
            poller.register(c, READABLE, f"c{i}")
            fresh.append((c, d))
        # Before the fix: the wrapped tokens were those of the wake-up fd and
        # of "a", so a wake() came back as another registration's fd event.
        assert poller.poll(0) == []
        poller.wake()
        assert poller.poll(0) == [WAKE_EVENT]
        a_peer.send(b"x")
        assert poller.poll(0) == [portaio.Event(a.fileno(), READABLE, "a")]
        for _, d in fresh:
            d.send(b"y")
        got = sorted((e.fd, e.events, e.data) for e in poller.poll(0))
        want = sorted(
            [(a.fileno(), int(READABLE), "a")]
            + [(c.fileno(), int(READABLE), f"c{i}") for i, (c, _) in enumerate(fresh)]
        )
        assert got == want
        # ONESHOT re-arming (a modify draws a token each time) across the wrap.
        c0 = fresh[0][0]
        set_next_token(TOKEN_MAX)
        for k in range(3):
            poller.modify(c0, READABLE | ONESHOT, f"m{k}")
            events = [e for e in poller.poll(0) if e.fd == c0.fileno()]
            assert events == [portaio.Event(c0.fileno(), READABLE, f"m{k}")]
            assert all(e.fd != c0.fileno() for e in poller.poll(0))


# ------------------------------------------------------ 3. wake() racing close()
def test_wake_racing_close_never_writes_into_a_reused_number(backend: str) -> None:
    iterations, budget = 300, 20.0
    state: dict[str, object] = {"poller": None, "rounds": 0, "error": None}
    stop = threading.Event()

    def waker() -> None:
        while not stop.is_set():
            poller = state["poller"]
            if isinstance(poller, portaio.Poller):
                try:
                    poller.wake()
                except portaio.PollerClosed:
                    pass  # allowed: wake() on a closed poller raises or does nothing
                except BaseException as exc:  # anything else is a failure
                    state["error"] = exc
                    return
            state["rounds"] = int(state["rounds"]) + 1  # type: ignore[call-overload]

    def let_waker_run() -> None:
        start = int(state["rounds"])  # type: ignore[call-overload]
        while int(state["rounds"]) < start + 2 and thread.is_alive():  # type: ignore[call-overload]
            time.sleep(0)

    thread = threading.Thread(target=waker, daemon=True)
    thread.start()
    stray: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + budget
    try:
        for i in range(iterations):
            if time.monotonic() > deadline:
                break
            poller = portaio.Poller(backend)
            state["poller"] = poller
            let_waker_run()
            poller.close()
            # The numbers the poller just released are the lowest free ones:
            # these pipes take them.  Any byte in them came from the poller.
            pipes = [os.pipe() for _ in range(2)]
            let_waker_run()
            state["poller"] = None
            for r, w in pipes:
                os.set_blocking(r, False)
                try:
                    stray.append((i, os.read(r, 64)))
                except BlockingIOError:
                    pass
                os.close(r)
                os.close(w)
            if stray:
                break
    finally:
        stop.set()
        thread.join(5)
    assert state["error"] is None, f"wake() raised {state['error']!r}"
    assert not stray, (
        f"{backend}: wake() wrote {stray[0][1]!r} into a pipe opened after close() (iteration {stray[0][0]})"
    )


# ------------------------------------- 4. finaliser in a non-main thread
_DROPPED_IN_A_THREAD = textwrap.dedent(
    """
    import gc, json, os, signal, sys, threading, time
    import portaio

    gc.disable()  # the worker thread's collection is the only one

    def drop():
        poller = portaio.Poller(sys.argv[1])
        poller.add_signal(signal.SIGTERM)

    drop()  # its internal cycles keep it alive until a collection
    worker = threading.Thread(target=gc.collect)
    worker.start()
    worker.join()
    # The restore is handed to the main thread: on CPython 3.10+ it runs
    # within a few bytecodes (interrupt_main); on 3.9 and PyPy at the next
    # portaio call there.
    nudged = sys.implementation.name == "cpython" and sys.version_info >= (3, 10)
    deadline = time.monotonic() + 1.0
    while signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL and time.monotonic() < deadline:
        if nudged:
            time.sleep(0.01)
        else:
            portaio.Poller(sys.argv[1]).close()
    report = {
        "handler": repr(signal.getsignal(signal.SIGTERM)),
        "blocked": signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, []),
    }
    # Pipes take the numbers the poller released; a signal with a Python
    # handler makes CPython write to its wakeup fd, if one is left set.
    pipes = [os.pipe() for _ in range(4)]
    signal.signal(signal.SIGUSR1, lambda *args: None)
    os.kill(os.getpid(), signal.SIGUSR1)
    stray = b""
    for r, w in pipes:
        os.set_blocking(r, False)
        try:
            stray += os.read(r, 64)
        except BlockingIOError:
            pass
    report["stray"] = stray.hex()
    report["wakeup_fd"] = signal.set_wakeup_fd(-1)
    print(json.dumps(report), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)  # the default action: the process ends here
    time.sleep(0.5)
    print("survived SIGTERM", flush=True)
    """
)


def test_signal_poller_collected_in_a_worker_thread_restores_everything(backend: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _DROPPED_IN_A_THREAD, backend],
        cwd=tmp_path,  # "-c" puts the working directory first: not the source tree
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = proc.stdout.splitlines()
    assert lines, f"child printed nothing; stderr: {proc.stderr[-2000:]}"
    report = json.loads(lines[0])
    assert report == {
        "handler": repr(signal.SIG_DFL),
        "blocked": False,
        "stray": "",
        "wakeup_fd": -1,
    }, proc.stderr[-2000:]
    assert proc.returncode == -signal.SIGTERM, f"SIGTERM did not end the child: {lines[1:]}"
    assert "Warning" not in proc.stderr, proc.stderr[-2000:]  # nothing left undone to warn about


_NUDGED = sys.implementation.name == "cpython" and sys.version_info >= (3, 10)


def test_close_in_a_worker_thread_restores_signals_in_the_main_thread(backend: str) -> None:
    signum = signal.SIGUSR2
    previous = signal.getsignal(signum)
    was_blocked = signum in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    wakeup_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup_fd)
    poller = portaio.Poller(backend)
    watch = poller.add_signal(signum, "usr2")
    errors: list[BaseException] = []

    def close() -> None:
        try:
            poller.close()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=close)
    thread.start()
    thread.join()
    assert errors == [] and poller.closed and not watch.active
    # Handed to the main thread: on CPython 3.10+ its handler runs within a
    # few bytecodes; on 3.9 and PyPy at the next portaio call here.
    deadline = time.monotonic() + 5.0
    while signal.getsignal(signum) is not previous and time.monotonic() < deadline:
        if _NUDGED:
            time.sleep(0.001)
        else:
            portaio.Poller(backend).close()
    assert signal.getsignal(signum) is previous
    assert (signum in signal.pthread_sigmask(signal.SIG_BLOCK, [])) is was_blocked
    assert signal.set_wakeup_fd(wakeup_fd) == wakeup_fd


_DELIVERED_BEFORE_THE_RESTORE = textwrap.dedent(
    """
    import _thread, gc, os, signal, sys, threading, time

    del _thread.interrupt_main  # as on Python 3.9 and PyPy: no nudge
    import portaio

    gc.disable()

    def drop():
        poller = portaio.Poller(sys.argv[1])
        poller.add_signal(signal.SIGTERM)

    drop()
    worker = threading.Thread(target=gc.collect)
    worker.start()
    worker.join()
    # The restore waits for the main thread; a SIGTERM now is for the
    # restored default action, not for the poller gone: it ends the process,
    # at once where SIGTERM is not blocked, else at the next portaio call.
    print("sending", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)
    portaio.Poller(sys.argv[1]).close()
    time.sleep(0.5)
    print("survived SIGTERM", flush=True)
    """
)


def test_signal_delivered_before_the_handed_over_restore_reaches_the_restored_action(
    backend: str, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _DELIVERED_BEFORE_THE_RESTORE, backend],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.splitlines() == ["sending"], proc.stderr[-2000:]
    assert proc.returncode == -signal.SIGTERM, proc.stderr[-2000:]
