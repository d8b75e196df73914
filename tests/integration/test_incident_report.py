"""A real 112 call on the lab Asterisk, answered by an operator and recorded by the running engine's call
tracker; an incident created for it, dispatched, the unit on scene, closed — all through the CLI — and
`siaga112 report summary` shows that call's answer time and the response times."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.calls.records import StoredCallRecords
from callflow.calls.tracker import SCHEMAS
from callflow.lab import LabStatus
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippOperator, place_call
from callflow.store import open_database
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
EXAMPLE_AGENCIES = REPO / "examples" / "agencies-manado.example.toml"


async def siaga112(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "callflow.cli", *args,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_real_call_incident_dispatch_and_report(
    lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]], tmp_path: Path
) -> None:
    db = tmp_path / "siaga112.db"
    conn, _ = ami
    engine = EngineProcess(lab.instance, env={"SIAGA112_DATABASE": str(db)})
    await engine.start()
    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1", "MemberName": "op1"})
    try:
        async with SippOperator(lab.operators["op1"]["port"]):
            result = await place_call(lab.sip["host"], lab.sip["port"],
                                      CallerScript(dtmf=PRESS_EMERGENCY, number="081234500009", hold_ms=1500))
            assert result.ok, result.output
            connect = await engine.wait_for(lambda r: r.get("ami_event") == "AgentConnect"
                                            and r.get("member_name") == "op1")
            linkedid = connect["linkedid"]
            await engine.wait_for(lambda r: r.get("event") == "call.record" and r.get("linkedid") == linkedid,
                                  timeout=20)
    finally:
        await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})
        await engine.stop()

    # the expected answer time, straight from the two AMI events' own Timestamps, as the engine logged them
    arrival = next(r for r in engine.records if r.get("ami_event") == "Newchannel"
                   and r.get("uniqueid") == linkedid)
    expected_answer_s = (datetime.fromisoformat(connect["ts"])
                         - datetime.fromisoformat(arrival["ts"])).total_seconds()
    assert 0 < expected_answer_s < 15
    store = await open_database(db, SCHEMAS)
    try:
        record = await StoredCallRecords(store).get(linkedid)
    finally:
        await store.close()
    assert record is not None
    assert record.answer_seconds == pytest.approx(expected_answer_s, abs=1e-6)
    assert record.operator == "op1"

    base = ["incidents", "--database", str(db), "--agencies", str(EXAMPLE_AGENCIES)]
    code, out, err = await siaga112(*base, "create", "--category", "kesehatan", "--district", "Tikala",
                                    "--by", "op1", "--call", linkedid, "--json")
    assert code == 0, err
    incident_id = str(json.loads(out)["id"])
    code, out, err = await siaga112(*base, "dispatch", incident_id, "--by", "op1", "--json")
    assert code == 0, err
    dispatch = json.loads(out)
    assert dispatch["unit_id"] == "amb-tikala-1"
    code, out, err = await siaga112(*base, "arrive", incident_id, "--by", "op1", "--json")
    assert code == 0, err
    code, out, err = await siaga112(*base, "close", incident_id, "--by", "op1", "--json")
    assert code == 0, err

    tz = ZoneInfo("Asia/Makassar")
    day_from = record.arrival.astimezone(tz).date().isoformat()
    day_to = datetime.now(UTC).astimezone(tz).date().isoformat()
    code, out, err = await siaga112("report", "summary", "--database", str(db), "--from", day_from,
                                    "--to", day_to, "--format", "json")
    assert code == 0, err
    d = json.loads(out)
    assert d["total"] == 1
    assert d["answer_time"]["offered"] == 1
    assert d["answer_time"]["answered"] == 1
    assert d["answer_time"]["mean_answer_s"] == pytest.approx(expected_answer_s, abs=1e-6)
    assert d["answer_time"]["percentiles_s"]["p50"] == pytest.approx(expected_answer_s, abs=1e-6)
    assert d["answer_to_dispatch"]["count"] == 1
    assert d["response"]["count"] == 1
    assert d["groups"]["operator"]["op1"]["answer_time"]["median_s"] == pytest.approx(expected_answer_s,
                                                                                        abs=1e-6)
    assert d["status"]["done"]["count"] == 1
    code, text, err = await siaga112("report", "summary", "--database", str(db), "--from", day_from,
                                     "--to", day_to)
    assert code == 0, err
    assert "offered 1  answered 1  abandoned 0  unanswered 0" in text
    assert "EXAMPLE DATA" in text
