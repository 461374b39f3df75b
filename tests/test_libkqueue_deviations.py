"""The libkqueue deviations list names cases that exist, and skips nothing elsewhere.

A key that no longer names a case (renamed, or mistyped) would skip nothing
while its reason still reads as if it did; a deviation reaching another
backend would hide a real failure.  Runs everywhere: it reads the list, not
libkqueue.
"""

from __future__ import annotations

import pathlib
import re
from types import SimpleNamespace

import pytest

import portaio.conformance
from portaio.conformance.libkqueue import DEVIATIONS, deviation

_SOURCES = [
    *pathlib.Path(portaio.conformance.__file__).parent.glob("*.py"),
    *pathlib.Path(__file__).parent.rglob("test_*.py"),
]
_DEFINED = {
    name for path in _SOURCES for name in re.findall(r"^def (test_\w+)\(", path.read_text(), re.MULTILINE)
}


@pytest.mark.parametrize("key", sorted(DEVIATIONS))
def test_each_deviation_names_a_case_and_says_why(key: str) -> None:
    assert key.partition("[")[0] in _DEFINED, f"no case is named {key!r}"
    assert len(DEVIATIONS[key]) > 40


def _item(name: str, backend: str, *params: str) -> SimpleNamespace:
    callspec = SimpleNamespace(params={"backend": backend}, id="-".join((backend, *params)))
    return SimpleNamespace(originalname=name, name=f"{name}[{callspec.id}]", callspec=callspec)


def test_a_deviation_applies_to_kqueue_and_its_parametrisation_only() -> None:
    name = "test_kernel_turn_does_not_block_while_a_source_holds_a_report"
    assert deviation(_item(name, "kqueue", "signal", "plain")) is not None
    assert deviation(_item(name, "kqueue", "signal", "short")) is None
    assert deviation(_item(name, "kqueue", "wake", "plain")) is None
    for backend in ("epoll", "poll", "select"):
        assert deviation(_item(name, backend, "signal", "plain")) is None
        assert deviation(_item("test_poller_made_on_fd_zero_works_and_releases_it", backend)) is None
