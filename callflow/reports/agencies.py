"""Agencies' measures, as pure functions over hand-offs (callflow/agencies): the figures the centre
needs to reach its completion goal by coordinating with the agencies that follow reports up.

Definitions (each used by the report, the console and the wallboard alike):

- a hand-off is *completed* when the agency marked it done, or the centre closed the whole report;
- completion rate: completed / handed, against :data:`~callflow.reports.measures.COMPLETION_GOAL`
  (met when above it, as :class:`~callflow.reports.summary.SummaryReport` judges the centre's rate);
- time to acknowledge / to done: from the hand-off (first dispatch of one of the agency's units) to the
  agency's acknowledgement / completion; the target is the category's deadline from the site file;
- backlog: hand-offs open at an instant, by age band (age = instant - hand-off);
- trend: hand-offs per month of the hand-off (the centre's time zone) and how many are completed.

Durations are :func:`~callflow.reports.measures.duration_stats` (mean, median, nearest-rank p90).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from callflow.agencies import Handoff, HandoffPolicy, Stage
from callflow.reports.measures import COMPLETION_GOAL, DurationStats, duration_stats, share

# (label, lower bound) of each backlog age band; a band runs up to the next one's bound
AGE_BANDS: tuple[tuple[str, timedelta], ...] = (
    ("< 1 day", timedelta(0)), ("1-3 days", timedelta(days=1)), ("3-7 days", timedelta(days=3)),
    ("7-30 days", timedelta(days=7)), ("> 30 days", timedelta(days=30)))


def completed_at(h: Handoff) -> datetime | None:
    """When the agency's part ended: its done mark, or the centre's closing of the report."""
    return h.done_at or h.closed_by_centre_at


def is_completed(h: Handoff, at: datetime | None = None) -> bool:
    done = completed_at(h)
    return done is not None and (at is None or done <= at)


@dataclass(frozen=True, slots=True)
class Completion:
    handed: int
    completed: int

    @property
    def rate(self) -> float | None:
        return share(self.completed, self.handed)

    @property
    def goal(self) -> float:
        return COMPLETION_GOAL

    @property
    def meets_goal(self) -> bool:
        rate = self.rate
        return rate is not None and rate > COMPLETION_GOAL


def completion(handoffs: Iterable[Handoff], at: datetime | None = None) -> Completion:
    hs = list(handoffs)
    return Completion(len(hs), sum(1 for h in hs if is_completed(h, at)))


def _seconds(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else (end - start).total_seconds()


@dataclass(frozen=True, slots=True)
class AgencyCategoryRow:
    """One agency and one category: completion, time to acknowledge and to done against the deadlines."""

    agency_id: str
    category: str
    completion: Completion
    to_acknowledge: DurationStats  # target: the category's acknowledge deadline
    to_done: DurationStats  # target: the category's done deadline


def by_agency_and_category(handoffs: Iterable[Handoff], policy: HandoffPolicy) -> list[AgencyCategoryRow]:
    groups: dict[tuple[str, str], list[Handoff]] = {}
    for h in handoffs:
        groups.setdefault((h.agency_id, h.incident.category.value), []).append(h)
    rows = []
    for (agency, category), hs in sorted(groups.items()):
        deadline = policy.deadline(hs[0].incident.category)
        ack = [s for h in hs if (s := _seconds(h.handed_at, h.acknowledged_at)) is not None]
        done = [s for h in hs if (s := _seconds(h.handed_at, completed_at(h))) is not None]
        rows.append(AgencyCategoryRow(agency, category, completion(hs),
                                      duration_stats(ack, deadline.of(Stage.ACKNOWLEDGE).total_seconds()),
                                      duration_stats(done, deadline.of(Stage.DONE).total_seconds())))
    return rows


def by_agency(handoffs: Iterable[Handoff]) -> dict[str, Completion]:
    groups: dict[str, list[Handoff]] = {}
    for h in handoffs:
        groups.setdefault(h.agency_id, []).append(h)
    return {agency: completion(hs) for agency, hs in sorted(groups.items())}


def age_band(age: timedelta) -> str:
    label = AGE_BANDS[0][0]
    for name, lower in AGE_BANDS:
        if age >= lower:
            label = name
    return label


def backlog(handoffs: Iterable[Handoff], at: datetime) -> dict[str, dict[str, int]]:
    """Open hand-offs at ``at`` per agency and age band (every band present, zeros included)."""
    out: dict[str, dict[str, int]] = {}
    for h in handoffs:
        if h.handed_at > at or is_completed(h, at):
            continue
        bands = out.setdefault(h.agency_id, {name: 0 for name, _ in AGE_BANDS})
        bands[age_band(at - h.handed_at)] += 1
    return dict(sorted(out.items()))


def open_count(handoffs: Iterable[Handoff], at: datetime) -> dict[str, int]:
    """The wallboard's figure: hand-offs open at ``at`` per agency."""
    return {agency: sum(bands.values()) for agency, bands in backlog(handoffs, at).items()}


def by_month(handoffs: Iterable[Handoff], zone: ZoneInfo) -> dict[str, Completion]:
    """Per month of the hand-off (``YYYY-MM`` on the centre's clock): handed and completed (by now)."""
    groups: dict[str, list[Handoff]] = {}
    for h in handoffs:
        groups.setdefault(h.handed_at.astimezone(zone).strftime("%Y-%m"), []).append(h)
    return {month: completion(hs) for month, hs in sorted(groups.items())}


@dataclass(frozen=True, slots=True)
class AgencyReport:
    at: datetime  # the backlog's instant
    rows: Sequence[AgencyCategoryRow]
    agencies: dict[str, Completion]
    backlog: dict[str, dict[str, int]]
    months: dict[str, Completion]


def agency_report(handoffs: Sequence[Handoff], policy: HandoffPolicy, at: datetime,
                  zone: ZoneInfo) -> AgencyReport:
    return AgencyReport(at, by_agency_and_category(handoffs, policy), by_agency(handoffs),
                        backlog(handoffs, at), by_month(handoffs, zone))


def _completion(c: Completion) -> dict[str, Any]:
    return {"handed": c.handed, "completed": c.completed, "rate": c.rate, "goal": c.goal,
            "meets_goal": c.meets_goal}


def _duration(d: DurationStats) -> dict[str, Any]:
    return {"count": d.count, "target_s": d.target_s, "within_target": d.within_target, "mean_s": d.mean,
            "median_s": d.median, "p90_s": d.p90, "max_s": d.max}


def report_as_dict(r: AgencyReport) -> dict[str, Any]:
    return {"backlog_at": r.at.isoformat(),
            "agencies": {a: _completion(c) for a, c in r.agencies.items()},
            "by_category": [{"agency": row.agency_id, "category": row.category,
                             "completion": _completion(row.completion),
                             "to_acknowledge": _duration(row.to_acknowledge),
                             "to_done": _duration(row.to_done)}
                            for row in r.rows],
            "backlog": r.backlog,
            "months": {m: _completion(c) for m, c in r.months.items()}}
