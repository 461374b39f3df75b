"""Signal state that only the main thread may restore, handed over by the others.

Python installs signal handlers and its wakeup fd from the main thread only
(``ValueError`` elsewhere), and ``pthread_sigmask`` changes the mask of the
calling thread only.  A poller watching signals may still be closed in
another thread: explicitly, or by its finaliser when the garbage collector
happens to run there.  Such a close releases the poller's own fds at once
and hands the signal-wide restoration (handlers, masks, the shared sources
and Python's wakeup fd) to the main thread as a *job* queued here.  Until a
job runs, the shared sources it releases stay open: Python's C-level
handler keeps writing into a pipe portaio still owns, never into a number
that another file may have taken.

A job runs at the next of these in the main thread:

* portaio's Python-level handler of a watched signal.  On CPython 3.10 and
  later the handing thread calls ``_thread.interrupt_main(signum)`` for a
  signal whose handler is portaio's and that no poller watches any more,
  which makes the main thread run that handler as soon as it executes
  Python code (a main thread blocked in a system call runs it on return);
* the next portaio call there that may touch signals: ``Poller()``,
  ``add_signal()``, ``SignalWatch.remove()``, ``close()``, or a poll that
  drains a signal source.

On Python 3.9 and PyPy (no ``interrupt_main(signum)``) only the second
applies.  A delivery of a handed-over signal that arrives before its job
runs belongs to the restored disposition: the job raises it again.
"""

from __future__ import annotations

import _thread
import functools
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .backends._base import SignalMechanism

__all__ = ["hand_over", "hand_over_signals", "nudged", "run_pending"]

_lock = threading.Lock()
_jobs: list[Callable[[], None]] = []
nudged: set[int] = set()
"""Signals whose handler the main thread was asked to run (:func:`nudge`); the
handler stays portaio's until that run, which restores it."""
_interrupt_main: Callable[[int], None] | None = (
    getattr(_thread, "interrupt_main", None)
    if sys.implementation.name == "cpython" and sys.version_info >= (3, 10)
    else None
)
"""``interrupt_main(signum)``: CPython 3.10 and later (3.9 and PyPy take no signal number)."""


def hand_over(job: Callable[[], None]) -> None:
    """Queue *job* for the main thread (run at once if this is the main thread)."""
    with _lock:
        _jobs.append(job)
    run_pending()


def hand_over_signals(mechanism: SignalMechanism, signums: list[int]) -> None:
    """A poller closing outside the main thread hands over its signal *mechanism* and *signums*.

    The poller no longer counts among the watchers of *signums*
    (``_signals.drop_watcher``).  The job stops the mechanism's watches
    (restoring the mask, releasing the shared sources and Python's wakeup
    fd) and puts back each signal's handler unless a poller watches it again.
    """
    from . import _signals  # _signals imports this module

    def restore() -> None:
        # A delivery still pending now came after the poller closed: it is
        # for the restored disposition (a blocked signal that unwatch reads
        # from a signalfd would be lost), so it is raised again.
        pending = _pending_signals()
        try:
            for signum in signums:
                try:
                    mechanism.unwatch(signum)
                finally:
                    _signals.restore_if_unwatched(signum)
        finally:
            mechanism.close()
        raise_unwatched(pending & set(signums))

    hand_over(restore)
    nudge(signums)


def nudge(signums: list[int]) -> None:
    """Make the main thread run the jobs soon, where Python can (CPython 3.10+).

    ``_thread.interrupt_main(signum)`` runs the handler of *signum* in the
    main thread as if delivered (and writes its number to the wakeup fd, a
    pipe of portaio's while the job waits).  Only a signal no poller watches
    any more is used, so no poller counts a false delivery; its handler stays
    portaio's until that run (see :data:`nudged`), so the restored
    disposition never sees the nudge.
    """
    if _interrupt_main is None:
        return  # the next portaio call in the main thread runs them
    from . import _signals

    for signum in signums:
        with _signals._lock:
            idle = (
                _signals._watchers.get(signum) == [] and signal.getsignal(signum) is _signals._python_handler
            )
            if idle:
                nudged.add(signum)
        if idle:
            try:
                _interrupt_main(signum)
            except Exception:  # pragma: no cover - documented to succeed
                # The run that was to restore it will not come: a job does.
                nudged.discard(signum)
                hand_over(functools.partial(_signals.restore_if_unwatched, signum))
            return


def raise_unwatched(signums: set[int]) -> None:
    """Main thread: deliver each of *signums* again to its restored disposition, unless watched now."""
    from . import _signals

    for signum in sorted(signums):
        if signum not in _signals._watchers:
            signal.raise_signal(signum)


def _pending_signals() -> set[int]:
    """The signals pending for the calling thread or the process (blocked ones), where known."""
    sigpending = getattr(signal, "sigpending", None)
    return set() if sigpending is None else {int(signum) for signum in sigpending()}


def pending() -> bool:
    """True while jobs wait for the main thread."""
    return bool(_jobs)


def run_pending() -> None:
    """Run the queued jobs, in order, if called from the main thread; elsewhere nothing."""
    if not _jobs or threading.current_thread() is not threading.main_thread():
        return
    with _lock:
        jobs = list(_jobs)
        _jobs.clear()
    for job in jobs:
        try:
            job()
        except Exception as exc:  # the others must run all the same
            warnings.warn(
                f"portaio: restoring signal state in the main thread failed: {exc!r}",
                RuntimeWarning,
                stacklevel=2,
            )


def forget_after_fork() -> None:
    """In a forked child: drop the parent's jobs (``_signals.forget_after_fork`` resets the rest)."""
    global _lock
    _lock = threading.Lock()
    _jobs.clear()
    nudged.clear()
