"""Conformance: each backend claims exactly the pinned capabilities (DESIGN item 20).

The table lives in :mod:`portaio.conformance.expected`.  The ``capabilities``
fixture every other case branches on returns the pinned row, not the
backend's claim: a backend that drops a feature fails here *and* in every case
of that feature, instead of passing them all by refusing the mode.
"""

from __future__ import annotations

import dataclasses

import pytest

import portaio
from portaio.conformance.expected import os_family, pinned_capabilities


def test_backend_claims_exactly_the_pinned_capabilities(backend: str) -> None:
    pinned = pinned_capabilities(backend)
    if pinned is None:
        pytest.skip(
            f"no capabilities pinned for {backend} on {os_family()} yet (portaio.conformance.expected)"
        )
    claimed = portaio.backend_class(backend).capabilities
    differ = {
        f.name: (getattr(claimed, f.name), getattr(pinned, f.name))
        for f in dataclasses.fields(pinned)
        if getattr(claimed, f.name) != getattr(pinned, f.name)
    }
    assert differ == {}, f"{backend} on {os_family()}: (claimed, pinned) differ: {differ}"
    with portaio.Poller(backend) as poller:
        assert poller.capabilities == pinned


def test_unsupported_modes_are_refused_and_supported_ones_accepted(
    poller: portaio.Poller, capabilities: portaio.Capabilities
) -> None:
    """Each pinned mode flag decides whether register() accepts or refuses it."""
    import socket

    modes = {
        "edge": portaio.READABLE | portaio.EDGE,
        "oneshot": portaio.READABLE | portaio.ONESHOT,
        "exclusive": portaio.READABLE | portaio.EXCLUSIVE,
        "rdhup": portaio.READABLE | portaio.RDHUP,
        "priority": portaio.READABLE | portaio.PRIORITY,
    }
    for feature, mode in modes.items():
        a, b = socket.socketpair()
        with a, b:
            if getattr(capabilities, feature):
                poller.register(a, mode)
                assert poller.get(a) is not None
                poller.unregister(a)
            else:
                with pytest.raises(portaio.Unsupported, match=poller.backend):
                    poller.register(a, mode)
                assert a not in poller
