"""Login throttling: which attempts are checked at all, decided before the slow password check.

The rules (README "Console security"), each over a sliding window (5 minutes):

- **account from an address**: 5 failed attempts for one account from one client address, and further
  attempts for that account from that address wait. Nobody else is affected: the owner at another desk,
  or a colleague logging in to their own account from the same address, is checked as usual.
- **unknown names from an address**: 20 failed attempts with names that are no account, and further
  attempts with unknown names from that address wait (they cost a password hash each). Attempts for
  real accounts from that address are still checked under the first rule, so a floor behind one NAT
  address is never locked out by one person's typing. (A side effect: past that point an answer that
  is not 429 shows the name exists; account names are not secrets here, and the audit trail has it.)
- **an account under attack**: 50 failed attempts for one account from all addresses together, and each
  address may fail that account only once: an address that already failed it waits, while the owner's
  correct password from an address that has not failed is still checked and let in.

An attempt is *reserved* (counted as a failure) before the password is checked and released if the
check succeeds, so concurrent attempts cannot all slip through while the first ones are being hashed.
Kept in memory: a restart forgets it (an attacker gains one window's tries per restart).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from callflow.ami.client import Clock

_SWEEP_FLOOR = 10_000  # keys kept before expired ones are swept (memory stays bounded by the window)


@dataclass(frozen=True, slots=True)
class ThrottleRules:
    per_account_address: int = 5
    unknown_names_per_address: int = 20
    per_account: int = 50
    window: timedelta = timedelta(minutes=5)


@dataclass(slots=True)
class Attempt:
    """A reserved attempt: call :meth:`LoginThrottle.failed` or :meth:`LoginThrottle.succeeded` with it."""

    keys: tuple[str, ...]
    at: datetime
    pair: str
    settled: bool = False


class LoginThrottle:
    def __init__(self, clock: Clock, rules: ThrottleRules | None = None) -> None:
        self._clock = clock
        self.rules = rules or ThrottleRules()
        self._failures: dict[str, deque[datetime]] = {}  # reserved attempts count here until released
        self._sweep_at = _SWEEP_FLOOR
        self._swept = clock()

    @property
    def window(self) -> timedelta:
        return self.rules.window

    @property
    def keys(self) -> int:
        """Counters held (for tests and the memory bound)."""
        return len(self._failures)

    def _recent(self, key: str) -> deque[datetime]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        horizon = self._clock() - self.rules.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def _wait(self, key: str, limit: int) -> float:
        times = self._recent(key)
        if len(times) < limit:
            return 0.0
        # the attempt that lets one more through is the limit-th newest leaving the window
        oldest_counted = times[len(times) - limit]
        return max(0.001, (oldest_counted + self.rules.window - self._clock()).total_seconds())

    def reserve(self, account: str, address: str, *, known: bool) -> Attempt | float:
        """Reserve an attempt for ``account`` (lower-cased name) from ``address``: an :class:`Attempt`
        to settle after the check, or the seconds to wait before trying again. Synchronous: the decision
        and the reservation happen with no await between them."""
        r = self.rules
        pair = f"pair:{account}\x00{address}"
        account_key = f"account:{account}"
        waits = [self._wait(pair, r.per_account_address)]
        if len(self._recent(account_key)) >= r.per_account:
            waits.append(self._wait(pair, 1))  # under attack: one failure per address
        keys = [pair, account_key]
        if not known:
            unknown_key = f"unknown:{address}"
            waits.append(self._wait(unknown_key, r.unknown_names_per_address))
            keys.append(unknown_key)
        wait = max(waits)
        if wait > 0:
            return wait
        now = self._clock()
        if len(self._failures) >= self._sweep_at or now - self._swept >= r.window:
            # many names or addresses, or a window gone by: drop expired counters (memory stays bounded
            # by the attempts of the last two windows)
            for key in list(self._failures):
                self._recent(key)
            self._sweep_at = max(_SWEEP_FLOOR, 2 * len(self._failures))
            self._swept = now
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)
        return Attempt(tuple(keys), now, pair)

    def failed(self, attempt: Attempt) -> None:
        """The check failed: the reservation stays, as a failure at the time it was reserved."""
        attempt.settled = True

    def succeeded(self, attempt: Attempt) -> None:
        """The check passed: release the reservation and forget this address's failures for the account
        (the account-wide count stays: it measures the attack, not the owner)."""
        if attempt.settled:
            return
        attempt.settled = True
        for key in attempt.keys:
            times = self._failures.get(key)
            if times is not None and attempt.at in times:
                times.remove(attempt.at)
                if not times:
                    del self._failures[key]
        self._failures.pop(attempt.pair, None)
