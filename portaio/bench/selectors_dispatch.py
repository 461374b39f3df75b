"""``PortaioSelector.select(0)`` against ``selectors.EpollSelector``: the dispatch contest.

R of N registered sockets are ready (a byte waits unread in each); every
round calls ``select(0)`` and walks the ``(key, mask)`` pairs reading
``key.data``, as an event loop does.  This is the contest of ``portaio bench
dispatch`` (same contenders, one process, interleaved, medians), so the
selector's figures sit beside ``Poller.poll(0)``'s, ``select.epoll.poll()``
plus a dict, and the same with a timer and a signal watch present; the
targets of issue 15 are printed with the measured ratio.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import _contest

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the select(0) + dispatch table, the ratios and the targets; returns 0."""
    parser = argparse.ArgumentParser(prog="portaio bench selectors", description=__doc__.splitlines()[0])
    _contest.add_arguments(parser, ("-n", "--registered"))
    return _contest.main(parser, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
