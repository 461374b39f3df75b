"""The portable timer: no kernel timer at all, the wait's own timeout.

``arm()`` returns False, so the poll loop bounds each wait by the earliest
deadline (poll: milliseconds, rounded up; select: microseconds).  A timer
added while another thread waits makes the core post the waker, and that
thread's loop computes its timeout afresh.
"""

from __future__ import annotations

from ._base import TimerMechanism

__all__ = ["WaitTimeout"]


class WaitTimeout(TimerMechanism):
    """Timers through the wait's timeout."""

    def arm(self, deadline: float) -> bool:
        return False

    def close(self) -> None:
        pass
