"""Where libkqueue (kqueue emulated on Linux) differs from a native kqueue.

When the kqueue backend was built against libkqueue
(:data:`portaio.backends.kqueue.LIBKQUEUE`), the cases named here are skipped
for the kqueue backend only, each with its reason.  A native kqueue (macOS, the
BSDs) runs every case, and no other backend is affected: nothing here loosens
what a case asserts.
"""

from __future__ import annotations

from typing import Any

import pytest

__all__ = ["DEVIATIONS", "KQUEUE_FD_NOT_POLLABLE", "deviation"]

DEVIATIONS: dict[str, str] = {
    "test_tcp_reset_is_error_and_hangup": (
        "libkqueue fills EV_EOF's fflags by getsockopt(SO_ERROR), which clears the socket's"
        " pending error, so the following recv() no longer raises ECONNRESET"
    ),
    "test_refused_connect_leaves_so_error": (
        "libkqueue fills EV_EOF's fflags by getsockopt(SO_ERROR), which clears the socket's"
        " pending error, so SO_ERROR reads 0 afterwards instead of ECONNREFUSED (the event itself,"
        " WRITABLE|ERROR|HANGUP, is right)"
    ),
    "test_poller_fds_are_close_on_exec": (
        "libkqueue keeps two process-wide fds of its own (its monitoring thread's epoll fd and"
        " eventfd) open once a first kqueue was made; they do not grow with more pollers"
    ),
    "test_child_creates_and_closes_many_pollers": (
        "libkqueue keeps two process-wide fds of its own (its monitoring thread's epoll fd and"
        " eventfd) open once a first kqueue was made, in a forked child too; they do not grow"
        " with more pollers"
    ),
    "test_poller_with_a_signal_watch_dropped_without_close_is_released": (
        "libkqueue keeps two process-wide fds of its own (its monitoring thread's epoll fd and"
        " eventfd) open once a first kqueue was made, so the fd count does not return to where"
        " it started"
    ),
    "test_closed_but_registered_fd_with_live_dup": (
        "libkqueue watches through epoll, which follows open file descriptions: a closed fd"
        " whose file a dup keeps open still reports events (a native kqueue drops its filters"
        " at close)"
    ),
    "test_reused_number_while_a_dup_holds_the_old_file": (
        "libkqueue keys its filters by fd number but watches through epoll, which follows open"
        " file descriptions: after dup2() puts a new file under a number whose old file a dup"
        " keeps open, the old file's readiness comes back under the number's new filter (a"
        " native kqueue drops the old filters when the number is closed)"
    ),
    "test_reused_number_of_an_always_ready_file": (
        "libkqueue keys its filters by fd number: once dup2() put a regular file under a watched"
        " socket's number, EV_DELETE of the socket's filters fails with EPERM (its epoll refuses the"
        " regular file), so register() raises; carrying on past that error crashed libkqueue's"
        " kevent() (a native kqueue dropped the socket's filters when the number was closed)"
    ),
    "test_edge_both_directions_more_ready_than_fit_lose_nothing": (
        "libkqueue's kevent() takes up to nevents (at most 512) events from epoll_wait but turns"
        " the one epoll event of an fd watched for reading and writing into two kevents; once the"
        " list is full it drops the epoll events left over, and with EV_CLEAR (EPOLLET) epoll never"
        " reports them again, so those fds' edges are lost (300 edge-triggered sockets ready at"
        " once: 256 reported, 44 never)"
    ),
    "test_selector_select_returns_every_ready_fd": (
        "libkqueue's kevent() returns at most 512 events per call (MAX_KEVENT, the size of its"
        " epoll_wait buffer in src/linux/platform.c), so 1,500 ready fds cannot come back from"
        " one select()"
    ),
    "test_cpython_selectors_case[test_above_fd_setsize]": (
        "libkqueue's kevent() returns at most 512 events per call (MAX_KEVENT, the size of its"
        " epoll_wait buffer in src/linux/platform.c), so CPython's case cannot get its 9,984"
        " ready fds from one select()"
    ),
}
"""Case name (the test function, or ``name[params]`` for one parametrisation) -> why."""

KQUEUE_FD_NOT_POLLABLE = "a libkqueue kqueue fd never polls readable, so no poller can watch one"
"""Why a case nesting a kqueue fd inside any backend's poller skips on libkqueue."""


def _is_libkqueue() -> bool:
    try:
        from ..backends import kqueue
    except ImportError:  # pragma: no cover
        return False
    return kqueue.UNAVAILABLE is None and kqueue.LIBKQUEUE


def deviation(item: Any) -> str | None:
    """The reason *item* (a collected test) cannot pass on libkqueue, or None."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or callspec.params.get("backend") != "kqueue":
        return None
    name: str = getattr(item, "originalname", item.name)
    ids = set(callspec.id.split("-"))
    for key, why in DEVIATIONS.items():
        base, _, params = key.partition("[")
        if base == name and set(filter(None, params.rstrip("]").split("-"))) <= ids:
            return why
    return None


def pytest_report_header(config: Any) -> list[str]:
    """Say when kqueue is libkqueue, whose known deviations are skipped."""
    if not _is_libkqueue():
        return []
    return [
        "  kqueue is libkqueue (emulated on epoll): its known deviations are skipped,"
        " for kqueue only (portaio.conformance.libkqueue)"
    ]


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Skip the known libkqueue deviations, on the kqueue backend only."""
    if not _is_libkqueue():
        return
    for item in items:
        reason = deviation(item)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"kqueue on libkqueue: {reason}"))
