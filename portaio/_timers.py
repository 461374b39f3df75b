"""Timers reported by :meth:`Poller.poll`: a heap of deadlines on the monotonic clock.

Every timer has a start instant and a first delay; a repeating timer's *k*-th
deadline is ``start + delay + k * interval``, computed afresh each time (never
accumulated), so it does not drift however late the program collects it.  An
expiry is reported once the monotonic clock has reached the deadline, never
before; expirations missed meanwhile are counted in the event's ``times``.

The heap holds ``[deadline, sequence, timer]`` entries; cancelling or
re-arming a timer orphans its entry (lazy deletion) and the heap is rebuilt
when orphans outnumber live entries, so every operation is O(log n).
"""

from __future__ import annotations

import heapq
import math
import time
from typing import TYPE_CHECKING, Any

from ._flags import TIMER
from ._types import Event

if TYPE_CHECKING:
    from ._poller import Poller

__all__ = ["TIMER_MAX", "TIMER_MIN_INTERVAL", "Timer", "TimerQueue"]

TIMER_MAX = 1e9
"""The largest delay or interval accepted, in seconds (about 31 years)."""

TIMER_MIN_INTERVAL = 1e-6
"""The smallest interval of a repeating timer, in seconds (one microsecond), on every backend.

Why a floor: deadlines are floats on the monotonic clock, whose spacing
near 1e9 s (31 years of uptime) is about 1.2e-7 s.  An interval
below that spacing cannot move a deadline (``start + k * interval`` rounds
to the same float for many *k*), so the next deadline could never pass
the present and ``poll()`` would spin for ever; one microsecond keeps
consecutive deadlines distinct floats everywhere.  Expirations more
frequent than the program polls are counted in ``times`` anyway.
"""

_monotonic = time.monotonic
_TIMER = int(TIMER)


def check_delay(value: Any, what: str, backend: str, positive: bool = False) -> float:
    """*value* as seconds, or a clear error naming *what* and the backend."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(
            f"portaio[{backend}]: timer {what} must be a number of seconds, got {type(value).__name__}"
        )
    seconds = float(value)
    if math.isnan(seconds):
        raise ValueError(f"portaio[{backend}]: timer {what} is NaN")
    if seconds < 0 or (positive and seconds == 0):
        need = "positive" if positive else "zero or positive"
        raise ValueError(f"portaio[{backend}]: timer {what} {seconds} must be {need}")
    if seconds > TIMER_MAX:
        raise OverflowError(f"portaio[{backend}]: timer {what} {seconds} exceeds TIMER_MAX ({TIMER_MAX:g} s)")
    if positive and seconds < TIMER_MIN_INTERVAL:
        raise ValueError(
            f"portaio[{backend}]: timer {what} {seconds!r} is below TIMER_MIN_INTERVAL, "
            f"the smallest interval honoured ({TIMER_MIN_INTERVAL:g} s)"
        )
    return seconds


class Timer:
    """A timer from :meth:`Poller.add_timer`; its expirations come from ``poll()``.

    Each report is an :class:`~portaio.Event` with ``fd == -1``,
    ``events == TIMER``, the timer's ``data`` and ``times``, the number of
    expirations since the previous report (more than 1 when the program was
    late for a repeating timer).
    """

    __slots__ = ("_entry", "_first", "_index", "_queue", "_start", "data", "interval")

    data: Any
    """The object reported as the events' ``data``."""
    interval: float | None
    """Seconds between expirations of a repeating timer, or None for a one-shot."""
    _queue: TimerQueue
    _start: float
    _first: float
    _index: int  # expirations already reported
    _entry: list[Any] | None

    def __init__(self) -> None:
        raise TypeError("portaio: timers are created by Poller.add_timer()")

    @classmethod
    def _create(cls, queue: TimerQueue, delay: float, interval: float | None, data: Any) -> Timer:
        timer = cls.__new__(cls)
        timer._queue = queue
        timer.data = data
        timer.interval = interval
        timer._start = _monotonic()
        timer._first = delay
        timer._index = 0
        timer._entry = None
        return timer

    @property
    def active(self) -> bool:
        """True while an expiry is still to come (not cancelled, not a spent one-shot)."""
        return self._entry is not None

    @property
    def deadline(self) -> float | None:
        """The monotonic time (:func:`time.monotonic`) of the next expiry, or None."""
        entry = self._entry
        return None if entry is None else float(entry[0])

    def cancel(self) -> bool:
        """Stop the timer; True if an expiry was still to come.

        Safe at any time, from any thread, before or after expiry, and more
        than once.  An expiry not yet returned by ``poll()`` is dropped.
        """
        return self._queue.cancel(self)

    def rearm(self, delay: float, interval: float | None = None) -> None:
        """Restart the timer: first expiry *delay* seconds from now, then every *interval*.

        Works on an active, spent or cancelled timer alike; any expiry not yet
        reported is dropped.
        """
        self._queue.rearm(self, delay, interval)

    def _deadline(self, index: int) -> float:
        if index == 0 or self.interval is None:
            return self._start + self._first
        return self._start + self._first + index * self.interval

    def __repr__(self) -> str:
        state = "active" if self._entry is not None else "inactive"
        return f"<portaio.Timer {state} interval={self.interval} data={self.data!r}>"


class TimerQueue:
    """The timers of one poller, ordered by deadline (ties: creation order)."""

    def __init__(self, poller: Poller) -> None:
        self._poller = poller
        self._heap: list[list[Any]] = []
        self._sequence = 0
        self._orphans = 0
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def add(self, delay: float, interval: float | None, data: Any) -> tuple[Timer, bool]:
        """A new timer; the flag is True if it is now the earliest deadline."""
        timer = Timer._create(self, delay, interval, data)
        return timer, self._push(timer, timer._deadline(0))

    def _push(self, timer: Timer, deadline: float) -> bool:
        self._sequence += 1
        entry = [deadline, self._sequence, timer]
        timer._entry = entry
        heapq.heappush(self._heap, entry)
        self._live += 1
        return self._heap[0] is entry

    def _orphan(self, timer: Timer) -> bool:
        entry = timer._entry
        if entry is None:
            return False
        entry[2] = None
        timer._entry = None
        self._live -= 1
        self._orphans += 1
        if self._orphans > 64 and self._orphans > self._live:
            self._heap = [e for e in self._heap if e[2] is not None]
            heapq.heapify(self._heap)
            self._orphans = 0
        return True

    def cancel(self, timer: Timer) -> bool:
        """Forget *timer*'s pending expiry; True if there was one."""
        poller = self._poller
        with poller._lock:
            return self._orphan(timer)

    def rearm(self, timer: Timer, delay: float, interval: float | None) -> None:
        """Restart *timer* from now."""
        poller = self._poller
        delay = check_delay(delay, "delay", poller.name)
        if interval is not None:
            interval = check_delay(interval, "interval", poller.name, positive=True)
        with poller._lock:
            poller._check_open()
            self._orphan(timer)
            timer._start = _monotonic()
            timer._first = delay
            timer.interval = interval
            timer._index = 0
            earliest = self._push(timer, timer._deadline(0))
        if earliest:
            poller._timers_changed()

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or None (drops orphans from the top)."""
        heap = self._heap
        while heap:
            top = heap[0]
            if top[2] is not None:
                return float(top[0])
            heapq.heappop(heap)
            self._orphans -= 1
        return None

    def collect(self, now: float, limit: int, out: list[Event]) -> None:
        """Append to *out* one event per timer due at *now*, at most *limit*, earliest first."""
        heap = self._heap
        count = 0
        while heap and count < limit:
            entry = heap[0]
            timer: Timer | None = entry[2]
            if timer is None:
                heapq.heappop(heap)
                self._orphans -= 1
                continue
            if entry[0] > now:
                break
            index = timer._index
            interval = timer.interval
            if interval is None:
                heapq.heappop(heap)
                timer._entry = None
                self._live -= 1
                times = 1
            else:
                # Every deadline at or before *now* counts; the next one stays
                # on the k * interval grid from the start.
                first = timer._start + timer._first
                due = max(int((now - first) // interval) + 1, index + 1)
                # Float rounding near a grid point: trust the deadlines themselves.
                # Both loops end within a step or two: the estimate is off by
                # rounding only, and interval >= TIMER_MIN_INTERVAL (above the
                # clock's float spacing) makes consecutive deadlines distinct
                # floats.  A smaller interval could hang here (1e-100 did).
                while due > index + 1 and timer._deadline(due - 1) > now:
                    due -= 1
                while timer._deadline(due) <= now:
                    due += 1
                times = due - index
                index = due
                self._sequence += 1
                entry = [timer._deadline(index), self._sequence, timer]
                timer._entry = entry
                heapq.heapreplace(heap, entry)
            timer._index = index if interval is not None else 1
            out.append(Event(-1, _TIMER, timer.data, times))
            count += 1

    def clear(self) -> None:
        """Forget every timer (the poller is closing)."""
        for entry in self._heap:
            timer = entry[2]
            if timer is not None:
                timer._entry = None
        self._heap.clear()
        self._live = self._orphans = 0
