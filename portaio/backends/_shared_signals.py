"""Signals through process-wide sources shared by every poller using them.

A source (:class:`~portaio._signals.WakeupFdSource`: Python's
:func:`signal.set_wakeup_fd` on a pipe; on epoll also the signalfd of
``_signalfd.py``) is created by the first poller that watches a signal and
closed by the last; each poller watches the source's fd, and whichever drains
it hands every delivery to each poller watching that signal
(:func:`portaio._signals.deliver`).  Sources are keyed by their class, not
by name.
"""

from __future__ import annotations

import functools

from .. import _signals
from .._signals import SignalSource
from ._base import Host, SignalMechanism

__all__ = ["SharedSignals"]


class SharedSignals(SignalMechanism):
    """Watch signals through the shared sources *kinds* (classes of :class:`SignalSource`)."""

    def __init__(self, host: Host, kinds: tuple[type[SignalSource], ...], max_fd: int | None = None) -> None:
        self._host = host
        self._kinds = kinds
        self._max_fd = max_fd
        self._sources: list[tuple[type[SignalSource], SignalSource, int]] = []
        self._signums: set[int] = set()

    def _acquire(self) -> None:
        host = self._host
        try:
            for kind in self._kinds:
                source = _signals.acquire_source(kind, kind)
                token = 0
                try:
                    if self._max_fd is not None and source.fd > self._max_fd:
                        raise ValueError(
                            f"portaio[{host.name}]: the signal source's fd {source.fd} is above"
                            f" the backend's limit {self._max_fd}"
                        )
                    token = host.watch(source.fd, functools.partial(self._drain, source))
                finally:
                    if not token:
                        _signals.release_source(kind)
                self._sources.append((kind, source, token))
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        while self._sources:
            kind, source, token = self._sources.pop()
            try:
                if token:  # 0: detached, the poller no longer watches it
                    self._host.unwatch(source.fd, token)
            finally:
                _signals.release_source(kind)

    def detach(self) -> None:
        # The sources stay acquired (their fds open) until close() in the main thread.
        for i, (kind, source, token) in enumerate(self._sources):
            if token:
                self._sources[i] = (kind, source, 0)
                self._host.unwatch(source.fd, token)

    def _drain(self, source: SignalSource, _flags: int) -> None:
        self._host.deliver_signals(source.drain())

    def watch(self, signum: int) -> None:
        if not self._sources:
            self._acquire()
        started: list[SignalSource] = []
        try:
            for _, source, _ in self._sources:
                source.add(signum)
                started.append(source)
        except BaseException:
            for source in started:
                source.remove(signum)
            if not self._signums:
                self._release()
            raise
        self._signums.add(signum)

    def unwatch(self, signum: int) -> None:
        if signum not in self._signums:
            return
        self._signums.discard(signum)
        try:
            for _, source, _ in self._sources:
                source.remove(signum)
        finally:
            if not self._signums:
                self._release()

    def close(self) -> None:
        for signum in list(self._signums):
            self.unwatch(signum)
        self._release()

    def close_after_fork(self) -> None:
        # _signals.forget_after_fork() closes the shared sources themselves.
        self._sources.clear()
        self._signums.clear()
