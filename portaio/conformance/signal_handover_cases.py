"""Conformance: a poller watching signals closed outside the main thread (DESIGN item 12).

Only the main thread may put a signal's handler, Python's wakeup fd and the
main thread's mask back, so such a close stops the watches at once and hands
the restoration to the main thread (docs/timers.rst, "Signals"): promptly on
CPython 3.10 and later (``_thread.interrupt_main``), at the next portaio call
in the main thread on 3.9 and PyPy.  A delivery arriving in between is
raised again for the restored handler.

The signals are sent with ``signal.pthread_kill`` to the main thread, never
SIGALRM (pytest-timeout's).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable

import pytest

import portaio
from portaio.conformance._child import in_child
from portaio.conformance.guard import compare, process_state
from portaio.conformance.signalling import counting_handlers

if sys.platform == "win32":  # pragma: no cover
    pytest.skip("POSIX signals (SIGUSR1/2, masks): Windows has none of them", allow_module_level=True)

USR1 = signal.SIGUSR1
USR2 = signal.SIGUSR2
_PROMPT = sys.implementation.name == "cpython" and sys.version_info >= (3, 10)
"""Where the main thread restores on its own, before any further portaio call."""


def _in_thread(action: Callable[[], None], delay: float = 0.0) -> None:
    """Run *action* in a new thread (after *delay* s), wait for it, and fail with what it raised there."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            threading.Event().wait(delay)
            action()
        except BaseException as exc:  # handed to the main thread's assertion
            errors.append(exc)

    thread = threading.Thread(target=run, name="portaio-close-elsewhere")
    thread.start()
    thread.join(10.0)
    assert not thread.is_alive(), "the closing thread did not finish"
    assert errors == [], f"closing in another thread raised {errors!r}"


def _main_thread_catch_up(backend: str) -> None:
    """A portaio call in the main thread: where nothing ran the hand-over yet (3.9, PyPy), it does."""
    portaio.Poller(backend).close()


def _portaio_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "portaio" in str(w.message)]


def test_close_in_another_thread_restores_everything_in_the_main_thread(backend: str) -> None:
    with counting_handlers() as calls:
        handler = signal.getsignal(USR1)
        before = process_state()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            poller = portaio.Poller(backend)
            # USR2 first: the restoration of the later watches must not
            # depend on the one signal the main thread may be nudged with.
            two = poller.add_signal(USR2, data=2)
            one = poller.add_signal(USR1, data=1)
            _in_thread(poller.close)
            assert poller.closed and not one.active and not two.active
            if _PROMPT:
                # interrupt_main(): no further portaio call is needed.
                problems = compare(before, process_state())
                assert problems == {}, f"not restored before the next portaio call: {problems}"
            _main_thread_catch_up(backend)
            assert compare(before, process_state()) == {}
            assert signal.getsignal(USR1) is handler and signal.getsignal(USR2) is handler
        assert _portaio_warnings(caught) == []
        assert calls == []  # the hand-over itself delivers nothing to the handlers
        main = threading.main_thread().ident
        assert main is not None
        signal.pthread_kill(main, USR1)
        signal.pthread_kill(main, USR2)
        assert sorted(calls) == [USR1, USR2]  # the restored handlers run again


def test_a_delivery_during_the_hand_over_reaches_the_restored_handler(backend: str) -> None:
    main = threading.main_thread().ident
    assert main is not None
    with counting_handlers() as calls:
        before = process_state()
        poller = portaio.Poller(backend)
        poller.add_signal(USR2)
        poller.add_signal(USR1)

        def close_then_signal() -> None:
            poller.close()
            # Sent after close() returned, before the main thread restored
            # anything: for the restored handler, exactly once.
            signal.pthread_kill(main, USR1)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # The delay lets the main thread block in join() first, so neither
            # the restoration nor the signal is taken before both happened.
            _in_thread(close_then_signal, delay=0.05)
            _main_thread_catch_up(backend)
        assert _portaio_warnings(caught) == []
        assert calls == [USR1]
        assert compare(before, process_state()) == {}


_AFTER_FORK = (
    " (it was created before fork(); the child must create a new Poller,"
    " the parent's keeps working in the parent)"
)


def test_a_forked_child_starts_clean_and_hands_over_on_its_own(backend: str) -> None:
    # The child of a process watching signals starts with the handlers, mask
    # and wakeup fd from before the watches, and its own pollers' signals
    # are handed over and restored there like in any process.
    with counting_handlers() as calls:
        before = process_state()
        poller = portaio.Poller(backend)
        try:
            watches = [poller.add_signal(USR2), poller.add_signal(USR1)]

            def child() -> str:
                kinds = ("handlers", "mask", "wakeup_fd")  # the child has other fds, and no itimer
                at_start = {k: v for k, v in compare(before, process_state()).items() if k in kinds}
                if at_start:
                    return f"at start: {at_start}"
                if any(watch.active for watch in watches):
                    return "a watch inherited from the parent is active in the child"
                try:
                    poller.poll(0)
                except portaio.PollerClosed as exc:
                    refused = str(exc)
                else:
                    refused = "no error"
                if refused != f"portaio[{backend}]: poll() on a closed poller{_AFTER_FORK}":
                    return f"poll() on the inherited poller: {refused}"
                own = portaio.Poller(backend)
                own.add_signal(USR1)
                try:
                    _in_thread(own.close)
                except AssertionError as exc:
                    return str(exc)
                _main_thread_catch_up(backend)
                after = {k: v for k, v in compare(before, process_state()).items() if k in kinds}
                if after:
                    return f"after the hand-over: {after}"
                os.kill(os.getpid(), USR1)
                return f"calls {[int(n) for n in calls]}"

            assert in_child(child) == f"calls {[int(USR1)]}"
            assert calls == []  # the parent's watches took nothing meanwhile
        finally:
            poller.close()
        assert compare(before, process_state()) == {}
