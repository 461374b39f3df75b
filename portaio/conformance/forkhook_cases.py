"""Conformance: what a forked child is told, and pollers the child makes (DESIGN item 13).

portaio retires the pollers a child inherits from an ``os.register_at_fork``
hook of its own, registered once per process.  Every use of a retired poller
says, in full, what to do instead.  A poller made in the child is never
retired, not even one made by an application's own at-fork hook (a library
that re-creates its event loop there): portaio's hook, registered before,
has run already.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

import pytest

import portaio
from portaio.conformance._child import in_child
from portaio.conformance.plugin import Closer

if sys.platform == "win32":  # pragma: no cover
    pytest.skip("fork() and SIGUSR2 are POSIX: Windows has neither", allow_module_level=True)

_WHY = (
    " (it was created before fork(); the child must create a new Poller,"
    " the parent's keeps working in the parent)"
)


def test_a_retired_poller_says_why_in_full(poller: portaio.Poller, fds: Closer) -> None:
    r, w = fds.pipe()
    poller.register(r, portaio.READABLE, "r")
    tag = f"portaio[{poller.backend}]"

    def child() -> str:
        calls: list[tuple[Callable[[], object], str]] = [
            (lambda: poller.poll(0), f"{tag}: poll() on a closed poller{_WHY}"),
            (lambda: poller.register(w, portaio.WRITABLE), f"{tag}: the poller is closed (fd {w}){_WHY}"),
            (lambda: poller.modify(r, portaio.WRITABLE), f"{tag}: the poller is closed (fd {r}){_WHY}"),
            (lambda: poller.unregister(r), f"{tag}: the poller is closed (fd {r}){_WHY}"),
            (poller.wake, f"{tag}: wake() on a closed poller{_WHY}"),
        ]
        wrong = []
        for call, message in calls:
            try:
                call()
            except portaio.PollerClosed as err:
                if str(err) != message:
                    wrong.append(f"{str(err)!r} != {message!r}")
            else:
                wrong.append(f"no error where {message!r}")
        return "\n".join(wrong) or "ok"

    assert in_child(child) == "ok"
    assert not poller.closed


_made: list[portaio.Poller] = []
_armed: list[str] = []  # the backend the hook below makes a poller of, while a test runs


def _app_hook_in_child() -> None:
    # An application's own at-fork hook: inert unless the test below arms it.
    if _armed:
        _made.append(portaio.Poller(_armed[0]))


_hooked: list[bool] = []


def test_a_poller_made_in_an_app_at_fork_hook_is_not_retired(poller: portaio.Poller, fds: Closer) -> None:
    if not hasattr(os, "register_at_fork"):  # pragma: no cover
        pytest.skip("no os.register_at_fork() in this Python")
    # ``poller`` exists: portaio's hook is registered, before the one below.
    if not _hooked:
        os.register_at_fork(after_in_child=_app_hook_in_child)  # once per process: hooks stay
        _hooked.append(True)
    later = portaio.Poller(poller.backend)  # made after the app's hook was registered
    try:

        def child() -> str:
            if len(_made) != 1:
                return f"the app's hook made {len(_made)} pollers"
            fresh = _made[0]
            if fresh.closed:
                return "the poller made by the app's at-fork hook was retired"
            r, w = os.pipe()
            fresh.register(r, portaio.READABLE, "child")
            os.write(w, b"x")
            events = fresh.poll(1)
            fresh.close()
            return f"{[e.data for e in events]} {later.closed} {poller.closed}"

        _armed.append(poller.backend)
        try:
            assert in_child(child) == "['child'] True True"
        finally:
            _armed.clear()
    finally:
        later.close()
    assert _made == [] and not poller.closed


def test_an_inherited_signal_watch_is_removed_in_the_child(poller: portaio.Poller) -> None:
    watch = poller.add_signal(signal.SIGUSR2, "parent's")
    try:
        # In the child the watch belongs to a retired poller: inactive, and
        # removing it is the quiet no-op of a removed watch.
        assert in_child(lambda: f"{watch.active} {watch.remove()} {watch!r}") == (
            'False False <portaio.SignalWatch SIGUSR2 removed data="parent\'s">'
        )
        assert watch.active
    finally:
        watch.remove()
