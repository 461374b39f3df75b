"""The capabilities each backend must claim, pinned per backend and OS family.

This table is part of the contract: a backend that stops claiming a feature
(epoll saying ``edge=False``, say) fails :mod:`capability_cases` loudly, and
every case that branches on a capability asks *this* table, not the
backend's own claim, so a backend that drops a feature cannot pass by
raising :class:`portaio.Unsupported` where the contract says it must work.

OS facts behind the rows:

* Linux: epoll has EPOLLET, EPOLLONESHOT, EPOLLEXCLUSIVE (4.5+), EPOLLPRI and
  EPOLLRDHUP (2.6.17+); ``select.POLLRDHUP`` exists, so poll (and select,
  which classifies through poll) report RDHUP.  kqueue there is libkqueue,
  which has no ``EVFILT_EXCEPT``: no PRIORITY.
* macOS: ``EVFILT_EXCEPT`` with ``NOTE_OOB`` (PRIORITY), no ``POLLRDHUP``.
* FreeBSD: no ``EVFILT_EXCEPT`` (no PRIORITY on kqueue); ``POLLRDHUP`` since 13.0.
* Other BSDs are not pinned yet: their cases fall back to the backend's own
  claim and the pin case is skipped, saying so (add a row once a run there
  has been read).
"""

from __future__ import annotations

import dataclasses
import sys

import portaio

__all__ = ["PINNED", "os_family", "pinned_capabilities"]

_FD_SETSIZE = 1024  # glibc, macOS and FreeBSD; CPython is built with the default

_EPOLL = portaio.Capabilities(
    edge=True,
    oneshot=True,
    exclusive=True,
    priority=True,
    rdhup=True,
    hangup=True,
    o1_wait=True,
    timeout_resolution=1e-9,
    max_fd=None,
    native_timers="timerfd",
    native_signals="signalfd",
    native_wake="eventfd",
)
_KQUEUE = portaio.Capabilities(
    edge=True,
    oneshot=True,
    exclusive=False,
    priority=True,
    rdhup=True,
    hangup=True,
    o1_wait=True,
    timeout_resolution=1e-9,
    max_fd=None,
    native_timers="EVFILT_TIMER",
    native_signals="EVFILT_SIGNAL",
    native_wake="EVFILT_USER",
)
_POLL = portaio.Capabilities(
    edge=False,
    oneshot=True,
    exclusive=False,
    priority=True,
    rdhup=True,
    hangup=True,
    o1_wait=False,
    timeout_resolution=1e-3,
    max_fd=None,
    native_timers="poll timeout (ms)",
    native_signals="signal.set_wakeup_fd",
    native_wake="pipe",
)
_SELECT = dataclasses.replace(
    _POLL,
    timeout_resolution=1e-6,
    max_fd=_FD_SETSIZE - 1,
    native_timers="select timeout (µs)",
)

PINNED: dict[tuple[str, str], portaio.Capabilities] = {
    ("linux", "epoll"): _EPOLL,
    # libkqueue: no EVFILT_EXCEPT; its EVFILT_SIGNAL (a signalfd) misses a signal
    # taken by a thread not blocking it, so Python's wakeup fd is watched too.
    ("linux", "kqueue"): dataclasses.replace(
        _KQUEUE, priority=False, native_signals="EVFILT_SIGNAL and signal.set_wakeup_fd"
    ),
    ("linux", "poll"): _POLL,
    ("linux", "select"): _SELECT,
    # xnu's EVFILT_SIGNAL never sees a pthread_kill() (kern_sig.c), and beside
    # Python's handler would count a process-directed signal twice: the
    # wakeup fd alone counts signals on macOS.
    ("darwin", "kqueue"): dataclasses.replace(_KQUEUE, native_signals="signal.set_wakeup_fd"),
    ("darwin", "poll"): dataclasses.replace(_POLL, rdhup=False),
    ("darwin", "select"): dataclasses.replace(_SELECT, rdhup=False),
    ("freebsd", "kqueue"): dataclasses.replace(_KQUEUE, priority=False),
    ("freebsd", "poll"): _POLL,
    ("freebsd", "select"): _SELECT,
}
"""``(os family, backend) -> the capabilities the backend must claim there``."""


def os_family(platform: str = sys.platform) -> str:
    """``linux``, ``darwin``, ``freebsd``, ... (``sys.platform`` without its version)."""
    return platform.rstrip("0123456789")


def pinned_capabilities(backend: str) -> portaio.Capabilities | None:
    """The pinned row for *backend* on this OS, or None where none is pinned yet."""
    return PINNED.get((os_family(), backend))
