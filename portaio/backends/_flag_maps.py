"""Translating event bits between portaio's :class:`~portaio.Events` and a kernel's.

A backend describes the correspondence as ``(from_bit, to_bit)`` pairs and
:func:`translate` applies them.  ``poll(2)``'s bits, shared by the poll and
select backends, are here too.
"""

from __future__ import annotations

import platform
import select
import sys
from collections.abc import Iterable

from .._flags import ERROR, HANGUP, PRIORITY, RDHUP, READABLE, WRITABLE

__all__ = ["FROM_POLL", "POLLRDHUP", "TO_POLL", "translate"]

# PyPy's select module (7.3.11) does not export POLLRDHUP although Linux has it
# everywhere: the kernel's value, 0x2000 (0x800 on SPARC).
_LINUX_POLLRDHUP = 0x800 if platform.machine().startswith("sparc") else 0x2000
POLLRDHUP: int = getattr(select, "POLLRDHUP", _LINUX_POLLRDHUP if sys.platform == "linux" else 0)
"""``POLLRDHUP`` where the system has it (Linux), else 0."""

TO_POLL: list[tuple[int, int]] = [
    (int(READABLE), getattr(select, "POLLIN", 1)),
    (int(WRITABLE), getattr(select, "POLLOUT", 4)),
    (int(PRIORITY), getattr(select, "POLLPRI", 2)),
    (int(RDHUP), POLLRDHUP),
]
"""portaio's interest bits to ``poll(2)``'s."""

FROM_POLL: list[tuple[int, int]] = [(kernel, ours) for ours, kernel in TO_POLL if kernel] + [
    (getattr(select, "POLLHUP", 16), int(HANGUP)),
    (getattr(select, "POLLERR", 8), int(ERROR)),
]
"""``poll(2)``'s reported bits to portaio's."""


def translate(bits: int, pairs: Iterable[tuple[int, int]]) -> int:
    """The OR of every ``to_bit`` of *pairs* whose ``from_bit`` is set in *bits*."""
    out = 0
    for from_bit, to_bit in pairs:
        if bits & from_bit:
            out |= to_bit
    return out
