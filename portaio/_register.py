"""Registering an fd with a :class:`~portaio.Poller`, and numbers reused after a close.

DESIGN item 6: an fd closed without ``unregister`` leaves its registration
behind, and the next file opened may get the same number.  Registering that
new file must work, while registering the *same* open file twice stays
:class:`~portaio.AlreadyRegistered`.  Who can tell the two apart:

* epoll: its entries are keyed by the open file *and* the number, so
  ``EPOLL_CTL_ADD`` says ``EEXIST`` for the same open file and succeeds for a
  new one (the old entry went with its file, or stays under that file's key
  while a dup holds it open).  No ``fstat`` is needed
  (``Backend.add_tells_same_file``);
* elsewhere (poll, select, kqueue, always-ready files) the core records the
  file's ``(st_dev, st_ino)`` at register (``Backend.add`` returns it where
  it made an ``fstat`` anyway) and compares it with what the number names now.

A stale registration is dropped without asking the kernel about the number
(epoll) or before the new file is added (the others, whose delete by number
reaches only the old entry); an event still queued for it carries its token,
unknown from then on, so it is never delivered.  ``Poller.register`` uses
these; ``_stale`` and ``_drop_stale`` are its methods (assigned in its class
body).

``Poller.modify`` of such a number is the mistake itself (the file it would
change is closed), and must not quietly start watching the new file under
the old registration.  epoll refuses it: ``EPOLL_CTL_MOD`` names the entry by
the file the number names *now*, finds none (``ENOENT``; ``EPERM`` if that
file cannot be polled at all, a regular file), and touches nothing.  poll,
select and kqueue would take it (a set keyed by number; a knote added anew),
so the core compares the identity recorded at register with one ``fstat`` of
the number (:func:`check_same_file`), never on epoll's kernel registrations.
Both say the same: ``OSError(EBADF)`` from :func:`reused`, the file named by
the registration being closed, the registration left for ``unregister``
(quiet) or for the ``register`` of the new file (which replaces it).  The
number closed and not reused is ``EBADF`` too (its message says so).  Equal
identities can be two opens of one inode (a path opened again): that modify
goes through, as ``register`` says ``AlreadyRegistered`` for it.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from ._errors import AlreadyRegistered
from ._types import Registration
from ._validate import file_identity

if TYPE_CHECKING:
    from ._poller import Poller

__all__ = ["OTHER_FILE_ERRNOS", "_Reg", "already", "check_same_file", "identity", "reused"]

OTHER_FILE_ERRNOS = frozenset((errno.ENOENT, errno.EPERM))
"""What a modify says where the backend tells a new file under the number by
itself (``Backend.add_tells_same_file``, epoll's ``EPOLL_CTL_MOD``): no entry
for the file the number names now, or a file it cannot watch at all."""


class _Reg:
    """The private record of one registration: the public view plus bookkeeping."""

    __slots__ = ("always", "armed", "data", "events", "fd", "ident", "keys", "token", "view")

    def __init__(self, fd: int, fileobj: Any, events: int, data: Any, token: int) -> None:
        self.fd = fd
        self.events = events
        self.data = data
        self.token = token
        self.armed = True  # False once a ONESHOT (or EDGE always-ready file) was reported
        self.keys: list[int] = []  # the cache keys of its events, dropped with it
        self.always = 0x3  # what it reports while always ready (AlwaysReady.ready)
        # The file's (st_dev, st_ino) at register, to tell a new file under a
        # reused number; None where the kernel's add tells (epoll).
        self.ident: tuple[int, int] | None = None
        self.view = Registration(fd, fileobj, events, data)


def _stale(self: Poller, old: _Reg) -> _Reg | None:
    """*old* holds a number asked for again: raise AlreadyRegistered unless provably stale.

    Where the file's identity was recorded, compare (``OSError(EBADF)`` if
    the number is closed): a new file replaces *old* at once, and None is
    returned.  Where it was not (epoll), the kernel tells: *old* is returned,
    the caller's add says ``EEXIST`` for the same open file and succeeds for
    a new one, and only then is *old* dropped.
    """
    if old.ident is None and old.fd not in self._files and self._add_tells_same_file:
        return old
    now = file_identity(old.fd, self.name)
    if now is None or now == old.ident:
        # The same file, or no way to tell (a socket on Windows): the error.
        raise already(self, old.fd)
    if not self._files.discard(old.fd):
        # poll and select keep their sets by number, kqueue's knotes went
        # with the close: the delete reaches the old entry only.
        self._backend.remove(old.fd, old.events, old.token)
    self._drop_stale(old)
    return None


def _drop_stale(self: Poller, stale: _Reg | None) -> None:
    """Forget a registration whose number a new file has taken (under the lock)."""
    if stale is None:
        return
    del self._regs[stale.fd]
    self._unbind(stale)
    self._forget(stale)


def already(self: Poller, fd: int) -> AlreadyRegistered:
    return AlreadyRegistered(f"portaio[{self.name}]: fd {fd} is already registered")


def identity(self: Poller, fd: int) -> tuple[int, int] | None:
    try:
        return file_identity(fd, self.name)
    except OSError:  # closed meanwhile by another thread: nothing to compare later
        return None


def reused(self: Poller, fd: int) -> OSError:
    """The error of a modify whose registered file was closed and its number given to another."""
    return OSError(
        errno.EBADF,
        f"portaio[{self.name}]: cannot modify fd {fd}: it was closed (its number names another file now)",
    )


def check_same_file(self: Poller, reg: _Reg) -> None:
    """Raise :func:`reused` unless *reg*'s number still names the file it was registered for.

    One ``fstat`` (``OSError(EBADF)`` naming fd and backend if the number is
    closed).  Where the identity could not be recorded (closed by another
    thread during ``register``) any file now under the number is a new one.
    On Windows both are None (a socket has no identity): nothing to compare.
    """
    if file_identity(reg.fd, self.name) != reg.ident:
        raise reused(self, reg.fd)
