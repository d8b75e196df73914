"""The centre's annual-style summary: volume, classes, categories, status, completion, plus answer-time
and response-time measures, over the incidents created (and calls that arrived) in a period of local
dates in the centre's time zone (Manado: WITA, Asia/Makassar, UTC+8)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from callflow.calls.model import CallRecord
from callflow.centre import CENTRE_TIMEZONE
from callflow.incidents.categories import CATEGORIES, Category, CategoryClass
from callflow.incidents.model import Incident, IncidentStatus
from callflow.incidents.service import IncidentService
from callflow.reports.measures import (
    ANSWER_TIME_RULE,
    COMPLETION_GOAL,
    NFPA_DISPATCH_TARGET_S,
    AnswerTimes,
    CallbackMeasures,
    CallbackTaskFacts,
    DurationStats,
    GroupMeasures,
    NuisanceMeasures,
    answer_times,
    answer_times_by,
    answer_to_dispatch_seconds,
    callback_measures,
    duration_stats,
    first_answered,
    grouped,
    nuisance_measures,
    offered_answer_seconds,
    response_seconds,
    share,
)
from callflow.reports.sources import CallRecordSource

DEFAULT_TIMEZONE = CENTRE_TIMEZONE  # WITA, Manado's local time
DEFAULT_RESPONSE_TARGET_MIN = 30.0  # the centre's arrival target (2018 article)


@dataclass(frozen=True, slots=True)
class SummaryConfig:
    timezone: str = DEFAULT_TIMEZONE
    response_target_min: float = DEFAULT_RESPONSE_TARGET_MIN
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
    answer: AnswerTimes | None  # None: no call records available
    answer_by_hour: dict[int, AnswerTimes]  # local hour of arrival
    answer_seconds: tuple[float, ...]  # answer times of the answered offered calls (the chart's values)
    callbacks: CallbackMeasures | None  # None: no call records available
    nuisance: NuisanceMeasures | None  # genuine calls, nuisance share by hour, top repeat numbers
    answer_to_dispatch: DurationStats
    response: DurationStats
    groups: dict[str, dict[str, GroupMeasures]]  # category, district, operator, hour, month
    example_units: bool  # some dispatch went to a unit from example data
    operator_accounts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # id -> accounts that wrote
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
                  linked_calls: dict[str, CallRecord], config: SummaryConfig | None = None, *,
                  callbacks: Sequence[CallbackTaskFacts] = (), natures: Mapping[str, str] | None = None
                  ) -> SummaryReport:
    """Pure: the report from the period's incidents, the period's calls (None: no call records at all),
    the calls linked to those incidents (which may have arrived just before the period), the callback
    tasks of the period's calls and the operators' tags of those calls (linkedid -> nature)."""
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
    answer: AnswerTimes | None = None
    by_hour: dict[int, AnswerTimes] = {}
    callback: CallbackMeasures | None = None
    nuisance: NuisanceMeasures | None = None
    if calls is None:
        notes.append("no call records available: answer-time measures are not shown")
    elif not calls:
        notes.append("no call records in this period: answer-time measures are not shown")
    else:
        answer = answer_times(calls)
        by_hour = answer_times_by(calls, lambda r: r.arrival.astimezone(tz).hour)
        callback = callback_measures(callbacks)
        nuisance = nuisance_measures(calls, natures or {}, lambda r: f"{r.arrival.astimezone(tz).hour:02d}")
        notes.append(f"answer times: {ANSWER_TIME_RULE}")
    to_dispatch = [s for i in incidents if (s := answer_to_dispatch_seconds(i, linked_calls)) is not None]

    def operator(i: Incident) -> str:
        """The operator's id (queue member name) who answered the incident's first answered call, as the
        call records and ``report operators`` name operators; the account that created it otherwise."""
        call = first_answered(i, linked_calls)
        return call.operator if call is not None and call.operator else i.created_by

    accounts: dict[str, set[str]] = {}
    for incident in incidents:
        accounts.setdefault(operator(incident), set()).add(incident.created_by)

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
        answer_seconds=tuple(offered_answer_seconds(calls or ())), callbacks=callback, nuisance=nuisance,
        answer_to_dispatch=duration_stats(to_dispatch, NFPA_DISPATCH_TARGET_S),
        response=duration_stats(response_seconds(incidents), target_s), groups=groups,
        example_units=example, operator_accounts={k: tuple(sorted(v)) for k, v in sorted(accounts.items())},
        notes=tuple(notes))


async def summarize(service: IncidentService, source: CallRecordSource | None, period: Period,
                    config: SummaryConfig | None = None) -> SummaryReport:
    """Read the period's incidents and calls, then :func:`build_summary`."""
    incidents = await service.list(since=period.since, until=period.until)
    calls = await source.between(period.since, period.until) if source is not None else None
    linked: dict[str, CallRecord] = {c.linkedid: c for c in calls or ()}
    callbacks: list[CallbackTaskFacts] = []
    natures: dict[str, str] = {}
    if source is not None:
        for incident in incidents:
            for lid in incident.linkedids:
                if lid not in linked and (record := await source.get(lid)) is not None:
                    linked[lid] = record
        callbacks = await source.callbacks(period.since, period.until)
        natures = dict(await source.natures([c.linkedid for c in calls or ()]))
    return build_summary(period, incidents, calls, linked, config, callbacks=callbacks, natures=natures)
