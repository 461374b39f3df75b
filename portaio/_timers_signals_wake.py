"""Timers, signals and wake-ups, delivered through :meth:`Poller.poll <portaio.Poller.poll>`.

:class:`TimersSignalsWake` is the part of :class:`~portaio.Poller` that
bounds a wait by the earliest timer, merges expirations and signal
deliveries into the events, and holds the backend hooks for them.  Each hook
has a portable default built on the backend primitives (a pipe for wake-ups,
``poll()``'s own timeout for timers, :func:`signal.set_wakeup_fd` for
signals); a backend overrides it with its kernel's native mechanism (epoll:
timerfd, signalfd, eventfd; kqueue: EVFILT_TIMER, EVFILT_SIGNAL,
EVFILT_USER) and reports through :meth:`~TimersSignalsWake._timer_fired`,
:meth:`~TimersSignalsWake._wake_fired` and
:meth:`~TimersSignalsWake._signal_arrived`.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from . import _signals
from ._flags import READABLE, WAKE
from ._signals import PollerSignals, SignalSource, SignalWatch, WakeupFdSource
from ._timers import TimerQueue
from ._types import Capabilities, Event, Registration
from ._validate import TIMEOUT_MAX

__all__ = ["TimersSignalsWake"]

_monotonic = time.monotonic
_WAKE_EVENT = Event(-1, int(WAKE), None)


class TimersSignalsWake:
    """The part of :class:`~portaio.Poller` that runs timers, signals and wake-ups."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    _lock: threading.RLock
    _closed: bool
    _waiting: int
    _always_ready: dict[int, Registration]
    _timer_queue: TimerQueue | None
    _armed_deadline: float | None
    _native_timer: bool
    _signal_state: PollerSignals | None
    _signal_sources: dict[str, SignalSource]
    _wake_pending: bool
    _wake_fds: tuple[int, int]

    if TYPE_CHECKING:

        def _wait(self, timeout: float | None, max_events: int) -> list[Event] | None: ...
        def _close_backend(self) -> None: ...
        def _add_internal(
            self, fd: int, events: int, handler: Callable[[], Event | None]
        ) -> Registration: ...
        def _remove_internal(self, fd: int) -> None: ...
        def _changed(self) -> None: ...
        def _leave_wait(self) -> None: ...
        def _closed_while_waiting(self) -> None: ...
        def _ready_with_emulated(self, max_events: int) -> list[Event]: ...
        def _emulated_ready(self, max_events: int) -> list[Event]: ...

    def _poll_extras(self, timeout: float | None, max_events: int) -> list[Event]:
        """``poll()`` once timers or signals are in use: they bound the wait and join the events."""
        end = None if timeout is None else _monotonic() + timeout
        self._waiting += 1
        try:
            while True:
                out = self._collect_extras(max_events, files=False)
                if len(out) < max_events and self._always_ready:
                    # Always-ready fds and the kernel's events take turns, as in poll().
                    out.extend(self._ready_with_emulated(max_events - len(out)))
                elif out and len(out) < max_events:
                    out.extend(self._wait(0, max_events - len(out)) or ())
                if out:
                    return out
                now = _monotonic()
                wait = None if end is None else max(end - now, 0.0)
                queue = self._timer_queue
                if queue is not None:
                    deadline = queue.next_deadline()
                    # Unless the native timer is armed to it, the wait itself must end there.
                    if (
                        deadline is not None
                        and (deadline != self._armed_deadline or not self._native_timer)
                        and (wait is None or deadline - now < wait)
                    ):
                        wait = max(deadline - now, 0.0)
                if wait is not None and wait > TIMEOUT_MAX:
                    wait = TIMEOUT_MAX
                events = self._wait(wait, max_events)
                if events:
                    if len(events) < max_events:
                        events.extend(self._collect_extras(max_events - len(events)))
                    return events
                if self._closed:
                    self._closed_while_waiting()
                if end is not None and _monotonic() >= end:
                    return self._collect_extras(max_events)
        finally:
            self._leave_wait()

    def _collect_extras(self, limit: int, files: bool = True) -> list[Event]:
        # Timers and signals first: always-ready fds could fill every batch.
        out: list[Event] = []
        with self._lock:
            queue = self._timer_queue
            if queue is not None:
                if len(out) < limit:
                    queue.collect(_monotonic(), limit - len(out), out)
                self._sync_timer()
            state = self._signal_state
            if state is not None and len(out) < limit:
                state.collect(limit - len(out), out)
        if files and self._always_ready and len(out) < limit:
            out.extend(self._emulated_ready(limit - len(out)))
        return out

    def _timers_changed(self) -> None:
        """The earliest deadline moved earlier: re-arm the native timer, or wake a waiter."""
        with self._lock:
            self._sync_timer()
            queue = self._timer_queue
            armed = self._native_timer and queue is not None and queue.next_deadline() == self._armed_deadline
        if not armed and self._waiting:
            self._post_wake()

    def _sync_timer(self) -> None:
        # Arm the native timer to the earliest deadline, if any and still ahead.
        # A timer already due is not armed (firing in the past is a costly
        # syscall): poll() collects due timers before it waits.  An empty queue
        # leaves the native timer as it was: a stray expiry is harmless.
        queue = self._timer_queue
        deadline = None if queue is None else queue.next_deadline()
        if deadline is None or deadline == self._armed_deadline or deadline <= _monotonic():
            return
        self._native_timer = self._arm_timer(deadline)
        self._armed_deadline = deadline

    def _remove_signal(self, watch: SignalWatch) -> None:
        _signals.require_main_thread(self.name, "SignalWatch.remove()")
        with self._lock:
            if watch._poller is self:
                self._drop_signal(watch)

    def _drop_signal(self, watch: SignalWatch) -> None:
        signum = watch.signum
        watch._poller = None
        state = self._signal_state
        if state is not None:
            state.discard(signum)
        try:
            self._unwatch_signal(signum)
        finally:
            _signals.restore_handler(self, signum)

    def _close_extras(self) -> None:
        queue = self._timer_queue
        if queue is not None:
            queue.clear()
        state = self._signal_state
        if state is not None and state.watches:
            if threading.current_thread() is not threading.main_thread():
                warnings.warn(
                    f"portaio[{self.name}]: a poller watching signals was closed outside the main thread;"
                    " the main thread's signal handlers and mask may not be restored",
                    RuntimeWarning,
                    stacklevel=3,
                )
            for watch in list(state.watches.values()):
                self._drop_signal(watch)

    # ------------------------------------------------------- backend hooks
    def _arm_timer(self, deadline: float) -> bool:
        """Arm the native one-shot timer to fire at *deadline* (``time.monotonic()`` seconds).

        Called under ``self._lock`` when the earliest deadline changes and is
        still ahead, and after the backend reports that its timer fired (see
        :meth:`_timer_fired`).  It is never disarmed: a stray expiry after a
        cancel is harmless.  Return True if the backend's wait will return by
        itself at *deadline* (the native timer's fd or filter is part of the
        wait; on expiry the backend calls :meth:`_timer_fired` and reports
        nothing itself); ``poll()`` then stops shortening its timeout to that
        deadline.  Never fire early: round the deadline up.  The default has
        no native timer and returns False: ``poll()`` passes
        ``min(timeout, deadline - now)`` to :meth:`_wait`.
        """
        return False

    def _timer_fired(self) -> None:
        """Backends call this when their native timer fires (from the wait, no lock needed)."""
        self._armed_deadline = math.nan  # never equal: the next sync re-arms

    def _open_wake(self) -> None:
        """Create what :meth:`wake` uses; called once, right after :meth:`_open`.

        The default is a non-blocking pipe watched through :meth:`_add_internal`,
        its handler :meth:`_drain_wake_pipe`.  A backend with a native
        mechanism overrides this, :meth:`_post_wake` and :meth:`_close_wake`.
        """
        r, w = os.pipe()  # close-on-exec since Python 3.4
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self._wake_fds = (r, w)
        self._add_internal(r, READABLE, self._drain_wake_pipe)

    def _post_wake(self) -> None:
        """Make the current or next :meth:`_wait` return (one write; thread- and signal-safe).

        Used by :meth:`wake` (after setting ``_wake_pending``) and to get the
        attention of a waiting thread (a signal for this poller was drained
        by another one, a timer was added).  The backend's handler for the
        wake-up drains it and returns :meth:`_wake_fired`.
        """
        try:
            os.write(self._wake_fds[1], b"\0")
        except OSError:
            pass  # full: a wake-up is already pending

    def _wake_fired(self) -> Event | None:
        """The WAKE event if :meth:`wake` was called since the last one, else None.

        Backends call it from the handler of their wake-up, *after* draining it,
        so a wake() racing the drain is never lost.
        """
        if self._wake_pending:
            self._wake_pending = False
            return _WAKE_EVENT
        return None

    def _drain_wake_pipe(self) -> Event | None:
        try:
            while os.read(self._wake_fds[0], 4096):
                pass
        except OSError:
            pass
        return self._wake_fired()

    def _close_wake(self) -> None:
        """Release what :meth:`_open_wake` created (the poller is closing)."""
        for fd in getattr(self, "_wake_fds", ()):
            try:
                os.close(fd)
            except OSError:
                pass

    _signal_kinds: ClassVar[tuple[str, ...]] = ("wakeup-fd",)
    """The shared signal sources (``_signals.SignalSource``) the default signal hooks use."""

    def _new_signal_source(self, kind: str) -> SignalSource:
        """Create the process-wide signal source *kind* (first watch in the process only).

        Default: ``"wakeup-fd"``, :func:`signal.set_wakeup_fd` on a pipe
        (``WakeupFdSource``): Python's C-level handler writes each delivery
        there, in whichever thread the kernel picked.
        """
        if kind != "wakeup-fd":
            raise ValueError(f"portaio[{self.name}]: unknown signal source {kind!r}")
        return WakeupFdSource()

    def _watch_signal(self, signum: int) -> None:
        """Start receiving *signum* (main thread, under ``self._lock``; portaio's handler is installed).

        The default shares the process-wide sources named by
        :attr:`_signal_kinds` with every poller using them, and watches their
        fds internally; whichever poller drains a source hands the deliveries
        to every poller watching the signal.  A backend whose kernel tells
        each poller separately (kqueue's EVFILT_SIGNAL) overrides this and
        :meth:`_unwatch_signal`, and calls :meth:`_signal_arrived` for each
        delivery it sees.
        """
        sources = self._signal_sources
        if not sources:
            try:
                for kind in self._signal_kinds:
                    source = _signals.acquire_source(kind, functools.partial(self._new_signal_source, kind))
                    sources[kind] = source
                    limit = self.capabilities.max_fd
                    if limit is not None and source.fd > limit:
                        raise ValueError(
                            f"portaio[{self.name}]: the signal source's fd {source.fd} is above"
                            f" the backend's limit {limit}"
                        )
                    self._add_internal(
                        source.fd, READABLE, functools.partial(self._drain_signal_source, source)
                    )
            except BaseException:
                self._release_signal_sources()
                raise
            self._changed()
        started: list[SignalSource] = []
        try:
            for source in sources.values():
                source.add(signum)
                started.append(source)
        except BaseException:
            for source in started:
                source.remove(signum)
            raise

    def _unwatch_signal(self, signum: int) -> None:
        """Stop receiving *signum*; restore its mask (main thread, under ``self._lock``)."""
        for source in self._signal_sources.values():
            source.remove(signum)
        state = self._signal_state
        if state is None or not state.watches:
            self._release_signal_sources()

    def _release_signal_sources(self) -> None:
        sources = self._signal_sources
        for kind, source in list(sources.items()):
            del sources[kind]
            self._remove_internal(source.fd)
            _signals.release_source(kind)

    def _drain_signal_source(self, source: SignalSource) -> Event | None:
        for signum, count in source.drain().items():
            _signals.deliver(signum, count, self)
        return None

    def _signal_arrived(self, signum: int, count: int, wake: bool = False) -> None:
        """Queue *count* deliveries of *signum* for the next report (any thread, signal-safe).

        With *wake*, also make a waiting :meth:`poll` return to report them.
        """
        state = self._signal_state
        if state is None or self._closed:
            return
        state.arrivals.append((signum, count))
        if wake:
            self._post_wake()

    def _on_python_signal(self, signum: int) -> None:
        """portaio's Python-level handler ran for *signum* (main thread).

        The default ignores it: the same delivery also reached a source
        (Python's C handler wrote it to the wakeup fd, or the kernel counted
        it for kqueue's EVFILT_SIGNAL).  A backend whose sources can miss a
        delivery that reaches the handler counts it here.
        """

    def _close_after_fork(self) -> None:
        """In a forked child: close the poller's fds without touching what the parent shares.

        The default closes the wake-up fds and calls :meth:`_close_backend`
        (every fd a poller creates is this process's own copy, so closing it
        never disturbs the parent).  kqueue overrides it: its fd is not
        inherited at all.
        """
        try:
            self._close_wake()
        finally:
            self._close_backend()
