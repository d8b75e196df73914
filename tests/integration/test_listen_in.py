"""A supervisor listens in on the real lab: a SIPp citizen talks to a SIPp operator (op1); the supervisor's
own phone (a SIPp phone on op2's endpoint, the account's operator id) is originated into ChanSpy in listen
mode, then switched to whisper and barge without ringing again; an operator's account is refused (403).
Asterisk's ChanSpyStart/ChanSpyStop drive the session; the session is in console_listen and the audit
trail, and the call's record carries a note per mode."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.lab import LabStatus
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippOperator, place_call
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.integration

PASSWORD = "Manado-112-listen"


def _add_user(database: Path, name: str, role: str, phone: str) -> None:
    done = subprocess.run([sys.executable, "-m", "callflow.cli", "console", "--database", str(database),
                           "user", "add", name, "--role", role, "--operator-id", phone, "--password-stdin"],
                          input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


@pytest.fixture
async def engine(lab: LabStatus, tmp_path: Path) -> AsyncIterator[tuple[EngineProcess, str, Path]]:
    database = tmp_path / "siaga112.db"
    await asyncio.to_thread(_add_user, database, "sup", "supervisor", "op2")  # sup's desk phone: op2
    await asyncio.to_thread(_add_user, database, "op1", "operator", "op1")
    proc = EngineProcess(lab.instance, "--http", "127.0.0.1:0", env={"SIAGA112_DATABASE": str(database)})
    await proc.start()
    try:
        listening = await proc.wait_for(lambda r: r.get("event") == "console.listening")
        yield proc, str(listening["url"]).rstrip("/"), database
    finally:
        assert await proc.stop() == 0, proc.tail()


async def _client(url: str, name: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=url, timeout=10)
    r = await client.post("/api/auth/login", json={"name": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


def _rows(database: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


async def test_a_supervisor_listens_whispers_and_barges_on_an_operators_call(
        lab: LabStatus, engine: tuple[EngineProcess, str, Path],
        ami: tuple[AmiConnection, asyncio.Queue[EventItem]]) -> None:
    proc, url, database = engine
    conn, _ = ami
    sup, op = await _client(url, "sup"), await _client(url, "op1")
    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1", "MemberName": "op1"})
    try:
        async with SippOperator(lab.operators["op1"]["port"]), SippOperator(lab.operators["op2"]["port"]):
            call = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"], CallerScript(
                dtmf=PRESS_EMERGENCY, number="081266660112", hold_ms=22000)))
            try:
                connect = await proc.wait_for(lambda r: r.get("ami_event") == "AgentConnect"
                                              and r.get("member_name") == "op1")
                # an operator may not listen in: 403, and the refusal is audited
                refused = await op.post("/api/listen", json={"operator": "op1", "mode": "listen"})
                assert refused.status_code == 403, refused.text
                r = await sup.post("/api/listen", json={"operator": "op1", "mode": "listen"})
                assert r.status_code == 201, r.text
                session = r.json()
                assert (session["state"], session["linkedid"]) == ("ringing", connect["linkedid"])
                started = await proc.wait_for(lambda r: r.get("event") == "listen.started"
                                              and r.get("mode") == "listen", timeout=15)
                assert started["ami_event"] == "ChanSpyStart"
                assert started["spyee"].startswith("PJSIP/op1-"), started
                # whisper, then barge: ChanSpy switches in place (the key, as if pressed on the phone)
                for mode in ("whisper", "barge"):
                    r = await sup.post(f"/api/listen/{session['id']}/mode", json={"mode": mode})
                    assert r.status_code == 200, r.text
                    switched = await proc.wait_for(lambda r, m=mode: r.get("event") == "listen.switched"
                                                   and r.get("mode") == m, timeout=10)
                    assert (switched["ami_event"], switched["digit"]) == ("DTMFEnd", {"whisper": "5",
                                                                                      "barge": "6"}[mode])
                again = await sup.post(f"/api/listen/{session['id']}/mode", json={"mode": "barge"})
                assert again.status_code == 409, again.text  # already barging
                listed = (await sup.get("/api/listen")).json()
                assert [(s["id"], s["state"], s["modes"]) for s in listed] == [
                    (session["id"], "active", ["listen", "whisper", "barge"])]
                result = await call
                assert result.ok, result.output
            finally:
                if not call.done():
                    call.cancel()
    finally:
        await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})
        await sup.aclose()
        await op.aclose()

    # the call ended: ChanSpy stops (E), the session ends; the record has a note per mode
    stopped = await proc.wait_for(lambda r: r.get("event") == "listen.stopped", timeout=15)
    assert stopped["ami_event"] == "ChanSpyStop"
    record = await proc.wait_for(lambda r: r.get("event") == "call.record"
                                 and r.get("linkedid") == connect["linkedid"], timeout=30)
    notes = [n for n in record["notes"] if n.startswith("supervisor sup listened in on op1")]
    assert [n.split("(")[1].split(")")[0] for n in notes] == ["listen", "whisper", "barge"], record["notes"]
    # the supervisor's phone leg is no call to the centre: no record of its own (never counted as offered)
    assert _rows(database, "SELECT linkedid FROM calls_records WHERE linkedid LIKE 'siaga-listen-%'") == []
    [row] = _rows(database, "SELECT supervisor, operator, linkedid, modes, state, started_at IS NOT NULL, "
                            "ended_at IS NOT NULL, started_at < ended_at FROM console_listen")
    assert row == ("sup", "op1", connect["linkedid"], "listen,whisper,barge", "ended", 1, 1, 1), row
    audit = _rows(database, "SELECT actor, outcome, detail FROM console_audit WHERE action = 'listen' "
                            "ORDER BY id")
    assert audit[0][:2] == ("op1", "denied"), audit
    details = [str(d) for a, o, d in audit if a == "sup"]
    for part in ("listen requested, ringing op2", "listen started", "switch to whisper requested",
                 "whisper from", "switch to barge requested", "barge from", "ended"):
        assert any(part in d for d in details), (part, details)
