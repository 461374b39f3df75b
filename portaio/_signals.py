"""Signals reported by :meth:`Poller.poll`, and the process-wide state they need.

A signal's disposition, the process's wakeup fd and (on Linux) a thread's
signal mask are process- or thread-wide, while several pollers may watch the
same signal.  This module keeps that state once per process:

* the first watch of a signal saves its Python-level handler and installs
  portaio's; the last removal puts the saved one back, exactly;
* a *source* (the wakeup-fd pipe here, a signalfd on epoll) is shared by every
  poller of its kind; whichever poller finds it readable drains it and hands
  each delivery to every poller watching that signal (:func:`deliver`).

Each poller keeps its own queue of arrivals (a :class:`collections.deque`,
whose ``append`` is atomic, so a delivery from a signal handler or another
thread never needs a lock) and turns them into coalesced events in ``poll()``.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import sys
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _main_thread
from ._errors import AlreadyRegistered
from ._flags import SIGNAL
from ._types import Event

if TYPE_CHECKING:
    from ._poller import Poller

__all__ = ["SignalSource", "SignalWatch", "WakeupFdSource", "check_signum", "deliver", "require_main_thread"]

_SIGNAL = int(SIGNAL)
_lock = threading.RLock()
_watchers: dict[int, list[weakref.ref[Poller]]] = {}
"""Pollers watching each signal, held weakly: a poller dropped without close()
is still collected, and its finaliser then puts the saved handler back."""
_saved_handlers: dict[int, Any] = {}
_sources: dict[object, tuple[SignalSource, int]] = {}


def check_signum(signum: Any, backend: str) -> int:
    """*signum* as an int, or a clear error (SIGKILL and SIGSTOP cannot be caught)."""
    if not isinstance(signum, int) or isinstance(signum, bool):
        raise TypeError(f"portaio[{backend}]: signal number must be an int, got {type(signum).__name__}")
    number: int = int(signum)
    if number not in signal.valid_signals():
        raise ValueError(f"portaio[{backend}]: {signum} is not a valid signal number")
    if sys.platform != "win32" and number in (signal.SIGKILL, signal.SIGSTOP):
        raise ValueError(f"portaio[{backend}]: {signal.Signals(number).name} cannot be caught")
    return number


def require_main_thread(backend: str, what: str) -> None:
    """Raise ValueError unless called from the main thread.

    Python installs signal handlers only from the main thread, and a signal
    mask set elsewhere would not cover the thread the kernel delivers to; the
    error is the same on every backend.
    """
    if threading.current_thread() is not threading.main_thread():
        raise ValueError(
            f"portaio[{backend}]: {what} must be called from the main thread"
            " (signal dispositions and masks are set there)"
        )


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


class SignalSource:
    """A process-wide channel signals arrive on, shared by the pollers of one kind.

    Subclasses: :class:`WakeupFdSource` here, the signalfd source in the epoll
    backend.  ``fd`` is watched (READABLE) by every poller using the source.
    """

    fd: int = -1
    _refs: dict[int, int]

    def add(self, signum: int) -> None:
        """One more poller watches *signum* (main thread); the first starts receiving it."""
        refs = self.__dict__.setdefault("_refs", {})
        with _lock:
            count = refs.get(signum, 0)
            if count == 0:
                self._start(signum)
            refs[signum] = count + 1

    def remove(self, signum: int) -> None:
        """One poller fewer watches *signum*; the last stops receiving it."""
        refs = self.__dict__.setdefault("_refs", {})
        with _lock:
            count = refs.pop(signum, 0)
            if count > 1:
                refs[signum] = count - 1
            elif count == 1:
                self._stop(signum)

    def _start(self, signum: int) -> None:
        """Start receiving *signum* from the kernel."""

    def _stop(self, signum: int) -> None:
        """Stop receiving *signum*; deliveries of it still pending are dropped."""

    def drain(self) -> dict[int, int]:
        """Read everything pending: ``{signum: count}``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the channel (no signal uses it any more)."""

    def forget_after_fork(self) -> None:
        """In a forked child: close this process's copies, touch nothing shared."""
        self.close()


class WakeupFdSource(SignalSource):
    """Python's :func:`signal.set_wakeup_fd`: the C-level handler writes the signal number.

    Each byte read is one delivery.  A wakeup fd set before (asyncio's, for
    one) is saved, fed every byte read, and restored when the source closes.
    """

    def __init__(self) -> None:
        if sys.platform == "win32":
            # Windows' set_wakeup_fd takes a non-blocking socket, not a pipe.
            r, w = socket.socketpair()
            r.setblocking(False)
            w.setblocking(False)
            self._sockets: tuple[socket.socket, socket.socket] | None = (r, w)
            self.fd, self._w = r.fileno(), w.fileno()
        else:
            self._sockets = None
            self.fd, self._w = os.pipe()
            os.set_blocking(self.fd, False)
            os.set_blocking(self._w, False)
        self._previous = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)

    def _read(self) -> bytes:
        if self._sockets is not None:
            return self._sockets[0].recv(4096)
        return os.read(self.fd, 4096)

    def _forward(self, chunk: bytes) -> None:
        if self._sockets is not None:
            # On Windows the previous wakeup fd is a socket too.
            previous = socket.socket(fileno=self._previous)
            try:
                previous.send(chunk)
            finally:
                previous.detach()
        else:
            os.write(self._previous, chunk)

    def drain(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        chunks = []
        try:
            while True:
                chunk = self._read()
                if not chunk:
                    break
                chunks.append(chunk)
        except (BlockingIOError, InterruptedError):
            pass
        for chunk in chunks:
            for signum in chunk:
                counts[signum] = counts.get(signum, 0) + 1
            if self._previous >= 0:
                try:
                    self._forward(chunk)
                except OSError:
                    pass
        return counts

    def close(self) -> None:
        try:
            signal.set_wakeup_fd(self._previous)
        except ValueError:  # not the main thread: leave Python's wakeup fd as is
            warnings.warn(
                "portaio: the signal wakeup fd could not be restored outside the main thread",
                RuntimeWarning,
                stacklevel=3,
            )
        self._close_fds()

    def forget_after_fork(self) -> None:
        try:
            signal.set_wakeup_fd(self._previous)
        except ValueError:
            pass
        self._close_fds()

    def _close_fds(self) -> None:
        if self._sockets is not None:
            for sock in self._sockets:
                sock.close()
            return
        for fd in (self.fd, self._w):
            try:
                os.close(fd)
            except OSError:
                pass


def _python_handler(signum: int, frame: Any) -> None:
    # Python runs it in the main thread for each delivery that reached its C
    # handler (which already wrote it to the wakeup fd).  Installed so that the
    # signal's previous disposition (often: terminate) does not apply.
    if _main_thread.nudged or _main_thread.pending():
        nudged = signum in _main_thread.nudged
        _main_thread.nudged.discard(signum)
        _main_thread.run_pending()
        if nudged:
            restore_if_unwatched(signum)  # left to this run (see _main_thread.nudge)
        if signum not in _watchers:
            # Restored just now (a poller closed in another thread handed it
            # over): a real delivery belongs to the restored disposition.
            if not nudged:
                _main_thread.raise_unwatched({signum})
            return
    for ref in list(_watchers.get(signum, ())):
        poller = ref()
        if poller is not None:
            poller._on_python_signal(signum)


def deliver(signum: int, count: int, drained_by: object = None) -> None:
    """Hand *count* deliveries of *signum* to every poller watching it.

    Callable from any thread and from a signal handler (no lock is taken).
    Pollers other than *drained_by* are woken, since they may be waiting.
    """
    for ref in list(_watchers.get(signum, ())):
        poller = ref()
        if poller is not None:
            poller._signal_arrived(signum, count, poller is not drained_by)


def acquire_source(kind: object, factory: Callable[[], SignalSource]) -> SignalSource:
    """The shared source of *kind*, created by *factory* on first use (refcounted)."""
    with _lock:
        entry = _sources.get(kind)
        if entry is None:
            source = factory()
            _sources[kind] = (source, 1)
            return source
        _sources[kind] = (entry[0], entry[1] + 1)
        return entry[0]


def release_source(kind: object) -> None:
    """Drop one reference to the source of *kind*; the last closes it."""
    with _lock:
        entry = _sources.get(kind)
        if entry is None:
            return
        source, refs = entry
        if refs > 1:
            _sources[kind] = (source, refs - 1)
            return
        del _sources[kind]
    source.close()


def install_handler(poller: Poller, signum: int) -> None:
    """Count *poller* among the watchers of *signum*; the first installs portaio's handler."""
    # A restoration handed over by another thread comes first: portaio's own
    # handler must never be saved as the one to put back.
    _main_thread.run_pending()
    with _lock:
        watchers = _watchers.get(signum)
        if watchers is None:
            previous = signal.signal(signum, _python_handler)
            _saved_handlers[signum] = previous
            _watchers[signum] = [weakref.ref(poller)]
        else:
            watchers.append(weakref.ref(poller))


def drop_watcher(poller: object, signum: int) -> None:
    """Drop *poller* (and any poller already collected) from the watchers of *signum* (any thread).

    A dropped poller's finaliser runs after its weak references were cleared.
    The handler stays portaio's until :func:`restore_if_unwatched`.
    """
    with _lock:
        watchers = _watchers.get(signum)
        if watchers is not None:
            watchers[:] = [ref for ref in watchers if ref() is not None and ref() is not poller]


def restore_if_unwatched(signum: int) -> None:
    """Main thread: put the saved handler of *signum* back if no poller watches it any more."""
    with _lock:
        watchers = _watchers.get(signum)
        if watchers is None or watchers or signum in _main_thread.nudged:
            return
        previous = _saved_handlers.pop(signum)
        del _watchers[signum]
    if previous is None:
        # The handler was set outside Python (by C code): Python cannot put
        # it back, the default is the closest it can do.
        previous = signal.SIG_DFL
    signal.signal(signum, previous)


def restore_handler(poller: object, signum: int) -> None:
    """Main thread: drop *poller* from the watchers of *signum*; the last restores the saved handler."""
    drop_watcher(poller, signum)
    restore_if_unwatched(signum)


def forget_after_fork() -> None:
    """In a forked child: restore handlers, masks and wakeup fd; forget every watcher."""
    global _lock
    _lock = threading.RLock()  # another thread of the parent may have held it
    _main_thread.forget_after_fork()
    with _lock:
        saved = dict(_saved_handlers)
        sources = [source for source, _ in _sources.values()]
        _saved_handlers.clear()
        _watchers.clear()
        _sources.clear()
    for source in sources:
        try:
            source.forget_after_fork()
        except OSError:
            pass
    for signum, previous in saved.items():
        try:
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        except (OSError, ValueError):
            pass


class SignalWatch:
    """A watch from :meth:`Poller.add_signal`; deliveries come from ``poll()``.

    Each report is an :class:`~portaio.Event` with ``fd == -1``,
    ``events == SIGNAL``, the watch's ``data``, ``signum`` and ``times``, the
    number of deliveries since the previous report (the OS may merge
    deliveries of one signal that arrive close together, so ``times`` is a
    lower bound on how often it was sent).
    """

    __slots__ = ("_poller", "data", "signum")

    def __init__(self, poller: Poller, signum: int, data: Any) -> None:
        self._poller: Poller | None = poller
        self.signum = signum
        """The signal number watched."""
        self.data = data
        """The object reported as the events' ``data``."""

    @property
    def active(self) -> bool:
        """True until :meth:`remove` (or the poller's ``close``)."""
        return self._poller is not None

    def remove(self) -> bool:
        """Stop watching; restore the signal's previous handler and mask.

        True if the watch was active.  Call it from the main thread; safe to
        call more than once.
        """
        poller = self._poller
        if poller is None:
            return False
        poller._remove_signal(self)
        return True

    cancel = remove

    def __repr__(self) -> str:
        state = "active" if self._poller is not None else "removed"
        return f"<portaio.SignalWatch {_signal_name(self.signum)} {state} data={self.data!r}>"


class PollerSignals:
    """The signal watches of one poller and the deliveries not yet reported."""

    def __init__(self) -> None:
        self.watches: dict[int, SignalWatch] = {}
        self.arrivals: collections.deque[tuple[int, int]] = collections.deque()
        self._counts: dict[int, int] = {}

    def add(self, watch: SignalWatch, backend: str) -> None:
        """Record *watch* (one per signal per poller)."""
        if watch.signum in self.watches:
            raise AlreadyRegistered(
                f"portaio[{backend}]: signal {_signal_name(watch.signum)} is already watched by this poller"
            )
        self.watches[watch.signum] = watch

    def discard(self, signum: int) -> None:
        """Forget the watch of *signum* and its unreported deliveries."""
        self.watches.pop(signum, None)
        self._counts.pop(signum, None)

    def pending(self) -> bool:
        """True if deliveries wait to be reported."""
        return bool(self.arrivals) or bool(self._counts)

    def collect(self, limit: int, out: list[Event]) -> None:
        """Append one event per signal delivered since the last report, at most *limit*."""
        arrivals = self.arrivals
        counts = self._counts
        watches = self.watches
        while arrivals:
            signum, count = arrivals.popleft()
            if signum in watches:
                counts[signum] = counts.get(signum, 0) + count
        for signum in list(counts)[:limit]:
            watch = watches.get(signum)
            times = counts.pop(signum)
            if watch is not None:
                out.append(Event(-1, _SIGNAL, watch.data, times, signum))
