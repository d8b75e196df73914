"""Hand-off rules and the agencies' measures (callflow/agencies/rules.py, callflow/reports/agencies.py)
on hand-offs built by hand, against figures worked out by hand below."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from callflow.agencies import Deadline, EventKind, Handoff, HandoffEvent, HandoffPolicy, Stage, handoffs_of
from callflow.agencies import overdue as overdue_stages
from callflow.agencies.rules import Refusal, check_action, to_escalate
from callflow.calls.model import InstantSource
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
from callflow.policies import handoff_policy
from callflow.reports.agencies import age_band, agency_report, backlog, by_month, completion
from callflow.siteconfig import Agencies, HandoffDeadline

T0 = datetime(2026, 1, 30, 16, 0, tzinfo=UTC)  # 31 Jan 00:00 in Manado (UTC+8)
E = InstantSource.ENGINE_CLOCK
WITA = ZoneInfo("Asia/Makassar")


def incident(number: int, category: Category, agency: str, handed: datetime, *, done: datetime | None = None,
             second_agency: str | None = None) -> Incident:
    history = [StatusChange(None, IncidentStatus.WAIT, handed - timedelta(minutes=1), "op1", E),
               StatusChange(IncidentStatus.WAIT, IncidentStatus.HANDLING, handed, "op1", E)]
    if done is not None:
        history.append(StatusChange(IncidentStatus.HANDLING, IncidentStatus.DONE, done, "op1", E))
    dispatches = [Dispatch(number * 10, number, f"{agency}-1", "unit", agency, "utility", True,
                           (DispatchStep(DispatchState.DISPATCHED, handed, "op1", E),))]
    if second_agency is not None:
        dispatches.append(Dispatch(number * 10 + 1, number, f"{second_agency}-1", "unit", second_agency,
                                   "police", True, (DispatchStep(DispatchState.DISPATCHED,
                                                                 handed + timedelta(minutes=5), "op1", E),)))
    return Incident(number, category, District.WENANG, "", "", IncidentStatus.DONE if done else
                    IncidentStatus.HANDLING, handed - timedelta(minutes=1), "op1", (), tuple(history),
                    tuple(dispatches))


def ev(number: int, agency: str, kind: EventKind, at: datetime, note: str = "") -> HandoffEvent:
    return HandoffEvent(number, agency, kind, at, f"{agency}-desk", note)


def test_a_report_handed_to_two_agencies_gives_two_handoffs_each_with_its_own_events() -> None:
    i = incident(1, Category.ACCIDENT, "amb", T0, second_agency="police")
    hs = handoffs_of(i, [ev(1, "police", EventKind.ACKNOWLEDGED, T0 + timedelta(minutes=6)),
                         ev(2, "amb", EventKind.ACKNOWLEDGED, T0)])  # another report's event
    assert [(h.agency_id, h.handed_at) for h in hs] == [("amb", T0), ("police", T0 + timedelta(minutes=5))]
    assert (hs[0].acknowledged_at, hs[1].acknowledged_at) == (None, T0 + timedelta(minutes=6))


def test_deadlines_per_class_and_per_category_and_overdue_exactly_at_the_deadline() -> None:
    water = HandoffDeadline(acknowledge_min=60, done_h=48)
    policy = handoff_policy(Agencies(categories={"clean_water": water}))
    assert policy.deadline(Category.FIRE) == Deadline(timedelta(minutes=15), timedelta(hours=24))
    assert policy.deadline(Category.GARBAGE) == Deadline(timedelta(hours=24), timedelta(days=7))
    assert policy.deadline(Category.CLEAN_WATER) == Deadline(timedelta(hours=1), timedelta(hours=48))
    fire = handoffs_of(incident(1, Category.FIRE, "fire", T0), [])[0]
    assert overdue_stages(fire, policy, T0 + timedelta(minutes=15) - timedelta(microseconds=1)) == []
    [late] = overdue_stages(fire, policy, T0 + timedelta(minutes=15))
    assert (late.stage, late.due_at) == (Stage.ACKNOWLEDGE, T0 + timedelta(minutes=15))
    acked = Handoff(fire.incident, "fire", T0,
                    (ev(1, "fire", EventKind.ACKNOWLEDGED, T0 + timedelta(hours=1)),))
    assert [o.stage for o in overdue_stages(acked, policy, T0 + timedelta(hours=25))] == [Stage.DONE]
    assert to_escalate([acked], policy, T0 + timedelta(hours=25), {(1, "fire", Stage.DONE)}) == []
    closed = handoffs_of(incident(2, Category.FIRE, "fire", T0, done=T0 + timedelta(minutes=5)), [])[0]
    assert overdue_stages(closed, policy, T0 + timedelta(days=9)) == []  # the centre closed it
    with pytest.raises(Refusal, match="closed by the centre"):
        check_action(closed, EventKind.NOTE)
    with pytest.raises(Refusal, match="already acknowledged"):
        check_action(acked, EventKind.ACKNOWLEDGED)


def test_report_figures_equal_the_ones_worked_out_by_hand() -> None:
    """Electricity: 4 hand-offs (3 in January, 1 in February), water: 2; worked out below."""
    h = timedelta(hours=1)
    pln = [
        (incident(1, Category.ELECTRICITY, "pln", T0), [ev(1, "pln", EventKind.ACKNOWLEDGED, T0 + 2 * h),
                                                        ev(1, "pln", EventKind.DONE, T0 + 50 * h, "fixed")]),
        (incident(2, Category.ELECTRICITY, "pln", T0 + h),
         [ev(2, "pln", EventKind.ACKNOWLEDGED, T0 + 31 * h)]),
        # closed by the centre after 10 h: completed, never acknowledged
        (incident(3, Category.STREET_LIGHTING, "pln", T0 + 2 * h, done=T0 + 12 * h), []),
        (incident(4, Category.ELECTRICITY, "pln", T0 + 240 * h), [ev(4, "pln", EventKind.ACKNOWLEDGED,
                                                                     T0 + 244 * h)]),
    ]
    water = [
        (incident(5, Category.CLEAN_WATER, "pdam", T0),
         [ev(5, "pdam", EventKind.DONE, T0 + 20 * h, "valve")]),
        (incident(6, Category.CLEAN_WATER, "pdam", T0), []),
    ]
    handoffs = [x for i, events in (*pln, *water) for x in handoffs_of(i, events)]
    policy = HandoffPolicy()
    at = T0 + 250 * h  # the backlog's instant: 10 days 10 h after T0
    report = agency_report(handoffs, policy, at, WITA)

    # completion: pln 2 of 4 (#1 done, #3 closed by the centre) = 50 %, below the goal; pdam 1 of 2
    assert (report.agencies["pln"].handed, report.agencies["pln"].completed) == (4, 2)
    assert report.agencies["pln"].rate == 0.5
    assert not report.agencies["pln"].meets_goal
    assert completion(handoffs[:1] + handoffs[2:3] + handoffs[4:5]).meets_goal  # 3 of 3 > 60 %
    rows = {(r.agency_id, r.category): r for r in report.rows}
    power = rows[("pln", "electricity")]
    # acknowledged after 2 h (#1), 30 h (#2), 4 h (#4): median 4 h; within the 24 h deadline: 2 of 3
    assert (power.to_acknowledge.count, power.to_acknowledge.median) == (3, 4 * 3600.0)
    assert (power.to_acknowledge.within_target, power.to_acknowledge.target_s) == (2, 24 * 3600.0)
    assert (power.to_acknowledge.mean, power.to_acknowledge.max) == (12 * 3600.0, 30 * 3600.0)
    # done after 50 h (#1) only: within the 7-day deadline
    assert (power.to_done.count, power.to_done.median, power.to_done.within_target) == (1, 50 * 3600.0, 1)
    assert (power.completion.handed, power.completion.completed) == (3, 1)
    light = rows[("pln", "street_lighting")]
    assert (light.completion.rate, light.to_done.median, light.to_acknowledge.count) == (1.0, 10 * 3600.0, 0)

    # backlog at T0+250 h: pln #2 (age 249 h = 10.4 days -> 7-30 days), #4 (10 h -> < 1 day); pdam #6 (250 h)
    assert report.backlog == {
        "pdam": {"< 1 day": 0, "1-3 days": 0, "3-7 days": 0, "7-30 days": 1, "> 30 days": 0},
        "pln": {"< 1 day": 1, "1-3 days": 0, "3-7 days": 0, "7-30 days": 1, "> 30 days": 0}}
    # exactly a day after T0: #1 and #6 are 24 h old (1-3 days: a band includes its lower bound), #2 23 h;
    # #3 closed at 12 h and #5 done at 20 h are not open; #4 is not handed yet
    assert backlog(handoffs, T0 + 24 * h) == {
        "pdam": {"< 1 day": 0, "1-3 days": 1, "3-7 days": 0, "7-30 days": 0, "> 30 days": 0},
        "pln": {"< 1 day": 1, "1-3 days": 1, "3-7 days": 0, "7-30 days": 0, "> 30 days": 0}}
    assert age_band(timedelta(days=1)) == "1-3 days"  # a band includes its lower bound

    # trend by month (Manado time): T0 is 31 Jan 00:00 WITA; #4 (T0 + 10 days) is in February
    months = by_month(handoffs, WITA)
    assert {m: (c.handed, c.completed) for m, c in months.items()} == {"2026-01": (5, 3), "2026-02": (1, 0)}
    assert report.months == months
