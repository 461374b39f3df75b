"""Run the shipped conformance suite with pytest and tabulate behaviours x backends.

``portaio conformance`` uses this: it runs every ``*_cases.py`` module of
:mod:`portaio.conformance` from wherever portaio is installed, so a user
checks the very build they run, then prints one row per behaviour and one
column per backend.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import portaio

__all__ = ["FAIL", "PASS", "SKIP", "UNSUPPORTED", "XFAIL", "Matrix", "case_files", "run"]

PASS = "pass"
FAIL = "FAIL"
UNSUPPORTED = "unsupported"
"""Passed by refusing the mode with :class:`portaio.Unsupported`, as the contract demands."""
SKIP = "skip"
XFAIL = "xfail"
UNAVAILABLE = "n/a"
_BY_DESIGN = re.compile(r"unsupported|not supported|by design", re.IGNORECASE)
CASE_TIMEOUT = 120
"""Seconds after which pytest-timeout (where installed) fails a case that hangs."""
ALL_BACKENDS = "any"
"""Column of the cases that do not run per backend."""


def case_files() -> list[str]:
    """The conformance case modules shipped with this installation."""
    here = Path(__file__).resolve().parent
    return sorted(str(p) for p in here.glob("*_cases.py"))


@contextlib.contextmanager
def _count_unsupported() -> Iterator[list[int]]:
    """Count :class:`portaio.Unsupported` raised while the block runs."""
    counter = [0]
    original = portaio.Unsupported.__init__

    def counting(self: portaio.Unsupported, *args: Any, **kwargs: Any) -> None:
        counter[0] += 1
        original(self, *args, **kwargs)

    portaio.Unsupported.__init__ = counting  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        portaio.Unsupported.__init__ = original  # type: ignore[method-assign]


class Matrix:
    """A pytest plugin that records one outcome per (behaviour, backend)."""

    def __init__(self, backends: Sequence[str]) -> None:
        self.backends = list(backends)
        self.cells: dict[str, dict[str, str]] = {}
        self.reasons: list[str] = []
        self.failures: list[str] = []
        self.collect_errors: list[str] = []
        self._raised: dict[str, int] = {}

    # ------------------------------------------------------------ pytest hooks
    def pytest_collection_modifyitems(self, config: Any, items: list[Any]) -> None:
        """Keep only the items of the selected backends."""
        keep: list[Any] = []
        drop: list[Any] = []
        for item in items:
            backend = _backend_of(item)
            (keep if backend is None or backend in self.backends else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    def pytest_collectreport(self, report: Any) -> None:
        """Remember modules that failed to import."""
        if report.failed:
            self.collect_errors.append(f"{report.nodeid}: {report.longreprtext.strip().splitlines()[-1]}")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: Any) -> Iterator[None]:
        """Note whether the case saw the backend refuse a mode with Unsupported."""
        with _count_unsupported() as counter:
            yield
        self._raised[item.nodeid] = counter[0]

    def pytest_runtest_logreport(self, report: Any) -> None:
        """Record the outcome of one case on one backend."""
        if report.when == "call" or (report.when == "setup" and not report.passed) or report.failed:
            behaviour, backend = _split(report.nodeid)
            row = self.cells.setdefault(behaviour, {})
            if report.failed:
                row[backend] = FAIL
                self.failures.append(report.nodeid)
            elif report.skipped and hasattr(report, "wasxfail"):
                row[backend] = XFAIL
            elif report.skipped:
                reason = _skip_reason(report)
                if "unavailable here" in reason:
                    row[backend] = UNAVAILABLE
                elif _BY_DESIGN.search(reason):
                    row[backend] = UNSUPPORTED
                else:
                    row.setdefault(backend, f"{SKIP} [{self._footnote(reason)}]")
            elif report.when == "call":
                row[backend] = UNSUPPORTED if self._raised.get(report.nodeid) else PASS

    def _footnote(self, reason: str) -> int:
        if reason not in self.reasons:
            self.reasons.append(reason)
        return self.reasons.index(reason) + 1

    # ------------------------------------------------------------- rendering
    def columns(self) -> list[str]:
        """The backends shown, plus ``any`` if some case is not per backend."""
        extra = [ALL_BACKENDS] if any(ALL_BACKENDS in row for row in self.cells.values()) else []
        return self.backends + extra

    def render(self) -> str:
        """The matrix as aligned text."""
        columns = self.columns()
        header = ["behaviour", *columns]
        rows = [[name, *(self.cells[name].get(c, "-") for c in columns)] for name in self.cells]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.append("")
        lines.append(f"{PASS}: behaves as the contract says; {FAIL}: breaks it")
        lines.append(f"{UNSUPPORTED}: refuses the mode with portaio.Unsupported, as the contract demands")
        lines.append(f"{UNAVAILABLE}: the backend cannot run here; {SKIP} [n]: skipped for reason n")
        reasons = portaio.unavailable_reasons()
        for name in self.backends:
            if name in reasons:
                lines.append(f"  {name}: {reasons[name]}")
        for n, reason in enumerate(self.reasons, 1):
            lines.append(f"  [{n}] {reason}")
        return "\n".join(lines)


def _backend_of(item: Any) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    backend = callspec.params.get("backend")
    return backend if isinstance(backend, str) else None


def _split(nodeid: str) -> tuple[str, str]:
    """``(behaviour, backend)`` of a node id like ``.../edge_cases.py::test_x[epoll]``."""
    path, _, name = nodeid.partition("::")
    module = os.path.basename(path).removesuffix(".py").removesuffix("_cases")
    params = ""
    if name.endswith("]") and "[" in name:
        name, _, params = name[:-1].partition("[")
    parts = params.split("-") if params else []
    backend = next((p for p in parts if p in portaio.BACKEND_NAMES), None)
    rest = [p for p in parts if p != backend]
    behaviour = f"{module}: {name.removeprefix('test_').replace('_', ' ')}"
    if rest:
        behaviour += f" [{'-'.join(rest)}]"
    return behaviour, backend or ALL_BACKENDS


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def run(
    backends: Sequence[str], pytest_args: Sequence[str] = (), junit: str | None = None
) -> tuple[int, Matrix]:
    """Run the suite on *backends* in this process; ``(pytest exit status, matrix)``."""
    matrix = Matrix(backends)
    args = [
        "-p",
        "portaio.conformance.plugin",
        "-p",
        "no:cacheprovider",
        "-q",
        "--no-header",
        "-rfE",
        "--tb=short",
        *case_files(),
        *pytest_args,
    ]
    if junit:
        args.append(f"--junitxml={junit}")
    if importlib.util.find_spec("pytest_timeout") is not None:
        # A case that wedges a backend must fail, not hang the command.
        args += ["-o", f"timeout={CASE_TIMEOUT}"]
    previous = os.environ.get("PORTAIO_TEST_BACKENDS")
    os.environ["PORTAIO_TEST_BACKENDS"] = ",".join(backends)
    try:
        status = int(pytest.main(args, plugins=[matrix]))
    finally:
        if previous is None:
            os.environ.pop("PORTAIO_TEST_BACKENDS", None)
        else:
            os.environ["PORTAIO_TEST_BACKENDS"] = previous
    return status, matrix
