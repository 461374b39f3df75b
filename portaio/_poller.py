"""The portable :class:`Poller`: the public API, the registration table and the poll loop.

A backend subclasses :class:`Poller` and supplies five primitives (``_open``,
``_add``, ``_modify``, ``_remove``, ``_wait``, plus ``_close_backend``).
Timers, signals and wake-ups work on those alone; a backend with native
mechanisms overrides the hooks of :class:`~portaio._timers_signals_wake.TimersSignalsWake`
(``_arm_timer``, ``_open_wake``/``_post_wake``/``_close_wake``,
``_watch_signal``/``_unwatch_signal``, ``_on_python_signal``,
``_close_after_fork``) and reports through ``_timer_fired``, ``_wake_fired``
and ``_signal_arrived``.  Argument checks live in ``_validate.py``, the
always-ready emulation of regular files in ``_regular_files.py``.
Everything here is backend-free: it never names a kernel mechanism.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from . import _fork, _signals
from ._errors import AlreadyRegistered, NotRegistered, PollerClosed
from ._regular_files import AlwaysReadyFiles, is_regular_file
from ._signals import PollerSignals, SignalSource, SignalWatch
from ._timers import Timer, TimerQueue, check_delay
from ._timers_signals_wake import TimersSignalsWake
from ._types import Capabilities, Event, FileLike, Registration
from ._validate import TIMEOUT_MAX, check_events, check_fd_open, check_max_events, check_timeout, fd_of

__all__ = ["DEFAULT_MAX_EVENTS", "TIMEOUT_MAX", "Poller", "check_fd_open", "is_regular_file"]

DEFAULT_MAX_EVENTS = 1024
"""How many events one :meth:`Poller.poll` returns at most unless told otherwise."""

_monotonic = time.monotonic


class Poller(TimersSignalsWake, AlwaysReadyFiles):
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
        """Stop watching *fileobj*; do it *before* closing the fd.

        Quiet when the fd was already closed (or closed and its number
        reused): the registration is dropped all the same.  But a file closed
        while registered is not always forgotten by the kernel (epoll keeps
        watching it while a dup holds it open; poll and select watch whatever
        file reuses the number), so unregister first, then close.
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
                timeout = check_timeout(timeout, self.name)
        if max_events is None:
            max_events = DEFAULT_MAX_EVENTS
        elif max_events.__class__ is not int or max_events < 1:
            max_events = check_max_events(max_events, self.name)
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

    # ------------------------------------------------------------------ fork
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

    def _fd_of(self, fileobj: Any) -> int:
        return fd_of(fileobj, self.name)

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
        mask = check_events(fd, events, self.name, self.capabilities)
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

    def _remove_internal(self, fd: int) -> None:
        """Stop watching an fd added with :meth:`_add_internal`."""
        reg = self._internal.pop(fd, None)
        if reg is not None:
            self._remove(reg)
