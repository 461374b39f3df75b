"""The repository's tests use the fixtures that ship with the conformance suite.

Two guards make the test command unable to report a green run that tested
less than it seems to:

* a compiled backend this platform should have (epoll on Linux, kqueue on
  macOS and the BSDs) that is missing stops the run at once, with the command
  that fixes it.  The usual cause is ``python -m pytest`` from a clone: it
  imports the uncompiled source tree, and every epoll test would be skipped;
* a backend that cannot run here (kqueue on Linux without libkqueue, say) is
  summarised as one skip line with its reason instead of one line per test.

Tests marked ``qemu_cannot(reason)`` are skipped, with that reason, only when
a user-mode emulator runs this userland (``tools/foreign-arch.sh``): the
machine ``uname`` reports, which qemu-user translates, then differs from the
kernel's own ``/proc/sys/kernel/arch``, which it does not.  Natively the two
agree (or are a 32-bit userland the kernel runs itself), so the mark can never
hide a failure on real hardware.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Generator
from typing import Any

import pytest

import portaio

# The cases live in portaio.conformance and are imported by the shims here:
# have pytest rewrite their asserts so that failures show the compared values.
pytest.register_assert_rewrite("portaio.conformance")

pytest_plugins = ["portaio.conformance.plugin"]

INSTALL_AND_TEST = "python3 -m venv .venv && .venv/bin/pip install -q '.[test]' && .venv/bin/pytest"
"""The README's test line: installs the compiled build, then runs the suite against it."""

BUILD_IN_PLACE = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest"
)
"""The alternative: an editable install compiles the modules into the source tree itself."""


def expected_backends(platform: str = sys.platform) -> tuple[str, ...]:
    """The compiled backends a build on *platform* must have (its native mechanism)."""
    if platform.startswith("linux"):
        return ("epoll",)
    if platform == "darwin" or "bsd" in platform or platform.startswith("dragonfly"):
        return ("kqueue",)
    return ()


def missing_backends_message(missing: dict[str, str], location: str) -> str:
    """The error for a run whose portaio lacks compiled backends this platform has."""
    lines = [f"portaio under test ({location}) lacks a compiled backend this platform has:"]
    lines += [f"  {name}: {reason}" for name, reason in missing.items()]
    lines += [
        "Every test of it would be skipped and the run would look green. Usually pytest imported the",
        "uncompiled source tree (`python -m pytest` from a clone). Install the build and test it with:",
        f"  {INSTALL_AND_TEST}",
        "or compile the source tree in place (an editable install) and test it:",
        f"  {BUILD_IN_PLACE}",
        "(to test only some backends on purpose, name them: PORTAIO_TEST_BACKENDS=poll,select)",
    ]
    return "\n".join(lines)


# 32-bit userlands a 64-bit kernel runs itself (kernel arch, userland uname -m).
_NATIVE_COMPAT = {
    ("x86_64", "i386"),
    ("x86_64", "i686"),
    ("aarch64", "armv7l"),
    ("aarch64", "armv8l"),
    ("ppc64le", "ppc"),
    ("s390x", "s390"),
}


def emulated_userland(
    kernel_arch_file: str = "/proc/sys/kernel/arch", machine: str | None = None
) -> str | None:
    """``"aarch64 userland on a x86_64 kernel"`` under a user-mode emulator such as qemu-user, else None."""
    try:
        with open(kernel_arch_file, encoding="ascii") as f:
            kernel = f.read().strip()
    except OSError:
        return None  # no such file (not Linux, or before 6.1): assume native
    machine = machine or platform.machine()
    if machine == kernel or (kernel, machine) in _NATIVE_COMPAT:
        return None
    return f"{machine} userland on a {kernel} kernel"


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run when a backend this platform should have was not compiled."""
    config.addinivalue_line(
        "markers", "qemu_cannot(reason): skipped with *reason* only under a user-mode emulator (qemu-user)"
    )
    selected = os.environ.get("PORTAIO_TEST_BACKENDS")
    wanted = selected.split(",") if selected else portaio.BACKEND_NAMES
    reasons = portaio.unavailable_reasons()
    missing = {name: reasons[name] for name in expected_backends() if name in wanted and name in reasons}
    if missing:
        raise pytest.UsageError(missing_backends_message(missing, os.path.dirname(portaio.__file__)))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a ``qemu_cannot`` test, with its reason, when qemu-user runs this userland."""
    mark = item.get_closest_marker("qemu_cannot")
    if mark is not None:
        emulated = emulated_userland()
        if emulated is not None:
            pytest.skip(f"qemu-user ({emulated}) cannot emulate this: {mark.args[0]}")


# "kqueue backend unavailable here: <why>", from the conformance plugin's fixture.
_UNAVAILABLE = re.compile(r"^(Skipped: )?\w+ backend unavailable here: ")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, Any]:
    """Fold the skips of an unavailable backend into one summary line per backend.

    pytest folds skips by (file, line, reason), and a skip raised by a fixture
    carries the test's own location, so each of a backend's tests would get a
    line of its own.  Giving them the fixture's file and no line folds them
    into ``SKIPPED [count] .../plugin.py: <backend> backend unavailable here: <why>``.
    """
    report = yield
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and _UNAVAILABLE.match(str(longrepr[2])):
        from portaio.conformance import plugin

        report.longrepr = (plugin.__file__, None, longrepr[2])
    return report
