"""A lab day for agencies (issue 21): two real 112 calls on the lab Asterisk, answered by an operator,
become reports handed to two agencies through the running engine's console; the electricity company's
account acknowledges, reports on scene and closes its report over HTTP, the water company leaves its
report open; `siaga112 report agencies` and the wallboard's backlog give the figures worked out here
(electricity 1 of 1 completed, water 0 of 1, one report open at water)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.lab import LabStatus
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippOperator, place_call
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
AGENCIES = REPO / "examples" / "agencies-manado.example.toml"
PASSWORD = "Manado-112-test"


def _add_user(database: Path, name: str, role: str, *extra: str) -> None:
    done = subprocess.run([sys.executable, "-m", "callflow.cli", "console", "--database", str(database),
                           "user", "add", name, "--role", role, *extra, "--password-stdin"],
                          input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


async def _client(url: str, name: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=url, timeout=20)
    r = await client.post("/api/auth/login", json={"name": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


@pytest.fixture
async def engine(lab: LabStatus, tmp_path: Path) -> AsyncIterator[tuple[EngineProcess, str, Path]]:
    database = tmp_path / "siaga112.db"
    registry = ("--agencies", str(AGENCIES))
    for name, role, extra in (("op1", "operator", ()), ("sup", "supervisor", ()),
                              ("pln-desk", "agency", ("--agency", "electricity", *registry)),
                              ("pdam-desk", "agency", ("--agency", "water", *registry))):
        await asyncio.to_thread(_add_user, database, name, role, *extra)
    proc = EngineProcess(lab.instance, "--http", "127.0.0.1:0", env={"SIAGA112_DATABASE": str(database)})
    await proc.start()
    try:
        listening = await proc.wait_for(lambda r: r.get("event") == "console.listening")
        yield proc, str(listening["url"]).rstrip("/"), database
    finally:
        assert await proc.stop() == 0, proc.tail()


async def test_calls_become_reports_handed_to_two_agencies_and_counted(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]],
        engine: tuple[EngineProcess, str, Path]) -> None:
    proc, url, database = engine
    conn, _ = ami
    linkedids: list[str] = []
    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1", "MemberName": "op1"})
    try:
        async with SippOperator(lab.operators["op1"]["port"]):
            for number in ("081234500101", "081234500102"):
                result = await place_call(lab.sip["host"], lab.sip["port"],
                                          CallerScript(dtmf=PRESS_EMERGENCY, number=number, hold_ms=800))
                assert result.ok, result.output
                connect = await proc.wait_for(lambda r: r.get("ami_event") == "AgentConnect"
                                              and r.get("member_name") == "op1"
                                              and r.get("linkedid") not in linkedids, timeout=30)
                linkedids.append(str(connect["linkedid"]))
                await proc.wait_for(lambda r, lid=linkedids[-1]: r.get("event") == "call.record"
                                    and r.get("linkedid") == lid, timeout=20)
    finally:
        await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})

    op, sup, pln, pdam = [await _client(url, n) for n in ("op1", "sup", "pln-desk", "pdam-desk")]
    try:
        reports = []
        for linkedid, category, unit in ((linkedids[0], "electricity", "electricity-wenang"),
                                         (linkedids[1], "clean_water", "water-wenang")):
            r = await op.post("/api/incidents", json={"category": category, "district": "wenang",
                                                      "linkedid": linkedid, "caller_number": "081234500101"})
            assert r.status_code == 201, r.text
            reports.append(int(r.json()["id"]))
            r = await op.post(f"/api/incidents/{reports[-1]}/dispatch", json={"unit": unit})
            assert r.status_code == 200, r.text
        power, water = reports
        [mine] = (await pln.get("/api/agency/reports")).json()
        assert (mine["id"], mine["caller_number"]) == (power, None)
        assert (await pln.get(f"/api/agency/reports/{water}")).status_code == 403
        assert (await pdam.get("/api/recordings")).status_code == 403
        for path, body in (("acknowledge", None), ("step", {"state": "on_scene"}),
                           ("done", {"what": "line re-strung"})):
            r = await pln.post(f"/api/agency/reports/{power}/{path}", json=body)
            assert r.status_code == 200, (path, r.text)
        assert (await pdam.post(f"/api/agency/reports/{water}/acknowledge")).status_code == 200
        board = {row["agency_id"]: (row["open"], row["overdue"])
                 for row in (await sup.get("/api/agency/backlog")).json()}
        closed = next(i for i in (await op.get("/api/incidents")).json() if i["id"] == str(power))
    finally:
        for client in (op, sup, pln, pdam):
            await client.aclose()
    assert board == {"water": (1, 0)}
    assert closed["status"] == "done"

    day = datetime.now(UTC).astimezone(ZoneInfo("Asia/Makassar")).date().isoformat()
    done = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "callflow.cli", "report", "agencies", "--database", str(database),
        "--from", day, "--to", day, "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert {a: (c["handed"], c["completed"]) for a, c in figures["agencies"].items()} == {
        "electricity": (1, 1), "water": (1, 0)}
    assert {a: sum(b.values()) for a, b in figures["backlog"].items()} == {"water": 1}
    rows = {(r["agency"], r["category"]): r for r in figures["by_category"]}
    assert rows[("electricity", "electricity")]["to_acknowledge"]["count"] == 1
    assert rows[("water", "clean_water")]["to_done"]["count"] == 0
