"""Answer-time metrics computed from call records.

Answer time counts from arrival at the PBX (time in the IVR counts against the caller) over ALL offered
calls: an unanswered call never reaches any threshold, so a percentile that falls among unanswered calls
is reported as ``None`` ("not reached"). Short abandons (caller left within the configured threshold) are
excluded from offered calls by rule, and counted and reported as such.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from callflow.calls.model import CallRecord, Outcome

PERCENTILES = (50, 90, 95, 99)
THRESHOLDS_S = (10, 15, 20)


@dataclass(frozen=True, slots=True)
class AnswerTimes:
    calls: int  # every record in the group
    short_abandons_excluded: int
    offered: int
    answered: int
    unanswered: int
    abandon_rate: float | None
    percentiles_s: dict[str, float | None]  # "p50" -> seconds over offered calls (None: not reached)
    answered_within: dict[str, float | None]  # "10s" -> share of offered calls answered within
    mean_answer_s: float | None  # over answered calls
    ivr_time_p50_s: float | None
    ivr_time_mean_s: float | None
    outcomes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AnswerTimeReport:
    overall: AnswerTimes
    by_class: dict[str, AnswerTimes]
    by_hour: dict[str, AnswerTimes]
    rule: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "overall": self.overall.as_dict(),
                "by_class": {k: v.as_dict() for k, v in self.by_class.items()},
                "by_hour": {k: v.as_dict() for k, v in self.by_hour.items()}}


def nearest_rank(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending sequence (``inf`` allowed)."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _ivr_seconds(record: CallRecord) -> float | None:
    entered = next((i.at for i in record.instants if i.name == "ivr_entered"), None)
    if entered is None:
        return None
    left = next((i.at for i in record.instants if i.name == "ivr_left"), None) or record.ended
    return (left - entered).total_seconds() if left is not None else None


def answer_times(records: Sequence[CallRecord]) -> AnswerTimes:
    short = [r for r in records if r.outcome is Outcome.SHORT_ABANDON]
    offered = [r for r in records if r.outcome is not Outcome.SHORT_ABANDON]
    waits = sorted(r.answer_seconds if r.answer_seconds is not None else math.inf for r in offered)
    answered = [w for w in waits if w != math.inf]
    percentiles: dict[str, float | None] = {}
    for pct in PERCENTILES:
        value = nearest_rank(waits, pct) if waits else None
        percentiles[f"p{pct}"] = None if value is None or value == math.inf else round(value, 6)
    within = {f"{t}s": (round(sum(1 for w in answered if w <= t) / len(offered), 6) if offered else None)
              for t in THRESHOLDS_S}
    ivr = sorted(s for r in records if (s := _ivr_seconds(r)) is not None)
    outcomes: dict[str, int] = {}
    for r in records:
        outcomes[str(r.outcome)] = outcomes.get(str(r.outcome), 0) + 1
    return AnswerTimes(
        calls=len(records), short_abandons_excluded=len(short), offered=len(offered),
        answered=len(answered), unanswered=len(offered) - len(answered),
        abandon_rate=round((len(offered) - len(answered)) / len(offered), 6) if offered else None,
        percentiles_s=percentiles, answered_within=within,
        mean_answer_s=round(sum(answered) / len(answered), 6) if answered else None,
        ivr_time_p50_s=round(nearest_rank(ivr, 50), 6) if ivr else None,
        ivr_time_mean_s=round(sum(ivr) / len(ivr), 6) if ivr else None,
        outcomes=dict(sorted(outcomes.items())))


def _grouped(records: Sequence[CallRecord], key: Callable[[CallRecord], str]) -> dict[str, AnswerTimes]:
    groups: dict[str, list[CallRecord]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return {k: answer_times(v) for k, v in sorted(groups.items())}


def answer_time_report(records: Sequence[CallRecord], *, short_abandon_s: float = 3.0,
                       utc_offset_h: float = 0.0) -> AnswerTimeReport:
    """Overall, by queue class, and by hour of arrival (hour of day at ``utc_offset_h``)."""
    offset = timedelta(hours=utc_offset_h)
    records = [r for r in records if not r.is_callback]  # placed by the centre, not offered to it
    hour_label = f"UTC{utc_offset_h:+g}" if utc_offset_h else "UTC"
    rule = (f"answer time from arrival at the PBX over all offered calls; unanswered calls never reach a "
            f"threshold; short abandons (caller left within {short_abandon_s:g} s, decided when the record "
            f"was derived) are excluded from offered calls and counted separately; callbacks the centre "
            f"placed are not offered calls; hours are {hour_label}")
    return AnswerTimeReport(
        overall=answer_times(records),
        by_class=_grouped(records, lambda r: str(r.call_class)),
        by_hour=_grouped(records, lambda r: f"{(r.arrival + offset).hour:02d}:00"),
        rule=rule)
