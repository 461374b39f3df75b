"""The one poll loop: :meth:`Poller.poll <portaio.Poller.poll>`.

Each round asks the sources in a fixed order and returns as soon as one
round has something:

1. *sources first* (unless the kernel is owed its turn): the sources that
   need no kernel — due timers, signal deliveries, the ``wake()`` flag,
   always-ready files — fill the batch, up to ``max_events``;
2. *the kernel*: one backend wait for the room left (never more keys than
   live tokens, so buffers are bounded by the registrations, not by the
   argument); it does not block if a source has something, and it is
   bounded by the earliest timer unless the backend's native timer will end
   it.  Each key is one dict lookup into the event cache; a miss takes
   :func:`dispatch`, where internal keys run their source's handler (a
   drained waker, a fired timerfd, a signal source);
3. *sources after* (unless they came first): what the handlers made ready,
   and the sources, fill the room the kernel left.

The batch lists timers, then signals, then the wake-up, then always-ready
files, then the kernel's fds.  When ``max_events`` is short, what was left
out comes first next time, as epoll's ready list rotates: sources the batch
could not hold stay due, and a kernel passed over (no room left for it) is
*owed*: the next poll asks it first, unless a timer was already due when it
was passed over (those go first, in deadline order).  The four sources
rotate among themselves too (``Poller._rotation``).  So a timer that is
always due cannot starve an fd, nor an fd a timer: with ``max_events=1``
they alternate.  With no source active (no timer pending that the kernel
timer does not cover, no signal delivery or wake-up to report, no
always-ready file), a round is just the kernel wait and the cache lookups;
``poll(0)`` then calls the backend's *quick wait* where it has one (one C call
of one argument that guards its buffer and the kernel fd itself, see
``backends/_base.py``), and the only key of the commonest wait is its result.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._errors import PollerClosed
from ._flags import ALWAYS_REPORTED, ONESHOT, WAKE
from ._types import Event
from ._validate import TIMEOUT_MAX, check_max_events, check_timeout
from .backends._base import FLAGS_SHIFT, TOKEN_MASK
from .backends._unpack import unpacker, unpackers

if TYPE_CHECKING:
    from ._poller import Poller

__all__ = ["DEFAULT_MAX_EVENTS", "dispatch", "poll"]

DEFAULT_MAX_EVENTS = 1024
monotonic = time.monotonic
_WAKE_EVENT = Event(-1, int(WAKE), None)
_ALWAYS = int(ALWAYS_REPORTED)
_ONESHOT = int(ONESHOT)
_TOKEN = TOKEN_MASK  # a key is token | flags << FLAGS_SHIFT (backends/_base.py)
_ZERO = 0
# Several keys at once: ``itemgetter(*keys)(cache)`` subscripts the dict from
# C, about 13 ns an event cheaper than ``map(cache.__getitem__, keys)`` (a
# bound-method call each) at R = 64, 10 % at R = 2; ``[*...]`` of its tuple
# keeps poll()'s list (no call of list()).  Two keys or more only: with one
# it returns the event.
_getter = operator.itemgetter


def poll(self: Poller, timeout: float | None = None, max_events: int | None = None) -> list[Event]:
    """Wait for readiness and return the ready events.

    *timeout* is ``None`` (block), ``0`` (ask the kernel, don't wait) or
    seconds as a float, honoured as precisely as the backend can and never
    early.  At most *max_events* events are returned; the rest come with the
    next call.  A signal arriving meanwhile runs its Python handler; an
    exception from the handler propagates, otherwise the wait resumes.
    """
    # poll(0), no max_events, no source but the kernel active (``_sources``
    # is also set once the poller is closed), on a backend with a quick wait:
    # one C call of one argument whose result is the only key of the
    # commonest wait, one subscript of the event cache, nothing counted (the
    # C keeps the kernel fd open and the buffer to this thread meanwhile:
    # backends/_base.py).  ``timeout is _ZERO`` is int 0 (small ints are one
    # object in CPython, PyPy compares ints by value); 0.0, False and other
    # timeouts take the general way, which checks them: this test only picks
    # the fast path.
    if timeout is _ZERO and max_events is None and not self._sources:
        quick = self._quick
        if quick is not None:
            q = quick[0]
            try:
                got = self._quick_wait(q)
                if got >= 0:
                    try:
                        return [self._cache[got]]
                    except KeyError:
                        return _dispatch_counted(self, (got,))
                if got < -3:
                    n = -2 - got  # the keys: n native uint64 from the view's start
                    keys: Sequence[int] = (unpackers.get(n) or unpacker(n))(quick[1])
                    self._quick_release(q)
                    try:
                        return [*_getter(*keys)(self._cache)]
                    except KeyError:
                        return _dispatch_counted(self, keys)
                if got == -2 and not self._sources:
                    return []
            except BaseException:
                # A signal handler's exception can come between the wait and
                # the release: give the buffer back (only if this thread holds it).
                self._quick_release(q)
                raise
            # -1 (a failure: the wait below says which), -3 (another thread
            # has the buffer) or a source became active: the counted way.
    # Counted as waiting first: a close() in another thread from here on is
    # deferred to the last waiter, so no wait below can reach a closed (and
    # maybe reused) kernel fd.
    waiting = self._waiting
    waiting.append(None)
    try:
        # The common call, one branch: poll(0) or poll() with no max_events
        # and no source besides the kernel active.  One wait of the poller's
        # room; if every key is in the event cache, the cached events are
        # the answer.  A cache miss, or a wait with nothing (to go round
        # again or raise) continues in _loop() with what the wait returned.
        if max_events is None and not self._sources and (timeout is _ZERO or timeout is None):
            keys = self._wait(None if timeout is None else 0.0, self._room)
            n = len(keys)
            try:
                # One ready fd, the commonest wait: a subscript, a third of a map's cost.
                if n == 1:
                    return [self._cache[keys[0]]]
                if n:
                    return [*_getter(*keys)(self._cache)]
            except KeyError:
                pass
            return _loop(self, timeout, self._max_events, keys)
        return _general(self, timeout, max_events)
    finally:
        # What _release_if_last() needs, inline: one attribute test.
        waiting.pop()
        if self._close_pending:
            self._release_if_last()


def _dispatch_counted(self: Poller, keys: Sequence[int]) -> list[Any]:
    """What a quick wait returned, past the cache: dispatched as a waiting thread.

    Counted first, then the check for a close() that came during the quick
    wait: a close from here on is deferred, so no handler reaches an fd the
    poller gave back.
    """
    waiting = self._waiting
    waiting.append(None)
    try:
        if self._closed:
            raise PollerClosed(f"portaio[{self.name}]: the poller was closed during poll(){self._closed_why}")
        return _loop(self, 0, self._max_events, keys)
    finally:
        waiting.pop()
        if self._close_pending:
            self._release_if_last()


def _general(self: Poller, timeout: float | None, max_events: int | None) -> list[Any]:
    """Any other call: the arguments checked, then the loop (counted as waiting)."""
    if timeout is not None:
        cls = timeout.__class__
        if (cls is not float and cls is not int) or not 0 <= timeout <= TIMEOUT_MAX:
            timeout = check_timeout(timeout, self.name)
    if max_events is None:
        max_events = self._max_events
    elif max_events.__class__ is not int or max_events < 1:
        max_events = check_max_events(max_events, self.name)
    if self._closed:
        raise PollerClosed(f"portaio[{self.name}]: poll() on a closed poller{self._closed_why}")
    return _loop(self, timeout, max_events, None)


def _loop(self: Poller, timeout: float | None, max_events: int, keys: Sequence[int] | None) -> list[Any]:
    """Rounds until one has events, the timeout passes or the poller is closed (counted as waiting).

    *keys*: what a wait of the fast path returned (a cache miss, or nothing),
    handled as the first round's.
    """
    end = monotonic() + timeout if timeout else None
    left = timeout
    while True:
        if keys is not None:
            events = dispatch(self, keys) if keys else []
            keys = None
            if self._sources:
                events = _after_wait(self, None, events, max_events)
        else:
            events = _round(self, left, max_events)
        if events:
            return events
        if self._closed:
            raise PollerClosed(f"portaio[{self.name}]: the poller was closed during poll(){self._closed_why}")
        if end is None:
            if timeout is not None:
                return events  # timeout 0
            left = None
            continue
        left = end - monotonic()
        if left <= 0:
            return events


def _round(self: Poller, left: float | None, max_events: int) -> list[Any]:
    """One round: sources first (or after), the kernel wait for the room left, the cache."""
    first: list[Any] | None = None
    room = max_events
    if self._sources:
        first, left = _before_wait(self, left, max_events)
        room -= len(first)
    if room > self._capacity:
        room = self._capacity
    keys = self._wait(left, room) if room > 0 else None
    if keys:
        try:
            events = [self._cache[keys[0]]] if len(keys) == 1 else [*_getter(*keys)(self._cache)]
        except KeyError:
            events = dispatch(self, keys)
    else:
        events = []
    if self._sources or first:
        events = _after_wait(self, first, events, max_events)
    return events


def dispatch(self: Poller, keys: Sequence[int]) -> list[Any]:
    """The slow path: keys the cache does not know (new flags, internal or stale tokens)."""
    out: list[Any] = []
    cache = self._cache
    by_token = self._by_token
    backend = self._backend
    factory = self._factory
    for key in keys:
        event = cache.get(key)
        if event is not None:
            out.append(event)
            continue
        token = key & _TOKEN
        reg = by_token.get(token)
        if reg is None:
            handler = self._handlers.get(token)
            if handler is not None:
                handler(key >> FLAGS_SHIFT)
            continue  # else unregistered or modified since the kernel queued it
        if not reg.armed:
            continue
        ready, cacheable = backend.events_of(key >> FLAGS_SHIFT, reg.fd, reg.events)
        ready &= reg.events | _ALWAYS
        if not ready:
            continue
        if reg.events & _ONESHOT and not self._oneshot_in_kernel:
            with self._lock:
                if not reg.armed or by_token.get(token) is not reg:
                    continue
                reg.armed = False
                backend.disarm(reg.fd, reg.events, token)
            out.append(factory(reg.fd, ready, reg.data))
            continue
        event = factory(reg.fd, ready, reg.data)
        if cacheable and len(reg.keys) < 16:
            reg.keys.append(key)
            cache[key] = event
            if by_token.get(token) is not reg:
                # Unregistered meanwhile (its keys were dropped before this
                # one was added): a reused token must never find it.
                cache.pop(key, None)
        out.append(event)
    return out


def _before_wait(self: Poller, left: float | None, max_events: int) -> tuple[list[Any], float | None]:
    """Sources first unless the kernel is owed its turn; the wait's timeout given what they hold."""
    first: list[Any] = []
    owed = self._kernel_owed
    if owed is None or _timer_due_by(self, owed):
        _collect(self, max_events, first)
        if first:
            if len(first) < max_events:
                self._kernel_owed = None  # the kernel gets the room left
            elif owed is None:
                self._kernel_owed = monotonic()  # passed over: its turn comes next
            return first, 0
        self._kernel_owed = None
    else:
        # The kernel was passed over and no timer due since is older: its turn.
        self._kernel_owed = None
        if _due(self):
            return first, 0
    queue = self._timer_queue
    if queue is not None:
        deadline = queue.next_deadline()
        # Unless the native timer is armed to it, the wait itself must end there.
        if deadline is not None and (deadline != self._armed_deadline or not self._timer_native):
            until = max(deadline - monotonic(), 0.0)
            if left is None or until < left:
                left = until
    if left is not None and left > TIMEOUT_MAX:
        left = TIMEOUT_MAX
    return first, left


def _timer_due_by(self: Poller, instant: float) -> bool:
    queue = self._timer_queue
    if queue is None:
        return False
    deadline = queue.next_deadline()
    return deadline is not None and deadline <= instant


def _after_wait(self: Poller, first: list[Any] | None, events: list[Any], max_events: int) -> list[Any]:
    """The sources, listed before the fds: collected before the wait, or now in the room left.

    A round whose sources came first does not collect again (a timer or a
    file would be listed twice); what became ready meanwhile comes next poll.
    """
    if first:
        first.extend(events)
        return first
    more: list[Any] = []
    room = max_events - len(events)
    if room > 0:
        _collect(self, room, more)
    if not more:
        return events
    more.extend(events)
    return more


def _due(self: Poller) -> bool:
    """True if a source has something to report now (the kernel wait must not block)."""
    if self._wake_ready:
        return True
    state = self._signal_state
    if state is not None and state.pending():
        return True
    queue = self._timer_queue
    if queue is not None:
        deadline = queue.next_deadline()
        if deadline is not None and deadline <= monotonic():
            return True
    return self._files.has_ready()


def _collect(self: Poller, limit: int, out: list[Any]) -> None:
    """Append up to *limit* events of the sources, listed timers, signals, wake, files."""
    parts: list[list[Any]] = [[], [], [], []]
    with self._lock:
        # When the room is short, the source served first rotates.
        start = self._rotation = (self._rotation + 1) & 3
        for i in range(4):
            if limit <= 0:
                break
            which = (start + i) & 3
            part = parts[which]
            if which == 0:
                queue = self._timer_queue
                if queue is not None:
                    queue.collect(monotonic(), limit, part)
            elif which == 1:
                state = self._signal_state
                if state is not None:
                    state.collect(limit, part)
            elif which == 2:
                if self._wake_ready:
                    self._wake_ready = False
                    part.append(_WAKE_EVENT)
            elif len(self._files):
                self._files.collect(limit, part, self._factory)
            limit -= len(part)
        if self._timer_queue is not None:
            self._sync_timer()
        _refresh(self)
    for part in parts:
        out.extend(part)


def _refresh(self: Poller) -> None:
    # Under the lock.  Sources stay active while one may have something the
    # kernel will not announce: a timer the native timer does not cover,
    # undelivered signals, a WAKE to report, an armed always-ready file.
    # Everything else comes through a kernel key whose handler sets it again.
    queue = self._timer_queue
    active = False
    if queue is not None and len(queue):
        active = not self._timer_native or queue.next_deadline() != self._armed_deadline
    state = self._signal_state
    self._sources = (
        self._closed  # a closed poller never takes poll()'s fast path
        or active
        or self._wake_ready
        or (state is not None and state.pending())
        or self._files.has_ready()
    )
