"""The buffers of a backend's quick wait (poll(0)'s fast path, ``_base.py``).

A buffer is a C struct the quick wait fills (``struct portaio_epoll_quick``,
``struct portaio_kq_quick``) with the arrays it points to, and a view of its
keys for the core's unpack.  The poller asks for one whenever its room
changes (under its lock): the newest buffer gets the new room, and a room
larger than it holds gets a new, larger buffer (twice the size at least), so
that a quick wait still running on an old one, whose room it holds, stays in
bounds.  The old ones and their arrays stay alive with the backend: a struct
keeps nothing alive by itself, and a quick wait in another thread may still
use one (they are few: the sizes double).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["QuickBuffers"]

Made = tuple[Any, Any, tuple[Any, ...]]
"""What a factory makes for a size: the struct, the view of its keys, the arrays it points to."""


class QuickBuffers:
    """The newest quick-wait buffer of one backend, grown by generations."""

    __slots__ = ("_first", "_kept", "_make", "_newest", "_size")

    def __init__(self, make: Callable[[int], Made], first: int) -> None:
        self._make = make
        self._first = first
        self._size = 0
        self._newest: tuple[Any, Any] | None = None
        self._kept: list[Made] = []

    def for_room(self, room: int) -> tuple[Any, Any]:
        """``(struct, view)`` with ``struct.room = room``: the newest buffer, or a larger new one."""
        pair = self._newest
        if pair is None or room > self._size:
            size = max(room, self._first, 2 * self._size)
            made = self._make(size)
            self._kept.append(made)
            pair = self._newest = (made[0], made[1])
            self._size = size
        pair[0].room = room
        return pair
