"""Timers and signal watches of a :class:`~portaio.Poller` (its methods, defined here).

``add_timer`` puts a deadline in the poller's :class:`~portaio._timers.TimerQueue`
and arms the backend's timer mechanism to the earliest one (or, where it has
none, makes a waiting poll bound its wait by it).  ``add_signal`` installs
portaio's handler and asks the signal mechanism to watch the signal;
deliveries come back through ``_signal_arrived``.  The functions are the
Poller's methods (assigned in its class body), kept here so each module
stays short.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from . import _main_thread, _poll_loop, _signals
from ._signals import PollerSignals, SignalWatch
from ._timers import Timer, TimerQueue, check_delay

if TYPE_CHECKING:
    from ._poller import Poller

__all__ = ["add_signal", "add_timer"]


def add_timer(self: Poller, delay: float, interval: float | None = None, data: Any = None) -> Timer:
    """Start a timer: first expiry *delay* seconds from now, then every *interval* if given.

    Expirations come from :meth:`poll` as ``Event(fd=-1, events=TIMER,
    data=data, times=n)``, *n* counting the expirations since the last
    report.  Deadlines follow the monotonic clock and are never reported
    early; a repeating timer's *k*-th deadline is ``start + delay + k *
    interval`` (no drift).  Safe from any thread.  Returns the
    :class:`~portaio.Timer` handle (``cancel()``, ``rearm()``).
    """
    delay = check_delay(delay, "delay", self.name)
    if interval is not None:
        interval = check_delay(interval, "interval", self.name, positive=True)
    with self._lock:
        self._check_open()
        queue = self._timer_queue
        if queue is None:
            queue = self._timer_queue = TimerQueue(self)
        timer, earliest = queue.add(delay, interval, data)
        self._sources = True
    if earliest:
        self._timers_changed()
    return timer


def add_signal(self: Poller, signum: int, data: Any = None) -> SignalWatch:
    """Report deliveries of signal *signum* from :meth:`poll`.

    Each report is ``Event(fd=-1, events=SIGNAL, data=data, times=n,
    signum=signum)``; deliveries arriving together coalesce into one event
    with their count.  While watched, the signal's Python handler does not
    run (portaio installs its own); :meth:`SignalWatch.remove` or
    :meth:`close` restores the previous handler and signal mask.  Call it
    from the main thread (``ValueError`` elsewhere, on every backend).
    One watch per signal per poller (:class:`~portaio.AlreadyRegistered`).
    """
    signum = _signals.check_signum(signum, self.name)
    _signals.require_main_thread(self.name, "add_signal()")
    with self._lock:
        self._check_open()
        state = self._signal_state
        if state is None:
            state = self._signal_state = PollerSignals()
        watch = SignalWatch(self, signum, data)
        state.add(watch, self.name)
        try:
            _signals.install_handler(self, signum)
            try:
                self._signals.watch(signum)
            except BaseException:
                _signals.restore_handler(self, signum)
                raise
        except BaseException:
            state.discard(signum)
            watch._poller = None
            raise
    return watch


def _timers_changed(self: Poller) -> None:
    """The earliest deadline moved earlier: re-arm the native timer, or wake a waiter."""
    with self._lock:
        self._sources = True
        self._sync_timer()
        queue = self._timer_queue
        armed = self._timer_native and queue is not None and queue.next_deadline() == self._armed_deadline
    if not armed:
        self._interrupt()


def _sync_timer(self: Poller) -> None:
    # Arm the native timer to the earliest deadline, if any and still ahead.
    # A timer already due is not armed (firing in the past is a costly
    # syscall): the poll loop collects due timers before it waits.  An
    # empty queue leaves the native timer as it was: a stray expiry is harmless.
    queue = self._timer_queue
    deadline = None if queue is None else queue.next_deadline()
    if deadline is None or deadline == self._armed_deadline or deadline <= _poll_loop.monotonic():
        return
    self._timer_native = self._timer.arm(deadline)
    self._armed_deadline = deadline


def _timer_fired(self: Poller) -> None:
    self._armed_deadline = math.nan  # never equal: the next sync re-arms
    self._sources = True


def _signal_arrived(self: Poller, signum: int, count: int, wake: bool = False) -> None:
    """Queue *count* deliveries of *signum* (any thread, signal-safe; no lock)."""
    state = self._signal_state
    if state is None or self._closed:
        return
    state.arrivals.append((signum, count))
    self._sources = True
    if wake:
        self._waker.post()


def _on_python_signal(self: Poller, signum: int) -> None:
    self._signals.on_python_signal(signum)


def _remove_signal(self: Poller, watch: SignalWatch) -> None:
    _signals.require_main_thread(self.name, "SignalWatch.remove()")
    _main_thread.run_pending()
    with self._lock:
        if watch._poller is self:
            self._drop_signal(watch)


def _drop_signal(self: Poller, watch: SignalWatch) -> None:
    signum = watch.signum
    watch._poller = None
    state = self._signal_state
    if state is not None:
        state.discard(signum)
    try:
        self._signals.unwatch(signum)
    finally:
        _signals.restore_handler(self, signum)
