"""Integration: one truthful record per call, on the real lab Asterisk with SIPp callers and operators and
the real engine process (``siaga112 serve --lab ... --database ...``)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.calls.model import CallRecord, InstantSource, Outcome
from callflow.calls.records import load_records
from callflow.calls.tracker import SCHEMAS
from callflow.lab import LabStatus
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippOperator, place_call
from callflow.store import APPLICATION_ID, open_database
from tests.support.engine import EngineProcess, Record

pytestmark = pytest.mark.integration

Ami = tuple[AmiConnection, asyncio.Queue[EventItem]]


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "siaga112.db"


@pytest.fixture
async def tracked(lab: LabStatus, database: Path) -> AsyncIterator[EngineProcess]:
    proc = EngineProcess(lab.instance, "--database", str(database))
    await proc.start()
    yield proc
    await proc.stop()


@contextlib.asynccontextmanager
async def members(conn: AmiConnection, *names: str, queue: str = "emergency") -> AsyncIterator[None]:
    for name in names:
        await conn.action("QueueAdd", {"Queue": queue, "Interface": f"PJSIP/{name}", "MemberName": name})
    try:
        yield
    finally:
        for name in names:
            with contextlib.suppress(Exception):
                await conn.action("QueueRemove", {"Queue": queue, "Interface": f"PJSIP/{name}"})


def is_record_of(number: str) -> object:
    return lambda r: r.get("event") == "call.record" and str(r.get("caller", "")).endswith(number[-3:])


async def stored(database: Path, linkedid: str | None = None) -> list[CallRecord]:
    conn = await open_database(database, SCHEMAS)
    try:
        return await load_records(conn, linkedid=linkedid)
    finally:
        await conn.close()


async def call(lab: LabStatus, script: CallerScript) -> None:
    result = await place_call(lab.sip["host"], lab.sip["port"], script)
    assert result.ok, result.output


async def test_answered_call(lab: LabStatus, tracked: EngineProcess, ami: Ami, database: Path) -> None:
    async with members(ami[0], "op1"), SippOperator(lab.operators["op1"]["port"]):
        await call(lab, CallerScript(dtmf=PRESS_EMERGENCY, number="081277770101", hold_ms=1200))
        line: Record = await tracked.wait_for(is_record_of("081277770101"))  # type: ignore[arg-type]
    [r] = await stored(database)
    assert r.linkedid == line["linkedid"]
    assert r.outcome is Outcome.ANSWERED
    assert r.operator == "op1"
    assert r.hangup_by == "caller"
    assert r.sources == ("ami",)
    assert all(i.source is InstantSource.AMI_TIMESTAMP for i in r.instants)
    milestones = ["arrival", "queue_joined", "rung", "answered", "hangup"]
    assert [i.name for i in r.instants if i.name in milestones] == milestones
    assert r.answer_seconds is not None
    assert 0 < r.answer_seconds < 5
    assert r.ended is not None
    assert r.ended - r.arrival > r.answered - r.arrival  # type: ignore[operator]


async def test_caller_hangs_up_in_the_queue(lab: LabStatus, tracked: EngineProcess, ami: Ami,
                                            database: Path) -> None:
    async with members(ami[0], "op1"), SippOperator(lab.operators["op1"]["port"], answer=False):
        await call(lab, CallerScript(dtmf=PRESS_EMERGENCY, number="081277770202", cancel_after_ms=4000))
        await tracked.wait_for(is_record_of("081277770202"))  # type: ignore[arg-type]
    [r] = await stored(database)
    assert r.outcome is Outcome.ABANDONED_IN_QUEUE
    assert r.answered is None
    assert r.hangup_by == "caller"
    assert [i.detail for i in r.instants if i.name == "rung"] == ["op1"]


async def test_caller_hangs_up_in_the_ivr_menu(lab: LabStatus, tracked: EngineProcess,
                                               database: Path) -> None:
    # no key pressed, gone after 4 s (past the 3 s short-abandon threshold, before the menu times out)
    await call(lab, CallerScript(number="081277770303", hold_ms=4000))
    await tracked.wait_for(is_record_of("081277770303"))  # type: ignore[arg-type]
    [r] = await stored(database)
    assert r.outcome is Outcome.ABANDONED_IN_IVR
    assert r.answered is None
    assert r.hangup_by == "caller"
    names = [i.name for i in r.instants]
    assert "arrival" in names
    assert "queue_joined" not in names
    assert r.ended is not None
    assert r.arrival is not None
    assert 3.0 <= (r.ended - r.arrival).total_seconds() < 10.0


async def test_operator_does_not_answer_and_the_next_one_does(lab: LabStatus, tracked: EngineProcess,
                                                              ami: Ami, database: Path) -> None:
    async with members(ami[0], "op1", "op2"), SippOperator(lab.operators["op1"]["port"], answer=False), \
            SippOperator(lab.operators["op2"]["port"]):
        # op1 rings 8 s before op2 answers: the caller stays 11 s after pressing 1
        await call(lab, CallerScript(dtmf=PRESS_EMERGENCY, number="081277770303", hold_ms=11000))
        await tracked.wait_for(is_record_of("081277770303"), timeout=30)  # type: ignore[arg-type]
    [r] = await stored(database)
    assert r.outcome is Outcome.ANSWERED
    assert r.operator == "op2"
    assert [i.detail for i in r.instants if i.name == "ring_no_answer"] == ["op1"]
    assert r.answer_seconds is not None
    assert r.answer_seconds > 8  # the queue rings op1 for 8 s first


async def test_blind_transfer_between_operators(lab: LabStatus, tracked: EngineProcess, ami: Ami,
                                                database: Path) -> None:
    """op1 answers and blind-transfers the caller (AMI BlindTransfer on op1's leg) back to 112, where op2
    (the only member left) answers."""
    conn = ami[0]
    async with members(conn, "op1", "op2"), SippOperator(lab.operators["op1"]["port"]), \
            SippOperator(lab.operators["op2"]["port"]):
        await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op2"})
        caller = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"],
                                                CallerScript(dtmf=PRESS_EMERGENCY,
                                                             number="081277770404", hold_ms=5000)))
        connect = await tracked.wait_for(lambda r: r.get("ami_event") == "AgentConnect"
                                         and r.get("caller", "").endswith("404"))
        await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op2", "MemberName": "op2"})
        await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})
        _, items = await conn.list_action("CoreShowChannels")
        [op1_leg] = [i.chan.channel for i in items if getattr(i, "chan", None)
                     and i.chan.linkedid == connect["linkedid"] and i.chan.channel.startswith("PJSIP/op1-")]
        await conn.action("BlindTransfer", {"Channel": op1_leg, "Exten": "112", "Context": "from-operators"})
        assert (await caller).ok
        await tracked.wait_for(is_record_of("081277770404"))  # type: ignore[arg-type]
    [r] = await stored(database)
    assert r.outcome is Outcome.TRANSFERRED
    assert r.operator == "op1"
    assert [i.detail for i in r.instants if i.name == "answered"] == ["op1", "op2"]
    [transfer] = [i for i in r.instants if i.name == "transferred"]
    assert transfer.detail.startswith(f"blind 112@from-operators by {op1_leg}")
    assert {g.role for g in r.legs} == {"caller", "operator", "transfer_target"}


async def test_fifty_simultaneous_calls_give_exactly_fifty_records(lab: LabStatus, tracked: EngineProcess,
                                                                   ami: Ami, database: Path) -> None:
    ops = ("op1", "op2", "op3", "op4")
    async with members(ami[0], *ops), contextlib.AsyncExitStack() as stack:
        for op in ops:
            await stack.enter_async_context(SippOperator(lab.operators[op]["port"]))
        tasks = []
        for i in range(50):
            tasks.append(asyncio.create_task(place_call(
                lab.sip["host"], lab.sip["port"], CallerScript(dtmf=PRESS_EMERGENCY,
                                                               number=f"0812555{i:05d}", hold_ms=300))))
            await asyncio.sleep(0.08)  # spread 50 callers over 4 s (2 shared cores)
        results = await asyncio.gather(*tasks)
        assert all(r.ok for r in results), [r.output for r in results if not r.ok][:1]
        async with asyncio.timeout(60):
            while len([r for r in tracked.records if r.get("event") == "call.record"]) < 50:
                await tracked.wait_for(lambda r: r.get("event") == "call.record", timeout=60)
                await asyncio.sleep(0.2)  # let the log reader catch up between checks
    records = await stored(database)
    assert len(records) == 50
    assert len({r.linkedid for r in records}) == 50
    assert {r.caller_number for r in records} == {f"0812555{i:05d}" for i in range(50)}
    assert all(r.outcome is Outcome.ANSWERED for r in records), sorted({r.outcome for r in records})
    check = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow.cli", "calls", "rebuild", "--check", "--database", str(database),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await check.communicate()
    assert check.returncode == 0, out.decode()
    assert "50 identical" in out.decode()


def _journal_has(database: Path, linkedid: str, event: str) -> bool:
    with contextlib.closing(sqlite3.connect(database, timeout=1)) as db:
        row = db.execute("SELECT 1 FROM calls_journal WHERE linkedid = ? AND name = ?",
                         (linkedid, event)).fetchone()
    return row is not None


async def _until(predicate: object, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if predicate():  # type: ignore[operator]
                return
            await asyncio.sleep(0.1)


async def test_engine_killed_mid_call_then_restarted_completes_the_record(
        lab: LabStatus, ami: Ami, database: Path) -> None:
    engine = await EngineProcess(lab.instance, "--database", str(database)).start()
    try:
        async with members(ami[0], "op1"), SippOperator(lab.operators["op1"]["port"]):
            caller = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"],
                                                    CallerScript(dtmf=PRESS_EMERGENCY,
                                                                 number="081277770505", hold_ms=4000)))
            connect = await engine.wait_for(lambda r: r.get("ami_event") == "AgentConnect"
                                            and r.get("caller", "").endswith("505"))
            linkedid = connect["linkedid"]
            await _until(lambda: _journal_has(database, linkedid, "AgentConnect"))
            await engine.kill()  # SIGKILL: no shutdown path runs
            assert (await caller).ok  # the call ends while the engine is dead
            # and a whole call happens while it is dead
            await call(lab, CallerScript(dtmf=PRESS_EMERGENCY, number="081277770606", hold_ms=800))
            cdr = Path(lab.cdr_file)
            await _until(lambda: cdr.exists() and "081277770606" in cdr.read_text())
        engine = await EngineProcess(lab.instance, "--database", str(database)).start()
        await engine.wait_for(is_record_of("081277770505"), timeout=20)  # type: ignore[arg-type]
        await engine.wait_for(is_record_of("081277770606"), timeout=20)  # type: ignore[arg-type]
    finally:
        await engine.stop()
    [r] = await stored(database, linkedid)
    assert r.outcome is Outcome.ANSWERED
    assert r.operator == "op1"
    assert r.sources == ("ami", "asterisk_cdr", "queue_log")
    by_name = {i.name: i for i in r.instants}
    assert by_name["answered"].source is InstantSource.AMI_TIMESTAMP
    assert by_name["hangup"].source is InstantSource.ASTERISK_CDR
    assert r.ended is not None
    assert r.hangup_by == "caller"
    assert any("Asterisk's CDR file" in n for n in r.notes)
    [unseen] = [x for x in await stored(database) if x.caller_number == "081277770606"]
    # with the engine (and its IVR) dead, the dial plan's fail-safe routed it: the CDR's userfield says so
    # (issue 16), and the answer is still recorded
    assert unseen.outcome is Outcome.FAILSAFE
    assert unseen.answered is not None
    assert unseen.sources == ("asterisk_cdr", "queue_log")
    assert unseen.operator == "op1"
    assert {i.source for i in unseen.instants} <= {InstantSource.ASTERISK_CDR, InstantSource.QUEUE_LOG}
    assert len(await stored(database)) == 2  # never duplicated


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, bytes]:
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database\n" * 100)
    foreign = tmp_path / "foreign.db"
    with contextlib.closing(sqlite3.connect(foreign)) as db:
        db.execute(f"PRAGMA application_id={APPLICATION_ID + 1}")
        db.execute("CREATE TABLE other (x)")
        db.commit()
    return {str(corrupt): corrupt.read_bytes(), str(foreign): foreign.read_bytes()}


def test_serve_refuses_a_corrupt_or_foreign_database_and_never_touches_it(
        lab: LabStatus, bad_files: dict[str, bytes]) -> None:
    for path, content in bad_files.items():
        result = subprocess.run([sys.executable, "-m", "callflow.cli", "serve", "--lab", lab.instance,
                                 "--database", path, "--log-format", "json"],
                                capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 2, result.stdout + result.stderr
        assert path in result.stderr
        assert "will not" in result.stderr
        assert Path(path).read_bytes() == content
