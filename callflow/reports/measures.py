"""The centre's numbers: every measure a report, a screen or an export shows is defined here, once.

Every surface calls these functions: ``siaga112 report answer-times`` and ``report summary`` (text, JSON,
CSV and charts), the console's ``/api/reports/summary``, the wallboard's ``/api/calls/stats/today`` and the
derived fields of ``calls export`` (``answer_seconds``). ``tests/console/test_one_set_of_numbers.py`` holds
them all to the same figures for one fixture.

Calls offered to the centre
- A **citizen call** came in on the citizen ingress (its caller leg is ``PJSIP/citizen-ingress-...``; a
  record recovered from Asterisk's files without legs counts when it dialled a number). The engine's own
  callback calls (Linkedid ``siaga-cb-...``) and operators' internal calls are not citizen calls.
- A **short abandon** is a citizen call its caller left, unanswered, within ``short_abandon_s`` of arrival:
  the site file's ``[calls] short_abandon_s`` (default 3 s), applied when the record is derived from the
  journal (outcome ``short_abandon``). Short abandons are counted apart, never as offered calls.
- **Offered** = citizen calls - short abandons. Every call figure below is over offered calls.
- **Answered**: an operator answered (the record has an ``answered`` time: outcomes ``answered`` and
  ``transferred``, and a ``failsafe`` call an operator took).
- **Abandoned**: the caller hung up before an operator answered, in the IVR or in a queue (outcomes
  ``abandoned_in_ivr``, ``abandoned_in_queue``). **Unanswered** = offered - answered (abandoned, timed out,
  overflowed or fail-safe calls nobody answered, incomplete records). Abandon rate = abandoned / offered.
- **Answer time** runs from arrival at the PBX to the operator's answer: time in the IVR counts.
- **Service level within T s** (T = 10, 15, 20; NFPA 1225: 90 % within 10 s... NENA: 90 % within 15 s,
  95 % within 20 s) = offered calls answered within T s / offered calls.
- **Percentiles** (p50 = the median, p90, p95, p99) are nearest-rank over ALL offered calls, an unanswered
  call counting as never answered: a percentile that falls among unanswered calls is *not reached*
  (``None``, printed ``-``). The mean answer time is over answered calls only, and says so.
- **Time in the IVR**: ``ivr_entered`` -> ``ivr_left`` (or the call's end), over offered calls that
  entered the IVR.
- Calls are grouped by the local hour of their arrival (the centre's time zone) and by call class.

Honest numbers (issue 19): calls operators tagged **prank**, **silent** or **accidental**
(callflow/calls/nature.py ``NUISANCE``; the latest tag of a call counts) are **nuisance calls**.
**Genuine calls** are all the others, untagged calls included (the centre does not know they were not
genuine): the same answer-time figures over genuine calls sit beside those over all offered calls. The
**nuisance share by hour** is, per local hour of arrival, offered calls tagged nuisance / offered calls;
the **top repeat numbers** are the numbers with the most nuisance-tagged citizen calls, masked (last 3
digits) except for supervisors.

Callbacks (the engine calling back emergency callers nobody answered) are not offered calls; they have
their own section: **tasks** (one per citizen call that needed a callback, counted by that call's
arrival), **attempts** (calls the engine placed for them), **citizens reached** (tasks with an attempt the
citizen answered), **taken by an operator** (of those, tasks whose citizen an operator then answered) and
the **time from hang-up to the reached citizen** (the citizen's call ended -> the citizen answered the
callback).

Incidents (reports)
- an incident's **answer time**: the answer time of its first answered linked call;
- **answer -> dispatch**: that call's answer -> the incident's first dispatch (NFPA 1225: 90 % within 60 s);
- **dispatch -> on scene**: per dispatch that reached the scene, against the centre's target (30 min);
- **completion rate**: incidents done / incidents (Manado's goal: above 60 %).

Durations are summarised as count, share within a target, mean, median and p90, all nearest-rank
(the median is the smallest value with at least half of the values at or below it). Shares are fractions;
the centre publishes them as whole percents rounded half up (:func:`whole_percent`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from callflow.calls.model import CallRecord, Outcome
from callflow.calls.nature import NUISANCE
from callflow.incidents.model import DispatchState, Incident, IncidentStatus
from callflow.logs import mask_number

SERVICE_LEVEL_THRESHOLDS_S = (10, 15, 20)  # NFPA 10 s; NENA 15 s (90 %) and 20 s (95 %)
PERCENTILES = (50, 90, 95, 99)
NFPA_DISPATCH_TARGET_S = 60.0
NFPA_DISPATCH_GOAL = 0.90
COMPLETION_GOAL = 0.60  # Manado: done above 60 %
ABANDONED = frozenset({Outcome.ABANDONED_IN_IVR, Outcome.ABANDONED_IN_QUEUE})

K = TypeVar("K", str, int)

# The rule in one sentence, as every report states it.
ANSWER_TIME_RULE = (
    "answer time runs from arrival at the PBX (time in the IVR included) and is measured over all offered "
    "calls (citizen calls less short abandons, which are counted apart); an unanswered call never reaches "
    "a threshold, so a percentile that falls among unanswered calls is not reached ('-'); the engine's own "
    "callback calls are not offered calls and are reported apart")


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100): the smallest value with at least p % of values at or below
    it. ``inf`` values (never answered) are allowed; None for no values."""
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


# -- durations -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DurationStats:
    """Durations in seconds, against a target (None: no target)."""

    count: int
    target_s: float | None
    within_target: int
    mean: float | None
    median: float | None
    p90: float | None
    max: float | None

    @property
    def share_within(self) -> float | None:
        return share(self.within_target, self.count) if self.target_s is not None else None


def duration_stats(values: Iterable[float], target_s: float | None) -> DurationStats:
    vals = list(values)
    return DurationStats(
        count=len(vals), target_s=target_s,
        within_target=sum(1 for v in vals if v <= target_s) if target_s is not None else 0,
        mean=sum(vals) / len(vals) if vals else None, median=percentile(vals, 50), p90=percentile(vals, 90),
        max=max(vals) if vals else None)


# -- calls offered to the centre -------------------------------------------------------------------
def is_citizen_call(record: CallRecord) -> bool:
    """Came in on the citizen ingress (:attr:`CallRecord.is_citizen_call`, shared with the callback
    rules); never a callback the engine placed, nor an operator's own call."""
    return record.is_citizen_call


def is_offered(record: CallRecord) -> bool:
    return is_citizen_call(record) and record.outcome is not Outcome.SHORT_ABANDON


def ivr_seconds(record: CallRecord) -> float | None:
    entered = next((i.at for i in record.instants if i.name == "ivr_entered"), None)
    if entered is None:
        return None
    left = next((i.at for i in record.instants if i.name == "ivr_left"), None) or record.ended
    return (left - entered).total_seconds() if left is not None else None


@dataclass(frozen=True, slots=True)
class AnswerTimes:
    """The answer-time figures of one group of citizen calls (module docstring: the definitions)."""

    citizen_calls: int
    short_abandons: int
    offered: int
    answered: int
    abandoned: int
    answered_within: Mapping[int, int]  # T -> offered calls answered within T s
    percentiles_s: Mapping[int, float | None]  # 50 -> seconds over offered calls (None: not reached)
    mean_answer_s: float | None  # over answered calls
    ivr: DurationStats  # time in the IVR of offered calls that entered it (no target)
    outcomes: Mapping[str, int] = field(default_factory=dict)  # citizen calls per outcome

    @property
    def unanswered(self) -> int:
        return self.offered - self.answered

    @property
    def abandon_rate(self) -> float | None:
        return share(self.abandoned, self.offered)

    @property
    def service_levels(self) -> dict[int, float | None]:
        return {t: share(n, self.offered) for t, n in self.answered_within.items()}

    @property
    def median_s(self) -> float | None:
        return self.percentiles_s[50]

    def as_dict(self) -> dict[str, Any]:
        """The one JSON shape of these figures, for every surface."""
        return {
            "citizen_calls": self.citizen_calls, "short_abandons": self.short_abandons,
            "offered": self.offered, "answered": self.answered, "abandoned": self.abandoned,
            "unanswered": self.unanswered, "abandon_rate": self.abandon_rate,
            "answered_within": {str(t): n for t, n in self.answered_within.items()},
            "service_levels": {str(t): v for t, v in self.service_levels.items()},
            "percent_within": {str(t): whole_percent(v) for t, v in self.service_levels.items()},
            "percentiles_s": {f"p{p}": v for p, v in self.percentiles_s.items()},
            "mean_answer_s": self.mean_answer_s,
            "ivr_time_p50_s": self.ivr.median, "ivr_time_mean_s": self.ivr.mean,
            "outcomes": dict(self.outcomes),
        }


def offered_answer_seconds(records: Iterable[CallRecord]) -> list[float]:
    """Answer times of the answered offered calls (what an answer-time chart plots)."""
    return [s for r in records if is_offered(r) and (s := r.answer_seconds) is not None]


def answer_times(records: Iterable[CallRecord]) -> AnswerTimes:
    citizen = [r for r in records if is_citizen_call(r)]
    offered = [r for r in citizen if r.outcome is not Outcome.SHORT_ABANDON]
    waits = [r.answer_seconds if r.answer_seconds is not None else math.inf for r in offered]
    answered = [w for w in waits if w != math.inf]
    percentiles: dict[int, float | None] = {}
    for p in PERCENTILES:
        value = percentile(waits, p)
        percentiles[p] = None if value is None or value == math.inf else value
    return AnswerTimes(
        citizen_calls=len(citizen), short_abandons=len(citizen) - len(offered), offered=len(offered),
        answered=len(answered), abandoned=sum(1 for r in offered if r.outcome in ABANDONED),
        answered_within={t: sum(1 for w in answered if w <= t) for t in SERVICE_LEVEL_THRESHOLDS_S},
        percentiles_s=percentiles, mean_answer_s=sum(answered) / len(answered) if answered else None,
        ivr=duration_stats((s for r in offered if (s := ivr_seconds(r)) is not None), None),
        outcomes=dict(sorted(Counter(str(r.outcome) for r in citizen).items())))


def answer_times_by(records: Iterable[CallRecord], key: Callable[[CallRecord], K]) -> dict[K, AnswerTimes]:
    """:func:`answer_times` per group of citizen calls (groups with no citizen call are left out)."""
    groups: dict[K, list[CallRecord]] = {}
    for record in records:
        if is_citizen_call(record):
            groups.setdefault(key(record), []).append(record)
    return {k: answer_times(v) for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))}


# -- honest numbers: genuine calls, nuisance share, repeat numbers -----------------------------------
def is_nuisance(record: CallRecord, natures: Mapping[str, str]) -> bool:
    """Tagged prank, silent or accidental (``natures``: linkedid -> the call's current tag)."""
    return natures.get(record.linkedid, "") in NUISANCE


def genuine_calls(records: Iterable[CallRecord], natures: Mapping[str, str]) -> list[CallRecord]:
    """Every call but the nuisance-tagged ones (an untagged call counts as genuine)."""
    return [r for r in records if not is_nuisance(r, natures)]


@dataclass(frozen=True, slots=True)
class NuisanceHour:
    nuisance: int  # offered calls tagged prank, silent or accidental
    calls: int  # offered calls

    @property
    def share(self) -> float | None:
        return share(self.nuisance, self.calls)


@dataclass(frozen=True, slots=True)
class NuisanceMeasures:
    """The genuine calls' answer-time figures, the nuisance share by hour and the top repeat numbers."""

    genuine: AnswerTimes
    by_hour: Mapping[str, NuisanceHour]
    top_numbers: tuple[tuple[str, int], ...]  # (number, nuisance-tagged calls), most first; unmasked

    def top(self, *, show_numbers: bool) -> list[tuple[str, int]]:
        """The top repeat numbers, masked unless ``show_numbers`` (supervisors only)."""
        return [(n if show_numbers else mask_number(n), c) for n, c in self.top_numbers]

    def as_dict(self, *, show_numbers: bool = False) -> dict[str, Any]:
        return {"genuine": self.genuine.as_dict(),
                "nuisance_by_hour": {h: {"nuisance": v.nuisance, "calls": v.calls, "share": v.share}
                                     for h, v in self.by_hour.items()},
                "top_repeat_numbers": [{"number": n, "nuisance_calls": c}
                                       for n, c in self.top(show_numbers=show_numbers)]}


def nuisance_measures(records: Iterable[CallRecord], natures: Mapping[str, str],
                      hour_of: Callable[[CallRecord], str], *, top: int = 10) -> NuisanceMeasures:
    """``hour_of``: the local hour of a call's arrival in the centre's time zone, as ``"08"``."""
    citizen = [r for r in records if is_citizen_call(r)]
    hours: dict[str, list[int]] = {}
    for r in citizen:
        if is_offered(r):
            counts = hours.setdefault(hour_of(r), [0, 0])
            counts[0] += is_nuisance(r, natures)
            counts[1] += 1
    repeat = Counter(r.caller_number for r in citizen if is_nuisance(r, natures) and r.caller_number)
    return NuisanceMeasures(
        genuine=answer_times(genuine_calls(citizen, natures)),
        by_hour={h: NuisanceHour(b, t) for h, (b, t) in sorted(hours.items())},
        top_numbers=tuple(sorted(repeat.items(), key=lambda kv: (-kv[1], kv[0]))[:top]))


# -- callbacks -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CallbackAttemptFacts:
    """One call the engine placed to call a citizen back."""

    n: int
    started_at: datetime
    answered_at: datetime | None  # the citizen answered (None: not answered, or not known)


@dataclass(frozen=True, slots=True)
class CallbackTaskFacts:
    """What the callback store knows of one task, with the hang-up of the citizen's call it follows."""

    linkedid: str  # the citizen's call
    arrival: datetime  # that call's arrival at the PBX
    hung_up: datetime | None  # that call's end (None: its record is not known)
    attempts: tuple[CallbackAttemptFacts, ...] = ()
    operator: str = ""  # who took the reached citizen ('' none)


@dataclass(frozen=True, slots=True)
class CallbackMeasures:
    tasks: int
    attempts: int
    unanswered_attempts: int
    citizens_reached: int
    taken_by_operator: int
    hangup_to_reached: DurationStats  # no target

    def as_dict(self) -> dict[str, Any]:
        d = self.hangup_to_reached
        return {"tasks": self.tasks, "attempts": self.attempts,
                "unanswered_attempts": self.unanswered_attempts, "citizens_reached": self.citizens_reached,
                "taken_by_operator": self.taken_by_operator,
                "hangup_to_reached": {"count": d.count, "mean_s": d.mean, "median_s": d.median,
                                      "p90_s": d.p90, "max_s": d.max}}


def callback_measures(tasks: Iterable[CallbackTaskFacts]) -> CallbackMeasures:
    listed = list(tasks)
    attempts = [a for t in listed for a in t.attempts]
    reached: list[float] = []
    reached_tasks = 0
    for task in listed:
        first = min((a.answered_at for a in task.attempts if a.answered_at is not None), default=None)
        if first is None:
            continue
        reached_tasks += 1
        if task.hung_up is not None:
            reached.append((first - task.hung_up).total_seconds())
    return CallbackMeasures(
        tasks=len(listed), attempts=len(attempts),
        unanswered_attempts=sum(1 for a in attempts if a.answered_at is None),
        citizens_reached=reached_tasks, taken_by_operator=sum(1 for t in listed if t.operator),
        hangup_to_reached=duration_stats(reached, None))


# -- incidents -------------------------------------------------------------------------------------
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
