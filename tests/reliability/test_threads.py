"""Threads sharing one poller, for minutes (``-m slow``; ``PORTAIO_THREADS_SECONDS``).

The seconds-long form of the same run is a conformance case:
:mod:`portaio.conformance.sharing_cases`.
"""

from __future__ import annotations

import pytest

from portaio.conformance.sharing_cases import SECONDS, run


@pytest.mark.slow
@pytest.mark.timeout(0)
def test_threads_share_one_poller_for_minutes(backend: str) -> None:
    run(backend, max(SECONDS, 120.0))
