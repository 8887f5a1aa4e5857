"""Per-user rate limiting shared by every messenger adapter (a sliding window, bounded memory)."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable


class RateLimiter:
    """At most `limit` events per `window` seconds per key; `limit=0` turns it off.

    Keys unseen for a whole window are forgotten, and at most `max_keys` are kept (least recently
    seen dropped first), so a flood of new users cannot grow memory without bound.
    """

    def __init__(
        self, limit: int, window: float, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._events: OrderedDict[Hashable, deque[float]] = OrderedDict()
        self._warned: dict[Hashable, float] = {}

    def hit(self, key: Hashable) -> float:
        """Record an event for `key`: 0.0 when allowed, else the seconds until the next is allowed."""
        if self.limit <= 0:
            return 0.0
        now = self._clock()
        self._forget_idle(now)
        events = self._events.pop(key, None) or deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        self._events[key] = events  # most recently seen last
        if len(events) >= self.limit:
            return max(events[0] + self.window - now, 0.001)
        events.append(now)
        return 0.0

    def should_warn(self, key: Hashable) -> bool:
        """True once per blocked stretch: the user is told to wait once, not on every message."""
        now = self._clock()
        until = self._warned.get(key)
        if until is not None and until > now:
            return False
        events = self._events.get(key)
        self._warned[key] = (events[0] + self.window) if events else now + self.window
        return True

    def _forget_idle(self, now: float) -> None:
        while self._events:
            key, events = next(iter(self._events.items()))
            if len(self._events) <= self.max_keys and events and events[-1] > now - self.window:
                break
            self._events.popitem(last=False)
            self._warned.pop(key, None)
