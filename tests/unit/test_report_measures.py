"""The measures on small, hand-computed data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callflow.calls.model import CallClass, CallRecord, InstantSource, Outcome
from callflow.incidents import (
    Category,
    Dispatch,
    DispatchState,
    DispatchStep,
    District,
    Incident,
    IncidentStatus,
    StatusChange,
)
from callflow.reports import (
    InMemoryCallRecords,
    Period,
    SummaryConfig,
    answer_times,
    build_summary,
    duration_stats,
    percentile,
    whole_percent,
)
from callflow.reports.measures import answer_to_dispatch_seconds, group_measures, response_seconds
from callflow.reports.render import render_text

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)  # 08:00 WITA


def call(linkedid: str, arrival_s: float, answer_s: float | None, *, length_s: float = 60.0,
         outcome: Outcome | None = None, operator: str = "op1") -> CallRecord:
    arrival = T0 + timedelta(seconds=arrival_s)
    answered = arrival + timedelta(seconds=answer_s) if answer_s is not None else None
    return CallRecord(linkedid=linkedid, caller_number="0812", caller_name="", dialed="112",
                      call_class=CallClass.EMERGENCY,
                      outcome=outcome or (Outcome.ANSWERED if answered else Outcome.ABANDONED_IN_QUEUE),
                      arrival=arrival, ended=arrival + timedelta(seconds=length_s), answered=answered,
                      operator=operator if answered else "")


def incident(iid: int, *, category: Category = Category.FIRE, status: IncidentStatus = IncidentStatus.DONE,
             created_s: float = 30.0, calls: tuple[str, ...] = (),
             dispatches: tuple[tuple[float, float | None], ...] = (), by: str = "op1",
             district: District = District.WENANG) -> Incident:
    created = T0 + timedelta(seconds=created_s)
    ds = []
    for n, (sent_s, on_scene_s) in enumerate(dispatches):
        steps = [DispatchStep(DispatchState.DISPATCHED, T0 + timedelta(seconds=sent_s), by,
                              InstantSource.OPERATOR)]
        if on_scene_s is not None:
            steps.append(DispatchStep(DispatchState.ON_SCENE, T0 + timedelta(seconds=on_scene_s), by,
                                      InstantSource.OPERATOR))
        ds.append(Dispatch(iid * 10 + n, iid, f"u{n}", "unit", "ag", "fire", False, tuple(steps)))
    history = (StatusChange(None, IncidentStatus.WAIT, created, by, InstantSource.OPERATOR),)
    return Incident(iid, category, district, "", "", status, created, by, calls, history, tuple(ds))


def test_percentile_nearest_rank_and_rounding() -> None:
    assert percentile([], 90) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile([float(v) for v in range(1, 11)], 90) == 9.0  # ceil(0.9*10) = 9th value
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 100) == 4.0
    assert whole_percent(0.5097) == 51
    assert whole_percent(0.745) == 75  # half up, not to even
    assert whole_percent(None) is None


def test_duration_stats_by_hand() -> None:
    d = duration_stats([30.0, 45.0, 60.0, 90.0], 60.0)
    assert d.count == 4
    assert d.within_target == 3  # <= target counts as within
    assert d.share_within == 0.75
    assert d.mean == 56.25
    assert d.median == 45.0  # nearest rank, as every percentile: the 2nd of 4
    assert d.p90 == 90.0
    assert d.max == 90.0
    empty = duration_stats([], 60.0)
    assert empty.count == 0
    assert empty.share_within is None
    assert empty.mean is None


def test_answer_time_counts_abandoned_calls_as_offered() -> None:
    records = [call("a", 0, 4.0), call("b", 10, 12.0), call("c", 20, 18.0), call("d", 30, 25.0),
               call("e", 40, None, length_s=30.0), call("f", 50, None, length_s=2.0)]
    s = answer_times(records)
    assert (s.offered, s.answered, s.abandoned) == (6, 4, 2)
    assert s.service_levels == {10: 1 / 6, 15: 2 / 6, 20: 3 / 6}
    assert s.mean_answer_s == pytest.approx(14.75)  # over the 4 answered calls
    # nearest rank over the 6 offered calls: 4, 12, 18, 25, never, never
    assert (s.percentiles_s[50], s.percentiles_s[90]) == (18.0, None)
    # a short abandon is the record's outcome (decided when it was derived, with the site's threshold),
    # never a duration a report measures again: call f (2 s, outcome abandoned_in_queue) stays offered
    flagged = call("g", 60, None, length_s=8.0, outcome=Outcome.SHORT_ABANDON)
    s2 = answer_times([*records, flagged])
    assert (s2.citizen_calls, s2.offered, s2.short_abandons) == (7, 6, 1)


def test_answer_to_dispatch_and_response_by_hand() -> None:
    calls = {c.linkedid: c for c in (call("x", 0, 5.0), call("y", 100, 3.0), call("z", 200, None))}
    # first answered linked call: x answered at 5 s; first dispatch at 50 s -> 45 s
    a = incident(1, calls=("y", "x", "z"), dispatches=((80, 680), (50, 1250)))
    assert answer_to_dispatch_seconds(a, calls) == 45.0
    assert sorted(response_seconds([a])) == [600.0, 1200.0]
    b = incident(2, calls=("z",), dispatches=((300, None),))  # abandoned call only, never arrived
    assert answer_to_dispatch_seconds(b, calls) is None
    assert response_seconds([b]) == []
    c = incident(3, calls=("y",), dispatches=((190, 2100),), status=IncidentStatus.HANDLING)
    g = group_measures([a, b, c], calls, response_target_s=1800)
    assert (g.reports, g.done) == (3, 2)
    assert g.completion_rate == 2 / 3
    assert g.answer_to_dispatch.count == 2  # a: 45 s; c: 190 - 103 = 87 s
    assert g.answer_to_dispatch.within_target == 1
    assert g.answer_to_dispatch.mean == 66.0
    assert g.response.count == 3  # 600, 1200, 1910
    assert g.response.within_target == 2
    assert g.answer_time.count == 2  # first answered call of a (5 s) and c (3 s)
    assert g.answer_time.mean == 4.0


def test_summary_by_hand() -> None:
    calls = [call("x", 0, 5.0, operator="op1"), call("y", 3600, 30.0, operator="op2"), call("z", 7200, None)]
    incidents = [
        incident(1, category=Category.FIRE, calls=("x",), dispatches=((60, 960),)),
        incident(2, category=Category.ELECTRICITY, status=IncidentStatus.HANDLING, calls=("y",),
                 created_s=3700, by="op2", district=District.SARIO),
        incident(3, category=Category.FIRE, status=IncidentStatus.WAIT, created_s=7300),
        incident(4, category=Category.CRIME, status=IncidentStatus.DONE, created_s=7400,
                 dispatches=((7500, 9900),)),
    ]
    period = Period(date(2026, 3, 1), date(2026, 3, 1))
    r = build_summary(period, incidents, calls, {c.linkedid: c for c in calls},
                      SummaryConfig(response_target_min=30))
    assert r.total == 4
    assert r.by_class["emergency"] == 3  # type: ignore[index]
    assert r.count(Category.FIRE).count == 2
    assert r.count(Category.FIRE).share_of_class == 2 / 3
    assert r.count(Category.ELECTRICITY).share_of_class == 1.0
    assert [c.category for c in r.top["emergency"]] == [Category.FIRE, Category.CRIME]  # type: ignore[index]
    assert r.completion_rate == 0.5
    assert not r.completion_meets_goal
    assert r.answer is not None
    assert (r.answer.offered, r.answer.answered) == (3, 2)
    assert r.answer.service_levels[10] == 1 / 3
    assert sorted(r.answer_by_hour) == [8, 9, 10]  # local hours (WITA) of the three arrivals
    assert r.answer_to_dispatch.count == 1  # only incident 1 has an answered call and a dispatch
    assert r.answer_to_dispatch.mean == 55.0
    assert (r.response.count, r.response.within_target) == (2, 1)  # 900 s within, 2400 s not
    assert set(r.groups) == {"category", "district", "operator", "hour", "month"}
    assert r.groups["operator"]["op2"].reports == 1
    assert r.groups["hour"]["08"].reports == 1
    assert r.groups["month"]["2026-03"].reports == 4
    assert r.groups["district"]["sario"].answer_time.median == 30.0
    assert r.answer_seconds == (5.0, 30.0)  # what the answer-time chart plots: the text's answered calls


def test_period_is_local_dates() -> None:
    p = Period(date(2019, 1, 1), date(2019, 12, 31))
    assert p.since == datetime(2018, 12, 31, 16, 0, tzinfo=UTC)
    assert p.until == datetime(2019, 12, 31, 16, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="ends"):
        Period(date(2019, 2, 1), date(2019, 1, 1))


async def test_in_memory_source() -> None:
    src = InMemoryCallRecords([call("b", 10, 1.0), call("a", 0, 1.0)])
    await src.on_call_record(call("c", 100, None))
    assert (await src.get("a")) is not None
    assert await src.get("nope") is None
    assert [r.linkedid for r in await src.between(T0, T0 + timedelta(seconds=50))] == ["a", "b"]
    assert len(src) == 3


@given(st.lists(st.floats(min_value=0, max_value=1e5, allow_nan=False), max_size=60),
       st.floats(min_value=0, max_value=1e5, allow_nan=False))
def test_duration_stats_properties(values: list[float], target: float) -> None:
    d = duration_stats(values, target)
    assert d.count == len(values)
    assert 0 <= d.within_target <= d.count
    if values:
        assert d.share_within is not None
        assert 0.0 <= d.share_within <= 1.0
        assert min(values) <= d.median <= d.p90 <= d.max == max(values)  # type: ignore[operator]
        # nearest rank: at least 90 % of the values are at or below p90, and p90 is one of them
        assert d.p90 in values
        assert sum(1 for v in values if v <= d.p90) >= 0.9 * len(values)  # type: ignore[operator]


@given(st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=120)), max_size=40))
def test_service_levels_are_monotone_and_bounded(answers: list[float | None]) -> None:
    records = [call(f"c{i}", float(i), a) for i, a in enumerate(answers)]
    s = answer_times(records)
    assert s.offered == len(answers)
    assert s.answered + s.abandoned == s.offered
    assert s.unanswered == s.abandoned
    levels = [s.service_levels[t] for t in (10, 15, 20)]
    if answers:
        assert all(v is not None and 0.0 <= v <= 1.0 for v in levels)
        assert levels[0] <= levels[1] <= levels[2]  # type: ignore[operator]
    else:
        assert levels == [None, None, None]


def test_per_operator_figures_use_the_operator_id_with_the_account_beside_it() -> None:
    """The console writes incidents with the account name (``dewi``); calls name the operator by its id
    (the queue member, ``op2``): the per-operator group is the id, the account name beside it."""
    calls = [call("x", 0, 5.0, operator="op2"), call("y", 100, 7.0, operator="op1")]
    incidents = [incident(1, calls=("x",), by="dewi"), incident(2, calls=("y",), by="op1"),
                 incident(3, by="sup-budi")]  # no answered call: the account is all there is
    r = build_summary(Period(date(2026, 3, 1), date(2026, 3, 1)), incidents, calls,
                      {c.linkedid: c for c in calls})
    assert sorted(r.groups["operator"]) == ["op1", "op2", "sup-budi"]
    assert r.groups["operator"]["op2"].answer_time.median == 5.0
    assert r.operator_accounts == {"op1": ("op1",), "op2": ("dewi",), "sup-budi": ("sup-budi",)}
    text = render_text(r)
    assert "  op2 (dewi) " in text
    assert "  op1  " in text
