"""Operator time report: how each operator's logged-in time was spent, from the stored transitions.

A pure function of ``operator_transitions`` rows (each: operator, Asterisk's time, old and new state,
pause reason): every interval between two transitions is counted in the state it was in, clipped to the
report's period. The last state of an operator runs until the end of the period (or ``now``, whichever
comes first). Time before an operator's first transition in the period is counted in the ``old_state``
of that transition, so a period that starts mid-shift is still whole.

Occupancy = time on calls / time available for calls (logged in and not paused): the share of an
operator's working time spent with callers, the figure supervisors staff by.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from queues.states import State

__all__ = ["OperatorTime", "TransitionRow", "operator_time_report"]


@dataclass(frozen=True, slots=True)
class TransitionRow:
    operator: str
    at: datetime  # UTC-aware, Asterisk's event time
    old_state: State
    new_state: State
    reason: str = ""  # pause reason (for new_state = paused)


@dataclass(slots=True)
class OperatorTime:
    operator: str
    seconds: dict[State, float] = field(default_factory=lambda: dict.fromkeys(State, 0.0))
    pause_by_reason: dict[str, float] = field(default_factory=dict)

    @property
    def logged_in_s(self) -> float:
        return sum(v for s, v in self.seconds.items() if s is not State.OFFLINE)

    @property
    def available_s(self) -> float:
        """Logged in and not paused: time the operator could take calls."""
        return self.logged_in_s - self.seconds[State.PAUSED]

    @property
    def occupancy(self) -> float | None:
        busy = self.seconds[State.ON_CALL]
        return busy / self.available_s if self.available_s > 0 else None

    def as_dict(self) -> dict[str, object]:
        return {"operator": self.operator, "seconds": {s.value: round(v, 3) for s, v in self.seconds.items()},
                "logged_in_s": round(self.logged_in_s, 3), "available_s": round(self.available_s, 3),
                "occupancy": None if self.occupancy is None else round(self.occupancy, 4),
                "pause_by_reason": {k: round(v, 3) for k, v in sorted(self.pause_by_reason.items())}}


def operator_time_report(rows: Iterable[TransitionRow], start: datetime, end: datetime,
                         operators: Sequence[str] = ()) -> list[OperatorTime]:
    """Time per state for each operator between ``start`` and ``end`` (UTC-aware). ``rows`` may hold
    transitions from before ``start`` (they give the state at ``start``); later ones are ignored.
    ``operators`` are listed even without transitions (all offline)."""
    if end <= start:
        raise ValueError(f"the period is empty: end {end.isoformat()} is not after start {start.isoformat()}")
    by_operator: dict[str, list[TransitionRow]] = {name: [] for name in operators}
    for row in rows:
        if row.at < end:
            by_operator.setdefault(row.operator, []).append(row)
    report: list[OperatorTime] = []
    for name in sorted(by_operator):
        out = OperatorTime(name)
        history = sorted(by_operator[name], key=lambda r: r.at)
        before = [r for r in history if r.at <= start]
        inside = [r for r in history if r.at > start]
        if before:
            state, reason = before[-1].new_state, before[-1].reason
        elif inside:
            state, reason = inside[0].old_state, ""
        else:
            state, reason = State.OFFLINE, ""
        cursor = start
        for row in inside:
            _count(out, state, reason, (row.at - cursor).total_seconds())
            cursor, state, reason = row.at, row.new_state, row.reason
        _count(out, state, reason, (end - cursor).total_seconds())
        report.append(out)
    return report


def _count(out: OperatorTime, state: State, reason: str, seconds: float) -> None:
    out.seconds[state] += seconds
    if state is State.PAUSED:
        key = reason or "(no reason)"
        out.pause_by_reason[key] = out.pause_by_reason.get(key, 0.0) + seconds
