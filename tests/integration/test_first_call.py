"""Foundation: a real SIP call through 112 on the lab Asterisk, observed by the running engine."""

from __future__ import annotations

import asyncio

import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.lab import LabStatus
from callflow.lab.sipp import CallerScript, SippOperator, place_call
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.integration


async def test_112_call_joins_emergency_queue_and_is_answered(
    lab: LabStatus, engine: EngineProcess, ami: tuple[AmiConnection, asyncio.Queue[EventItem]]
) -> None:
    conn, _ = ami
    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1", "MemberName": "op1"})
    try:
        async with SippOperator(lab.operators["op1"]["port"]):
            result = await place_call(lab.sip["host"], lab.sip["port"],
                                      # 1 = emergency on the IVR's first menu (issue 5)
                                      CallerScript(number="081200001111", dtmf=[(600, "1")],
                                                   hold_ms=1500))
            assert result.ok, result.output

            join = await engine.wait_for(lambda r: r.get("ami_event") == "QueueCallerJoin"
                                         and r.get("queue") == "emergency")
            linkedid = join["linkedid"]
            await engine.wait_for(lambda r: r.get("ami_event") == "AgentConnect"
                                  and r.get("linkedid") == linkedid and r.get("member_name") == "op1")
            await engine.wait_for(lambda r: r.get("ami_event") == "Hangup"
                                  and r.get("uniqueid") == linkedid)
    finally:
        await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})

    order = engine.events_for(linkedid)
    assert order.index("QueueCallerJoin") < order.index("AgentConnect") < order.index("Hangup")
    # Asterisk's own event time, with microseconds, is what the engine stamps.
    assert join["ts_source"] == "ami_timestamp"
    assert "." in join["ts"]
    assert join["ts"].endswith("+00:00")
    # caller numbers are masked in logs above DEBUG
    assert join["caller"] == "*********111"


async def test_engine_stops_cleanly_on_sigterm(lab: LabStatus) -> None:
    proc = EngineProcess(lab.instance)
    await proc.start()
    code = await proc.stop()
    assert code == 0
    await proc.wait_for(lambda r: r.get("event") == "engine.stopped", timeout=1)
