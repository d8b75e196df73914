"""The centre's measures, as pure functions over incidents and call records.

- answer time: arrival at the PBX -> answered by an operator (IVR time counts), over ALL offered calls
  (an abandoned call counts as not answered within any threshold); optional short-abandon exclusion;
- answer -> dispatch: first answered linked call -> first dispatch of the incident (NFPA 1225: 90 %
  within 60 s);
- dispatch -> on scene: per dispatch, against the centre's target (default 30 minutes);
- completion rate: share of incidents done (Manado's goal: above 60 %).

Percentiles are nearest-rank (the smallest value with at least p % of values at or below it); the
median is the usual middle value (mean of the two middle values for an even count).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from callflow.calls.model import CallRecord, Outcome
from callflow.incidents.model import DispatchState, Incident, IncidentStatus

SERVICE_LEVEL_THRESHOLDS_S = (10, 15, 20)  # NFPA 10 s; NENA 15 s (90 %) and 20 s (95 %)
NFPA_DISPATCH_TARGET_S = 60.0
NFPA_DISPATCH_GOAL = 0.90
COMPLETION_GOAL = 0.60  # Manado: done above 60 %


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def whole_percent(fraction: float | None) -> int | None:
    """Rounded half up to a whole percent, as the centre publishes its shares."""
    return None if fraction is None else math.floor(fraction * 100 + 0.5)


@dataclass(frozen=True, slots=True)
class DurationStats:
    """Durations in seconds against a target."""

    count: int
    target_s: float
    within_target: int
    mean: float | None
    median: float | None
    p90: float | None
    max: float | None

    @property
    def share_within(self) -> float | None:
        return share(self.within_target, self.count)


def duration_stats(values: Iterable[float], target_s: float) -> DurationStats:
    vals = list(values)
    return DurationStats(
        count=len(vals), target_s=target_s, within_target=sum(1 for v in vals if v <= target_s),
        mean=statistics.fmean(vals) if vals else None, median=statistics.median(vals) if vals else None,
        p90=percentile(vals, 90), max=max(vals) if vals else None)


@dataclass(frozen=True, slots=True)
class AnswerTimeStats:
    offered: int  # calls counted (short abandons excluded when a threshold is set)
    answered: int
    abandoned: int
    short_abandon_s: float  # 0: none excluded
    short_abandons_excluded: int
    answer: DurationStats  # over answered calls; target = the first service-level threshold
    service_levels: Mapping[int, float | None] = field(default_factory=dict)  # s -> share of offered


def is_short_abandon(record: CallRecord, threshold_s: float) -> bool:
    if threshold_s <= 0 or record.answered is not None:
        return False
    if record.outcome is Outcome.SHORT_ABANDON:
        return True
    return record.ended is not None and (record.ended - record.arrival).total_seconds() < threshold_s


def answer_time_stats(records: Iterable[CallRecord], *, short_abandon_s: float = 0.0,
                      thresholds: Sequence[int] = SERVICE_LEVEL_THRESHOLDS_S) -> AnswerTimeStats:
    counted: list[CallRecord] = []
    excluded = 0
    for record in records:
        if record.is_callback:  # placed by the centre (queues/callbacks), not offered to it
            continue
        if is_short_abandon(record, short_abandon_s):
            excluded += 1
        else:
            counted.append(record)
    answer_s = [r.answer_seconds for r in counted if r.answer_seconds is not None]
    levels = {t: share(sum(1 for a in answer_s if a <= t), len(counted)) for t in thresholds}
    return AnswerTimeStats(
        offered=len(counted), answered=len(answer_s), abandoned=len(counted) - len(answer_s),
        short_abandon_s=short_abandon_s, short_abandons_excluded=excluded,
        answer=duration_stats(answer_s, float(thresholds[0])), service_levels=levels)


def first_answered(incident: Incident, calls: Mapping[str, CallRecord]) -> CallRecord | None:
    """The earliest answered call linked to the incident (the one that brought the report in)."""
    answered = [c for lid in incident.linkedids if (c := calls.get(lid)) is not None
                and c.answered is not None]
    return min(answered, key=lambda c: c.answered or c.arrival, default=None)


def answer_to_dispatch_seconds(incident: Incident, calls: Mapping[str, CallRecord]) -> float | None:
    call = first_answered(incident, calls)
    first = incident.first_dispatch
    if call is None or call.answered is None or first is None:
        return None
    return (first.dispatched_at - call.answered).total_seconds()


def response_seconds(incidents: Iterable[Incident]) -> list[float]:
    """Dispatch -> on scene, one value per dispatch that reached the scene."""
    out: list[float] = []
    for incident in incidents:
        for d in incident.dispatches:
            on_scene = d.at(DispatchState.ON_SCENE)
            if on_scene is not None:
                out.append((on_scene - d.dispatched_at).total_seconds())
    return out


@dataclass(frozen=True, slots=True)
class GroupMeasures:
    """The measures of one group of incidents (a category, a district, an operator, an hour, a month)."""

    reports: int
    done: int
    answer_time: DurationStats  # the first answered linked call of each incident
    answer_to_dispatch: DurationStats
    response: DurationStats

    @property
    def completion_rate(self) -> float | None:
        return share(self.done, self.reports)


def group_measures(incidents: Sequence[Incident], calls: Mapping[str, CallRecord], *,
                   response_target_s: float, answer_target_s: float = SERVICE_LEVEL_THRESHOLDS_S[0]
                   ) -> GroupMeasures:
    answer_s: list[float] = []
    to_dispatch: list[float] = []
    for incident in incidents:
        call = first_answered(incident, calls)
        if call is not None and call.answer_seconds is not None:
            answer_s.append(call.answer_seconds)
        seconds = answer_to_dispatch_seconds(incident, calls)
        if seconds is not None:
            to_dispatch.append(seconds)
    return GroupMeasures(
        reports=len(incidents), done=sum(1 for i in incidents if i.status is IncidentStatus.DONE),
        answer_time=duration_stats(answer_s, answer_target_s),
        answer_to_dispatch=duration_stats(to_dispatch, NFPA_DISPATCH_TARGET_S),
        response=duration_stats(response_seconds(incidents), response_target_s))


def grouped(incidents: Iterable[Incident], key: Callable[[Incident], str], calls: Mapping[str, CallRecord],
            *, response_target_s: float) -> dict[str, GroupMeasures]:
    groups: dict[str, list[Incident]] = {}
    for incident in incidents:
        groups.setdefault(key(incident), []).append(incident)
    return {k: group_measures(v, calls, response_target_s=response_target_s)
            for k, v in sorted(groups.items())}
