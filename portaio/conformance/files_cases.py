"""Conformance: regular files and pollers inside pollers (DESIGN item 8).

POSIX says regular files are always readable and writable.  epoll refuses
them (EPERM), so portaio reports them itself; every backend shows the same,
in every mode.  A file with no poll support at all (``/dev/null``) is always
ready too.  An epoll fd can itself be registered.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import portaio
from portaio.conformance.plugin import Closer, nest_and_check

_RW = portaio.READABLE | portaio.WRITABLE


@pytest.fixture(params=["file", "directory", "devnull"])
def always_ready(request: pytest.FixtureRequest, tmp_path: Path, fds: Closer) -> tuple[int, int]:
    """An fd that ``poll(2)`` always reports ready, and the flags it can show."""
    if request.param == "file":
        fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    elif request.param == "directory":
        fd = os.open(tmp_path, os.O_RDONLY)
    else:
        fd = os.open(os.devnull, os.O_RDWR)
    fds.add(fd)
    return fd, _RW


def test_always_ready_level(poller: portaio.Poller, always_ready: tuple[int, int]) -> None:
    fd, flags = always_ready
    poller.register(fd, _RW, "f")
    for timeout in (0, None, 1.0):
        assert [(e.fd, e.events, e.data) for e in poller.poll(timeout)] == [(fd, flags, "f")]
    poller.modify(fd, portaio.READABLE, "r")
    assert [(e.fd, e.events, e.data) for e in poller.poll(0)] == [(fd, portaio.READABLE, "r")]
    poller.unregister(fd)
    assert poller.poll(0) == []


def test_always_ready_oneshot(poller: portaio.Poller, always_ready: tuple[int, int]) -> None:
    fd, _ = always_ready
    poller.register(fd, portaio.READABLE | portaio.ONESHOT, 1)
    assert [e.data for e in poller.poll(0)] == [1]
    assert poller.poll(0) == []
    assert poller.poll(0.01) == []
    poller.modify(fd, portaio.READABLE | portaio.ONESHOT, 2)
    assert [e.data for e in poller.poll(0)] == [2]
    assert poller.poll(0) == []


def test_always_ready_edge(
    poller: portaio.Poller, always_ready: tuple[int, int], capabilities: portaio.Capabilities
) -> None:
    fd, _ = always_ready
    if not capabilities.edge:
        with pytest.raises(portaio.Unsupported, match=f"{poller.backend}.*fd {fd}"):
            poller.register(fd, portaio.READABLE | portaio.EDGE)
        assert fd not in poller
        return
    poller.register(fd, portaio.READABLE | portaio.EDGE, "e")
    assert [e.data for e in poller.poll(0)] == ["e"]  # became ready once, stays ready
    assert poller.poll(0) == []
    assert poller.poll(0.01) == []


def test_file_with_sockets_and_nothing_else_ready(
    poller: portaio.Poller, fds: Closer, tmp_path: Path
) -> None:
    f = fds.add(os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT))
    a, b = fds.socketpair()
    poller.register(f, portaio.READABLE, "file")
    poller.register(a, portaio.READABLE, "sock")
    assert [e.data for e in poller.poll(0)] == ["file"]
    b.send(b"x")
    got: dict[str, int] = {}
    for _ in range(3):
        for e in poller.poll(1.0):
            got[e.data] = e.events
    assert got == {"file": portaio.READABLE, "sock": portaio.READABLE}


@pytest.fixture(params=["plain", "timer-pending"])
def poller_variant(request: pytest.FixtureRequest, poller: portaio.Poller) -> portaio.Poller:
    """The poller as is, or with a far timer pending (poll() then also serves timers)."""
    if request.param == "timer-pending":
        poller.add_timer(3600.0)
    return poller


def test_regular_files_share_max_events_fairly(
    poller_variant: portaio.Poller, fds: Closer, tmp_path: Path
) -> None:
    poller = poller_variant
    files = [fds.add(os.open(tmp_path / f"f{i}", os.O_RDWR | os.O_CREAT)) for i in range(5)]
    for fd in files:
        poller.register(fd, portaio.READABLE, fd)
    seen: set[int] = set()
    for _ in range(3):  # ceil(5 / 2) calls reach every file
        batch = poller.poll(0, max_events=2)
        assert len(batch) == 2
        seen |= {e.data for e in batch}
    assert seen == set(files)


def test_regular_file_does_not_starve_sockets(
    poller_variant: portaio.Poller, fds: Closer, tmp_path: Path
) -> None:
    poller = poller_variant
    f = fds.add(os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT))
    a, b = fds.socketpair()
    poller.register(f, portaio.READABLE, "file")
    poller.register(a, portaio.READABLE, "sock")
    b.send(b"x")
    seen = [e.data for _ in range(2) for e in poller.poll(1.0, max_events=1)]
    assert sorted(seen) == ["file", "sock"]


def test_epoll_fd_registered_in_any_poller(poller: portaio.Poller, fds: Closer) -> None:
    if "epoll" not in portaio.available_backends():
        pytest.skip("no epoll backend on this machine to nest")
    with portaio.Poller("epoll") as inner:
        nest_and_check(poller, inner, fds)


def test_poller_without_fd_cannot_be_registered(backend: str, poller: portaio.Poller) -> None:
    with portaio.Poller(backend) as other:
        if other.fileno() >= 0:
            poller.register(other, portaio.READABLE)
            assert poller.poll(0) == []
        else:
            with pytest.raises(ValueError, match="fd -1"):
                poller.register(other, portaio.READABLE)


def test_regular_files_do_not_starve_timers(poller: portaio.Poller, fds: Closer, tmp_path: Path) -> None:
    files = [fds.add(os.open(tmp_path / f"f{i}", os.O_RDWR | os.O_CREAT)) for i in range(3)]
    for fd in files:
        poller.register(fd, portaio.READABLE, fd)
    poller.add_timer(0.0, data="timer")
    seen = [e.data for _ in range(4) for e in poller.poll(1.0, max_events=1)]
    # One event a poll: the sources take turns (item 17), so in four polls
    # the due timer and each always-ready file come exactly once.
    assert sorted(map(str, seen)) == sorted(["timer", *map(str, files)]), seen
    poller.add_timer(0.0, data="again")
    # With room for all, the due timer is listed before the files (item 17).
    again = [e.data for e in poller.poll(1.0)]
    assert again[0] == "again" and sorted(again[1:]) == sorted(files), again


@pytest.mark.parametrize(("files", "sockets"), [(1, 3), (3, 1), (2, 2)])
def test_max_events_bounds_batches_mixing_files_and_kernel_events(
    poller: portaio.Poller, fds: Closer, tmp_path: Path, files: int, sockets: int
) -> None:
    """Always-ready files and kernel events share one max_events, whichever goes first."""
    for i in range(files):
        poller.register(
            fds.add(os.open(tmp_path / f"f{i}", os.O_RDWR | os.O_CREAT)), portaio.READABLE, f"f{i}"
        )
    for i in range(sockets):
        a, b = fds.socketpair()
        poller.register(a, portaio.READABLE, f"s{i}")
        b.send(b"x")
    seen: set[str] = set()
    for _ in range(6):
        batch = poller.poll(1.0, max_events=2)
        assert len(batch) == 2, batch
        seen.update(e.data for e in batch)
    assert seen == {f"f{i}" for i in range(files)} | {f"s{i}" for i in range(sockets)}


def test_a_spent_oneshot_file_does_not_hide_the_files_after_it(
    poller: portaio.Poller, fds: Closer, tmp_path: Path
) -> None:
    once = fds.add(os.open(tmp_path / "once", os.O_RDWR | os.O_CREAT))
    level = fds.add(os.open(tmp_path / "level", os.O_RDWR | os.O_CREAT))
    poller.register(once, portaio.READABLE | portaio.ONESHOT, "once")
    poller.register(level, portaio.READABLE, "level")
    assert sorted(e.data for e in poller.poll(0)) == ["level", "once"]
    for _ in range(3):  # the spent one is skipped, the level one still reported each time
        assert [e.data for e in poller.poll(0)] == ["level"]
    poller.unregister(once)
    poller.unregister(level)
