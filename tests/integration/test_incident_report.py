"""A real 112 call on the lab Asterisk, answered by an operator; an incident created for it, dispatched,
the unit on scene; the summary report shows that call's answer time and the response times.

Call records come from AMI events through the interim ``AmiEventCallRecordSource`` (tests/support),
behind the reports' ``CallRecordSource`` protocol; the lead switches it to the call tracker's store."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.ami.events import AgentConnect, Newchannel
from callflow.incidents import IncidentService, IncidentStatus, load_registry
from callflow.lab import LabStatus
from callflow.lab.sipp import CallerScript, SippOperator, place_call
from callflow.reports import CallRecordSource, Period, summarize
from callflow.reports.render import as_dict, render_text
from tests.support.ami_call_source import AmiEventCallRecordSource

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
EXAMPLE_AGENCIES = REPO / "examples" / "agencies-manado.example.toml"


async def test_real_call_incident_dispatch_and_report(
    lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]], tmp_path: Path
) -> None:
    conn, events = ami
    source = AmiEventCallRecordSource()
    assert isinstance(source, CallRecordSource)
    seen: list[EventItem] = []
    joined: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def consume() -> None:
        while True:
            item = await events.get()
            seen.append(item)
            source.feed(item)
            if isinstance(item, AgentConnect) and item.member_name == "op1" and not joined.done():
                joined.set_result(item.linkedid)

    consumer = asyncio.create_task(consume())
    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1", "MemberName": "op1"})
    try:
        async with SippOperator(lab.operators["op1"]["port"]):
            result = await place_call(lab.sip["host"], lab.sip["port"],
                                      CallerScript(number="081234500009", hold_ms=1500))
            assert result.ok, result.output
            async with asyncio.timeout(20):
                linkedid = await joined
                record = await source.wait_ended(linkedid)
    finally:
        await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer

    # the expected answer time, straight from the two AMI events' own Timestamps
    newchannel = next(e for e in seen if isinstance(e, Newchannel) and e.chan and e.chan.uniqueid == linkedid)
    connect = next(e for e in seen if isinstance(e, AgentConnect) and e.linkedid == linkedid)
    assert newchannel.timestamp is not None
    assert connect.timestamp is not None
    expected_answer_s = (connect.timestamp - newchannel.timestamp).total_seconds()
    assert 0 < expected_answer_s < 15
    assert record.answer_seconds == expected_answer_s
    assert record.operator == "op1"

    async with IncidentService.open(tmp_path / "siaga112.db") as service:
        await service.load_registry(load_registry(EXAMPLE_AGENCIES))
        incident = await service.create(category="health", district="tikala", by=record.operator,
                                        linkedids=[linkedid], notes="lab call")
        dispatch = await service.dispatch(incident.id, by="op1")
        assert dispatch.unit_id == "amb-tikala-1"
        arrived = await service.arrive(incident.id, by="op1")
        closed = await service.close(incident.id, by="op1")
        assert closed.status is IncidentStatus.DONE

        tz = ZoneInfo("Asia/Makassar")
        period = Period(record.arrival.astimezone(tz).date(), datetime.now(UTC).astimezone(tz).date())
        report = await summarize(service, source, period)

    expected_to_dispatch = (dispatch.dispatched_at - connect.timestamp).total_seconds()
    expected_response = (arrived.on_scene_at - dispatch.dispatched_at).total_seconds()  # type: ignore[operator]
    d = as_dict(report)
    assert d["total"] == 1
    assert d["answer_time"]["offered"] == 1
    assert d["answer_time"]["answered"] == 1
    assert d["answer_time"]["answer"]["mean_s"] == expected_answer_s
    assert d["answer_to_dispatch"]["count"] == 1
    assert d["answer_to_dispatch"]["mean_s"] == expected_to_dispatch
    assert d["response"]["count"] == 1
    assert d["response"]["mean_s"] == expected_response
    assert d["groups"]["operator"]["op1"]["answer_time"]["median_s"] == expected_answer_s
    assert d["status"]["done"]["count"] == 1
    text = render_text(report)
    assert f"mean {expected_answer_s:.1f} s" in text
    assert "offered 1  answered 1  abandoned 0" in text
    assert "EXAMPLE DATA" in text
