"""Callback rules (pure) and the callback service's task keeping on a real SQLite file. The AMI side is a
stub session here only for what the lab cannot produce on demand (an Originate lost with the link); the
dialling happy path runs on the lab (tests/integration/test_callbacks.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from callflow.ami import AmiMessage, LinkEvent, OutcomeUnknown, parse_event
from callflow.calls.model import CallClass, CallRecord, Leg, Outcome
from callflow.calls.records import RECORDS_SCHEMA, store_records
from callflow.lab import LabPorts
from callflow.lab._render import lab_site
from callflow.policies import callback_policy
from callflow.reports.measures import answer_times
from callflow.siteconfig import Callbacks, load_site, pbx_config_dir
from callflow.store import StoreLocation, open_database
from queues.callbacks import (
    AttemptOutcome,
    CallbackService,
    TaskStatus,
    after_attempt,
    callback_reason,
    number_problem,
)
from queues.callbacks.rules import may_still_ring, originate_outcome
from queues.callbacks.store import attempts_of, list_tasks
from tests.conftest import BOTH_STORES
from tests.support.callbacks import T0, StubEngine, record

pytestmark = BOTH_STORES  # the callback store and service on SQLite and on PostgreSQL


# -- which records create tasks --------------------------------------------------------------------------
@pytest.mark.parametrize(("outcome", "call_class", "expected"), [
    (Outcome.ABANDONED_IN_QUEUE, CallClass.EMERGENCY, "abandoned_in_queue (emergency)"),
    (Outcome.SHORT_ABANDON, CallClass.EMERGENCY, "short_abandon (emergency)"),
    (Outcome.ABANDONED_IN_IVR, CallClass.EMERGENCY, "abandoned_in_ivr (emergency)"),
    (Outcome.TIMEOUT, CallClass.EMERGENCY, "timeout (emergency)"),
    (Outcome.OVERFLOWED, CallClass.EMERGENCY, "overflowed (emergency)"),
    (Outcome.FAILSAFE, CallClass.EMERGENCY, "failsafe (emergency)"),
    (Outcome.ABANDONED_IN_IVR, CallClass.UNKNOWN, "abandoned_in_ivr before any choice (possible emergency)"),
    (Outcome.SHORT_ABANDON, CallClass.UNKNOWN, "short_abandon before any choice (possible emergency)"),
    (Outcome.ABANDONED_IN_QUEUE, CallClass.NONEMERGENCY, None),
    (Outcome.SHORT_ABANDON, CallClass.NONEMERGENCY, None),
    (Outcome.ANSWERED, CallClass.EMERGENCY, None),
    (Outcome.INCOMPLETE, CallClass.EMERGENCY, None),
    (Outcome.TIMEOUT, CallClass.UNKNOWN, None),
])
def test_which_records_need_a_callback(outcome: Outcome, call_class: CallClass, expected: str | None) -> None:
    assert callback_reason(record(outcome, call_class)) == expected


def test_answered_failsafe_callbacks_and_operators_own_calls_need_none() -> None:
    answered = record(Outcome.FAILSAFE, answered=T0 + timedelta(seconds=4), operator="op1")
    assert callback_reason(answered) is None
    assert callback_reason(record(linkedid="siaga-cb-4-1", channel="PJSIP/citizen-callback-0001")) is None
    assert callback_reason(record(channel="PJSIP/op2-00000003", number="202")) is None


@pytest.mark.parametrize("number", ["", "anonymous", "Anonymous", "restricted", "<unknown>", "12", "08a12345",
                                    "0812 3456"])
def test_withheld_and_invalid_numbers_are_not_dialled(number: str) -> None:
    assert number_problem(number) is not None


@pytest.mark.parametrize("number", ["081234567890", "+6281234567890", "6285298765432", "0431862112",
                                    "02155501234", "+62431862112", "862112"])
def test_telephone_numbers_are_dialled(number: str) -> None:
    assert number_problem(number) is None


@pytest.mark.parametrize("number", [
    "+14155550100", "0014155550100", "00744955501234", "+447700900123",  # other countries
    "08091234567", "+6280912345678", "0800123456",  # premium rate, free phone
    "1500112", "14045", "0431112",  # short codes, a number too short for the plan
])
def test_numbers_outside_the_numbering_plan_are_not_dialled(number: str) -> None:
    """Issue 17: any 4-20 digit number a caller claimed was dialled back, international and premium."""
    problem = number_problem(number)
    assert problem is not None
    assert "numbering plan" in problem
    assert number not in problem  # flags are logged; a number is only ever logged masked


def test_failures_lead_to_the_supervisor_after_max_attempts() -> None:
    policy = callback_policy(Callbacks(retry_s=30, max_attempts=3))
    step = after_attempt(AttemptOutcome.NO_ANSWER, 1, T0, policy)
    assert (step.status, step.next_attempt_at) == (TaskStatus.PENDING, T0 + timedelta(seconds=30))
    assert after_attempt(AttemptOutcome.BUSY, 2, T0, policy).status is TaskStatus.PENDING
    last = after_attempt(AttemptOutcome.BUSY, 3, T0, policy)
    assert last.status is TaskStatus.SUPERVISOR
    assert last.next_attempt_at is None
    assert "3 attempt(s)" in last.flag
    assert after_attempt(AttemptOutcome.ANSWERED, 3, T0, policy).status is TaskStatus.ANSWERED


@pytest.mark.parametrize(("reason", "outcome"), [
    ("4", AttemptOutcome.ANSWERED), ("3", AttemptOutcome.NO_ANSWER), ("5", AttemptOutcome.BUSY),
    ("8", AttemptOutcome.FAILED), ("0", AttemptOutcome.FAILED), ("x", AttemptOutcome.FAILED)])
def test_originate_reasons(reason: str, outcome: AttemptOutcome) -> None:
    assert originate_outcome(reason) is outcome


# -- the service on a real database --------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = T0 + timedelta(seconds=10)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def service(store_location: StoreLocation) -> AsyncIterator[tuple[CallbackService, StubEngine, Clock]]:
    clock = Clock()
    policy = callback_policy(Callbacks(first_attempt_s=0, retry_s=5, max_attempts=2, ring_timeout_s=10))
    svc = CallbackService(store_location, policy, clock=clock, interval_s=0.01)
    engine = StubEngine()
    runner = asyncio.create_task(svc.run(engine))  # type: ignore[arg-type]
    yield svc, engine, clock
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def until(predicate: Any, timeout: float = 5.0) -> None:
    """Poll the service's own tables (it has no hook to wait on) until ``predicate`` holds."""
    async with asyncio.timeout(timeout):
        while not await predicate():  # noqa: ASYNC110 - state lives in SQLite, not in an Event
            await asyncio.sleep(0.01)


async def scheduled(svc: CallbackService, passes: int = 3) -> None:
    """The service applied every event and then looked at its tasks ``passes`` times (5 s at most)."""
    async with asyncio.timeout(5):
        await svc.settled(passes)


def originate_response(channel_id: str, response: str, reason: str, at: datetime) -> Any:
    return parse_event(AmiMessage((("Event", "OriginateResponse"), ("Response", response),
                                   ("Channel", "PJSIP/citizen-callback-00000001"), ("Reason", reason),
                                   ("Uniqueid", channel_id), ("Timestamp", f"{at.timestamp():.6f}"))), at)


async def test_one_task_per_call_even_when_the_record_is_derived_again(
        service: tuple[CallbackService, StubEngine, Clock]) -> None:
    svc, _, _ = service
    r = record()
    await svc.on_call_record(r)
    await svc.on_call_record(replace(r, notes=("re-derived",)))
    await svc.on_call_record(record(Outcome.ANSWERED, answered=T0, linkedid="1796000000.9", number="0811"))
    await svc.on_call_record(record(Outcome.ABANDONED_IN_QUEUE, CallClass.NONEMERGENCY,
                                    linkedid="1796000000.5"))
    tasks = await svc.callbacks(open_only=False)
    assert [(t.linkedid, t.status) for t in tasks] == [("1796000000.1", "pending")]


async def test_a_later_answered_call_from_the_number_supersedes_its_waiting_task(
        service: tuple[CallbackService, StubEngine, Clock]) -> None:
    svc, _, _ = service
    await svc.on_call_record(record())
    later = replace(record(Outcome.ANSWERED, linkedid="1796000100.1", answered=T0 + timedelta(seconds=70),
                           operator="op2"), arrival=T0 + timedelta(seconds=60))
    await svc.on_call_record(later)
    [task] = await list_tasks(svc._db)
    assert task.status is TaskStatus.SUPERSEDED
    assert "op2" in task.flag
    assert await svc.callbacks(open_only=True) == []


async def test_withheld_number_is_flagged_and_never_dialled(
        service: tuple[CallbackService, StubEngine, Clock]) -> None:
    svc, engine, _ = service
    await svc.on_call_record(record(number="anonymous"))
    await svc.handle(LinkEvent("up", T0))
    await scheduled(svc)
    [task] = await list_tasks(svc._db)
    assert task.status is TaskStatus.SUPERVISOR
    assert "withheld" in task.flag
    assert engine.session.sent == []


async def test_international_number_is_flagged_for_a_supervisor_and_never_dialled(
        service: tuple[CallbackService, StubEngine, Clock]) -> None:
    svc, engine, clock = service
    await svc.on_call_record(record(number="+447700900123"))
    await svc.handle(LinkEvent("up", T0))
    clock.now = T0 + timedelta(hours=1)  # long past the first attempt's time
    await scheduled(svc)
    [task] = await list_tasks(svc._db)
    assert task.status is TaskStatus.SUPERVISOR
    assert "numbering plan" in task.flag
    assert engine.session.sent == []


def test_the_site_files_plan_decides_what_is_dialled(tmp_path: Path) -> None:
    shipped = (pbx_config_dir() / "site.toml").read_text()
    start = shipped.index("dial_patterns = ")
    end = shipped.index("']\n", start) + 2  # the list ends the setting
    site_file = tmp_path / "site.toml"
    site_file.write_text(shipped[:start] + "dial_patterns = ['\\+44[0-9]{10}']" + shipped[end:])
    (tmp_path / "ivr.toml").write_text((pbx_config_dir() / "ivr.toml").read_text())
    plan = callback_policy(load_site(site_file).site.callbacks).numbering_plan
    assert number_problem("+447700900123", plan) is None  # a site that may call the UK, nothing else
    assert number_problem("081234567890", plan) is not None
    shipped_plan = callback_policy(load_site(pbx_config_dir() / "site.toml").site.callbacks).numbering_plan
    assert shipped_plan == callback_policy().numbering_plan  # the file shows the defaults


async def test_failures_then_supervisor_with_attempts_recorded(
        service: tuple[CallbackService, StubEngine, Clock]) -> None:
    svc, engine, clock = service
    await svc.on_call_record(record())
    await svc.handle(LinkEvent("up", T0))
    await until(lambda: _sent(engine, 1))
    name, headers, variables = engine.session.sent[0]
    assert name == "Originate"
    assert headers["Channel"] == "PJSIP/081234567890@citizen-callback"
    assert headers["Context"] == "siaga-callback"
    first_id = str(headers["ChannelId"])
    assert first_id == f"siaga-cb-1-1-{int(clock.now.timestamp() * 1000)}"
    assert variables == {"SIAGA_ARRIVAL": f"{T0.timestamp():.6f}", "SIAGA_ROUTE": "callback",
                         "SIAGA_CALLBACK": "1", "SIAGA_CALLBACK_OF": "1796000000.1",
                         "SIAGA_CALLBACK_NUMBER": "081234567890",
                         # no stored record of the call in this test: no time waited, no name
                         "SIAGA_CALLBACK_WAITED": "", "SIAGA_CALLBACK_NAME64": ""}
    await svc.handle(originate_response(first_id, "Failure", "3", clock.now))
    await until(lambda: _status(svc, TaskStatus.PENDING))
    clock.now += timedelta(seconds=6)  # past retry_s
    await until(lambda: _sent(engine, 2))
    await svc.handle(originate_response(str(engine.session.sent[1][1]["ChannelId"]), "Failure", "5",
                                        clock.now))
    await until(lambda: _status(svc, TaskStatus.SUPERVISOR))
    [task] = await list_tasks(svc._db)
    attempts = await attempts_of(svc._db, task.id)
    assert [a.outcome for a in attempts] == [AttemptOutcome.NO_ANSWER, AttemptOutcome.BUSY]
    assert all(a.ended_at is not None and a.ended_at.tzinfo is not None for a in attempts)
    assert "2 attempt(s)" in task.flag
    await scheduled(svc)
    assert len(engine.session.sent) == 2  # flagged: never dialled again
    assert [c.status.startswith("supervisor") for c in await svc.callbacks(open_only=True)] == [True]


async def test_unknown_outcome_is_rechecked_not_redialled(
        service: tuple[CallbackService, StubEngine, Clock]) -> None:
    svc, engine, clock = service
    engine.session.fail_with = OutcomeUnknown("link lost with Originate in flight")
    await svc.on_call_record(record())
    await svc.handle(LinkEvent("up", T0))
    await until(lambda: _status(svc, TaskStatus.CHECKING))
    engine.session.fail_with = None
    await svc.handle(LinkEvent("down", T0))
    await svc.handle(LinkEvent("up", T0))  # re-checked: too young to judge (may still ring)
    await scheduled(svc)
    assert len(engine.session.sent) == 1
    assert await _status(svc, TaskStatus.CHECKING)
    clock.now += timedelta(seconds=30)  # past ring timeout + grace; no live channel, no call record
    await svc.handle(LinkEvent("up", T0))
    await until(lambda: _status(svc, TaskStatus.PENDING))
    clock.now += timedelta(seconds=6)  # past retry_s
    await until(lambda: _sent(engine, 2))  # a new attempt (number 2), not a replay of the first
    [task] = await list_tasks(svc._db)
    attempts = await attempts_of(svc._db, task.id)
    assert [a.outcome for a in attempts][:1] == [AttemptOutcome.UNKNOWN]
    assert str(engine.session.sent[1][1]["ChannelId"]).startswith("siaga-cb-1-2-")


def test_an_attempt_that_may_still_ring_delays_the_next_past_its_ring_timeout() -> None:
    policy = callback_policy(Callbacks(first_attempt_s=0, retry_s=5, max_attempts=3, ring_timeout_s=30))
    started = T0
    settled = T0 + timedelta(seconds=6)  # a lost node's record, 6 s into the ringing
    plain = after_attempt(AttemptOutcome.UNKNOWN, 1, settled, policy)
    assert plain.next_attempt_at == settled + timedelta(seconds=5)
    waits = after_attempt(AttemptOutcome.UNKNOWN, 1, settled, policy,
                          may_ring_until=may_still_ring(started, policy))
    assert waits.next_attempt_at == started + timedelta(seconds=35)  # ring timeout over, then retry_s


async def test_a_callback_call_on_a_lost_node_is_not_followed_by_a_second_call_while_it_may_ring(
        service: tuple[CallbackService, StubEngine, Clock]) -> None:
    """Node a's engine froze while its Asterisk rang the citizen; the leader records that callback call
    ``node_lost`` after ``lost_after_s``. It dialled the next attempt ``retry_s`` later through its own node,
    while node a's Asterisk could still ring the citizen: two calls at once. The next attempt now waits
    until the first one's ring timeout is over."""
    svc, engine, clock = service  # ring timeout 10 s, retry 5 s
    await svc.on_call_record(record())
    await svc.handle(LinkEvent("up", T0))
    await until(lambda: _sent(engine, 1))
    first_id = str(engine.session.sent[0][1]["ChannelId"])
    dialled = clock.now
    lost = CallRecord(linkedid=first_id, caller_number="081234567890", caller_name="", dialed="",
                      call_class=CallClass.UNKNOWN, outcome=Outcome.NODE_LOST, arrival=dialled,
                      ended=dialled + timedelta(seconds=2), node="a",
                      legs=(Leg(first_id, "PJSIP/citizen-callback-00000001", "caller", dialled),))
    clock.now = dialled + timedelta(seconds=2)
    await svc.on_call_record(lost)
    await until(lambda: _status(svc, TaskStatus.PENDING))
    [task] = await list_tasks(svc._db)
    [attempt] = await attempts_of(svc._db, task.id)
    assert attempt.outcome is AttemptOutcome.UNKNOWN
    assert "stopped while it rang" in attempt.detail
    assert task.next_attempt_at == dialled + timedelta(seconds=15)
    clock.now = dialled + timedelta(seconds=8)  # retry_s after the record: it may still ring on node a
    await scheduled(svc)
    assert len(engine.session.sent) == 1
    clock.now = dialled + timedelta(seconds=15.5)
    await until(lambda: _sent(engine, 2))
    assert str(engine.session.sent[1][1]["ChannelId"]).startswith("siaga-cb-1-2-")


async def test_tasks_survive_a_restart(store_location: StoreLocation) -> None:
    for _ in range(2):
        svc = CallbackService(store_location, callback_policy(), interval_s=0.01)
        runner = asyncio.create_task(svc.run(StubEngine()))  # type: ignore[arg-type]
        await svc.on_call_record(record())
        assert len(await svc.callbacks(open_only=True)) == 1
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


async def _sent(engine: StubEngine, n: int) -> bool:
    return len(engine.session.sent) >= n


async def _status(svc: CallbackService, status: TaskStatus) -> bool:
    tasks = await list_tasks(svc._db)
    return bool(tasks) and tasks[0].status is status


async def test_an_attempt_in_flight_at_a_restart_is_rechecked_not_redialled(
        store_location: StoreLocation) -> None:
    first = CallbackService(store_location, callback_policy(Callbacks(first_attempt_s=0)),
                            interval_s=0.01, clock=Clock())
    engine = StubEngine()
    runner = asyncio.create_task(first.run(engine))  # type: ignore[arg-type]
    await first.on_call_record(record())
    await first.handle(LinkEvent("up", T0))
    await until(lambda: _sent(engine, 1))
    await until(lambda: _status(first, TaskStatus.DIALLING))
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    second = CallbackService(store_location, callback_policy(Callbacks(first_attempt_s=0)),
                             interval_s=0.01, clock=Clock())
    engine2 = StubEngine()
    runner = asyncio.create_task(second.run(engine2))  # type: ignore[arg-type]
    try:
        await second.callbacks(open_only=True)  # ready
        assert await _status(second, TaskStatus.CHECKING)
        await second.handle(LinkEvent("up", T0))
        await scheduled(second)
        assert engine2.session.sent == []  # young attempt, not live: waits for its record or the watchdog
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


def test_the_lab_points_the_callback_trunk_at_its_own_port() -> None:
    site = load_site(pbx_config_dir() / "site.toml").site
    ports = LabPorts(sip=41000)
    lab = lab_site(site, ports=ports, inner="/srv/x", ami_user="siaga112")
    assert lab.callbacks.trunk_contact == "sip:127.0.0.1:41009"
    assert ports.callback_trunk == 41009
    assert ("callback trunk SIP", "udp", 41009) in ports.all_checked()
    telco = site.model_copy(update={"callbacks": site.callbacks.model_copy(
        update={"trunk_contact": "sip:sbc.telco.example:5060"})})
    assert lab_site(telco, ports=ports, inner="/srv/x", ami_user="siaga112").callbacks.trunk_contact == \
        "sip:sbc.telco.example:5060"


def test_callback_calls_are_not_offered_calls_in_answer_time_figures() -> None:
    offered = record(Outcome.ANSWERED, answered=T0 + timedelta(seconds=5), operator="op1")
    callback = record(Outcome.ANSWERED, linkedid="siaga-cb-1-1", answered=T0 + timedelta(seconds=40),
                      operator="op1", channel="PJSIP/citizen-callback-00000001")
    assert answer_times([offered, callback]).offered == 1


async def test_disabled_callbacks_dial_nothing_not_even_tasks_left_pending(
        store_location: StoreLocation) -> None:
    clock = Clock()
    first = CallbackService(store_location, callback_policy(Callbacks(first_attempt_s=5)),
                            clock=clock, interval_s=0.01)
    runner = asyncio.create_task(first.run(StubEngine()))  # type: ignore[arg-type]
    await first.on_call_record(record())
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    clock.now += timedelta(minutes=5)
    disabled = CallbackService(store_location, callback_policy(Callbacks(enabled=False)),
                               clock=clock, interval_s=0.01)
    engine = StubEngine()
    runner = asyncio.create_task(disabled.run(engine))  # type: ignore[arg-type]
    try:
        await disabled.on_call_record(record(linkedid="1796000000.2", number="081299990000"))
        await disabled.handle(LinkEvent("up", T0))
        await scheduled(disabled)
        assert engine.session.sent == []
        statuses = sorted(c.status for c in await disabled.callbacks(open_only=True))
        assert statuses[0] == "pending"
        assert statuses[1].startswith("supervisor (callbacks are disabled")
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


async def test_a_stored_record_the_listener_missed_gets_its_task_once(store_location: StoreLocation) -> None:
    database = store_location
    clock = Clock()
    clock.now = T0 - timedelta(seconds=60)  # callbacks first ran on this database a minute before T0
    first = CallbackService(database, callback_policy(), clock=clock, interval_s=0.01)
    runner = asyncio.create_task(first.run(StubEngine()))  # type: ignore[arg-type]
    await first.callbacks(open_only=False)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    conn = await open_database(database, [RECORDS_SCHEMA])
    try:
        missed = record(linkedid="1796000000.7")
        from_before = replace(record(linkedid="1796000000.6", number="0812555"),
                              arrival=T0 - timedelta(seconds=120))
        await store_records(conn, [missed, from_before,
                                   record(Outcome.ANSWERED, linkedid="1796000000.8", answered=T0,
                                          operator="op1", number="0811"),
                                   record(linkedid="siaga-cb-3-1-1", channel="PJSIP/citizen-callback-0001")])
    finally:
        await conn.close()
    clock.now = T0 + timedelta(seconds=10)
    svc = CallbackService(database, callback_policy(), clock=clock, interval_s=0.01)
    runner = asyncio.create_task(svc.run(StubEngine()))  # type: ignore[arg-type]
    try:
        await svc.callbacks(open_only=False)  # ready
        await until(lambda: _count(svc, 1))
        await svc.on_call_record(missed)  # the listener's own call, late: no second task
        await scheduled(svc)
        assert [(t.linkedid, t.status) for t in await svc.callbacks(open_only=False)] == [
            ("1796000000.7", "pending")]
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


async def _count(svc: CallbackService, n: int) -> bool:
    return len(await list_tasks(svc._db)) >= n
