"""The portable :class:`Poller`: the public API, the registration table, the sources.

A poller is a facade over four objects chosen once, when it opens: the
*backend* (``portaio/backends/``: the kernel primitives of
:class:`~portaio.backends._base.Backend`), and the backend's waker, timer
and signal mechanisms.  This module checks arguments, keeps the
registrations (each with a private token the kernel reports back, never
reused while live) and the sources that need no kernel (always-ready files,
the timer queue, signal arrivals, the wake-up flag).  The one poll loop that
asks them all is in ``_poll_loop.py``; the interface the mechanisms use to
plug in (``Host``) is in ``_host.py``.  Everything here is backend-free.
"""

from __future__ import annotations

import errno
import sys
import threading
from collections.abc import Callable
from typing import Any

from . import _closing, _fork, _host, _main_thread, _poll_loop, _register, _watches
from ._errors import NotRegistered, PollerClosed
from ._register import _Reg
from ._regular_files import AlwaysReadyFiles, is_regular_file
from ._signals import PollerSignals
from ._timers import TimerQueue
from ._types import Capabilities, Event, FileLike, Registration
from ._validate import TIMEOUT_MAX, check_events, check_fd_open, check_max_events, fd_of
from .backends import backend_class
from .backends._base import TOKEN_MAX, AlwaysReady

__all__ = ["DEFAULT_MAX_EVENTS", "TIMEOUT_MAX", "Poller", "check_fd_open", "is_regular_file"]

DEFAULT_MAX_EVENTS = _poll_loop.DEFAULT_MAX_EVENTS
"""How many events one :meth:`Poller.poll` returns at most unless told otherwise."""

EventFactory = Callable[[int, int, Any], Any]
"""``factory(fd, events, data)``: what :meth:`Poller.poll` returns for an fd's readiness."""


def _no_quick_wait(q: Any) -> Any:  # pragma: no cover - never called: _quick is None
    raise AssertionError("portaio: no quick wait on this backend")


class Poller:
    """Readiness of many file descriptors, through the best mechanism of the OS.

    ``Poller()`` picks the best backend available (``PORTAIO_BACKEND`` in the
    environment overrides); ``Poller(backend="poll")`` picks one by name and
    raises :class:`~portaio.BackendUnavailable` where it cannot run.

    *event_factory* ``(fd, events, data)``, if given, builds what :meth:`poll`
    returns for an fd's readiness instead of an :class:`Event` (the result is
    cached per registration and flags, so it must not depend on anything
    else); timers, signals and wake-ups stay :class:`Event`.  With
    *always_ready_files* false, a file the kernel refuses because it never
    blocks (a regular file on epoll or kqueue) raises :class:`PermissionError`
    at :meth:`register` instead of being reported ready on every poll.  The
    ``portaio.selectors`` adapter uses both.  *default_max_events* is the
    *max_events* of a :meth:`poll` that gives none (``None``: as many as the
    registrations can report, as :class:`selectors.EpollSelector` does).
    """

    poll = _poll_loop.poll
    _stale = _register._stale
    _drop_stale = _register._drop_stale
    close = _closing.close
    add_timer = _watches.add_timer
    add_signal = _watches.add_signal
    _timers_changed = _watches._timers_changed
    _sync_timer = _watches._sync_timer
    _timer_fired = _watches._timer_fired
    _signal_arrived = _watches._signal_arrived
    _on_python_signal = _watches._on_python_signal
    _remove_signal = _watches._remove_signal
    _drop_signal = _watches._drop_signal
    _close_sources = _closing._close_sources
    _release = _closing._release
    _release_if_last = _closing._release_if_last
    _retire_after_fork = _closing._retire_after_fork

    def __init__(
        self,
        backend: str | None = None,
        *,
        event_factory: EventFactory | None = None,
        always_ready_files: bool = True,
        default_max_events: int | None = DEFAULT_MAX_EVENTS,
    ) -> None:
        self._closed = True  # until everything is open: __del__ and close() then do nothing
        cls = backend_class(backend)
        self.name: str = cls.name
        """The backend's name (``"epoll"``, ``"kqueue"``, ``"poll"``, ``"select"``)."""
        self._regs: dict[int, _Reg] = {}
        self._by_token: dict[int, _Reg] = {}
        self._handlers: dict[int, Callable[[int], None]] = {}
        self._capacity = 0  # live tokens x records per token: the most one wait is asked for
        if default_max_events is None:
            default_max_events = sys.maxsize
        self._max_events = check_max_events(default_max_events, cls.name)
        self._room = 0  # min(_capacity, _max_events): the room of poll()'s fast path
        self._cache: dict[int, Any] = {}  # key -> its event (see _poll_loop.py)
        self._factory: EventFactory = Event if event_factory is None else event_factory
        self._emulate_files = always_ready_files
        self._files = AlwaysReadyFiles()
        self._next_token = 1
        """The next token to try (``_set_next_token_for_tests`` moves it to simulate a wrap)."""
        self._lock = threading.RLock()
        # Threads inside poll(), an item each: append/pop are atomic, ``n += 1`` is not
        # (PyPy lost a count between load and store, and the deferred close never ran).
        self._waiting: list[None] = []
        self._close_pending = False
        self._closed_why = ""
        # The sources besides the kernel; ``_sources`` is the one flag the poll
        # loop checks to know it must ask them (see _poll_loop.py).
        self._sources = False
        self._kernel_owed: float | None = None  # when the kernel was last passed over (no room)
        self._rotation = 0
        self._timer_queue: TimerQueue | None = None
        self._armed_deadline: float | None = None
        self._timer_native = False
        self._signal_state: PollerSignals | None = None
        self._wake_pending = False
        self._wake_ready = False
        self._per_token = cls.records_per_token
        self._backend = cls()
        self._wait = self._backend.wait
        # poll(0)'s quick wait where the backend has one (backends/_base.py):
        # the C function and its (state, view) pair, renewed with the room.
        calls = self._backend.quick_calls()
        self._quick_wait: Callable[[Any], int]
        self._quick_release: Callable[[Any], None]
        self._quick_wait, self._quick_release = calls or (_no_quick_wait, _no_quick_wait)
        self._quick = None if calls is None else self._backend.quick_buffer(0)
        self._oneshot_in_kernel = cls.oneshot_in_kernel
        self._add_tells_same_file = cls.add_tells_same_file
        self._interrupt_on_change = cls.interrupt_on_change
        self._host = _host.PollerHost(self)
        try:
            self._waker = self._backend.make_waker(self._host)
            self._timer = self._backend.make_timer(self._host)
            self._signals = self._backend.make_signals(self._host)
        except BaseException:
            waker = getattr(self, "_waker", None)
            if waker is not None:
                waker.close()
            self._backend.close()
            raise
        self._closed = False
        _fork.track(self)
        _main_thread.run_pending()

    # ------------------------------------------------------------------ public
    @property
    def backend(self) -> str:
        """The name of the backend this poller runs on."""
        return self.name

    @property
    def capabilities(self) -> Capabilities:
        """What the backend honours natively."""
        return self._backend.capabilities

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def fileno(self) -> int:
        """The kernel object's fd (epoll, kqueue), or -1 where there is none."""
        self._check_open()
        return self._backend.fileno()

    def register(self, fileobj: FileLike, events: int, data: Any = None) -> Registration:
        """Watch *fileobj* (an fd or an object with ``fileno()``) for *events*.

        Raises :class:`~portaio.AlreadyRegistered` if the fd is already
        registered, :class:`~portaio.Unsupported` for a mode the backend cannot
        honour, :class:`OSError` (``EBADF``) for a closed fd.  A registered
        number closed without :meth:`unregister` and now naming another file is
        no longer registered: the new file replaces the stale registration.
        """
        fd = fd_of(fileobj, self.name)
        interest = self._check_events(fd, events)
        with self._lock:
            self._check_open(fd)
            stale = self._regs.get(fd)
            if stale is not None:
                stale = self._stale(stale)
            reg = _Reg(fd, fileobj, interest, data, self._new_token())
            # Live before the kernel hears of it: a wait in another thread may
            # report it before add() returns, and would drop an unknown token.
            self._bind(reg)
            try:
                identity = self._backend.add(fd, interest, reg.token)
            except AlwaysReady as err:
                self._unbind(reg)
                self._drop_stale(stale)  # the number names a regular file now: a new file
                if not self._emulate_files:
                    raise PermissionError(err.errno, err.strerror) from None
                reg.ident = _register.identity(self, fd)
                reg.always = err.ready
                self._files.put(reg)
                self._sources = True
                self._interrupt()  # a waiting poll must report it now
            except OSError as err:
                self._unbind(reg)
                if stale is not None and err.errno == errno.EEXIST:
                    # The kernel holds this very open file under the number.
                    raise _register.already(self, fd) from None
                raise
            except BaseException:
                self._unbind(reg)
                raise
            else:
                self._drop_stale(stale)
                if identity is None and not self._add_tells_same_file:
                    identity = _register.identity(self, fd)
                reg.ident = identity
            self._regs[fd] = reg
            self._changed()
        return reg.view

    def modify(self, fileobj: FileLike, events: int, data: Any = None) -> Registration:
        """Replace the interest *and* data of a registered fd; re-arms ONESHOT.

        Raises :class:`OSError` (``EBADF``) if the registered fd was closed,
        also when its number names another file now (the registration stays,
        for :meth:`unregister`; registering the new file replaces it).
        """
        fd = fd_of(fileobj, self.name)
        interest = self._check_events(fd, events)
        with self._lock:
            self._check_open(fd)
            old = self._regs.get(fd)
            if old is None:
                raise NotRegistered(f"portaio[{self.name}]: fd {fd} is not registered")
            if not self._add_tells_same_file or fd in self._files:
                _register.check_same_file(self, old)  # one fstat: see _register.py
            reg = _Reg(fd, fileobj, interest, data, self._new_token())
            reg.ident = old.ident
            if fd in self._files:
                reg.always = old.always
                self._files.put(reg)
                self._sources = True
                self._interrupt()
            else:
                self._bind(reg)  # before the kernel: see register()
                try:
                    self._backend.modify(fd, old.events, old.token, interest, reg.token)
                except AlwaysReady as err:
                    # The backend left the old registration; the file can
                    # only be always ready now (a pipe whose reader is gone).
                    self._unbind(reg)
                    if not self._emulate_files:
                        raise PermissionError(err.errno, err.strerror) from None
                    self._backend.remove(fd, old.events, old.token)
                    reg.always = err.ready
                    self._files.put(reg)
                    self._sources = True
                    self._interrupt()
                except OSError as err:
                    self._unbind(reg)
                    if self._add_tells_same_file and err.errno in _register.OTHER_FILE_ERRNOS:
                        raise _register.reused(self, fd) from None
                    raise
                except BaseException:
                    self._unbind(reg)
                    raise
                self._unbind(old)
            self._regs[fd] = reg
            self._forget(old)
            self._changed()
        return reg.view

    def replace_data(self, fileobj: FileLike, data: Any) -> Registration:
        """Replace only the data of a registered fd: no system call, the interest and arming stay."""
        fd = fd_of(fileobj, self.name)
        with self._lock:
            self._check_open(fd)
            reg = self._regs.get(fd)
            if reg is None:
                raise NotRegistered(f"portaio[{self.name}]: fd {fd} is not registered")
            reg.data = data
            reg.view = Registration(fd, reg.view.fileobj, reg.events, data)
            self._forget(reg)  # cached events carry the old data
        return reg.view

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
                    named: int | None = fd_of(fileobj, self.name)
                except (TypeError, ValueError):
                    named = None
                self._check_open(named)
            fd = self._fd_for_unregister(fileobj)
            reg = self._regs.get(fd)
            if reg is None:
                raise NotRegistered(f"portaio[{self.name}]: fd {fd} is not registered")
            if not self._files.discard(fd):
                # The kernel forgets first, so no event for it is queued after this.
                self._backend.remove(fd, reg.events, reg.token)
                self._unbind(reg)
            del self._regs[fd]
            self._forget(reg)
            self._changed()
        return reg.view

    def get(self, fileobj: FileLike) -> Registration | None:
        """The registration of *fileobj*, or None."""
        fd = fd_of(fileobj, self.name)
        self._check_open(fd)
        reg = self._regs.get(fd)
        return None if reg is None else reg.view

    def registrations(self) -> list[Registration]:
        """A snapshot of every registration (internal fds excluded)."""
        self._check_open()
        return [reg.view for reg in list(self._regs.values())]

    def __len__(self) -> int:
        return len(self._regs)

    def __contains__(self, fileobj: object) -> bool:
        try:
            return fd_of(fileobj, self.name) in self._regs
        except (TypeError, ValueError):
            return False

    def wake(self) -> None:
        """Make the current or next :meth:`poll` return ``Event(fd=-1, events=WAKE, data=None)``.

        Safe from any thread and from a signal handler; wake-ups before the
        poll that reports them coalesce into one event.  Once :meth:`close`
        has started, nothing is written anywhere (the waker's fd may already
        name another file).
        """
        if self._closed:
            raise PollerClosed(f"portaio[{self.name}]: wake() on a closed poller{self._closed_why}")
        self._wake_pending = True
        self._waker.post()

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

    # ------------------------------------------------------- the table
    def _new_token(self) -> int:
        # Never a live token: after TOKEN_MAX allocations the counter wraps and
        # skips the tokens still in use (the kernel may still report them).
        token = self._next_token
        by_token, handlers = self._by_token, self._handlers
        while token in by_token or token in handlers:
            token = token + 1 if token < TOKEN_MAX else 1
        self._next_token = token + 1 if token < TOKEN_MAX else 1
        return token

    def _set_next_token_for_tests(self, token: int) -> None:
        """Test hook: the next token drawn is *token* (or the first free one after it).

        Simulates ``TOKEN_MAX`` (2**24 - 1) allocations, the wrap of the
        counter, in tests.
        """
        if not 1 <= token <= TOKEN_MAX:
            raise ValueError(f"a token is 1 to {TOKEN_MAX}, not {token}")
        self._next_token = token

    def _bind(self, reg: _Reg) -> None:
        self._by_token[reg.token] = reg
        self._add_capacity(self._per_token)

    def _add_capacity(self, delta: int) -> None:
        self._capacity += delta
        self._room = min(self._capacity, self._max_events)
        if self._quick is not None:
            self._quick = self._backend.quick_buffer(self._room)

    def _unbind(self, reg: _Reg) -> None:
        if self._by_token.pop(reg.token, None) is not None:
            self._add_capacity(-self._per_token)

    def _forget(self, reg: _Reg) -> None:
        cache = self._cache
        for key in reg.keys:
            cache.pop(key, None)
        reg.keys.clear()

    def _changed(self) -> None:
        """Registrations changed: wake a waiting thread where the backend's wait holds a copy."""
        if self._interrupt_on_change and self._waiting:
            self._waker.post()

    def _interrupt(self) -> None:
        """Make a waiting poll go round its loop again (no WAKE event)."""
        if self._waiting:
            self._waker.post()

    def _check_open(self, fd: int | None = None) -> None:
        if self._closed:
            about = "" if fd is None else f" (fd {fd})"
            raise PollerClosed(f"portaio[{self.name}]: the poller is closed{about}{self._closed_why}")

    def _check_events(self, fd: int, events: Any) -> int:
        mask = check_events(fd, events, self.name, self._backend.capabilities)
        self._backend.check_interest(fd, mask)
        return mask

    def _fd_for_unregister(self, fileobj: Any) -> int:
        try:
            return fd_of(fileobj, self.name)
        except ValueError:
            # A file object closed since it was registered: find it by identity.
            for reg in self._regs.values():
                if reg.view.fileobj is fileobj:
                    return reg.fd
            raise
