"""Conformance: the public calls around a registration (DESIGN items 4, 6 and 14).

``replace_data`` (the data-only change the selectors adapter makes), ``get``
and ``repr``; the error every call taking a file raises, the same type on
every backend, at the call, naming the backend (``portaio[<backend>]``) and
the fd; timeouts given as subclasses of ``float`` or ``int`` (a numpy
``float64`` is one); the fds a poller watches for itself leave its kernel
set with the watch; and the selectors adapter's refusal of regular files.
"""

from __future__ import annotations

import errno
import gc
import os
import re
import selectors
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import portaio
from portaio.backends._base import TOKEN_MAX
from portaio.conformance.busyloop_cases import assert_sleeps
from portaio.conformance.errors_cases import _FileNo, _tag
from portaio.conformance.plugin import Closer, open_fds
from portaio.selectors import PortaioSelector


# ------------------------------------------------------------ replace_data
def test_replace_data_changes_the_data_only(poller: portaio.Poller, fds: Closer) -> None:
    a, b = fds.socketpair()
    fd = a.fileno()
    poller.register(a, portaio.READABLE, "old")
    b.send(b"x")
    assert poller.poll(1.0) == [portaio.Event(fd, portaio.READABLE, "old")]
    view = poller.replace_data(a, "new")
    assert (view.fd, view.fileobj, view.events, view.data) == (fd, a, portaio.READABLE, "new")
    got = poller.get(a)
    assert got is not None and (got.fd, got.fileobj, got.events, got.data) == (fd, a, portaio.READABLE, "new")
    # The event reported before carried the old data: the next one has the new.
    assert poller.poll(1.0) == [portaio.Event(fd, portaio.READABLE, "new")]
    # By number, the registered file object stays the one registered.
    view = poller.replace_data(fd, "newer")
    assert (view.fd, view.fileobj, view.data) == (fd, a, "newer")
    assert poller.poll(0) == [portaio.Event(fd, portaio.READABLE, "newer")]
    assert [r.data for r in poller.registrations()] == ["newer"]


def test_replace_data_keeps_a_spent_oneshot_spent(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities
) -> None:
    assert capabilities.oneshot  # pinned for every backend
    a, b = fds.socketpair()
    fd = a.fileno()
    poller.register(a, portaio.READABLE | portaio.ONESHOT, "old")
    b.send(b"x")
    assert poller.poll(1.0) == [portaio.Event(fd, portaio.READABLE, "old")]
    view = poller.replace_data(a, "new")
    assert view.events == portaio.READABLE | portaio.ONESHOT
    assert poller.poll(0) == []  # no re-arming: only modify() does that
    poller.modify(a, portaio.READABLE | portaio.ONESHOT, view.data)
    assert poller.poll(1.0) == [portaio.Event(fd, portaio.READABLE, "new")]


def test_replace_data_of_an_unregistered_fd(poller: portaio.Poller, fds: Closer) -> None:
    a, _ = fds.socketpair()
    fd = a.fileno()
    with pytest.raises(portaio.NotRegistered, match=rf"{_tag(poller)}: fd {fd} is not registered"):
        poller.replace_data(a, "x")
    poller.register(a, portaio.READABLE, "kept")
    poller.unregister(a)
    with pytest.raises(KeyError, match=rf"{_tag(poller)}: fd {fd} "):
        poller.replace_data(fd, "x")
    assert len(poller) == 0 and poller.get(a) is None


# ------------------------------------------------------------------- get
def test_get_gives_the_registration_or_none(poller: portaio.Poller, fds: Closer) -> None:
    a, _ = fds.socketpair()
    c, _ = fds.socketpair()
    assert poller.get(a) is None and poller.get(a.fileno()) is None
    poller.register(a, portaio.WRITABLE, "a")
    for key in (a, a.fileno()):
        got = poller.get(key)
        assert got is not None and (got.fd, got.fileobj, got.events, got.data) == (
            a.fileno(),
            a,
            portaio.WRITABLE,
            "a",
        )
    assert poller.get(c) is None
    poller.unregister(a)
    assert poller.get(a) is None


# ------------------------------------------ every call taking a file: errors
_BAD_FILES: list[tuple[Any, type[Exception], str | None]] = [
    (-1, ValueError, "fd -1"),
    (2**40, ValueError, f"fd {2**40}"),
    ("3", TypeError, None),
    (None, TypeError, None),
    (_FileNo(-7), ValueError, "fd -7"),
    (_FileNo(OSError(errno.EBADF, "closed")), ValueError, None),
]

_CALLS: dict[str, Callable[[portaio.Poller, Any], object]] = {
    "register": lambda p, f: p.register(f, portaio.READABLE),
    "modify": lambda p, f: p.modify(f, portaio.READABLE),
    "unregister": lambda p, f: p.unregister(f),
    "replace_data": lambda p, f: p.replace_data(f, "data"),
    "get": lambda p, f: p.get(f),
}


@pytest.mark.parametrize("call", list(_CALLS))
def test_every_call_names_the_backend_and_the_fd(poller: portaio.Poller, fds: Closer, call: str) -> None:
    do = _CALLS[call]
    for fileobj, exc, fd_text in _BAD_FILES:
        with pytest.raises(exc, match=_tag(poller)) as info:
            do(poller, fileobj)
        if fd_text is not None:
            assert fd_text in str(info.value), (call, fileobj)
    assert len(poller) == 0
    a, _ = fds.socketpair()
    if call != "register":
        poller.register(a, portaio.READABLE, "r")
    poller.close()
    with pytest.raises(
        portaio.PollerClosed, match=rf"{_tag(poller)}: the poller is closed \(fd {a.fileno()}\)$"
    ):
        do(poller, a)


# ------------------------------------------------------------------ repr
def test_repr_names_the_backend_and_the_state(poller: portaio.Poller, fds: Closer) -> None:
    a, _ = fds.socketpair()
    c, _ = fds.socketpair()
    backend = poller.backend
    assert poller.closed is False
    assert repr(poller) == f"<portaio.Poller backend={backend} 0 registered>"
    poller.register(a, portaio.READABLE)
    poller.register(c, portaio.READABLE)
    assert repr(poller) == f"<portaio.Poller backend={backend} 2 registered>"
    poller.close()
    assert repr(poller) == f"<portaio.Poller backend={backend} closed>"
    assert poller.closed is True


# ------------------------------------------------------- timeout subclasses
class _Seconds(float):
    """A float subclass, as numpy's ``float64`` is."""


class _Count(int):
    """An int subclass (an ``IntEnum`` member, say)."""


def test_timeout_of_a_number_subclass(poller: portaio.Poller, fds: Closer) -> None:
    a, _ = fds.socketpair()
    assert poller.poll(_Seconds(0.0)) == [] and poller.poll(_Count(0)) == []
    assert poller.poll(_Seconds(0.001)) == []
    poller.register(a, portaio.WRITABLE, "w")
    for timeout in (_Seconds(0.0), _Seconds(0.5), _Count(0), _Count(1)):
        assert poller.poll(timeout) == [portaio.Event(a.fileno(), portaio.WRITABLE, "w")], timeout
    bad: Any
    for bad, exc, text in (
        (_Seconds(-0.5), ValueError, "timeout -0.5 is negative"),
        (_Count(-1), ValueError, "timeout -1.0 is negative"),
        ("0.5", TypeError, "got str"),
        ([], TypeError, "got list"),
    ):
        with pytest.raises(exc, match=rf"{_tag(poller)}: .*{re.escape(text)}"):
            poller.poll(bad)


# ------------------------------------------ internal fds leave the kernel set
def test_a_removed_signal_watch_leaves_no_fd_in_the_kernel_set(poller: portaio.Poller, fds: Closer) -> None:
    # The signal source's fds are closed when the last watch goes; unless the
    # poller also takes them out of its kernel set, poll and select keep
    # asking about their numbers, which the next files opened get: the poller
    # would read (drain) a user's socket there, or spin on it.
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("Windows reuses socket handles in no predictable order")
    watch = poller.add_signal(signal.SIGUSR1)
    watch.remove()
    ends: list[socket.socket] = []
    for _ in range(4):  # the lowest free numbers: the source's among them
        ends.extend(fds.socketpair())
    for end in ends:
        end.send(b"x")
    assert_sleeps(poller, 0.2)
    assert [end.recv(2) for end in ends] == [b"x"] * len(ends)


# ------------------------------------- the selectors adapter: regular files
@pytest.fixture
def regular_file() -> Iterator[int]:
    fd, path = tempfile.mkstemp(prefix="portaio-")
    try:
        os.unlink(path)
        yield fd
    finally:
        os.close(fd)


def test_selector_refuses_regular_files_on_every_backend(
    backend: str, regular_file: int, fds: Closer
) -> None:
    # As EpollSelector: the regular file is refused (EPERM), on every backend,
    # whereas a closed fd is EBADF, never taken for a regular file.
    sel = PortaioSelector(backend)
    try:
        with pytest.raises(PermissionError, match=rf"portaio\[{backend}\]: fd {regular_file} ") as info:
            sel.register(regular_file, selectors.EVENT_READ)
        assert info.value.errno == errno.EPERM
        r, w = os.pipe()
        os.close(r)
        os.close(w)
        with pytest.raises(OSError, match=rf"portaio\[{backend}\].*fd {r}") as closed:
            sel.register(r, selectors.EVENT_READ)
        assert closed.value.errno == errno.EBADF
        assert sel.get_map() == {}
    finally:
        sel.close()


def test_signal_watch_cycles_leak_no_memory(poller: portaio.Poller) -> None:
    # Each watch's internal token and handler must go with it: a program that
    # watches and unwatches a signal for every child it runs would grow.
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("SIGUSR1 is POSIX: Windows has none")
    signum = signal.SIGUSR1
    tracemalloc = pytest.importorskip("tracemalloc", reason="no tracemalloc here (PyPy): memory not traced")
    if not hasattr(tracemalloc, "get_traced_memory"):  # pragma: no cover
        pytest.skip("this interpreter's tracemalloc traces nothing (PyPy)")

    def cycles(count: int) -> None:
        for _ in range(count):
            poller.add_signal(signum).remove()

    cycles(10)  # caches warmed up
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cycles(40)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # ~5 bytes a cycle measured (noise); a handler kept is ~600.
    assert grown < 40 * 100, f"{poller.backend}: {grown} bytes kept by 40 add_signal/remove cycles"


def test_unregister_on_a_closed_poller_names_no_bogus_fd(poller: portaio.Poller, fds: Closer) -> None:
    # unregister() checks the poller first: a file object closed meanwhile
    # (its fileno() raises) has no number to name.
    a, _ = fds.socketpair()
    poller.register(a, portaio.READABLE)
    poller.close()
    a.close()
    with pytest.raises(portaio.PollerClosed) as info:
        poller.unregister(a)
    assert str(info.value) == f"portaio[{poller.backend}]: the poller is closed"


def test_a_spent_oneshot_regular_file_does_not_spin(
    poller: portaio.Poller, regular_file: int, capabilities: portaio.Capabilities
) -> None:
    # Reported always ready by the poller itself where the kernel refuses it
    # (epoll): once reported, a ONESHOT must leave the wait free to sleep.
    assert capabilities.oneshot  # pinned for every backend
    poller.register(regular_file, portaio.READABLE | portaio.ONESHOT, "file")
    assert poller.poll(1.0) == [portaio.Event(regular_file, portaio.READABLE, "file")]
    assert_sleeps(poller, 0.2)
    poller.modify(regular_file, portaio.READABLE | portaio.ONESHOT, "again")
    assert poller.poll(1.0) == [portaio.Event(regular_file, portaio.READABLE, "again")]


# ----------------------------------------------- what each refusal says
def _first_refused(mask: int, caps: portaio.Capabilities) -> str | None:
    # check_events' order: the first mode or flag the backend lacks is named.
    for flag, supported in (
        (portaio.EDGE, caps.edge),
        (portaio.ONESHOT, caps.oneshot),
        (portaio.EXCLUSIVE, caps.exclusive),
        (portaio.PRIORITY, caps.priority),
        (portaio.RDHUP, caps.rdhup),
    ):
        if mask & flag and not supported:
            return flag.name
    return None


def test_refusals_say_exactly_what_was_refused(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities
) -> None:
    a, _ = fds.socketpair()
    fd = a.fileno()
    name = poller.backend
    with pytest.raises(ValueError) as info:
        poller.register(a, 0)
    assert str(info.value) == (
        f"portaio[{name}]: fd {fd}: events 0x0 ask for no readiness (READABLE, WRITABLE, PRIORITY or RDHUP)"
    )
    for mask, combination in (
        (portaio.READABLE | portaio.EXCLUSIVE | portaio.ONESHOT, "EXCLUSIVE with ONESHOT"),
        (portaio.READABLE | portaio.EXCLUSIVE | portaio.PRIORITY, "EXCLUSIVE with PRIORITY or RDHUP"),
        (portaio.READABLE | portaio.EXCLUSIVE | portaio.RDHUP, "EXCLUSIVE with PRIORITY or RDHUP"),
    ):
        lacking = _first_refused(mask, capabilities)
        feature, detail = (
            (combination, f"fd {fd}; the kernel refuses it") if lacking is None else (lacking, f"fd {fd}")
        )
        with pytest.raises(portaio.Unsupported) as refused:
            poller.register(a, mask)
        assert refused.value.feature == feature
        assert (
            str(refused.value)
            == f"portaio[{name}]: {feature} is not supported by the {name} backend ({detail})"
        )
    for bad, kind in (("3", "str"), (1.5, "float"), (b"3", "bytes")):
        with pytest.raises(TypeError) as wrong:
            poller.register(bad, portaio.READABLE)
        assert (
            str(wrong.value) == f"portaio[{name}]: expected an int fd or an object with fileno(), got {kind}"
        )
    assert len(poller) == 0
    # fd 0 is a valid number (whatever it names here): asked about, not refused.
    assert poller.get(0) is None and 0 not in poller
    poller.close()
    for timeout in (0, None, 0.0, 1):
        with pytest.raises(portaio.PollerClosed) as closed:
            poller.poll(timeout)
        assert str(closed.value) == f"portaio[{name}]: poll() on a closed poller"


def test_the_highest_fd_a_backend_takes_is_taken(
    poller: portaio.Poller, fds: Closer, capabilities: portaio.Capabilities
) -> None:
    top = capabilities.max_fd
    if top is None:
        pytest.skip(f"{poller.backend} has no fd limit of its own")
    if sys.platform != "win32":
        import resource

        if resource.getrlimit(resource.RLIMIT_NOFILE)[0] <= top:
            pytest.skip(f"the fd limit (RLIMIT_NOFILE) is not above {top}")
    try:
        os.fstat(top)
        pytest.fail(f"fd {top} unexpectedly open in the test process")
    except OSError:
        pass
    a, _ = fds.socketpair()
    assert os.dup2(a.fileno(), top) == top
    fds.add(top)
    poller.register(top, portaio.WRITABLE, "top")
    assert poller.poll(0) == [portaio.Event(top, portaio.WRITABLE, "top")]


def test_close_in_another_thread_of_a_poller_watching_a_signal(backend: str) -> None:
    # Only the main thread may restore a signal's handler: a close elsewhere
    # succeeds at once and leaves that to the main thread's next portaio call.
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("SIGUSR2 is POSIX: Windows has none")
    before = signal.getsignal(signal.SIGUSR2)
    poller = portaio.Poller(backend)
    watch = poller.add_signal(signal.SIGUSR2, "w")
    errors: list[BaseException] = []

    def close() -> None:
        try:
            poller.close()
        except BaseException as err:  # reported below, in the test's thread
            errors.append(err)

    thread = threading.Thread(target=close)
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and errors == [] and poller.closed and not watch.active
    with portaio.Poller(backend):  # a portaio call in the main thread: the restoration runs
        pass
    assert signal.getsignal(signal.SIGUSR2) == before


# ------------------------------------------------------------ regular files
_KERNEL_REFUSES_FILES = {"epoll", "kqueue"}
"""Backends whose kernel refuses a regular file (epoll: EPERM; kqueue: no usable filter)."""


def test_regular_file_refused_without_always_ready_emulation(backend: str, regular_file: int) -> None:
    # Poller(always_ready_files=False), as the selectors adapter makes it:
    # where the kernel refuses the file, PermissionError (EPERM) naming it.
    with portaio.Poller(backend, always_ready_files=False) as poller:
        if backend in _KERNEL_REFUSES_FILES:
            with pytest.raises(PermissionError) as info:
                poller.register(regular_file, portaio.READABLE, "file")
            assert info.value.errno == errno.EPERM
            assert re.match(rf"portaio\[{backend}\]: fd {regular_file} ", str(info.value.strerror))
            assert regular_file not in poller and poller.poll(0) == []
        else:
            poller.register(regular_file, portaio.READABLE, "file")
            assert poller.poll(0) == [portaio.Event(regular_file, portaio.READABLE, "file")]


def test_regular_file_registered_twice_is_already_registered(
    poller: portaio.Poller, regular_file: int
) -> None:
    poller.register(regular_file, portaio.READABLE, "first")
    with pytest.raises(
        portaio.AlreadyRegistered, match=rf"{_tag(poller)}: fd {regular_file} is already registered"
    ):
        poller.register(regular_file, portaio.WRITABLE, "second")
    assert poller.get(regular_file).data == "first"  # type: ignore[union-attr]
    assert poller.poll(0) == [portaio.Event(regular_file, portaio.READABLE, "first")]


# --------------------------------------------------- a Poller() that fails
def test_a_poller_that_runs_out_of_fds_leaves_none_open(backend: str) -> None:
    # Poller() opens its kernel object, waker and timer in turn: whichever
    # open fails (EMFILE here), the ones made before it are closed again.
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("RLIMIT_NOFILE is POSIX: Windows sockets are handles")
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = open_fds()
    lowest = min(set(range(len(before) + 1)) - before)  # the number the next open takes
    failures = []
    try:
        for room in range(8):
            resource.setrlimit(resource.RLIMIT_NOFILE, (lowest + room, hard))
            try:
                poller = portaio.Poller(backend)
            except OSError as err:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
                failures.append(err.errno)
                assert open_fds() == before, f"{backend}: Poller() failing with {err!r} left fds open"
                continue
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            poller.close()
            break
        else:
            pytest.fail(f"{backend}: Poller() failed with 8 fds free")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert failures and set(failures) == {errno.EMFILE}, failures
    assert open_fds() == before


# ---------------------------------------------------------- token wrap
def test_a_wrap_skips_the_last_token_while_it_is_live(poller: portaio.Poller, fds: Closer) -> None:
    # Poller._set_next_token_for_tests is the documented test hook for the
    # wrap at TOKEN_MAX (see sources_cases): the last token live, the next one
    # drawn from it must wrap to the lowest free token, never past the key's
    # token bits (a larger token would be cut short by the C waits).
    last = TOKEN_MAX
    poller._set_next_token_for_tests(last)
    a, a_peer = fds.socketpair()
    poller.register(a, portaio.READABLE, "last")
    poller._set_next_token_for_tests(last)
    b, b_peer = fds.socketpair()
    poller.register(b, portaio.READABLE, "after")
    for sock, peer, name in ((a, a_peer, "last"), (b, b_peer, "after")):
        peer.send(b"x")
        assert poller.poll(1) == [portaio.Event(sock.fileno(), portaio.READABLE, name)]
        sock.recv(1)
    assert poller.poll(0) == []
