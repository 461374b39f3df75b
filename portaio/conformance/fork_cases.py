"""Conformance: pollers across fork() (DESIGN item 13).

In the child, a poller inherited from the parent is closed (its kernel objects
are shared with the parent: using them would steal the parent's events); every
use raises :class:`~portaio.PollerClosed` saying to create a new poller, and a
new poller works.  The parent is not disturbed.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import portaio
from portaio.conformance._child import in_child
from portaio.conformance.plugin import Closer


def test_inherited_poller_is_closed_in_the_child(poller: portaio.Poller, fds: Closer) -> None:
    r, w = fds.pipe()
    poller.register(r, portaio.READABLE, "r")

    def child() -> str:
        results = []
        calls: list[tuple[str, Callable[[], object]]] = [
            ("poll", lambda: poller.poll(0)),
            ("register", lambda: poller.register(w, portaio.WRITABLE)),
            ("unregister", lambda: poller.unregister(r)),
            ("add_timer", lambda: poller.add_timer(0)),
            ("wake", poller.wake),
        ]
        for name, call in calls:
            try:
                call()
            except portaio.PollerClosed as err:
                results.append(f"{name}:{'fork' in str(err) and 'new Poller' in str(err)}")
            else:
                results.append(f"{name}:no error")
        results.append(f"closed:{poller.closed}")
        poller.close()  # harmless
        return " ".join(results)

    assert in_child(child) == "poll:True register:True unregister:True add_timer:True wake:True closed:True"
    os.write(w, b"x")
    assert poller.poll(1) == [portaio.Event(r, portaio.READABLE, "r")]


def test_a_new_poller_works_in_the_child(backend: str, fds: Closer) -> None:
    def child() -> str:
        r, w = os.pipe()
        with portaio.Poller(backend) as fresh:
            fresh.register(r, portaio.READABLE, "child")
            os.write(w, b"x")
            events = fresh.poll(1)
            fresh.unregister(r)
            fresh.add_timer(0.0, data="t")
            timers = fresh.poll(1)
            fresh.wake()
            wakes = fresh.poll(1)
        return f"{[e.data for e in events]} {[e.data for e in timers]} {[e.events for e in wakes]}"

    assert in_child(child) == f"['child'] ['t'] [{int(portaio.WAKE)}]"


def test_the_child_does_not_take_the_parents_events(poller: portaio.Poller, fds: Closer) -> None:
    r, w = fds.pipe()
    mode = portaio.ONESHOT
    poller.register(r, portaio.READABLE | mode, "once")
    timer = poller.add_timer(0.02, data="parent timer")
    os.write(w, b"x")

    def child() -> str:
        try:
            poller.poll(0)
        except portaio.PollerClosed:
            pass
        # Whatever the child does with the fds it owns must not reach the parent.
        with portaio.Poller(poller.backend) as fresh:
            fresh.add_timer(0.0)
            fresh.poll(0)
        return "done"

    assert in_child(child) == "done"
    events = poller.poll(1)
    if len(events) < 2:  # the timer may fall due after the fd was reported
        events += poller.poll(1)
    assert sorted(events, key=repr) == sorted(
        [portaio.Event(r, portaio.READABLE, "once"), portaio.Event(-1, portaio.TIMER, "parent timer", 1, 0)],
        key=repr,
    )
    assert not timer.active
    assert poller.poll(0) == []


def test_pollers_closed_in_the_parent_stay_closed(backend: str) -> None:
    poller = portaio.Poller(backend)
    poller.close()
    assert in_child(lambda: str(poller.closed)) == "True"
