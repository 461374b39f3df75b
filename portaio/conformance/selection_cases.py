"""Conformance: which backend ``Poller()`` runs on, and why one is refused.

``Poller()`` with no name takes ``$PORTAIO_BACKEND`` if set, else the best
backend this machine has (``available_backends()[0]``); a name that is
unknown, or a backend that cannot run here, is refused at the call with
:class:`~portaio.BackendUnavailable` saying which name, where it came from
(the argument or the environment variable) and why.
"""

from __future__ import annotations

import pytest

import portaio

ENV_VAR = "PORTAIO_BACKEND"


def test_environment_variable_picks_the_backend(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, backend)
    assert portaio.default_backend() == backend
    assert portaio.backend_class().name == backend
    with portaio.Poller() as p:
        assert p.backend == backend


def test_without_the_variable_the_best_available_backend_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    best = portaio.available_backends()[0]
    assert best == next(name for name in portaio.BACKEND_NAMES if name not in portaio.unavailable_reasons())
    assert portaio.default_backend() == best
    with portaio.Poller() as p:
        assert p.backend == best
    monkeypatch.setenv(ENV_VAR, "")  # empty: as if unset
    assert portaio.default_backend() == best


def test_unknown_name_from_the_environment_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "nosuch")
    with pytest.raises(portaio.BackendUnavailable) as info:
        portaio.Poller()
    message = str(info.value)
    assert "'nosuch' (from $PORTAIO_BACKEND)" in message
    assert f"known: {', '.join(portaio.BACKEND_NAMES)}" in message
    with pytest.raises(portaio.BackendUnavailable) as info:
        portaio.Poller("nosuch")  # an explicit name: not blamed on the environment
    assert "'nosuch';" in str(info.value) and ENV_VAR not in str(info.value)


def test_unavailable_backend_is_refused_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    reasons = portaio.unavailable_reasons()
    available = portaio.available_backends()
    assert sorted(available + list(reasons)) == sorted(portaio.BACKEND_NAMES)
    assert available == [name for name in portaio.BACKEND_NAMES if name not in reasons]
    if not reasons:
        pytest.skip("every backend runs on this machine: none to refuse")
    for name, reason in reasons.items():
        assert reason and isinstance(reason, str)
        with pytest.raises(portaio.BackendUnavailable) as info:
            portaio.Poller(name)
        assert str(info.value) == f"portaio: the {name} backend is not available here: {reason}"
        monkeypatch.setenv(ENV_VAR, name)
        with pytest.raises(portaio.BackendUnavailable) as info:
            portaio.Poller()
        assert str(info.value) == (
            f"portaio: the {name} backend (from ${ENV_VAR}) is not available here: {reason}"
        )


def test_backend_name_of_the_wrong_type_is_a_type_error_naming_it() -> None:
    for bad, type_name in ((1, "int"), (b"epoll", "bytes")):
        with pytest.raises(TypeError) as info:
            portaio.Poller(bad)  # type: ignore[arg-type]
        assert str(info.value) == f"portaio: backend must be a str or None, got {type_name}"
