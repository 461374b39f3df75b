"""Conformance: modify and unregister of a registration whose fd was closed (DESIGN items 4, 6, 14).

An fd closed without ``unregister`` leaves its registration behind, and the
next file opened may take its number.  ``modify`` of that registration is
one mistake, and the same error on every backend, raised at the call:
``OSError(EBADF)`` naming the fd and the backend, nothing changed.  epoll
refuses it by itself (``EPOLL_CTL_MOD`` finds no entry for the file the
number names now); poll, select and kqueue used to take it quietly and watch
the new file under the old registration, until the core compared the file's
identity recorded at register (one ``fstat`` per modify).  ``unregister`` of
it is quiet, forgets it and leaves the new file alone; the same open file
put back under its number (``dup2``) is no new file: ``modify`` works.
"""

from __future__ import annotations

import errno
import os
import pathlib
import re
import selectors
import sys
from collections.abc import Callable

import pytest

import portaio
from portaio.conformance.plugin import Closer, poll_while
from portaio.selectors import PortaioSelector

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="needs pipes, files and dup2() onto fds: Windows sockets are handles"
)

_KINDS = {
    # id: (what was registered, what took its number)
    "pipe_to_socket": ("pipe", "socket"),
    "pipe_to_file": ("pipe", "file"),  # epoll: EPOLL_CTL_MOD says EPERM, not ENOENT
    "file_to_socket": ("file", "socket"),  # an always-ready registration: no kernel entry anywhere
}


def _reused(
    poller: portaio.Poller, fds: Closer, tmp_path: pathlib.Path, old: str, new: str
) -> tuple[int, Callable[[], object] | None]:
    """Register *old* (data ``"old"``), put *new* under its number; the number and how to feed *new*.

    ``dup2`` closes the old file as it puts the new one under the number: a
    close without ``unregister`` and a reuse, with no moment between.  The
    feed is None for a regular file (always ready).
    """
    if old == "pipe":
        number, _ = fds.pipe()
    else:
        number = fds.add(os.open(tmp_path / "old", os.O_RDWR | os.O_CREAT))
    poller.register(number, portaio.READABLE, "old")
    if new == "socket":
        c, d = fds.socketpair()
        assert os.dup2(c.fileno(), number) == number
        return number, lambda: d.send(b"new file")
    f = fds.add(os.open(tmp_path / "new", os.O_RDWR | os.O_CREAT))
    assert os.dup2(f, number) == number
    return number, None


def _refused(poller: portaio.Poller, number: int, events: int = portaio.WRITABLE) -> None:
    """modify of the stale registration: epoll's error, on every backend."""
    with pytest.raises(OSError) as info:
        poller.modify(number, events, "hijack")
    err = info.value
    assert type(err) is OSError, f"{poller.backend}: {err!r}"
    assert err.errno == errno.EBADF, f"{poller.backend}: {err!r}"
    assert err.strerror == (
        f"portaio[{poller.backend}]: cannot modify fd {number}:"
        " it was closed (its number names another file now)"
    )


@pytest.mark.parametrize("kinds", list(_KINDS), ids=list(_KINDS))
def test_modify_of_a_closed_number_reused_by_a_new_file_is_ebadf(
    poller: portaio.Poller, fds: Closer, tmp_path: pathlib.Path, kinds: str
) -> None:
    number, feed = _reused(poller, fds, tmp_path, *_KINDS[kinds])
    _refused(poller, number)
    reg = poller.get(number)
    assert reg is not None and (reg.events, reg.data) == (portaio.READABLE, "old"), "modify changed it"
    _refused(poller, number, portaio.READABLE)  # the same again: nothing was taken over the first time
    assert poller.unregister(number).data == "old"  # quiet, as for any closed fd
    if feed is not None:
        feed()
    assert poller.poll(0) == [], "the new file is watched, but nobody registered it"
    poller.register(number, portaio.READABLE, "new")
    assert poller.poll(0) == [portaio.Event(number, portaio.READABLE, "new")]  # fed, or always ready
    poller.modify(number, portaio.READABLE, "new again")  # the new file's own registration
    assert poller.poll(0) == [portaio.Event(number, portaio.READABLE, "new again")]


def test_modify_of_a_closed_number_not_reused_is_ebadf(poller: portaio.Poller, fds: Closer) -> None:
    r, _ = fds.pipe()
    poller.register(r, portaio.READABLE, "old")
    os.close(r)
    with pytest.raises(OSError) as info:
        poller.modify(r, portaio.READABLE, "new")
    assert type(info.value) is OSError and info.value.errno == errno.EBADF
    assert re.match(rf"portaio\[{poller.backend}\]: .*fd {r}\b", str(info.value.strerror)), info.value
    assert poller.unregister(r).data == "old"


def test_modify_of_the_same_file_put_back_under_its_number_works(poller: portaio.Poller, fds: Closer) -> None:
    # The identity recorded at register is the open file's: a dup of it put
    # back under the number (close, dup2) is the same file, and epoll's entry
    # (keyed by file and number) is found again.
    a, b = fds.socketpair()
    number = a.fileno()
    poller.register(number, portaio.READABLE, "old")
    spare = fds.add(os.dup(number))
    os.close(number)
    assert os.dup2(spare, number) == number
    assert poller.modify(number, portaio.READABLE, "modified").data == "modified"
    assert poller.poll(0) == []
    b.send(b"x")
    assert poller.poll(1.0) == [portaio.Event(number, portaio.READABLE, "modified")]
    assert poller.unregister(number).data == "modified"


def test_stale_modify_and_unregister_leave_the_new_files_own_registration_alone(
    poller: portaio.Poller, fds: Closer
) -> None:
    # The file that took the number is registered under its own number too: a
    # modify of the stale registration must not reach it (epoll's entry for it
    # is keyed by that other number; poll and select would have put the
    # number in their sets; kqueue would have added knotes), and unregister
    # of the stale one must not remove it.
    r, _ = fds.pipe()
    poller.register(r, portaio.READABLE, "old")
    c, d = fds.socketpair()
    poller.register(c, portaio.READABLE, "c")
    assert os.dup2(c.fileno(), r) == r  # the pipe's number now names c's socket
    _refused(poller, r)
    assert poller.unregister(r).data == "old"
    d.send(b"x")
    assert poller.poll(1.0) == [portaio.Event(c.fileno(), portaio.READABLE, "c")]
    assert poller.poll(0) == [portaio.Event(c.fileno(), portaio.READABLE, "c")]  # level, still watched


def test_stale_modify_from_another_thread_while_a_poll_blocks(
    poller: portaio.Poller, fds: Closer, tmp_path: pathlib.Path
) -> None:
    # Every call may come from another thread while poll() blocks (DESIGN
    # item 16): the stale modify fails there, at the call, and the register
    # of the new file that follows reaches the blocked poll at once.
    number, feed = _reused(poller, fds, tmp_path, "pipe", "socket")
    assert feed is not None
    errors: list[int | None] = []

    def other_thread() -> None:
        try:
            poller.modify(number, portaio.READABLE, "hijack")
        except OSError as err:
            errors.append(err.errno)
        else:
            errors.append(None)
        poller.register(number, portaio.READABLE, "new")
        feed()

    events, took = poll_while(poller, 0.05, other_thread, 5.0)
    assert errors == [errno.EBADF]
    assert events == [portaio.Event(number, portaio.READABLE, "new")]
    assert took < 4.0, f"the blocked poll waited {took:.2f} s"


def test_selector_modify_of_a_reused_number_raises_and_forgets_the_key(
    backend: str, fds: Closer, tmp_path: pathlib.Path
) -> None:
    # As EpollSelector: a failed modify leaves the fd unregistered (it says
    # FileNotFoundError, the kernel's ENOENT; portaio says EBADF everywhere).
    sel = PortaioSelector(backend)
    try:
        r, _ = fds.pipe()
        sel.register(r, selectors.EVENT_READ, "old")
        c, d = fds.socketpair()
        assert os.dup2(c.fileno(), r) == r
        with pytest.raises(OSError) as info:
            sel.modify(r, selectors.EVENT_WRITE, "new")
        assert info.value.errno == errno.EBADF
        with pytest.raises(KeyError):
            sel.get_key(r)
        d.send(b"x")
        assert sel.select(0) == []
    finally:
        sel.close()
