"""Helpers shared by the benchmarks: timing and table printing."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

__all__ = ["best_of", "print_table"]


def best_of(func: Callable[[], object], number: int, repeat: int = 5) -> float:
    """The fastest of *repeat* runs of *number* calls, in seconds per call."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            func()
        best = min(best, time.perf_counter() - start)
    return best / number


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print *rows* under *headers* as an aligned plain-text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths)))
        if n == 0:
            print("  ".join("-" * width for width in widths))
