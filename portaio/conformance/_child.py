"""Run a function in a forked child and get back what it returns (as text)."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

import pytest

__all__ = ["in_child"]


def in_child(body: Callable[[], str]) -> str:
    """``body()`` run in a forked child; its result, or ``"error: <traceback>"``.

    The child never returns into the caller (it leaves with ``os._exit``).
    """
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("needs fork(): Windows has none")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(r)
            try:
                result = body()
            except BaseException:
                result = "error: " + traceback.format_exc()
            os.write(w, result.encode())
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    try:
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    return b"".join(chunks).decode()
