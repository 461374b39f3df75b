"""Dispatch cost: R ready events out of 1,000 registered sockets, against the standard library.

Each contender waits with a zero timeout and reads the user data of every
ready event, as an event loop does: portaio's ``Poller.poll(0)`` (plain, and
with a far-off timer and a signal watch), ``PortaioSelector.select(0)`` (the
same two ways), ``selectors.EpollSelector`` and ``select.epoll.poll(0)`` plus
a dict.  All run in one process, interleaved; medians of the repeats.  The
targets of issue 15 are printed with the measured ratio and whether each
holds.  ``portaio bench selectors`` runs the same contest.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import _contest

if sys.platform == "win32":  # pragma: no cover
    raise ImportError("portaio bench dispatch is POSIX-only")

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the dispatch table, the ratios and the targets (higher ratios: portaio faster)."""
    parser = argparse.ArgumentParser(prog="portaio bench dispatch", description=__doc__.splitlines()[0])
    _contest.add_arguments(parser, ("--registered", "-n"))
    return _contest.main(parser, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
