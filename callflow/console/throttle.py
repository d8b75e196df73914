"""Login throttling: after too many failures in a window, an account or an address must wait.

Kept in memory (a restart forgets it, which only gives an attacker a few more tries per restart).
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from callflow.ami.client import Clock


class LoginThrottle:
    def __init__(self, clock: Clock, *, max_failures: int = 5,
                 window: timedelta = timedelta(minutes=5)) -> None:
        self._clock = clock
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, deque[datetime]] = {}

    def _recent(self, key: str) -> deque[datetime]:
        times = self._failures.setdefault(key, deque())
        horizon = self._clock() - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
            return deque()
        return times

    def retry_after(self, *keys: str) -> float:
        """Seconds to wait before another attempt is allowed for any of ``keys`` (0 when allowed)."""
        wait = 0.0
        for key in keys:
            times = self._recent(key)
            if len(times) >= self.max_failures:
                wait = max(wait, (times[0] + self.window - self._clock()).total_seconds())
        return wait

    def failed(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, account_key: str) -> None:
        self._failures.pop(account_key, None)
