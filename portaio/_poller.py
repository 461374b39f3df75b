"""The portable :class:`Poller`: validation and bookkeeping shared by every backend.

A backend subclasses :class:`Poller` and supplies five primitives (``_open``,
``_add``, ``_modify``, ``_remove``, ``_wait``, plus ``_close_backend``).
Timers, signals and wake-ups work on those alone; a backend with native
mechanisms overrides the hooks documented in the section "backend hooks"
below (``_arm_timer``, ``_open_wake``/``_post_wake``/``_close_wake``,
``_watch_signal``/``_unwatch_signal``, ``_on_python_signal``,
``_close_after_fork``) and reports through ``_timer_fired``, ``_wake_fired``
and ``_signal_arrived``.  Everything here is backend-free: it never names a
kernel mechanism.
"""

from __future__ import annotations

import errno
import functools
import math
import os
import stat
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

from . import _fork, _signals
from ._errors import AlreadyRegistered, NotRegistered, PollerClosed, Unsupported
from ._flags import (
    ALWAYS_REPORTED,
    EDGE,
    EXCLUSIVE,
    INTEREST_FLAGS,
    MODE_FLAGS,
    ONESHOT,
    PRIORITY,
    RDHUP,
    READABLE,
    WAKE,
    WRITABLE,
)
from ._signals import PollerSignals, SignalSource, SignalWatch, WakeupFdSource
from ._timers import Timer, TimerQueue, check_delay
from ._types import Capabilities, Event, FileLike, Registration

__all__ = ["DEFAULT_MAX_EVENTS", "TIMEOUT_MAX", "Poller"]

TIMEOUT_MAX = (2**31 - 1) / 1000.0
"""The largest finite timeout accepted, in seconds (about 24.8 days): the most
``poll(2)`` can express in one call, so every backend takes the same range."""

DEFAULT_MAX_EVENTS = 1024
"""How many events one :meth:`Poller.poll` returns at most unless told otherwise."""

_FD_MAX = 2**31 - 1
_VALID_INTEREST = INTEREST_FLAGS | ALWAYS_REPORTED | MODE_FLAGS
_monotonic = time.monotonic
_WAKE_EVENT = Event(-1, int(WAKE), None)


class Poller:
    """Readiness of many file descriptors, through the best mechanism of the OS.

    ``Poller()`` picks the best backend available (``PORTAIO_BACKEND`` in the
    environment overrides); ``Poller(backend="poll")`` picks one by name and
    raises :class:`~portaio.BackendUnavailable` where it cannot run.  The
    object returned is an instance of the backend's subclass of ``Poller``.
    """

    name: ClassVar[str] = "abstract"
    """The backend's name (``"epoll"``, ``"kqueue"``, ``"poll"``, ``"select"``)."""
    capabilities: ClassVar[Capabilities]
    """What the backend honours natively."""
    _self_wake: ClassVar[bool] = False
    """True where a change made while another thread waits needs a wake-up."""

    def __new__(cls, backend: str | None = None, **kwargs: Any) -> Poller:
        """Create a poller of the requested (or best) backend."""
        if cls is Poller:
            from .backends import backend_class

            cls = backend_class(backend)
        return super().__new__(cls)

    def __init__(self, backend: str | None = None) -> None:
        if backend is not None and backend != self.name:
            raise ValueError(f"portaio: {type(self).__name__} is the {self.name} backend, not {backend!r}")
        self._regs: dict[int, Registration] = {}
        self._internal: dict[int, Registration] = {}
        self._cache: dict[Any, Event] = {}
        self._always_ready: dict[int, Registration] = {}
        self._emulated_first = False
        self._next_token = 1
        self._epoch = 0
        self._waiting = 0
        self._close_pending = False
        self._closed_why = ""
        self._lock = threading.RLock()
        # Timers and signals: ``_extras`` is the one flag the poll() fast path checks.
        self._extras = False
        self._timer_queue: TimerQueue | None = None
        self._armed_deadline: float | None = None
        self._native_timer = False
        self._signal_state: PollerSignals | None = None
        self._signal_sources: dict[str, SignalSource] = {}
        self._wake_pending = False
        self._closed = True  # until _open succeeds: a failed _open cleans up after itself
        self._open()
        try:
            self._open_wake()
        except BaseException:
            self._close_backend()
            raise
        self._closed = False
        _fork.track(self)

    # ------------------------------------------------------------------ public
    @property
    def backend(self) -> str:
        """The name of the backend this poller runs on."""
        return self.name

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def fileno(self) -> int:
        """The kernel object's fd (epoll, kqueue), or -1 where there is none."""
        self._check_open()
        return self._backend_fileno()

    def register(self, fileobj: FileLike, events: int, data: Any = None) -> Registration:
        """Watch *fileobj* (an fd or an object with ``fileno()``) for *events*.

        Raises :class:`~portaio.AlreadyRegistered` if the fd is already
        registered, :class:`~portaio.Unsupported` for a mode the backend cannot
        honour, :class:`OSError` (``EBADF``) for a closed fd.
        """
        fd = self._fd_of(fileobj)
        interest = self._check_events(fd, events)
        with self._lock:
            self._check_open(fd)
            if fd in self._regs:
                raise AlreadyRegistered(f"portaio[{self.name}]: fd {fd} is already registered")
            reg = Registration(fd, fileobj, interest, data, self._new_token(), self._epoch + 1)
            self._add_or_emulate(reg)
            self._epoch += 1
            self._regs[fd] = reg
            self._changed()
        return reg

    def modify(self, fileobj: FileLike, events: int, data: Any = None) -> Registration:
        """Replace the interest *and* data of a registered fd; re-arms ONESHOT."""
        fd = self._fd_of(fileobj)
        interest = self._check_events(fd, events)
        with self._lock:
            self._check_open(fd)
            old = self._regs.get(fd)
            if old is None:
                raise NotRegistered(f"portaio[{self.name}]: fd {fd} is not registered")
            reg = Registration(fd, fileobj, interest, data, self._new_token(), self._epoch + 1)
            if fd in self._always_ready:
                self._always_ready[fd] = reg
            else:
                self._modify(old, reg)
            self._epoch += 1
            self._regs[fd] = reg
            self._forget(old)
            self._changed()
        return reg

    def unregister(self, fileobj: FileLike) -> Registration:
        """Stop watching *fileobj*.

        Quiet when the fd was already closed (or closed and its number
        reused): the registration is dropped all the same.
        """
        with self._lock:
            if self._closed:
                try:
                    named: int | None = self._fd_of(fileobj)
                except (TypeError, ValueError):
                    named = None
                self._check_open(named)
            fd = self._fd_for_unregister(fileobj)
            reg = self._regs.get(fd)
            if reg is None:
                raise NotRegistered(f"portaio[{self.name}]: fd {fd} is not registered")
            if self._always_ready.pop(fd, None) is None:
                # The kernel forgets first, so no event for it is queued after this.
                self._remove(reg)
            self._epoch += 1
            del self._regs[fd]
            self._forget(reg)
            self._changed()
        return reg

    def get(self, fileobj: FileLike) -> Registration | None:
        """The registration of *fileobj*, or None."""
        self._check_open()
        return self._regs.get(self._fd_of(fileobj))

    def registrations(self) -> list[Registration]:
        """A snapshot of every registration (internal fds excluded)."""
        self._check_open()
        return list(self._regs.values())

    def __len__(self) -> int:
        return len(self._regs)

    def __contains__(self, fileobj: object) -> bool:
        try:
            return self._fd_of(fileobj) in self._regs
        except (TypeError, ValueError):
            return False

    def poll(self, timeout: float | None = None, max_events: int | None = None) -> list[Event]:
        """Wait for readiness and return the ready events.

        *timeout* is ``None`` (block), ``0`` (ask the kernel, don't wait) or
        seconds as a float, honoured as precisely as the backend can and never
        early.  At most *max_events* events are returned; the rest come with the
        next call.  A signal arriving meanwhile runs its Python handler; an
        exception from the handler propagates, otherwise the wait resumes.
        """
        if timeout is not None:
            cls = timeout.__class__
            if (cls is not float and cls is not int) or not 0 <= timeout <= TIMEOUT_MAX:
                timeout = _check_timeout(timeout, self.name)
        if max_events is None:
            max_events = DEFAULT_MAX_EVENTS
        elif max_events.__class__ is not int or max_events < 1:
            max_events = _check_max_events(max_events, self.name)
        if self._closed:
            raise PollerClosed(f"portaio[{self.name}]: poll() on a closed poller{self._closed_why}")
        if self._extras:
            return self._poll_extras(timeout, max_events)
        if self._always_ready:
            ready = self._ready_with_emulated(max_events)
            if ready:
                return ready
        if timeout == 0:
            return self._wait(0, max_events) or []
        self._waiting += 1
        try:
            if timeout is None:
                while True:
                    events = self._wait(None, max_events)
                    if events:
                        return events
                    if self._closed:
                        self._closed_while_waiting()
            deadline = _monotonic() + timeout
            while True:
                events = self._wait(timeout, max_events)
                if events:
                    return events
                if self._closed:
                    self._closed_while_waiting()
                timeout = deadline - _monotonic()
                if timeout <= 0:
                    return []
        finally:
            self._leave_wait()

    def close(self) -> None:
        """Release the kernel object and every fd the poller created.  Idempotent.

        A :meth:`poll` blocked in another thread raises :class:`PollerClosed`
        promptly; the fds are released as soon as it has left the kernel.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._close_extras()
            finally:
                self._regs.clear()
                self._cache.clear()
                self._always_ready.clear()
                if self._waiting:
                    # Closing the fds under a waiting thread could swallow the
                    # wake-up and leave it blocked for good: wake it, and the
                    # last waiter out releases them (or we do, if it left already).
                    self._close_pending = True
                    self._post_wake()
                if not self._waiting:
                    self._close_pending = False
                    self._release()

    def _release(self) -> None:
        try:
            self._close_wake()
        finally:
            try:
                self._close_backend()
            finally:
                self._internal.clear()

    def _leave_wait(self) -> None:
        self._waiting -= 1
        if self._close_pending:
            with self._lock:
                if self._close_pending and not self._waiting:
                    self._close_pending = False
                    self._release()

    def _closed_while_waiting(self) -> None:
        raise PollerClosed(f"portaio[{self.name}]: the poller was closed during poll(){self._closed_why}")

    def add_timer(self, delay: float, interval: float | None = None, data: Any = None) -> Timer:
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
                self._extras = True
            timer, earliest = queue.add(delay, interval, data)
        if earliest:
            self._timers_changed()
        return timer

    def add_signal(self, signum: int, data: Any = None) -> SignalWatch:
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
                self._extras = True
            watch = SignalWatch(self, signum, data)
            state.add(watch, self.name)
            try:
                _signals.install_handler(self, signum)
                try:
                    self._watch_signal(signum)
                except BaseException:
                    _signals.restore_handler(self, signum)
                    raise
            except BaseException:
                state.discard(signum)
                watch._poller = None
                raise
        return watch

    def wake(self) -> None:
        """Make the current or next :meth:`poll` return ``Event(fd=-1, events=WAKE, data=None)``.

        Safe from any thread and from a signal handler; wake-ups before the
        poll that reports them coalesce into one event.
        """
        if self._closed:
            raise PollerClosed(f"portaio[{self.name}]: wake() on a closed poller{self._closed_why}")
        self._wake_pending = True
        self._post_wake()

    def __enter__(self) -> Poller:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            try:
                self.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._regs)} registered"
        return f"<portaio.Poller backend={self.name} {state}>"

    # -------------------------------------------------- backend primitives
    def _open(self) -> None:
        """Create the kernel object."""
        raise NotImplementedError

    def _backend_fileno(self) -> int:
        return -1

    def _add(self, reg: Registration) -> None:
        """Start watching ``reg.fd``; raise OSError and leave nothing behind on failure."""
        raise NotImplementedError

    def _modify(self, old: Registration, new: Registration) -> None:
        """Replace ``old`` by ``new`` (same fd) in the kernel."""
        raise NotImplementedError

    def _remove(self, reg: Registration) -> None:
        """Stop watching ``reg.fd``; quiet if the fd is already closed or reused."""
        raise NotImplementedError

    def _wait(self, timeout: float | None, max_events: int) -> list[Event] | None:
        """One kernel wait; ``None`` or ``[]`` when nothing is to be reported."""
        raise NotImplementedError

    def _close_backend(self) -> None:
        """Close every fd the backend created."""
        raise NotImplementedError

    def _kernel_refuses(self, reg: Registration, err: OSError) -> bool:
        """True if *err* from ``_add`` means "always ready" (regular files on epoll)."""
        return False

    # ------------------------------------- timers, signals, wake-ups (shared)
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

    def _retire_after_fork(self) -> None:
        """In a forked child: close this process's copies of the poller's fds, refuse further use."""
        if self._closed:
            return
        self._lock = threading.RLock()  # another thread of the parent may have held it
        self._closed = True
        self._closed_why = (
            " (it was created before fork(); the child must create a new Poller,"
            " the parent's keeps working in the parent)"
        )
        if self._timer_queue is not None:
            self._timer_queue.clear()
        if self._signal_state is not None:
            for watch in self._signal_state.watches.values():
                watch._poller = None
        self._signal_sources = {}  # _signals.forget_after_fork() closes the shared sources
        try:
            self._close_after_fork()
        except OSError:
            pass
        self._regs.clear()
        self._internal.clear()
        self._cache.clear()
        self._always_ready.clear()

    def _remove_internal(self, fd: int) -> None:
        """Stop watching an fd added with :meth:`_add_internal`."""
        reg = self._internal.pop(fd, None)
        if reg is not None:
            self._remove(reg)

    # ------------------------- backend hooks: timers, signals, wake, fork
    #
    # Each hook has a portable default built on the primitives above; a backend
    # overrides it with its kernel's native mechanism (epoll: timerfd, signalfd,
    # eventfd; kqueue: EVFILT_TIMER, EVFILT_SIGNAL, EVFILT_USER).

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

    # ------------------------------------------------------- shared helpers
    def _check_open(self, fd: int | None = None) -> None:
        if self._closed:
            about = "" if fd is None else f" (fd {fd})"
            raise PollerClosed(f"portaio[{self.name}]: the poller is closed{about}{self._closed_why}")

    def _new_token(self) -> int:
        token = self._next_token
        self._next_token = token + 1 if token < 0xFFFFFFFF else 1
        return token

    def _changed(self) -> None:
        """Registrations changed: wake a waiting thread where the backend needs it."""
        if self._self_wake and self._waiting:
            self._interrupt()

    def _interrupt(self) -> None:
        """Make a wait in another thread return (backends with ``_self_wake``)."""

    def _forget(self, reg: Registration) -> None:
        cache = self._cache
        for key in reg.keys:
            cache.pop(key, None)
        reg.keys.clear()

    def _remember(self, reg: Registration, key: Any, ready: int, cache: bool = True) -> Event:
        """The event for *reg* with flags *ready*, cached under the backend's *key*.

        The fast path of a backend maps its raw kernel record straight to a
        cached event; only a miss (new flags, internal fd, stale token) takes
        the slow path that calls this.
        """
        event = Event(reg.fd, ready, reg.data)
        if cache and len(reg.keys) < 16:
            reg.keys.append(key)
            self._cache[key] = event
        return event

    def _add_or_emulate(self, reg: Registration) -> None:
        try:
            self._add(reg)
        except OSError as err:
            if not self._kernel_refuses(reg, err):
                raise
            self._always_ready[reg.fd] = reg

    def _ready_with_emulated(self, max_events: int) -> list[Event]:
        # Always-ready fds and the kernel's events take turns at the front of
        # the batch, so that with a small max_events neither starves the other.
        self._emulated_first = first = not self._emulated_first
        if first:
            ready = self._emulated_ready(max_events)
            if len(ready) < max_events:
                ready.extend(self._wait(0, max_events - len(ready)) or [])
        else:
            ready = self._wait(0, max_events) or []
            if len(ready) < max_events:
                ready.extend(self._emulated_ready(max_events - len(ready)))
        return ready

    def _emulated_ready(self, max_events: int) -> list[Event]:
        # Regular files are always ready (POSIX); the kernel refused to watch them.
        ready: list[Event] = []
        with self._lock:
            regs = self._always_ready
            for reg in list(regs.values()):
                flags = reg.events & (READABLE | WRITABLE)
                if not reg.armed or not flags:
                    continue
                if len(ready) >= max_events:
                    break
                ready.append(Event(reg.fd, flags, reg.data))
                if reg.events & (ONESHOT | EDGE):
                    reg.armed = False
                # Reported fds go last, so the next batch starts with the others.
                del regs[reg.fd]
                regs[reg.fd] = reg
        return ready

    def _fd_of(self, fileobj: Any) -> int:
        if fileobj.__class__ is int:
            fd = fileobj
        elif isinstance(fileobj, int) and not isinstance(fileobj, bool):
            fd = int(fileobj)
        else:
            if isinstance(fileobj, (bool, float, str, bytes)) or not hasattr(fileobj, "fileno"):
                raise TypeError(
                    f"portaio[{self.name}]: expected an int fd or an object with fileno(),"
                    f" got {type(fileobj).__name__}"
                )
            try:
                fd = fileobj.fileno()
            except (AttributeError, TypeError, ValueError, OSError) as err:
                raise ValueError(f"portaio[{self.name}]: invalid file object {fileobj!r}: {err}") from None
            if not isinstance(fd, int) or isinstance(fd, bool):
                raise TypeError(f"portaio[{self.name}]: fileno() of {fileobj!r} returned {fd!r}, not an int")
        if fd < 0:
            raise ValueError(f"portaio[{self.name}]: fd {fd} is negative")
        if fd > _FD_MAX:
            raise ValueError(f"portaio[{self.name}]: fd {fd} is out of range")
        return fd

    def _fd_for_unregister(self, fileobj: Any) -> int:
        try:
            return self._fd_of(fileobj)
        except ValueError:
            # A file object closed since it was registered: find it by identity.
            for reg in self._regs.values():
                if reg.fileobj is fileobj:
                    return reg.fd
            raise

    def _check_events(self, fd: int, events: Any) -> int:
        if not isinstance(events, int) or isinstance(events, bool):
            raise TypeError(
                f"portaio[{self.name}]: events for fd {fd} must be an int, got {type(events).__name__}"
            )
        mask = int(events)
        if mask & ~_VALID_INTEREST or mask < 0:
            raise ValueError(f"portaio[{self.name}]: fd {fd}: unknown or output-only flag bits {mask:#x}")
        if not mask & INTEREST_FLAGS:
            raise ValueError(
                f"portaio[{self.name}]: fd {fd}: events {mask:#x} ask for no readiness"
                " (READABLE, WRITABLE, PRIORITY or RDHUP)"
            )
        caps = self.capabilities
        for flag, supported in (
            (EDGE, caps.edge),
            (ONESHOT, caps.oneshot),
            (EXCLUSIVE, caps.exclusive),
            (PRIORITY, caps.priority),
            (RDHUP, caps.rdhup),
        ):
            if mask & flag and not supported:
                raise Unsupported(self.name, flag.name or str(flag), f"fd {fd}")
        if mask & EXCLUSIVE and mask & ONESHOT:
            raise Unsupported(self.name, "EXCLUSIVE with ONESHOT", f"fd {fd}; the kernel refuses it")
        if mask & EXCLUSIVE and mask & (PRIORITY | RDHUP):
            raise Unsupported(
                self.name, "EXCLUSIVE with PRIORITY or RDHUP", f"fd {fd}; the kernel refuses it"
            )
        if caps.max_fd is not None and fd > caps.max_fd:
            raise ValueError(f"portaio[{self.name}]: fd {fd} is above the backend's limit {caps.max_fd}")
        self._check_interest(fd, mask)
        return mask

    def _check_interest(self, fd: int, events: int) -> None:
        """Backend hook: raise :class:`Unsupported` for a combination it cannot honour."""

    def _add_internal(self, fd: int, events: int, handler: Callable[[], Event | None]) -> Registration:
        """Watch an fd of the poller's own; *handler* runs when it is ready."""
        reg = Registration(fd, fd, events, None, self._new_token())
        reg.handler = handler
        self._add(reg)
        self._internal[fd] = reg
        return reg

    def _lookup(self, fd: int) -> Registration | None:
        """The user or internal registration of *fd*."""
        return self._regs.get(fd) or self._internal.get(fd)


def _check_timeout(timeout: Any, backend: str) -> float | None:
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise TypeError(
            f"portaio[{backend}]: timeout must be None or a number of seconds, got {type(timeout).__name__}"
        )
    seconds = float(timeout)
    if math.isnan(seconds):
        raise ValueError(f"portaio[{backend}]: timeout is NaN")
    if seconds < 0:
        raise ValueError(f"portaio[{backend}]: timeout {seconds} is negative (use 0 to poll, None to block)")
    if seconds == math.inf:
        return None
    if seconds > TIMEOUT_MAX:
        raise OverflowError(f"portaio[{backend}]: timeout {seconds} exceeds TIMEOUT_MAX ({TIMEOUT_MAX} s)")
    return seconds


def _check_max_events(max_events: Any, backend: str) -> int:
    if not isinstance(max_events, int) or isinstance(max_events, bool):
        raise TypeError(f"portaio[{backend}]: max_events must be an int, got {type(max_events).__name__}")
    if max_events < 1:
        raise ValueError(f"portaio[{backend}]: max_events {max_events} is less than 1")
    return max_events


def is_regular_file(fd: int) -> bool:
    """True if *fd* is a regular file or directory (always ready under POSIX)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


def check_fd_open(fd: int, backend: str) -> None:
    """Raise ``OSError(EBADF)`` naming *fd* and *backend* if *fd* is not open."""
    try:
        os.fstat(fd)
    except OSError as err:
        if err.errno == errno.EBADF:
            raise OSError(
                errno.EBADF, f"portaio[{backend}]: fd {fd} is not an open file descriptor"
            ) from None
        raise
