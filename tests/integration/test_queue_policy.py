"""Issue 6 (queue policy, overflow, operator state): on a real lab Asterisk with SIPp callers and SIPp
operators, the real engine process, and ``siaga112 operator`` as operators use it.

The module's lab renders a variant of the default site file: op4 serves non-emergency calls only (so it is
the emergency queue's overflow group, penalty 10), the emergency overflow after 3 s, and a 3 s wrap-up
after non-emergency calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.ami.events import AmiEvent, ChannelEvent
from callflow.calls.records import load_records
from callflow.calls.tracker import SCHEMAS
from callflow.lab import LabStatus, down
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippOperator, place_call
from callflow.siteconfig import pbx_config_dir
from callflow.store import open_database
from tests.conftest import lab_instance_name, start_lab
from tests.support.ami_waits import assert_no_channels_left, named, next_event
from tests.support.engine import EngineProcess, Record

pytestmark = pytest.mark.integration

COMPLAINT = ((600, "2"), (1600, "3"))  # non-emergency: complaints menu, telecom pole
COMPLAINT_SLOW = ((600, "2"), (4200, "3"))  # the same, 2.6 s longer in the IVR
OVERFLOW_S = 3
WRAPUP_S = 3


def tuned_site(directory: Path) -> Path:
    text = (pbx_config_dir() / "site.toml").read_text()
    edits = [
        ('display_name = "Operator 4"\nclasses = ["emergency", "nonemergency"]',
         'display_name = "Operator 4"\nclasses = ["nonemergency"]'),
        ('wrapup_s = 0\noperators = ["op1", "op2", "op3", "op4", "op5", "op6"]\nannounce_position = false\n'
         'overflow_s = 15',
         f'wrapup_s = 0\noperators = ["op1", "op2", "op3", "op5", "op6"]\nannounce_position = false\n'
         f'overflow_s = {OVERFLOW_S}'),
        ('wrapup_s = 0\noperators = ["op1", "op2", "op3", "op4", "op5", "op6"]\nannounce_position = true',
         f'wrapup_s = {WRAPUP_S}\noperators = ["op1", "op2", "op3", "op4", "op5", "op6"]\n'
         'announce_position = false'),
    ]
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "site.toml"
    path.write_text(text)
    shutil.copy(pbx_config_dir() / "ivr.toml", directory / "ivr.toml")
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tuned_site(tmp_path_factory.mktemp("queue-site"))


@pytest.fixture(scope="module")
def queue_lab(site: Path) -> Iterator[LabStatus]:
    status = start_lab(lab_instance_name("test-queues"), site_file=site)
    yield status
    down(status.instance)


Ami = tuple[AmiConnection, asyncio.Queue[EventItem]]


@pytest.fixture
async def qami(queue_lab: LabStatus) -> AsyncIterator[Ami]:
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    conn = AmiConnection(queue_lab.ami_endpoint(), events)
    await conn.connect()
    yield conn, events
    try:  # nobody stays logged in or on the line for the next test
        for name in ("op1", "op2", "op3", "op4"):
            for queue in ("emergency", "nonemergency"):
                with contextlib.suppress(Exception):
                    await conn.action("QueueRemove", {"Queue": queue, "Interface": f"PJSIP/{name}"})
        await hangup_all(conn)
        await assert_no_channels_left(conn)
    finally:
        await conn.close()


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "siaga112.db"


def engine_env(site: Path) -> dict[str, str]:
    return {"SIAGA112_SITE_FILE": str(site)}


@pytest.fixture
async def engine(queue_lab: LabStatus, site: Path, database: Path) -> AsyncIterator[EngineProcess]:
    proc = EngineProcess(queue_lab.instance, "--database", str(database), env=engine_env(site))
    await proc.start()
    yield proc
    await proc.stop()


async def operator_cli(lab: LabStatus, site: Path, database: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow.cli", "operator", "--lab", lab.instance, "--database", str(database),
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **engine_env(site)})
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def login(lab: LabStatus, site: Path, database: Path, *names: str) -> None:
    for name in names:
        code, out = await operator_cli(lab, site, database, "login", name)
        assert code == 0, out


async def listing(lab: LabStatus, site: Path, database: Path) -> dict[str, dict[str, Any]]:
    code, out = await operator_cli(lab, site, database, "list", "--json")
    assert code == 0, out
    return {o["operator"]: o for o in json.loads(out)}


async def hangup_all(conn: AmiConnection) -> None:
    """End every call still up (a failed test must not leave callers waiting for a BYE)."""
    _, items = await conn.list_action("CoreShowChannels")
    for item in items:
        if isinstance(item, ChannelEvent) and item.chan:
            with contextlib.suppress(Exception):
                await conn.action("Hangup", {"Channel": item.chan.channel})


async def collect_until(events: asyncio.Queue[EventItem], name: str,
                        timeout: float = 20.0) -> tuple[AmiEvent, list[AmiEvent]]:
    """The next ``name`` event and every event up to it."""
    seen: list[AmiEvent] = []
    async with asyncio.timeout(timeout):
        while True:
            item = await events.get()
            if isinstance(item, AmiEvent):
                seen.append(item)
                if item.name == name:
                    return item, seen


def caller(script: CallerScript, lab: LabStatus) -> asyncio.Task[Any]:
    return asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"], script))


def state_of(engine: EngineProcess, operator: str, state: str, **more: object) -> Callable[[Record], bool]:
    return lambda r: (r.get("event") == "operator.state" and r.get("operator") == operator
                      and r.get("new") == state and all(r.get(k) == v for k, v in more.items()))


async def test_emergency_first_then_fifo_by_original_arrival_and_wrapup(
        queue_lab: LabStatus, site: Path, database: Path, engine: EngineProcess, qami: Ami) -> None:
    conn, events = qami
    await login(queue_lab, site, database, "op1")
    calls: list[asyncio.Task[Any]] = []
    async with SippOperator(queue_lab.operators["op1"]["port"]):
        try:
            # op1 busy with a first emergency caller
            calls.append(caller(CallerScript(number="081200000001", dtmf=PRESS_EMERGENCY, remote_hangup=True),
                                queue_lab))
            busy = await next_event(events, named("AgentConnect", MemberName="op1"))
            # three complaint callers: c1 arrives first but spends longer in the IVR than c2
            calls.append(caller(CallerScript(number="081200000011", dtmf=COMPLAINT_SLOW, remote_hangup=True),
                                queue_lab))
            # not a settle: c1 must ARRIVE measurably earlier than c2 (QUEUE_PRIO counts quarter-seconds of
            # arrival, so callers within one quarter-second are equals); c2 then overtakes c1 in the IVR
            await asyncio.sleep(0.8)
            calls.append(caller(CallerScript(number="081200000012", dtmf=COMPLAINT, remote_hangup=True),
                                queue_lab))
            joined = [await next_event(events, named("QueueCallerJoin", Queue="nonemergency"))
                      for _ in range(2)]
            assert [j.message.get("CallerIDNum") for j in joined] == ["081200000012", "081200000011"], \
                "c2 should reach the queue before c1 (shorter IVR)"
            calls.append(caller(CallerScript(number="081200000013", dtmf=COMPLAINT, remote_hangup=True),
                                queue_lab))
            await next_event(events, named("QueueCallerJoin", CallerIDNum="081200000013"))
            # then the emergency caller, last to arrive
            calls.append(caller(CallerScript(number="081200000021", dtmf=PRESS_EMERGENCY, remote_hangup=True),
                                queue_lab))
            await next_event(events, named("QueueCallerJoin", Queue="emergency", CallerIDNum="081200000021"))

            order: list[str] = []
            completed_at: dict[str, float] = {}
            called_at: dict[str, float] = {}
            current = busy
            for _ in range(4):
                # keyed by the caller hung up here: an AgentComplete's CallerIDNum was once not that
                # caller's in a loaded CI run (KeyError), though op1's call had ended
                hung_up = current.message.get("CallerIDNum") or ""
                await conn.action("Hangup", {"Channel": current.message.get("Channel") or ""})
                done = await next_event(events, named("AgentComplete", MemberName="op1"))
                completed_at[hung_up] = (done.timestamp or done.received_at).timestamp()
                rung = await next_event(events, named("AgentCalled", MemberName="op1"))
                called_at[rung.message.get("CallerIDNum") or ""] = (rung.timestamp or rung.received_at
                                                                    ).timestamp()
                current = await next_event(events, named("AgentConnect", MemberName="op1"))
                order.append(current.message.get("CallerIDNum") or "")
            await conn.action("Hangup", {"Channel": current.message.get("Channel") or ""})
            await next_event(events, named("AgentComplete", MemberName="op1"))
        finally:
            await hangup_all(conn)
            results = await asyncio.gather(*calls, return_exceptions=True)
    assert order == ["081200000021", "081200000011", "081200000012", "081200000013"], order
    assert all(getattr(r, "ok", False) for r in results), results

    # wrap-up: after a complaint call op1 is offered the next caller only after the wrap-up time
    # (Asterisk compares whole seconds, so allow for the rounding)
    rest = called_at["081200000012"] - completed_at["081200000011"]
    assert rest >= WRAPUP_S - 1.0, rest
    wrapup = await engine.wait_for(state_of(engine, "op1", "wrapup"))
    ready = await engine.wait_for(lambda r: r.get("event") == "operator.state" and r.get("operator") == "op1"
                                  and r.get("old") == "wrapup")
    assert ready["cause"] in {"wrapup_end", "AgentCalled"}
    assert wrapup["at"] < ready["at"]


async def test_paused_operator_is_not_rung_a_missed_ring_is_skipped_and_pause_waits_for_the_call(
        queue_lab: LabStatus, site: Path, database: Path, engine: EngineProcess, qami: Ami) -> None:
    conn, events = qami
    await login(queue_lab, site, database, "op2", "op3", "op1")
    code, out = await operator_cli(queue_lab, site, database, "pause", "op2", "--reason", "briefing")
    assert code == 0, out
    await engine.wait_for(state_of(engine, "op2", "paused", reason="briefing"))
    async with SippOperator(queue_lab.operators["op2"]["port"]), \
            SippOperator(queue_lab.operators["op3"]["port"], answer=False), \
            SippOperator(queue_lab.operators["op1"]["port"]):
        # rrmemory decides who rings first: at most two calls until op3 (never answers) is rung first
        for attempt in range(2):
            number = f"08120000003{attempt}"
            call = caller(CallerScript(number=number, dtmf=PRESS_EMERGENCY, remote_hangup=True), queue_lab)
            first = await next_event(events, named("AgentCalled", Queue="emergency"))
            connect, seen = await collect_until(events, "AgentConnect")
            trail = [(e.name, e.message.get("MemberName"), str(e.timestamp)) for e in [first, *seen]
                     if e.name.startswith("Agent")]
            try:
                assert connect.message.get("MemberName") == "op1", trail
                assert not any(e.name == "AgentCalled" and e.message.get("MemberName") == "op2"
                               for e in seen), f"the paused op2 was rung: {trail}"
            except AssertionError:
                await hangup_all(conn)
                await call
                raise
            if first.message.get("MemberName") == "op3":
                break
            await hangup_all(conn)
            result = await call
            assert result.ok, result.output
        else:
            pytest.fail("op3 was never rung first in two calls")
        try:
            assert any(e.name == "AgentRingNoAnswer" and e.message.get("MemberName") == "op3" for e in seen)
            waited = (connect.timestamp or connect.received_at) - (first.timestamp or first.received_at)
            assert waited.total_seconds() < 8 + 1 + 4, (waited, trail)  # ring timeout + retry + margin
            await engine.wait_for(state_of(engine, "op3", "ready", cause="AgentRingNoAnswer"))
        except AssertionError:
            await hangup_all(conn)
            await call
            raise

        try:
            # pausing op1 during the call: pending until the call ends
            code, out = await operator_cli(queue_lab, site, database, "pause", "op1", "--reason", "break")
            assert code == 0, out
            assert "pause pending" in out
            await engine.wait_for(lambda r: r.get("event") == "operator.state" and r.get("operator") == "op1"
                                  and r.get("new") == "on_call" and r.get("pause_pending") is True)
            listed = await listing(queue_lab, site, database)
            assert listed["op1"]["state"] == "on_call"
            assert listed["op1"]["pause_pending"] is True
            assert listed["op2"]["state"] == "paused"
            assert listed["op2"]["reason"] == "briefing"
            await conn.action("Hangup", {"Channel": connect.message.get("Channel") or ""})
            await engine.wait_for(state_of(engine, "op1", "paused", reason="break"))
        finally:
            await hangup_all(conn)
            result = await call
    assert result.ok, result.output

    # the stored transitions give the supervisor's operator time report
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow.cli", "report", "operators", "--database", str(database),
        "--format", "json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out_bytes, _ = await proc.communicate()
    assert proc.returncode == 0, out_bytes.decode()
    times = {o["operator"]: o for o in json.loads(out_bytes)["operators"]}
    assert times["op1"]["seconds"]["on_call"] > 0
    assert times["op1"]["occupancy"] is not None
    assert times["op1"]["occupancy"] > 0
    assert times["op2"]["pause_by_reason"]["briefing"] > 0
    assert "break" in times["op1"]["pause_by_reason"]

    # bad input: an unknown operator is named with the known ones; Asterisk's refusal is shown
    code, out = await operator_cli(queue_lab, site, database, "login", "op9")
    assert code == 1  # refused (README, exit codes), naming the site file it read
    assert "unknown operator 'op9'" in out
    assert f"(site file read: {site} (SIAGA112_SITE_FILE))" in out
    assert "op1, op2" in out
    code, out = await operator_cli(queue_lab, site, database, "pause", "op5", "--reason", "x")
    assert code == 2
    assert "Asterisk refused QueuePause for operator op5" in out
    assert (await listing(queue_lab, site, database))["op5"]["state"] == "offline"


async def test_emergency_overflow_to_all_operators_after_the_threshold_is_on_the_record(
        queue_lab: LabStatus, site: Path, database: Path, engine: EngineProcess, qami: Ami) -> None:
    conn, events = qami
    await login(queue_lab, site, database, "op4")  # non-emergency only: the emergency overflow group
    members = (await conn.list_action("QueueStatus", {"Queue": "emergency"}))[1]
    assert any(m.message.get("Name") == "op4" and m.message.get("Penalty") == "10" for m in members)
    async with SippOperator(queue_lab.operators["op4"]["port"]):
        result = await place_call(queue_lab.sip["host"], queue_lab.sip["port"],
                                  CallerScript(number="081200000041", dtmf=PRESS_EMERGENCY, hold_ms=6000))
    assert result.ok, result.output
    join = await next_event(events, named("QueueCallerJoin", Queue="emergency"))
    rung = await next_event(events, named("AgentCalled", MemberName="op4"))
    waited = ((rung.timestamp or rung.received_at) - (join.timestamp or join.received_at)).total_seconds()
    assert waited >= OVERFLOW_S - 1.0, waited  # queue rules count whole seconds
    await next_event(events, named("AgentConnect", MemberName="op4"))
    linkedid = join.message.get("Linkedid") or ""
    await engine.wait_for(lambda r: r.get("event") == "queue.overflow" and r.get("linkedid") == linkedid)
    await engine.wait_for(lambda r: r.get("event") == "call.record" and r.get("linkedid") == linkedid,
                          timeout=20)
    conn_db = await open_database(database, SCHEMAS)
    try:
        records = await load_records(conn_db, linkedid=linkedid)
    finally:
        await conn_db.close()
    assert records, "no call record"
    notes = records[0].notes
    assert any(n.startswith("overflow: offered to all logged-in operators") for n in notes), notes
    assert records[0].operator == "op4"


async def test_engine_restarted_mid_queue_adopts_what_changed_behind_its_back(
        queue_lab: LabStatus, site: Path, database: Path, qami: Ami) -> None:
    conn, events = qami
    first = EngineProcess(queue_lab.instance, "--database", str(database), env=engine_env(site))
    await first.start()
    await login(queue_lab, site, database, "op1")
    await first.wait_for(state_of(first, "op1", "ready", queues=["emergency", "nonemergency"]))
    await first.stop()

    # behind the engine's back: op1 paused, op2 added, and a caller answered by op2
    await conn.action("QueuePause", {"Interface": "PJSIP/op1", "Paused": "true", "Reason": "by hand"})
    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op2", "MemberName": "op2"})
    async with SippOperator(queue_lab.operators["op2"]["port"]):
        script = CallerScript(number="081200000051", dtmf=PRESS_EMERGENCY, remote_hangup=True)
        call = caller(script, queue_lab)
        try:
            connect = await next_event(events, named("AgentConnect", MemberName="op2"))
            second = EngineProcess(queue_lab.instance, "--database", str(database), env=engine_env(site))
            await second.start()
            try:
                drifts = [await second.wait_for(lambda r, name=name: r.get("event") == "operator.drift"
                                                and r.get("operator") == name) for name in ("op1", "op2")]
                assert drifts[0]["what"] == "paused"
                assert drifts[1]["what"] == "queues"
                await second.wait_for(state_of(second, "op1", "paused", reason="by hand", cause="reconcile"))
                await second.wait_for(state_of(second, "op2", "on_call", cause="reconcile"))
                listed = await listing(queue_lab, site, database)
                assert (listed["op1"]["state"], listed["op1"]["reason"]) == ("paused", "by hand")
                assert (listed["op2"]["state"], listed["op2"]["queues"]) == ("on_call", ["emergency"])
                await conn.action("Hangup", {"Channel": connect.message.get("Channel") or ""})
                await second.wait_for(state_of(second, "op2", "ready"))
            finally:
                await second.stop()
        finally:
            await hangup_all(conn)
            result = await call
    assert result.ok, result.output


async def test_a_callback_with_its_original_arrival_is_placed_ahead_of_later_arrivals(
        queue_lab: LabStatus, site: Path, database: Path, engine: EngineProcess, qami: Ami) -> None:
    """The contract with callbacks: a channel entering siaga-queue-emergency with SIAGA_ARRIVAL preset keeps
    it (SIAGA_ROUTE=callback), and its QUEUE_PRIO puts it ahead of a caller who arrived later."""
    conn, events = qami
    later = caller(CallerScript(number="081200000061", dtmf=PRESS_EMERGENCY, remote_hangup=True), queue_lab)
    try:
        join = await next_event(events, named("QueueCallerJoin", Queue="emergency"))
        arrival = float(join.message.get("Timestamp") or "0") - 120.0  # the abandoned call, 2 min earlier
        await conn.action("Originate", {
            "Channel": "Local/s@siaga-queue-emergency/n", "Application": "Wait", "Data": "30",
            "Async": "true",
            "Variable": f"__SIAGA_ARRIVAL={arrival:.3f},__SIAGA_ROUTE=callback"})
        entry = await next_event(events, named("QueueCallerJoin", Queue="emergency"))
        assert (entry.message.get("Channel") or "").startswith("Local/s@siaga-queue-emergency")
        assert entry.message.get("Position") == "1", "the callback must go ahead of the later arrival"
        _, items = await conn.list_action("QueueStatus", {"Queue": "emergency"})
        prio = {i.message.get("Channel"): int(i.message.get("Priority") or 0)
                for i in items if i.name == "QueueEntry"}
        callback = next(p for c, p in prio.items() if c and c.startswith("Local/"))
        citizen = next(p for c, p in prio.items() if c and c.startswith("PJSIP/"))
        assert callback - citizen == pytest.approx(120 * 4, abs=4)  # quarter seconds
        route = await conn.action("Getvar", {"Channel": entry.message.get("Channel") or "",
                                             "Variable": "SIAGA_ARRIVAL"})
        assert route.get("Value") == f"{arrival:.3f}"
    finally:
        await hangup_all(conn)
        result = await later
    assert result.ok, result.output
