"""An autouse guard: every test leaves the process as it found it.

After each test (and after its fixtures are torn down) the guard compares
what a poller could leak behind its user's back with what was there before:

* the disposition of every signal (``signal.getsignal``);
* the main thread's signal mask;
* Python's wakeup fd (``signal.set_wakeup_fd``);
* the process's fd table: every open fd number and the file it names
  (device and inode), so an fd closed and reopened as something else shows too;
* a running ``ITIMER_REAL`` (pytest-timeout's guard) is still running.

A leak is reported on the test that made it, not on a later one that trips
over it.  The guard puts back what it can (handlers, mask, wakeup fd) so the
next test starts clean; it never closes an fd it did not open.

A test that changes one of these on purpose says so::

    @pytest.mark.changes_process_state("fds", reason="the module-scoped server opens its listener here")

with any of ``"handlers"``, ``"mask"``, ``"wakeup_fd"``, ``"fds"``, ``"itimer"``.
"""

from __future__ import annotations

import gc
import os
import signal
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = ["ProcessState", "process_state"]

KINDS = ("handlers", "mask", "wakeup_fd", "fds", "itimer")
_UNCATCHABLE = {getattr(signal, name) for name in ("SIGKILL", "SIGSTOP") if hasattr(signal, name)}


@dataclass
class ProcessState:
    """What the guard compares before and after a test."""

    handlers: dict[int, Any] = field(default_factory=dict)
    mask: frozenset[int] = frozenset()
    wakeup_fd: int = -1
    fds: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    itimer_running: bool = False


def _fd_numbers() -> list[int]:
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            return [int(name) for name in os.listdir(directory)]
        except (FileNotFoundError, NotADirectoryError):
            continue
    return list(range(1024))  # pragma: no cover - no fd directory at all


def _fd_table() -> dict[int, tuple[int, int, int]]:
    table: dict[int, tuple[int, int, int]] = {}
    for fd in _fd_numbers():
        try:
            st = os.fstat(fd)
        except OSError:
            continue  # the listing's own directory fd, closed by now
        table[fd] = (st.st_dev, st.st_ino, stat.S_IFMT(st.st_mode))
    return table


def _read_wakeup_fd() -> int:
    """Python's wakeup fd, left as it was (-1 if none)."""
    current = signal.set_wakeup_fd(-1)
    if current != -1:
        signal.set_wakeup_fd(current)
    return current


def process_state() -> ProcessState:
    """Read the state the guard compares (from the main thread)."""
    state = ProcessState(fds=_fd_table())
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        return state
    for signum in sorted(signal.valid_signals()):
        if signum in _UNCATCHABLE:
            continue
        try:
            state.handlers[signum] = signal.getsignal(signum)
        except (OSError, ValueError):  # pragma: no cover - reserved signals
            continue
    if sys.platform != "win32":  # no signal masks on Windows
        state.mask = frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, []))
    state.wakeup_fd = _read_wakeup_fd()
    if sys.platform != "win32":  # no itimers on Windows
        state.itimer_running = signal.getitimer(signal.ITIMER_REAL)[0] > 0
    return state


def _describe_fd(fd: int) -> str:
    try:
        return f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}"
    except OSError:
        return str(fd)


def compare(before: ProcessState, after: ProcessState, failed: bool = False) -> dict[str, str]:
    """What changed, by kind, in words; empty when nothing did.

    After a *failed* test pytest-timeout has already stopped its SIGALRM
    guard (its ``pytest_exception_interact`` hook), so SIGALRM and the
    itimer are not compared then.
    """
    problems: dict[str, str] = {}
    alarm = getattr(signal, "SIGALRM", None)
    changed = {
        signal.Signals(n).name if n in signal.Signals._value2member_map_ else str(n): (
            before.handlers.get(n),
            after.handlers.get(n),
        )
        for n in set(before.handlers) | set(after.handlers)
        if before.handlers.get(n) != after.handlers.get(n) and not (failed and n == alarm)
    }
    if changed:
        problems["handlers"] = f"signal handlers changed (before, after): {changed}"
    if before.mask != after.mask:
        added = sorted(signal.Signals(n).name for n in after.mask - before.mask)
        removed = sorted(signal.Signals(n).name for n in before.mask - after.mask)
        problems["mask"] = f"signal mask changed: now blocked {added}, now unblocked {removed}"
    if before.wakeup_fd != after.wakeup_fd:
        problems["wakeup_fd"] = f"wakeup fd changed from {before.wakeup_fd} to {after.wakeup_fd}"
    opened = sorted(set(after.fds) - set(before.fds))
    closed = sorted(set(before.fds) - set(after.fds))
    replaced = sorted(fd for fd in set(before.fds) & set(after.fds) if before.fds[fd] != after.fds[fd])
    if opened or closed or replaced:
        problems["fds"] = (
            f"fd table changed: left open {[_describe_fd(fd) for fd in opened]}, "
            f"closed {closed}, now naming another file {[_describe_fd(fd) for fd in replaced]}"
        )
    if before.itimer_running and not after.itimer_running and not failed:
        problems["itimer"] = "ITIMER_REAL (pytest-timeout's guard) was cancelled"
    return problems


def _restore(before: ProcessState, after: ProcessState, failed: bool) -> None:
    """Put back handlers, mask and wakeup fd, so the next test starts clean."""
    alarm = getattr(signal, "SIGALRM", None)
    for signum, handler in before.handlers.items():
        if failed and signum == alarm:
            continue  # pytest-timeout's own teardown, not the test's doing
        if after.handlers.get(signum) != handler and handler is not None:
            try:
                signal.signal(signum, handler)
            except (OSError, ValueError, TypeError):  # pragma: no cover
                pass
    if before.mask != after.mask and sys.platform != "win32":
        signal.pthread_sigmask(signal.SIG_SETMASK, before.mask)
    if before.wakeup_fd != after.wakeup_fd:
        signal.set_wakeup_fd(before.wakeup_fd)


def pytest_configure(config: Any) -> None:
    """Register the marker that exempts a test from parts of the guard."""
    config.addinivalue_line(
        "markers",
        "changes_process_state(*kinds, reason): the test changes handlers, mask, wakeup_fd, fds "
        "or itimer on purpose (the guard of portaio.conformance.guard says why not to check)",
    )


_FAILED = pytest.StashKey[bool]()


def pytest_sessionstart(session: Any) -> None:
    """On libkqueue, make its process-wide fds before any test counts fds.

    libkqueue opens an epoll fd and an eventfd of its own (its monitoring
    thread's) with the first kqueue of a process and keeps them for good:
    without this, whichever test makes the first kqueue would be blamed for two
    "leaked" fds that belong to the library, not to that test or to portaio.
    """
    from .libkqueue import _is_libkqueue

    if _is_libkqueue():
        import portaio

        portaio.Poller("kqueue").close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember that a test failed (its setup or call): see :func:`compare`."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and report.when in ("setup", "call"):
        item.stash[_FAILED] = True


@pytest.fixture(autouse=True)
def _process_state_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves signal handlers, mask, wakeup fd or fds changed."""
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        yield
        return
    exempt: set[str] = set()
    for marker in request.node.iter_markers("changes_process_state"):
        unknown = set(marker.args) - set(KINDS)
        if unknown or not marker.kwargs.get("reason"):
            pytest.fail(f"changes_process_state needs kinds from {KINDS} and a reason; got {marker}")
        exempt.update(marker.args)
    before = process_state()
    yield
    after = process_state()
    failed = request.node.stash.get(_FAILED, False)
    problems = {kind: text for kind, text in compare(before, after, failed).items() if kind not in exempt}
    if "fds" in problems:
        # Was it garbage waiting for the cyclic collector?  Still a leak (PyPy
        # may never run it; COMMON rule: close, never rely on the GC), but say
        # so, and collect it now so the next test does not see it go.
        gc.collect()
        again = compare(before, process_state(), failed).get("fds")
        if again is None:
            problems["fds"] += " (the garbage collector closed them: close them explicitly)"
    _restore(before, after, failed)
    if problems:
        pytest.fail(
            "the test left the process changed (mark it changes_process_state(kind, reason=...) "
            "if on purpose):\n  " + "\n  ".join(problems.values()),
            pytrace=False,
        )
