"""Integration: callbacks for abandoned emergency calls, on the real lab Asterisk with SIPp callers, a SIPp
operator and a SIPp "citizen" behind the lab's callback trunk, and the real engine process.

Timers are short (a site file copy with ``[callbacks] first_attempt_s = 1``...): the engine reads it
through ``SIAGA112_SITE_FILE``; the lab's Asterisk configuration is the repository's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.calls.model import Outcome
from callflow.calls.records import load_records
from callflow.calls.tracker import SCHEMAS as CALL_SCHEMAS
from callflow.lab import LabStatus
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippCitizen, SippOperator, place_call
from callflow.store import open_database
from queues.callbacks import CALLBACKS_SCHEMA, Attempt, AttemptOutcome, CallbackTask, TaskStatus
from queues.callbacks.rules import SHORT_ABANDON_ATTEMPTS
from queues.callbacks.store import attempts_of, list_tasks
from tests.support.engine import EngineProcess, Record, site_file_with_callbacks

pytestmark = pytest.mark.integration

Ami = tuple[AmiConnection, asyncio.Queue[EventItem]]


@contextlib.asynccontextmanager
async def callback_engine(lab: LabStatus, tmp_path: Path, **timers: float) -> AsyncIterator[
        tuple[EngineProcess, Path]]:
    database = tmp_path / "siaga112.db"
    site = site_file_with_callbacks(tmp_path, **timers)
    proc = EngineProcess(lab.instance, "--database", str(database), env={"SIAGA112_SITE_FILE": str(site)})
    await proc.start()
    try:
        yield proc, database
    finally:
        await proc.stop()


@contextlib.asynccontextmanager
async def member(conn: AmiConnection, name: str) -> AsyncIterator[None]:
    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": f"PJSIP/{name}", "MemberName": name})
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await conn.action("QueueRemove", {"Queue": "emergency", "Interface": f"PJSIP/{name}"})


async def tasks_and_attempts(database: Path) -> list[tuple[CallbackTask, list[Attempt]]]:
    conn = await open_database(database, (CALLBACKS_SCHEMA,))
    try:
        return [(t, await attempts_of(conn, t.id)) for t in await list_tasks(conn)]
    finally:
        await conn.close()


def event(name: str, **fields: object) -> object:
    return lambda r: r.get("event") == name and all(r.get(k) == v for k, v in fields.items())


async def test_abandoned_emergency_call_is_called_back_and_taken_by_an_operator(
        lab: LabStatus, ami: Ami, tmp_path: Path) -> None:
    trunk = int(lab.callbacks["trunk_port"])
    async with callback_engine(lab, tmp_path, first_attempt_s=1, retry_s=2, max_attempts=3,
                               ring_timeout_s=10) as (engine, database), \
            SippOperator(lab.operators["op1"]["port"]), SippCitizen(trunk, talk_ms=2000):
        # No operator logged in: the emergency caller waits, then hangs up.
        result = await place_call(lab.sip["host"], lab.sip["port"],
                                  CallerScript(dtmf=PRESS_EMERGENCY, number="081277771001", hold_ms=3500))
        assert result.ok, result.output
        created: Record = await engine.wait_for(event("callback.task_created"), timeout=20)  # type: ignore[arg-type]
        assert created["reason"] == "abandoned_in_queue (emergency)"
        [(task, _)] = await tasks_and_attempts(database)
        assert task.number == "081277771001"
        assert task.linkedid == created["linkedid"]
        # An operator logs in; the citizen answers the callback and the operator takes it.
        async with member(ami[0], "op1"):
            await engine.wait_for(event("callback.connected", operator="op1"), timeout=40)
            await engine.wait_for(lambda r: r.get("event") == "call.record"  # the citizen hung up
                                  and str(r.get("linkedid", "")).startswith("siaga-cb-"), timeout=20)
    [(task, attempts)] = await tasks_and_attempts(database)
    # the callback call's record is the citizen's follow-up: their number, the call it follows up
    store = await open_database(database, CALL_SCHEMAS)
    try:
        records = await load_records(store)
    finally:
        await store.close()
    [callback] = [r for r in records if r.is_callback]
    [original] = [r for r in records if r.linkedid == task.linkedid]
    assert (callback.follows_up, callback.caller_number) == (task.linkedid, "081277771001")
    assert original.caller_name  # SIPp's display name
    assert callback.caller_name == original.caller_name  # the citizen's name, not the "112" it was shown
    assert callback.operator == "op1"
    assert task.status is TaskStatus.ANSWERED
    assert task.operator == "op1"
    assert task.attempts == 1
    [attempt] = attempts
    assert attempt.outcome is AttemptOutcome.ANSWERED
    assert attempt.ended_at is not None
    assert attempt.started_at.utcoffset() is not None
    assert attempt.started_at <= attempt.ended_at
    assert attempt.channel_id.startswith(f"siaga-cb-{task.id}-1-")


async def test_unanswered_callbacks_are_flagged_and_withheld_numbers_never_dialled(
        lab: LabStatus, tmp_path: Path) -> None:
    trunk = int(lab.callbacks["trunk_port"])
    async with callback_engine(lab, tmp_path, first_attempt_s=0, retry_s=1, max_attempts=2,
                               ring_timeout_s=3) as (engine, database), SippCitizen(trunk, answer=False):
        # Hangs up in the IVR before choosing: a possible emergency; the citizen never answers.
        first = place_call(lab.sip["host"], lab.sip["port"],
                           CallerScript(number="081277771002", hold_ms=1500))
        withheld = place_call(lab.sip["host"], lab.sip["port"],
                              CallerScript(number="anonymous", name="Anonymous", dtmf=PRESS_EMERGENCY,
                                           hold_ms=1500))
        abroad = place_call(lab.sip["host"], lab.sip["port"],  # outside the numbering plan (issue 17)
                            CallerScript(number="00447700900123", dtmf=PRESS_EMERGENCY, hold_ms=1500))
        for result in await asyncio.gather(first, withheld, abroad):
            assert result.ok, result.output
        await engine.wait_for(event("callback.flagged_for_supervisor"), timeout=45)
        async with asyncio.timeout(10):  # the flag may be logged just before the last rows are committed
            while not any(t.number == "081277771002" and len(a) == SHORT_ABANDON_ATTEMPTS  # noqa: ASYNC110
                          for t, a in await tasks_and_attempts(database)):
                await asyncio.sleep(0.05)
        async with asyncio.timeout(15):  # each attempt's call record (the channel rang out)
            while sum(1 for r in engine.records if r.get("event") == "call.record"  # noqa: ASYNC110
                      and str(r.get("linkedid", "")).startswith("siaga-cb-")) < SHORT_ABANDON_ATTEMPTS:
                await asyncio.sleep(0.05)
    store = await open_database(database, CALL_SCHEMAS)
    try:
        callbacks = [r for r in await load_records(store) if r.is_callback]
    finally:
        await store.close()
    # an unanswered attempt is an attempt of its task, never an `incomplete` call from "<unknown>" to "s"
    assert [(r.outcome, r.caller_number, r.dialed) for r in callbacks] == [
        (Outcome.CALLBACK_UNANSWERED, "", "")] * SHORT_ABANDON_ATTEMPTS
    tasks = {t.number: (t, a) for t, a in await tasks_and_attempts(database)}
    assert set(tasks) == {"081277771002", "anonymous", "00447700900123"}
    task, attempts = tasks["081277771002"]
    assert "possible emergency" in task.reason
    assert task.status is TaskStatus.SUPERVISOR
    # it hung up within short_abandon_s before any choice: one attempt (a pocket dial is not called back
    # three times; issue 19), then the supervisor
    assert task.attempts == SHORT_ABANDON_ATTEMPTS
    assert [a.outcome for a in attempts] == [AttemptOutcome.NO_ANSWER] * SHORT_ABANDON_ATTEMPTS
    assert f"{SHORT_ABANDON_ATTEMPTS} attempt(s)" in task.flag
    task, attempts = tasks["anonymous"]
    assert task.status is TaskStatus.SUPERVISOR
    assert "withheld" in task.flag
    assert attempts == []
    task, attempts = tasks["00447700900123"]
    assert task.status is TaskStatus.SUPERVISOR
    assert "numbering plan" in task.flag
    assert attempts == []  # never dialled


async def test_callback_is_answered_ahead_of_a_later_emergency_caller(
        lab: LabStatus, ami: Ami, tmp_path: Path) -> None:
    trunk = int(lab.callbacks["trunk_port"])
    async with callback_engine(lab, tmp_path, first_attempt_s=4, retry_s=2, max_attempts=2,
                               ring_timeout_s=10) as (engine, _), \
            SippOperator(lab.operators["op1"]["port"]), SippCitizen(trunk, talk_ms=1500):
        # A: arrives first and hangs up in the queue (no operator logged in).
        first = await place_call(lab.sip["host"], lab.sip["port"],
                                 CallerScript(dtmf=PRESS_EMERGENCY, number="081277771003", hold_ms=2000))
        assert first.ok, first.output
        await engine.wait_for(event("callback.task_created"), timeout=20)
        # B: arrives later than A did, and is in the queue before A's callback is answered.
        later = asyncio.create_task(place_call(
            lab.sip["host"], lab.sip["port"],
            CallerScript(dtmf=PRESS_EMERGENCY, number="081277771004", hold_ms=14000)))
        await engine.wait_for(lambda r: r.get("event") == "call.event" and r.get("ami_event") ==
                              "QueueCallerJoin" and str(r.get("caller", "")).endswith("004"), timeout=20)
        await engine.wait_for(event("callback.attempt", outcome="answered"), timeout=30)
        async with member(ami[0], "op1"):
            connect: Record = await engine.wait_for(  # type: ignore[arg-type]
                lambda r: r.get("event") == "call.event" and r.get("ami_event") == "AgentConnect", timeout=20)
            result = await later
        assert result.ok, result.output
    assert str(connect["linkedid"]).startswith("siaga-cb-"), "the later caller was answered first"


async def test_callback_cap_holds_for_a_repeat_number(lab: LabStatus, tmp_path: Path) -> None:
    """Issue 19 item 4: two cut-off calls from one number within the hour give one callback (the default
    cap), the second task is recorded as skipped with the reason."""
    trunk = int(lab.callbacks["trunk_port"])
    async with callback_engine(lab, tmp_path, first_attempt_s=0, retry_s=1, max_attempts=1,
                               ring_timeout_s=3) as (engine, database), SippCitizen(trunk, answer=False):
        for _ in range(2):  # hangs up in the IVR before choosing: a possible emergency each time
            result = await place_call(lab.sip["host"], lab.sip["port"],
                                      CallerScript(number="081277771009", hold_ms=1200))
            assert result.ok, result.output
        await engine.wait_for(event("callback.task_created", status="skipped"), timeout=20)
        await engine.wait_for(event("callback.flagged_for_supervisor"), timeout=30)
    first, second = (t for t, _ in await tasks_and_attempts(database))
    assert first.status is TaskStatus.SUPERVISOR
    # a cut-off within short_abandon_s before any choice: called back once (issue 19, item D)
    assert first.decision == ("short abandon before any choice (hung up within [calls] short_abandon_s): "
                              f"{SHORT_ABANDON_ATTEMPTS} attempt")
    assert second.status is TaskStatus.SKIPPED
    assert f"task(s) {first.id}" in second.decision
    dialled = [a for _, attempts in await tasks_and_attempts(database) for a in attempts]
    assert len(dialled) == 1
    assert dialled[0].task_id == first.id
