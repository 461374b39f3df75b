"""A :mod:`selectors` drop-in over the :class:`~portaio.Poller`.

``PortaioSelector`` is a :class:`selectors.BaseSelector` with the standard
library's contract, errors included; where the standard classes differ from
each other it behaves as :class:`selectors.EpollSelector` (see
``docs/asyncio.rst``).  ``asyncio.SelectorEventLoop(PortaioSelector())`` and
every other ``selectors`` user runs unchanged.

Speed comes from the Poller's event cache: each registration's data is its
:class:`~selectors.SelectorKey`, and the selector's poller is made with an
``event_factory`` that builds the finished ``(key, mask)`` pair, which the
poller caches per kernel record instead of an :class:`~portaio.Event`, so
:meth:`PortaioSelector.select` returns the poller's result as it is.
"""

from __future__ import annotations

import errno
import selectors
from collections.abc import Callable, Iterator, Mapping
from selectors import EVENT_READ, EVENT_WRITE, SelectorKey
from typing import Any

from ._errors import PollerClosed
from ._flags import READABLE, WRITABLE
from ._poller import Poller
from ._regular_files import is_regular_file
from .backends import backend_class

__all__ = ["EVENT_READ", "EVENT_WRITE", "DefaultSelector", "PortaioSelector", "SelectorKey"]

_VALID = EVENT_READ | EVENT_WRITE
_NOT_WRITABLE = ~int(WRITABLE)
_NOT_READABLE = ~int(READABLE)


def _fileobj_to_fd(fileobj: Any) -> int:
    # The standard library's rules, messages included (selectors._fileobj_to_fd).
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


def _key_mask(fd: int, ready: int, sel_key: SelectorKey) -> Any:
    """The ``(SelectorKey, mask)`` pair the selector's poller returns for an fd's readiness.

    As ``selectors.EpollSelector`` does, a hang-up or error (any flag besides
    the other direction) counts as both readable and writable, limited to
    what the key asked for.
    """
    mask = 0
    if ready & _NOT_READABLE:
        mask |= EVENT_WRITE
    if ready & _NOT_WRITABLE:
        mask |= EVENT_READ
    return (sel_key, mask & sel_key.events)


class _SelectorMapping(Mapping[Any, SelectorKey]):
    """The live, read-only ``get_map()`` view: file objects or fds to keys."""

    __slots__ = ("_selector",)

    def __init__(self, selector: PortaioSelector) -> None:
        self._selector = selector

    def __len__(self) -> int:
        return len(self._selector._fd_to_key)

    def __getitem__(self, fileobj: Any) -> SelectorKey:
        selector = self._selector
        try:
            return selector._fd_to_key[selector._fileobj_lookup(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def __iter__(self) -> Iterator[int]:
        return iter(self._selector._fd_to_key)


class PortaioSelector(selectors.BaseSelector):
    """A :class:`selectors.BaseSelector` on a portaio :class:`~portaio.Poller`.

    *backend* picks the poller's backend as for ``Poller(backend)`` (``None``:
    ``$PORTAIO_BACKEND`` or the best one here).  Behaves as
    :class:`selectors.EpollSelector`: ``ValueError`` for bad events or file
    objects, ``KeyError`` for duplicate or unknown registrations, the kernel's
    ``OSError`` with nothing left registered (``PermissionError`` for regular
    files, on every backend), a quiet ``unregister`` of a closed fd.
    """

    def __init__(self, backend: str | None = None) -> None:
        # The kernel's refusal of regular files is the selector's error, as
        # with EpollSelector: no always-ready emulation here.
        # As EpollSelector: room for every registered fd in one call (the
        # poller's default would stop at DEFAULT_MAX_EVENTS).  No count of
        # ours: the poller bounds the wait by what its registrations can
        # report (on kqueue, each fd's read and write filters count apart,
        # so the number of fds would leave one of them queued).
        self._poller = Poller(
            backend, event_factory=_key_mask, always_ready_files=False, default_max_events=None
        )
        self._poll = self._poller.poll  # bound once: select() is the hot path
        self._fd_to_key: dict[int, SelectorKey] = {}
        self._map: _SelectorMapping | None = _SelectorMapping(self)
        self._kernel_refuses_files = backend_class(backend).refuses_files
        self._has_fileno = self._poller.fileno() >= 0  # a kernel object (epoll, kqueue), not poll/select

    @property
    def backend(self) -> str:
        """The name of the poller's backend."""
        return self._poller.name

    @property
    def fileno(self) -> Callable[[], int]:
        """``fileno()``: the kernel object's fd, on epoll and kqueue only.

        As the standard classes of the same mechanism: ``EpollSelector`` and
        ``KqueueSelector`` have ``fileno()``, ``PollSelector`` and
        ``SelectSelector`` have no such attribute, so code that tests
        ``hasattr(sel, "fileno")`` never gets a bogus fd from poll or select.
        """
        if not self._has_fileno:
            raise AttributeError(f"'PortaioSelector' on {self._poller.name} has no attribute 'fileno'")
        return self._kernel_fileno

    def _kernel_fileno(self) -> int:
        try:
            return self._poller.fileno()
        except PollerClosed:
            return -1  # closed: no kernel object any more

    def _fileobj_lookup(self, fileobj: Any) -> int:
        try:
            return _fileobj_to_fd(fileobj)
        except ValueError:
            # A file object closed since it was registered: find it by identity.
            for key in self._fd_to_key.values():
                if key.fileobj is fileobj:
                    return key.fd
            raise

    def _regular_file_error(self, fd: int) -> PermissionError:
        return PermissionError(
            errno.EPERM, f"portaio[{self._poller.name}]: fd {fd} is a regular file (always ready)"
        )

    def _closed_error(self) -> ValueError:
        return ValueError(f"portaio[{self._poller.name}]: I/O operation on a closed selector")

    def register(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey:
        """Watch *fileobj* for *events* (``EVENT_READ | EVENT_WRITE``); return its key."""
        if (not events) or (events & ~_VALID):
            raise ValueError(f"Invalid events: {events!r}")
        fd = self._fileobj_lookup(fileobj)
        if fd in self._fd_to_key:
            raise KeyError(f"{fileobj!r} (FD {fd}) is already registered")
        if self._map is None:
            raise self._closed_error()
        key = SelectorKey(fileobj, fd, events, data)
        poller = self._poller
        # epoll refuses regular files with EPERM and EpollSelector passes that
        # on; the poller would report them always ready, the selector refuses
        # them on every backend (asking the kernel where it does not refuse).
        if not self._kernel_refuses_files and is_regular_file(fd):
            raise self._regular_file_error(fd)
        try:
            poller.register(fd, int(events), key)
        except PermissionError:
            raise self._regular_file_error(fd) from None
        self._fd_to_key[fd] = key
        return key

    def unregister(self, fileobj: Any) -> SelectorKey:
        """Stop watching *fileobj*; quiet if its fd was closed (or reused) since."""
        try:
            key = self._fd_to_key.pop(self._fileobj_lookup(fileobj))
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        try:
            self._poller.unregister(key.fd)
        except (OSError, KeyError, PollerClosed):
            pass
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey:
        """Change the events and data of *fileobj*; a data-only change makes no system call."""
        try:
            key = self._fd_to_key[self._fileobj_lookup(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        if events != key.events:
            if (not events) or (events & ~_VALID):
                raise ValueError(f"Invalid events: {events!r}")
            new = key._replace(events=events, data=data)
            try:
                self._poller.modify(key.fd, int(events), new)
            except BaseException:
                # As EpollSelector: a failed change leaves the fd unregistered.
                self.unregister(fileobj)
                raise
            self._fd_to_key[key.fd] = new
            return new
        if data != key.data:
            new = key._replace(data=data)
            self._poller.replace_data(key.fd, new)  # no system call; drops the cached pairs
            self._fd_to_key[key.fd] = new
            return new
        return key

    def select(self, timeout: float | None = None) -> list[tuple[SelectorKey, int]]:
        """Wait up to *timeout* seconds (``None``: block) for ``(key, events)`` pairs.

        A signal arriving meanwhile runs its Python handler and the wait
        resumes for the time left (PEP 475); an exception from the handler
        propagates.
        """
        if timeout is not None and timeout <= 0:
            timeout = 0  # the int: the poller's fast path takes 0 and None
        try:
            ready: list[Any] = self._poll(timeout)
        except PollerClosed:
            raise self._closed_error() from None
        return ready

    def close(self) -> None:
        """Close the poller and forget every key; ``get_map()`` then returns None."""
        self._poller.close()
        self._fd_to_key.clear()
        self._map = None

    def get_map(self) -> Mapping[Any, SelectorKey] | None:  # type: ignore[override]
        """A live read-only mapping of file objects to keys (None once closed)."""
        return self._map

    def get_key(self, fileobj: Any) -> SelectorKey:
        """The key of *fileobj*; ``KeyError`` if unknown, ``RuntimeError`` once closed."""
        if self._map is None:
            raise RuntimeError("Selector is closed")
        try:
            if fileobj.__class__ is int and fileobj >= 0:
                return self._fd_to_key[fileobj]
            return self._fd_to_key[self._fileobj_lookup(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def __repr__(self) -> str:
        state = "closed" if self._map is None else f"{len(self._fd_to_key)} registered"
        return f"<portaio.PortaioSelector backend={self._poller.name} {state}>"


DefaultSelector = PortaioSelector
"""The portaio selector on the best backend here (``$PORTAIO_BACKEND`` overrides)."""
