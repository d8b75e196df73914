"""Wallboard thresholds: the pure rules, then the service and API over a real store (audited acks)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callflow.console.models import AnswerStats, Callback, QueueBoard, QueueCaller, QueueView
from callflow.console.providers import UnavailableQueues
from callflow.console.thresholds import THRESHOLDS_SCHEMA, ThresholdKind, ThresholdPolicy, ThresholdWatch
from callflow.console.thresholds.rules import (
    AckRefused,
    Alert,
    Clear,
    Figures,
    Raise,
    Update,
    acknowledge,
    conditions,
    reconcile,
)
from callflow.store import migrate
from tests.console.conftest import Console

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
POLICY = ThresholdPolicy()


def figures(offered: int = 0, within: int = 0, waits: Sequence[float] = (),
            ages: Sequence[float] = ()) -> Figures:
    return Figures(offered, within, waits, ages)


def test_each_condition_holds_only_past_its_limit() -> None:
    assert conditions(figures(offered=10, within=9, waits=[10.0], ages=[600.0]), POLICY) == {}
    held = conditions(figures(offered=10, within=8, waits=[3.0, 10.5], ages=[601.0, 20.0]), POLICY)
    assert set(held) == set(ThresholdKind)
    assert held[ThresholdKind.SERVICE_LEVEL].detail == ("service level 80% (answered within 10 s: 8 of 10), "
                                                       "target 90%")
    assert held[ThresholdKind.EMERGENCY_WAIT].detail == "1 emergency caller(s) waiting longer than 10 s"
    assert held[ThresholdKind.CALLBACK_OVERDUE].detail == "1 callback(s) open longer than 10 min"
    assert conditions(figures(offered=0), POLICY) == {}  # no calls yet: no service level to judge


@given(st.integers(0, 500), st.integers(0, 500))
def test_service_level_is_below_target_exactly_when_the_share_is(offered: int, within: int) -> None:
    within = min(within, offered)
    below = ThresholdKind.SERVICE_LEVEL in conditions(figures(offered, within), POLICY)
    assert below == (offered > 0 and within / offered < POLICY.service_level_target)


def test_reconcile_raises_updates_and_clears() -> None:
    held = conditions(figures(offered=2, within=0, waits=[12.0]), POLICY)
    changes = reconcile({}, held, T0)
    assert changes == [Raise(ThresholdKind.SERVICE_LEVEL, held[ThresholdKind.SERVICE_LEVEL].detail),
                       Raise(ThresholdKind.EMERGENCY_WAIT, held[ThresholdKind.EMERGENCY_WAIT].detail)]
    active = {ThresholdKind.SERVICE_LEVEL: Alert(1, ThresholdKind.SERVICE_LEVEL, T0, "old figures"),
              ThresholdKind.EMERGENCY_WAIT: Alert(2, ThresholdKind.EMERGENCY_WAIT, T0,
                                                  held[ThresholdKind.EMERGENCY_WAIT].detail)}
    later = T0 + timedelta(seconds=5)
    changes = reconcile(active, conditions(figures(offered=3, within=0), POLICY), later)
    level = "service level 0% (answered within 10 s: 0 of 3), target 90%"
    waiting = active[ThresholdKind.EMERGENCY_WAIT].detail
    assert changes == [Update(Alert(1, ThresholdKind.SERVICE_LEVEL, T0, level)),
                       Clear(Alert(2, ThresholdKind.EMERGENCY_WAIT, T0, waiting, cleared_at=later))]


def test_an_alert_is_acknowledged_once_and_never_after_it_ended() -> None:
    alert = Alert(3, ThresholdKind.EMERGENCY_WAIT, T0, "x")
    acked = acknowledge(alert, 3, "sup", T0 + timedelta(seconds=2))
    assert (acked.acknowledged_by, acked.acknowledged_at) == ("sup", T0 + timedelta(seconds=2))
    with pytest.raises(AckRefused, match="already acknowledged by sup"):
        acknowledge(acked, 3, "sup2", T0)
    with pytest.raises(AckRefused, match="not active"):
        acknowledge(None, 3, "sup", T0)


class Floor:
    """The figures a test sets: today's calls, emergency callers waiting, open callbacks."""

    def __init__(self) -> None:
        self.stats = AnswerStats(since=T0, citizen_calls=0, short_abandons=0, offered=0, answered=0,
                                 within_10s=0, within_15s=0, within_20s=0, abandoned=0, unanswered=0,
                                 p50_s=None, p90_s=None, callback_tasks=0, callback_attempts=0,
                                 callback_citizens_reached=0)
        self.waits: list[int] = []
        self.open_callbacks: list[Callback] = []

    async def answer_stats(self, since: datetime, *, zone: tzinfo = UTC, show_numbers: bool = False
                           ) -> AnswerStats:
        return self.stats

    async def board(self) -> QueueBoard:
        callers = [QueueCaller(position=i + 1, caller="0812", caller_name="", wait_s=w, uniqueid=f"u{i}",
                               linkedid=f"u{i}") for i, w in enumerate(self.waits)]
        view = QueueView(queue="emergency", call_class="emergency", waiting=len(callers),
                         longest_wait_s=max(self.waits, default=0), callers=callers, members=0,
                         service_level_s=10)
        return QueueBoard(at=T0, queues=[view])

    async def callbacks(self, *, open_only: bool) -> Sequence[Callback]:
        return self.open_callbacks


async def test_the_wallboard_api_raises_acknowledges_audits_and_clears(console: Console) -> None:
    await migrate(console.db, THRESHOLDS_SCHEMA)
    floor = Floor()
    providers = console.ctx.providers
    # the figures' sources, set by the test (the real ones are tested with their owners)
    providers.queues = floor
    providers.calls = floor  # type: ignore[assignment]  # answer_stats only
    providers.callbacks = floor
    published: list[dict[str, object]] = []
    watch = ThresholdWatch(console.db, providers, console.ctx.audit, clock=console.clock,
                           timezone=console.ctx.timezone, publish=published.append)
    console.ctx.thresholds = watch

    floor.waits = [12]
    await watch.evaluate()
    assert published[-1]["type"] == "threshold.changed"
    async with console.client() as op, console.client() as sup:
        await console.login(op, "op1")
        await console.login(sup, "sup")
        shown = (await sup.get("/api/thresholds")).json()
        assert [(a["kind"], a["active"], a["acknowledged_by"]) for a in shown] == [
            ("emergency_wait", True, "")]
        alert_id = shown[0]["id"]
        # an operator may neither read nor acknowledge the thresholds
        assert (await op.get("/api/thresholds")).status_code == 403
        assert (await op.post(f"/api/thresholds/{alert_id}/ack")).status_code == 403
        console.clock.advance(seconds=3)
        r = await sup.post(f"/api/thresholds/{alert_id}/ack")
        assert r.status_code == 200, r.text
        assert r.json()["acknowledged_by"] == "sup"
        assert r.json()["acknowledged_at"].startswith("2026-11-22T08:00:03.123456")
        again = await sup.post(f"/api/thresholds/{alert_id}/ack")
        assert again.status_code == 409
        assert "already acknowledged by sup" in again.json()["message"]
        # the condition ends: the alert is cleared, and kept (greyed) with its acknowledgement
        floor.waits = []
        await watch.evaluate()
        shown = (await sup.get("/api/thresholds")).json()
        assert [(a["active"], a["acknowledged_by"]) for a in shown] == [(False, "sup")]
        assert shown[0]["cleared_at"] is not None
        # back again later: a new alert, needing a new acknowledgement
        floor.waits = [15]
        await watch.evaluate()
        shown = (await sup.get("/api/thresholds")).json()
        assert [(a["active"], a["acknowledged_by"]) for a in shown] == [(True, ""), (False, "sup")]
    audit = [r for r in await console.audit_rows() if r[1] == "threshold.ack"]
    assert [(r[0], r[2], r[3]) for r in audit] == [("sup", "ok", f"alert {alert_id}"),
                                                   ("sup", "failed", f"alert {alert_id}")]
    assert audit[0][5] == "emergency_wait: 1 emergency caller(s) waiting longer than 10 s"


async def test_unreadable_figures_neither_raise_nor_clear(console: Console) -> None:
    await migrate(console.db, THRESHOLDS_SCHEMA)
    floor = Floor()
    console.ctx.providers.queues = floor
    watch = ThresholdWatch(console.db, console.ctx.providers, console.ctx.audit, clock=console.clock,
                           timezone=console.ctx.timezone)
    floor.waits = [30]
    await watch.evaluate()  # calls and callbacks are not wired (503 stand-ins): only the wait is judged
    assert [a.kind for a in await watch.alerts()] == [ThresholdKind.EMERGENCY_WAIT]
    console.ctx.providers.queues = UnavailableQueues()
    await watch.evaluate()  # Asterisk unreadable now: the alert stays as it was
    assert [(a.kind, a.active) for a in await watch.alerts()] == [(ThresholdKind.EMERGENCY_WAIT, True)]
