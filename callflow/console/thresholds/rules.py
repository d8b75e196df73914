"""The wallboard's thresholds as pure functions: which conditions hold now, and what that does to the
alerts already raised. No I/O, no clock: the service reads the figures, passes ``now`` and carries the
changes out (store, audit, live stream).

Three conditions, one alert each while it holds:

* ``service_level``: today's share of offered calls answered within ``service_level_s`` of arrival is
  below ``service_level_target`` (judged once ``service_level_min_offered`` calls were offered);
* ``emergency_wait``: an emergency caller has waited longer than ``emergency_wait_s`` in the queue;
* ``callback_overdue``: an open callback is older than ``callback_overdue_s`` (the citizen is still
  waiting to be called back).

An alert is raised when its condition starts, keeps its figures current while it holds, may be
acknowledged by a supervisor (who, when), and is cleared when the condition ends; a condition that comes
back later raises a new alert (a new acknowledgement is needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class ThresholdKind(StrEnum):
    SERVICE_LEVEL = "service_level"
    EMERGENCY_WAIT = "emergency_wait"
    CALLBACK_OVERDUE = "callback_overdue"


@dataclass(frozen=True, slots=True)
class ThresholdPolicy:
    service_level_s: int = 10  # the emergency queue's service level (site.toml servicelevel_s)
    service_level_target: float = 0.90
    service_level_min_offered: int = 1
    emergency_wait_s: float = 10.0
    callback_overdue_s: float = 600.0


@dataclass(frozen=True, slots=True)
class Figures:
    """What the service read: today's offered calls and those answered within the service level, how long
    each emergency caller now in the queue has waited, and the ages of the open callbacks (seconds)."""

    offered: int
    answered_within: int
    emergency_waits_s: Sequence[float]
    open_callback_ages_s: Sequence[float]


@dataclass(frozen=True, slots=True)
class Condition:
    kind: ThresholdKind
    detail: str  # what a supervisor reads on the wallboard


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    kind: ThresholdKind
    raised_at: datetime
    detail: str
    acknowledged_by: str = ""
    acknowledged_at: datetime | None = None
    cleared_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.cleared_at is None


def conditions(figures: Figures, policy: ThresholdPolicy) -> dict[ThresholdKind, Condition]:
    """The conditions that hold for these figures."""
    found: dict[ThresholdKind, Condition] = {}
    if figures.offered >= max(1, policy.service_level_min_offered):
        share = figures.answered_within / figures.offered
        if share < policy.service_level_target:
            found[ThresholdKind.SERVICE_LEVEL] = Condition(
                ThresholdKind.SERVICE_LEVEL,
                f"service level {share:.0%} (answered within {policy.service_level_s} s: "
                f"{figures.answered_within} of {figures.offered}), target {policy.service_level_target:.0%}")
    # the details change only when a count does (the live wait is on the board beside them)
    late = [w for w in figures.emergency_waits_s if w > policy.emergency_wait_s]
    if late:
        found[ThresholdKind.EMERGENCY_WAIT] = Condition(
            ThresholdKind.EMERGENCY_WAIT,
            f"{len(late)} emergency caller(s) waiting longer than {policy.emergency_wait_s:.0f} s")
    overdue = [a for a in figures.open_callback_ages_s if a > policy.callback_overdue_s]
    if overdue:
        found[ThresholdKind.CALLBACK_OVERDUE] = Condition(
            ThresholdKind.CALLBACK_OVERDUE,
            f"{len(overdue)} callback(s) open longer than {policy.callback_overdue_s / 60:.0f} min")
    return found


@dataclass(frozen=True, slots=True)
class Raise:
    kind: ThresholdKind
    detail: str


@dataclass(frozen=True, slots=True)
class Update:
    alert: Alert


@dataclass(frozen=True, slots=True)
class Clear:
    alert: Alert


Change = Raise | Update | Clear


def reconcile(active: Mapping[ThresholdKind, Alert], holding: Mapping[ThresholdKind, Condition],
              now: datetime) -> list[Change]:
    """What to do so the active alerts match the conditions that hold: raise the new ones, update the
    figures of those still holding, clear those whose condition ended (in ``ThresholdKind`` order)."""
    changes: list[Change] = []
    for kind in ThresholdKind:
        alert, condition = active.get(kind), holding.get(kind)
        if alert is None and condition is not None:
            changes.append(Raise(kind, condition.detail))
        elif alert is not None and condition is None:
            changes.append(Clear(replace(alert, cleared_at=now)))
        elif alert is not None and condition is not None and condition.detail != alert.detail:
            changes.append(Update(replace(alert, detail=condition.detail)))
    return changes


class AckRefused(Exception):
    """The acknowledgement changes nothing; the message says why."""


def acknowledge(alert: Alert | None, alert_id: int, by: str, now: datetime) -> Alert:
    """The alert acknowledged by ``by`` at ``now``; refused when it is gone or already acknowledged."""
    if alert is None:
        raise AckRefused(f"alert {alert_id} is not active (its condition ended, or no such alert): "
                         "reload the wallboard")
    if alert.acknowledged_at is not None:
        raise AckRefused(f"alert {alert_id} was already acknowledged by {alert.acknowledged_by} at "
                         f"{alert.acknowledged_at.isoformat(timespec='seconds')}")
    return replace(alert, acknowledged_by=by, acknowledged_at=now)
