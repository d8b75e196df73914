"""The centre's annual-style summary: volume, classes, categories, status, completion, plus answer-time
and response-time measures, over the incidents created (and calls that arrived) in a period of local
dates in the centre's time zone (Manado: WITA, Asia/Makassar, UTC+8)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from callflow.calls.model import CallRecord
from callflow.incidents.categories import CATEGORIES, Category, CategoryClass
from callflow.incidents.model import Incident, IncidentStatus
from callflow.incidents.service import IncidentService
from callflow.reports.measures import (
    COMPLETION_GOAL,
    AnswerTimeStats,
    DurationStats,
    GroupMeasures,
    answer_time_stats,
    answer_to_dispatch_seconds,
    duration_stats,
    grouped,
    response_seconds,
    share,
)
from callflow.reports.sources import CallRecordSource

DEFAULT_TIMEZONE = "Asia/Makassar"  # WITA, Manado's local time
DEFAULT_RESPONSE_TARGET_MIN = 30.0  # the centre's arrival target (2018 article)


@dataclass(frozen=True, slots=True)
class SummaryConfig:
    timezone: str = DEFAULT_TIMEZONE
    response_target_min: float = DEFAULT_RESPONSE_TARGET_MIN
    short_abandon_s: float = 0.0
    top: int = 3  # top categories listed per class

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class Period:
    """Local dates ``first`` .. ``last`` inclusive, in a time zone."""

    first: date
    last: date
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"the period ends ({self.last}) before it starts ({self.first})")

    @property
    def since(self) -> datetime:
        return datetime.combine(self.first, time(0), ZoneInfo(self.timezone)).astimezone(UTC)

    @property
    def until(self) -> datetime:
        day_after = self.last + timedelta(days=1)
        return datetime.combine(day_after, time(0), ZoneInfo(self.timezone)).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class CategoryCount:
    category: Category
    count: int
    share_of_total: float | None
    share_of_class: float | None


@dataclass(frozen=True, slots=True)
class SummaryReport:
    period: Period
    config: SummaryConfig
    total: int
    by_class: dict[CategoryClass, int]
    by_category: tuple[CategoryCount, ...]  # all 16 categories, in the published order
    top: dict[CategoryClass, tuple[CategoryCount, ...]]
    by_status: dict[IncidentStatus, int]
    answer: AnswerTimeStats | None  # None: no call records available
    answer_by_hour: dict[int, AnswerTimeStats]  # local hour of arrival
    answer_to_dispatch: DurationStats
    response: DurationStats
    groups: dict[str, dict[str, GroupMeasures]]  # category, district, operator, hour, month
    example_units: bool  # some dispatch went to a unit from example data
    notes: tuple[str, ...] = field(default=())

    def class_share(self, cls: CategoryClass) -> float | None:
        return share(self.by_class[cls], self.total)

    def status_share(self, status: IncidentStatus) -> float | None:
        return share(self.by_status[status], self.total)

    @property
    def completion_rate(self) -> float | None:
        return self.status_share(IncidentStatus.DONE)

    @property
    def completion_goal(self) -> float:
        return COMPLETION_GOAL

    @property
    def completion_meets_goal(self) -> bool:
        rate = self.completion_rate
        return rate is not None and rate > COMPLETION_GOAL

    def count(self, category: Category) -> CategoryCount:
        return next(c for c in self.by_category if c.category is category)


def build_summary(period: Period, incidents: Sequence[Incident], calls: Sequence[CallRecord] | None,
                  linked_calls: dict[str, CallRecord], config: SummaryConfig | None = None) -> SummaryReport:
    """Pure: the report from the period's incidents, the period's calls (None: no call records at all)
    and the calls linked to those incidents (which may have arrived just before the period)."""
    config = config or SummaryConfig(timezone=period.timezone)
    tz = config.tz
    total = len(incidents)
    per_cat = Counter(i.category for i in incidents)
    by_class = {cls: sum(n for c, n in per_cat.items() if c.category_class is cls) for cls in CategoryClass}
    counts = tuple(CategoryCount(c, per_cat[c], share(per_cat[c], total),
                                 share(per_cat[c], by_class[c.category_class])) for c in CATEGORIES)
    top = {cls: tuple(sorted((c for c in counts if c.category.category_class is cls and c.count),
                             key=lambda c: -c.count)[:config.top]) for cls in CategoryClass}
    statuses = Counter(i.status for i in incidents)
    target_s = config.response_target_min * 60
    notes: list[str] = []
    answer: AnswerTimeStats | None = None
    by_hour: dict[int, AnswerTimeStats] = {}
    if calls is None:
        notes.append("no call records available: answer-time measures are not shown")
    elif not calls:
        notes.append("no call records in this period: answer-time measures are not shown")
    else:
        answer = answer_time_stats(calls, short_abandon_s=config.short_abandon_s)
        hours: dict[int, list[CallRecord]] = {}
        for record in calls:
            hours.setdefault(record.arrival.astimezone(tz).hour, []).append(record)
        by_hour = {h: answer_time_stats(v, short_abandon_s=config.short_abandon_s)
                   for h, v in sorted(hours.items())}
        if config.short_abandon_s > 0:
            notes.append(f"answer times: unanswered calls shorter than {config.short_abandon_s:g} s "
                         f"(short abandons) are excluded ({answer.short_abandons_excluded} calls)")
        else:
            notes.append("answer times count every offered call, answered or abandoned, from arrival at "
                         "the PBX (IVR time included)")
    to_dispatch = [s for i in incidents if (s := answer_to_dispatch_seconds(i, linked_calls)) is not None]

    def operator(i: Incident) -> str:
        return i.created_by

    keys = {
        "category": lambda i: i.category.value,
        "district": lambda i: i.district.value,
        "operator": operator,
        "hour": lambda i: f"{i.created_at.astimezone(tz).hour:02d}",
        "month": lambda i: i.created_at.astimezone(tz).strftime("%Y-%m"),
    }
    groups = {name: grouped(incidents, key, linked_calls, response_target_s=target_s)
              for name, key in keys.items()}
    example = any(d.example for i in incidents for d in i.dispatches)
    if example:
        notes.append("EXAMPLE DATA: some dispatches went to units from an example agency registry")
    return SummaryReport(
        period=period, config=config, total=total, by_class=by_class, by_category=counts, top=top,
        by_status={s: statuses[s] for s in IncidentStatus}, answer=answer, answer_by_hour=by_hour,
        answer_to_dispatch=duration_stats(to_dispatch, 60.0),
        response=duration_stats(response_seconds(incidents), target_s), groups=groups,
        example_units=example, notes=tuple(notes))


async def summarize(service: IncidentService, source: CallRecordSource | None, period: Period,
                    config: SummaryConfig | None = None) -> SummaryReport:
    """Read the period's incidents and calls, then :func:`build_summary`."""
    incidents = await service.list(since=period.since, until=period.until)
    calls = await source.between(period.since, period.until) if source is not None else None
    linked: dict[str, CallRecord] = {c.linkedid: c for c in calls or ()}
    if source is not None:
        for incident in incidents:
            for lid in incident.linkedids:
                if lid not in linked and (record := await source.get(lid)) is not None:
                    linked[lid] = record
    return build_summary(period, incidents, calls, linked, config)
