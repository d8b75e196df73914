"""Callbacks without floods (issue 19 item 4): the pure rule, then the service on a real SQLite file (the
AMI side is the stub session of tests/support/callbacks.py; the lab test is
tests/integration/test_callbacks.py::test_callback_cap_holds_for_a_repeat_number)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from callflow.ami import AmiMessage, LinkEvent, parse_event
from callflow.calls.model import CallClass, Contact, Outcome
from callflow.policies import callback_policy
from callflow.siteconfig import Callbacks
from queues.abuse import AbuseFlag, flag_expiry
from queues.abuse.rules import sync_plan
from queues.abuse.store import add_flag
from queues.callbacks import AttemptOutcome, CallbackService, TaskStatus, after_attempt
from queues.callbacks.rules import NumberHistory, nuisance_decision
from queues.callbacks.store import list_tasks
from tests.support.callbacks import T0, StubEngine, record

POLICY = callback_policy(Callbacks(max_attempts=3))
FLAG = "repeat_abuse set by sup1 ... : prank calls"


def test_a_first_callback_to_a_number_is_allowed_with_the_policy_attempts() -> None:
    d = nuisance_decision(record(), NumberHistory(), POLICY)
    assert (d.call_back, d.max_attempts) == (True, None)


def test_the_cap_skips_a_second_callback_within_the_hour_and_says_why() -> None:
    d = nuisance_decision(record(), NumberHistory(recent_tasks=(7,)), POLICY)
    assert not d.call_back
    assert "task(s) 7" in d.decision
    assert "per_number_per_hour" in d.decision
    wider = callback_policy(Callbacks(per_number_per_hour=2))
    assert nuisance_decision(record(), NumberHistory(recent_tasks=(7,)), wider).call_back


@pytest.mark.parametrize(("call_class", "called_back"), [
    (CallClass.EMERGENCY, True), (CallClass.UNKNOWN, False), (CallClass.NONEMERGENCY, False)])
def test_a_flagged_number_is_called_back_only_for_an_emergency_call(call_class: CallClass,
                                                                   called_back: bool) -> None:
    d = nuisance_decision(record(call_class=call_class), NumberHistory(abuse_flag=FLAG), POLICY)
    assert d.call_back is called_back
    assert "flagged" in d.decision


def test_a_silent_call_whose_probe_got_no_answer_gets_one_attempt() -> None:
    silent = replace(record(Outcome.ABANDONED_IN_IVR, CallClass.UNKNOWN), contact=Contact.SILENT,
                     contact_detail="speech 0.0 s, keys none")
    d = nuisance_decision(silent, NumberHistory(), POLICY)
    assert (d.call_back, d.max_attempts) == (True, 1)
    assert "silent" in d.decision
    step = after_attempt(AttemptOutcome.NO_ANSWER, 1, T0, POLICY, d.max_attempts)
    assert step.status is TaskStatus.SUPERVISOR
    assert after_attempt(AttemptOutcome.NO_ANSWER, 1, T0, POLICY).status is TaskStatus.PENDING


# -- the service ---------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = T0 + timedelta(seconds=10)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[CallbackService, StubEngine, Clock]]:
    clock = Clock()
    policy = callback_policy(Callbacks(first_attempt_s=0, retry_s=5, max_attempts=3, ring_timeout_s=10))
    svc = CallbackService(tmp_path / "siaga112.db", policy, clock=clock, interval_s=0.01)
    engine = StubEngine()
    runner = asyncio.create_task(svc.run(engine))  # type: ignore[arg-type]
    yield svc, engine, clock
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_the_service_records_each_decision_and_dials_each_number_once_an_hour(
        service: tuple[CallbackService, StubEngine, Clock]) -> None:
    svc, engine, clock = service
    for n in range(3):  # three cut-off calls from one number within minutes
        await svc.on_call_record(record(Outcome.ABANDONED_IN_IVR, CallClass.UNKNOWN,
                                        linkedid=f"1796000000.{n}"))
        clock.now += timedelta(minutes=5)
    await svc.on_call_record(record(linkedid="1796000000.9", number="081299990000"))
    await svc.handle(LinkEvent("up", T0))
    async with asyncio.timeout(5):
        await svc.settled(3)
    tasks = await list_tasks(svc._db)
    assert [t.status for t in tasks] == [TaskStatus.DIALLING, TaskStatus.SKIPPED, TaskStatus.SKIPPED,
                                         TaskStatus.DIALLING]
    assert tasks[0].decision == "called back"
    assert "task(s) 1" in tasks[1].decision
    assert [str(h["Channel"]).split("@")[0] for _, h, _ in engine.session.sent] == [
        "PJSIP/081234567890", "PJSIP/081299990000"]
    clock.now += timedelta(minutes=60)  # an hour after the first task: the number may be called again
    await svc.on_call_record(record(linkedid="1796000001.0"))
    [*_, fifth] = await list_tasks(svc._db)
    assert fifth.status is TaskStatus.PENDING


async def test_a_flagged_number_gets_no_callback_unless_the_call_was_emergency(
        service: tuple[CallbackService, StubEngine, Clock]) -> None:
    svc, _, _ = service
    await svc._ready.wait()
    await add_flag(svc._db, number="081234567890", reason="prank calls", by="sup1",
                   at=T0 - timedelta(hours=1), expires_at=T0 + timedelta(hours=23))
    await svc.on_call_record(record(Outcome.ABANDONED_IN_IVR, CallClass.UNKNOWN, linkedid="1796000000.1"))
    await svc.on_call_record(record(linkedid="1796000000.2"))
    first, second = await list_tasks(svc._db)
    assert first.status is TaskStatus.SKIPPED
    assert "flagged" in first.decision
    assert "prank calls" in first.decision
    assert second.status is TaskStatus.PENDING
    assert "classed emergency" in second.decision


async def test_a_silent_call_gets_one_attempt_then_the_supervisor(
        service: tuple[CallbackService, StubEngine, Clock]) -> None:
    svc, engine, clock = service
    silent = replace(record(Outcome.ABANDONED_IN_IVR, CallClass.UNKNOWN), contact=Contact.SILENT,
                     contact_detail="speech 0.0 s, keys none")
    await svc.on_call_record(silent)
    await svc.handle(LinkEvent("up", T0))
    async with asyncio.timeout(5):
        while not engine.session.sent:  # noqa: ASYNC110 - the stub session has no event to wait on
            await asyncio.sleep(0.01)
    chan = str(engine.session.sent[0][1]["ChannelId"])
    await svc.handle(parse_event(AmiMessage((
        ("Event", "OriginateResponse"), ("Response", "Failure"), ("Reason", "3"), ("Uniqueid", chan),
        ("Timestamp", f"{clock.now.timestamp():.6f}"))), clock.now))
    clock.now += timedelta(seconds=30)
    async with asyncio.timeout(5):
        await svc.settled(3)
    [task] = await list_tasks(svc._db)
    assert task.max_attempts == 1
    assert task.status is TaskStatus.SUPERVISOR
    assert len(engine.session.sent) == 1


# -- repeat-abuse flags: in force, expiry, what Asterisk's database must hold ------------------------------
def test_a_flag_expires_by_itself_and_a_lift_ends_it_early() -> None:
    flag = AbuseFlag(1, "0811", "pranks", "sup1", T0, flag_expiry(T0, None))
    assert flag.expires_at == T0 + timedelta(hours=24)
    assert flag.in_force(T0 + timedelta(hours=23))
    assert not flag.in_force(T0 + timedelta(hours=24))
    assert not flag.in_force(T0 - timedelta(seconds=1))
    lifted = replace(flag, lifted_by="sup2", lifted_at=T0 + timedelta(hours=1))
    assert not lifted.in_force(T0 + timedelta(hours=2))
    with pytest.raises(ValueError, match="hours"):
        flag_expiry(T0, 0)
    until = int(flag.expires_at.timestamp())
    assert sync_plan([flag], {}, T0).put == {"0811": until}
    assert sync_plan([flag], {"0811": until}, T0) == sync_plan([], {}, T0)  # nothing to change
    gone = sync_plan([lifted], {"0811": until, "0899": 1}, T0 + timedelta(hours=2))
    assert (gone.put, gone.delete) == ({}, frozenset({"0811", "0899"}))


def test_a_short_abandon_before_any_choice_gets_one_attempt_and_an_emergency_one_all() -> None:
    """The decision on short abandons (README "No callback floods"): a caller who hung up within
    ``[calls] short_abandon_s`` may be a cut-off emergency, so the task stays; but most are pocket dials, so
    one attempt, then the supervisor. A caller who chose emergency before hanging up gets every attempt."""
    d = nuisance_decision(record(Outcome.SHORT_ABANDON, CallClass.UNKNOWN), NumberHistory(), POLICY)
    assert (d.call_back, d.max_attempts) == (True, 1)
    assert "short abandon" in d.decision
    step = after_attempt(AttemptOutcome.NO_ANSWER, 1, T0, POLICY, d.max_attempts)
    assert step.status is TaskStatus.SUPERVISOR
    chose = nuisance_decision(record(Outcome.SHORT_ABANDON, CallClass.EMERGENCY), NumberHistory(), POLICY)
    assert (chose.call_back, chose.max_attempts) == (True, None)
    # the cap still comes first: a repeat short abandon within the hour is skipped
    again = nuisance_decision(record(Outcome.SHORT_ABANDON, CallClass.UNKNOWN),
                              NumberHistory(recent_tasks=(3,)), POLICY)
    assert not again.call_back
