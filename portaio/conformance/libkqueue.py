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
    # The cases below were triaged against the kernels' sources (docs/reliability.rst,
    # "Known limits"); the kqueue backend's part of them was fixed, what is left is
    # libkqueue's.
    "test_poller_out_of_fds_is_emfile_naming_the_backend_and_leaks_nothing": (
        "a libkqueue kqueue is 4 fds (its epoll fd, the close-detect pipe, EVFILT_SIGNAL's eventfd),"
        " plus 3 (its signal dispatcher's socketpair and signalfd) while no other kqueue is open and"
        " an eventfd per EVFILT_USER knote, where a native kqueue is one fd: Poller() needs 8 free"
        " fds, more than the case offers; and when the EVFILT_USER eventfd is the one refused,"
        " libkqueue says EBADF, not EMFILE (linux_evfilt_user_knote_create in src/linux/user.c"
        " calls close(-1) after eventfd() fails).  Up to 16 fds of room: EMFILE at every room"
        " below 8 but that one, nothing leaked"
    ),
    "test_a_poller_that_runs_out_of_fds_leaves_none_open": (
        "a libkqueue kqueue is 4 fds (its epoll fd, the close-detect pipe, EVFILT_SIGNAL's eventfd),"
        " plus 3 (its signal dispatcher's socketpair and signalfd) while no other kqueue is open and"
        " an eventfd per EVFILT_USER knote, where a native kqueue is one fd: Poller() needs more"
        " free numbers than the case offers, and the EVFILT_USER eventfd's EMFILE comes back as"
        " EBADF (close(-1) in linux_evfilt_user_knote_create, src/linux/user.c)"
    ),
    "test_poller_made_on_fd_zero_works_and_releases_it": (
        "libkqueue's linux_kqueue_free (src/linux/platform.c) closes a kqueue's internal epoll fd"
        " only if it is > 0: the epoll fd made at number 0 stays open after close() (a native"
        " kqueue is the one fd kqueue() returned, closed by close())"
    ),
    "test_stale_registration_never_reaches_the_pollers_own_timer_fd": (
        "libkqueue keys knotes by fd number and keeps them after the fd is closed, and its"
        " EVFILT_TIMER is a timerfd of its own that took the number: the modify of the stale"
        " registration deletes and re-adds the closed pipe's knote on libkqueue's timerfd instead"
        " of failing (a native kernel dropped the knote at close, knote_fdclose, and EVFILT_TIMER"
        " has no fd: the modify is EBADF, FreeBSD kqueue_register's fget)"
    ),
    "test_stale_registration_never_reaches_the_pollers_own_signal_fd": (
        "libkqueue keys knotes by fd number and keeps them after the fd is closed: once a signal"
        " watch's wakeup-fd pipe or socket takes the closed pipe's number, adding it is a modify"
        " of the stale knote, which libkqueue refuses (EAGAIN or EBADF, depending on the file), so"
        " add_signal() fails; where the wakeup fd was made fresh the case passes (a native kernel"
        " dropped the knote at close, knote_fdclose)"
    ),
    "test_unregister_of_a_closed_fd_whose_number_names_a_regular_file_is_quiet": (
        "libkqueue keeps the closed pipe's knote under its number, so EV_DELETE reaches it and"
        " its epoll refuses the regular file now under that number (EPERM); a native kernel"
        " dropped the knote at close (knote_fdclose) and says ENOENT for a number without one"
        " (FreeBSD kqueue_register, xnu kevent_register), which unregister takes quietly"
    ),
    "test_modify_of_a_closed_number_reused_by_a_new_file_is_ebadf[pipe_to_file]": (
        "libkqueue keeps the closed pipe's knote under its number, so the unregister that follows"
        " the refused modify reaches it with EV_DELETE, and its epoll refuses the regular file now"
        " under that number (EPERM); a native kernel dropped the knote at close (knote_fdclose) and"
        " says ENOENT for a number without one, which unregister takes quietly (the modify itself"
        " is refused before kqueue is asked, as on every backend)"
    ),
    "test_kernel_turn_does_not_block_while_a_source_holds_a_report[signal-plain]": (
        "libkqueue's EVFILT_SIGNAL is asynchronous: a dispatcher thread reads a process-wide"
        " signalfd and then raises each kqueue's eventfd (sig_platform_wait_dispatch in"
        " src/common/evfilt_signalfd.c), so a signal the thread sent itself is often not there for"
        " a poll(0) right after (191 of 200 here; it comes ~0.3 ms later); a native kernel"
        " activates the knote inside kill() (FreeBSD tdsendsignal, OpenBSD ptsignal:"
        " KNOTE(..., NOTE_SIGNAL | sig) in sys/kern/kern_sig.c)"
    ),
    "test_one_batch_lists_timers_signals_wake_files_then_fds": (
        "libkqueue's EVFILT_SIGNAL is asynchronous: a dispatcher thread reads a process-wide"
        " signalfd and then raises each kqueue's eventfd (sig_platform_wait_dispatch in"
        " src/common/evfilt_signalfd.c), so the signal sent before the batch may reach the kqueue"
        " only after the poll that lists it; a native kernel activates the knote inside kill()"
        " (FreeBSD tdsendsignal, OpenBSD ptsignal: KNOTE(..., NOTE_SIGNAL | sig) in"
        " sys/kern/kern_sig.c)"
    ),
    "test_removing_one_watch_restores_that_signal_only": (
        "libkqueue's EVFILT_SIGNAL reads a signalfd, which sees only blocked signals: it blocks"
        " each watched signal in the adding thread (sig_platform_add in src/common/evfilt_signalfd.c),"
        " so the mask differs while watched (portaio unblocks it when the last watch goes:"
        " signal_cases' mask cases); a native EVFILT_SIGNAL leaves the mask alone (FreeBSD"
        " filt_sigattach in sys/kern/kern_sig.c only links the knote to the process)"
    ),
    "test_a_signal_several_pollers_watch_is_restored_by_the_last": (
        "libkqueue's EVFILT_SIGNAL reads a signalfd, which sees only blocked signals: it blocks"
        " each watched signal in the adding thread (sig_platform_add in src/common/evfilt_signalfd.c),"
        " so the mask differs while watched (portaio unblocks it when the last watch goes:"
        " signal_cases' mask cases); a native EVFILT_SIGNAL leaves the mask alone (FreeBSD"
        " filt_sigattach in sys/kern/kern_sig.c only links the knote to the process)"
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
