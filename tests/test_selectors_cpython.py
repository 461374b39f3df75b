"""CPython's own ``Lib/test/test_selectors.py`` cases, run against ``PortaioSelector``.

``test_selectors_contract.py`` restates the contract in our words; here the
standard library's own cases judge the adapter, with ``SELECTOR`` bound to a
``PortaioSelector`` of each backend.  Two cases pinned issue 11's drop-in
deviations: ``test_above_fd_setsize`` (``select()`` returned at most 1,024
pairs) and ``test_fileno`` (poll and select gave -1 where the standard
classes have no ``fileno`` at all).
"""

from __future__ import annotations

import unittest
from types import ModuleType

import pytest

import portaio
from portaio.selectors import PortaioSelector

cpython: ModuleType | None
try:
    from test import test_selectors as cpython
except ImportError:  # pragma: no cover - Debian's python3 ships no test package
    cpython = None

# Every case of BaseSelectorTestCase and ScalableSelectorMixIn, and the
# EpollSelector and KqueueSelector ones the EpollSelector contract implies.
# test_modify_unregister is left out: it patches the standard classes' own
# internals (``EpollSelector._selector_cls``) and skips itself for any other.
CASES = [
    "test_register",
    "test_unregister",
    "test_unregister_after_fd_close",
    "test_unregister_after_fd_close_and_reuse",
    "test_unregister_after_socket_close",
    "test_modify",
    "test_close",
    "test_get_key",
    "test_get_map",
    "test_select",
    "test_select_read_write",
    "test_context_manager",
    "test_fileno",
    "test_selector",
    "test_empty_select",
    "test_above_fd_setsize",
    "test_register_file",
    "test_register_bad_fd",
]
# Each waits one to two seconds on purpose: run with ``-m slow``.
SLOW_CASES = [
    "test_timeout",
    "test_select_interrupt_exc",
    "test_select_interrupt_noraise",
    "test_empty_select_timeout",
]


# Some CPython cases (test_register_file, test_register_bad_fd) never close
# their selector and leave it to the collector; the conformance guard counts
# that as a leaked fd, so every selector a case makes is closed after it.
_MADE: list[PortaioSelector] = []


def _case_class(backend: str) -> type[unittest.TestCase]:
    assert cpython is not None

    def __init__(self: PortaioSelector) -> None:
        PortaioSelector.__init__(self, backend)
        _MADE.append(self)

    selector = type(f"Portaio{backend.title()}Selector", (PortaioSelector,), {"__init__": __init__})
    methods = {}
    for extra in (cpython.EpollSelectorTestCase, cpython.KqueueSelectorTestCase):
        methods.update({k: v for k, v in vars(extra).items() if k.startswith("test_")})
    methods["SELECTOR"] = selector
    bases = (cpython.BaseSelectorTestCase, cpython.ScalableSelectorMixIn, unittest.TestCase)
    return type("PortaioCase", bases, methods)


def _check(backend: str, name: str) -> None:
    if cpython is None:
        pytest.skip("this interpreter ships no test.test_selectors (CPython's test package is not installed)")
    if name == "test_above_fd_setsize" and portaio.backend_class(backend).capabilities.max_fd is not None:
        pytest.skip(f"{backend} cannot watch fds above FD_SETSIZE (SelectSelector is not scalable either)")
    case = _case_class(backend)
    if not hasattr(case, name):
        pytest.skip(f"this Python's test_selectors has no {name}")
    result = unittest.TestResult()
    try:
        case(name).run(result)
    finally:
        while _MADE:
            _MADE.pop().close()
    problems = [f"{test}: {trace}" for test, trace in result.failures + result.errors]
    assert not problems, "\n".join(problems)
    if result.skipped:
        pytest.skip(f"CPython's {name} skipped itself: {result.skipped[0][1]}")
    assert result.testsRun == 1


@pytest.mark.parametrize("name", CASES)
def test_cpython_selectors_case(backend: str, name: str) -> None:
    _check(backend, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_CASES)
def test_cpython_selectors_timing_case(backend: str, name: str) -> None:
    _check(backend, name)
