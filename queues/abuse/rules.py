"""Repeat-abuse flags as pure rules: when a supervisor's flag on a number is in force. A flag never refuses
or blocks a call; it only orders a flagged caller behind other emergency callers and spares the centre
callbacks to calls that were not classed emergency (queues/callbacks/rules.py). No I/O, no clock."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

REPEAT_ABUSE = "repeat_abuse"
DEFAULT_FLAG_HOURS = 24.0
MAX_FLAG_HOURS = 24.0 * 30


@dataclass(frozen=True, slots=True)
class AbuseFlag:
    """A supervisor's ``repeat_abuse`` flag on a number: who, why, when, until when, lifted by whom."""

    id: int
    number: str
    reason: str
    flagged_by: str
    flagged_at: datetime
    expires_at: datetime
    lifted_by: str = ""
    lifted_at: datetime | None = None
    lift_note: str = ""

    def in_force(self, at: datetime) -> bool:
        """Set before ``at``, not lifted by then, and not yet expired."""
        if self.flagged_at > at or at >= self.expires_at:
            return False
        return self.lifted_at is None or self.lifted_at > at

    def describe(self) -> str:
        return (f"{REPEAT_ABUSE} set by {self.flagged_by} at {self.flagged_at.isoformat()} until "
                f"{self.expires_at.isoformat()}: {self.reason}")


def flag_expiry(at: datetime, hours: float | None) -> datetime:
    """When a flag set at ``at`` for ``hours`` (default 24 h) ends; a flag never lasts beyond 30 days."""
    span = DEFAULT_FLAG_HOURS if hours is None else hours
    if not 0 < span <= MAX_FLAG_HOURS:
        msg = f"flag duration {span} h is out of range: give between 0 and {MAX_FLAG_HOURS:g} hours"
        raise ValueError(msg)
    return at + timedelta(hours=span)


def flag_in_force(flags: list[AbuseFlag], at: datetime) -> AbuseFlag | None:
    """The latest of ``flags`` (one number's) in force at ``at``, or None."""
    live = [f for f in flags if f.in_force(at)]
    return max(live, key=lambda f: f.flagged_at) if live else None


# Contract with extensions.conf [siaga-queue-priority]: one dial plan global per flagged number,
# SIAGA_ABUSE_<caller number> = expiry. Globals, not AstDB: AMI's DBPut/DBDel need the `system` class,
# Setvar only `call` (README "Security: the PBX side").
ABUSE_VARIABLE_PREFIX = "SIAGA_ABUSE_"
_DIAL_PLAN_NUMBER = re.compile(r"[0-9+*#]{1,32}")  # what the dial plan leaves of a caller id


def abuse_variable(number: str) -> str | None:
    """The dial plan global that carries ``number``'s flag, or None for a number no caller id can be
    (the dial plan keeps only digits and + * #)."""
    return ABUSE_VARIABLE_PREFIX + number if _DIAL_PLAN_NUMBER.fullmatch(number) else None


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What to change in the dial plan's globals so it sees the flags in force: ``put`` number ->
    expiry (epoch seconds; the dial plan compares it with ``${EPOCH}``, so an expired flag is never applied
    even while the engine is down), ``delete`` numbers no longer flagged."""

    put: dict[str, int]
    delete: frozenset[str]


def sync_plan(flags: list[AbuseFlag], present: dict[str, int], at: datetime) -> SyncPlan:
    """From every flag row and what Asterisk holds now (``present``: number -> expiry), the changes."""
    wanted: dict[str, int] = {}
    for f in flags:
        if f.in_force(at):
            wanted[f.number] = max(wanted.get(f.number, 0), int(f.expires_at.timestamp()))
    put = {n: e for n, e in wanted.items() if present.get(n) != e}
    return SyncPlan(put=put, delete=frozenset(n for n in present if n not in wanted))
