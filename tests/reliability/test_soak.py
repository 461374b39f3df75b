"""Soak and scale through ``benchmarks/soak.py``: a smoke run in CI, the real one under ``-m slow``.

The slow run's size is set by ``PORTAIO_SOAK_CONNECTIONS`` (default 150,000)
and ``PORTAIO_SOAK_SECONDS`` (default 300); the figures reached are recorded
in ``docs/reliability.rst``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from portaio.conformance.libkqueue import DEVIATIONS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"
pytestmark = pytest.mark.skipif(
    not SCRIPT.exists() or not sys.platform.startswith("linux"),
    reason="benchmarks/soak.py is not in this tree, or not Linux (127.0.0.x source addresses)",
)


def _libkqueue() -> bool:
    from portaio.backends import kqueue

    return kqueue.UNAVAILABLE is None and kqueue.LIBKQUEUE


def soak(backend: str, connections: int, seconds: float, timeout: float) -> dict[str, Any]:
    command = [sys.executable, str(SCRIPT), "--backend", backend, "--connections", str(connections)]
    proc = subprocess.run(
        [*command, "--seconds", str(seconds), "--sample-every", "1"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    summary: dict[str, Any] = json.loads(proc.stdout)
    assert proc.returncode == 0, (summary, proc.stderr[-2000:])
    return summary


@pytest.mark.qemu_cannot("setsockopt(IP_BIND_ADDRESS_NO_PORT) fails with ENOPROTOOPT under qemu-user")
def test_soak_smoke(backend: str) -> None:
    if backend == "kqueue" and _libkqueue():
        reason = DEVIATIONS["test_edge_both_directions_more_ready_than_fit_lose_nothing"]
        pytest.skip(f"kqueue on libkqueue: {reason}")
    summary = soak(backend, connections=300, seconds=1.0, timeout=60)
    assert summary["connections_established"] == 300
    assert summary["bytes_lost"] == 0 and summary["bytes_corrupt"] == 0
    assert summary["rounds_min"] >= 1


@pytest.mark.slow
@pytest.mark.timeout(0)
def test_soak_at_scale() -> None:
    connections = int(os.environ.get("PORTAIO_SOAK_CONNECTIONS", "150000"))
    seconds = float(os.environ.get("PORTAIO_SOAK_SECONDS", "300"))
    summary = soak("epoll", connections, seconds, timeout=seconds + 1200)
    assert summary["connections_established"] == connections
    assert summary["bytes_lost"] == 0 and summary["bytes_corrupt"] == 0
    first, last = summary["rss_server_kib_first_last"]
    assert last <= first * 1.10, f"server memory grew from {first} to {last} KiB"
    first, last = summary["rss_client_kib_first_last"]
    assert last <= first * 1.10, f"client memory grew from {first} to {last} KiB"
