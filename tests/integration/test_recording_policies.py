"""Recording policy on the real lab: from arrival when the site asks for it; non-emergency calls are
not recorded unless the site asks for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from callflow.ami import AmiConnection, EventItem
from callflow.ami.events import AgentConnect, ChannelEvent, Hangup, Newchannel
from callflow.lab import LabStatus
from callflow.lab.sipp import PRESS_EMERGENCY, SPEECH_PCAP, CallerScript, SippOperator, place_call
from callflow.policies import recording_policy
from callflow.service import CallEventLogger, Engine
from callflow.siteconfig import Recording
from callflow.store import open_database
from recordings import SCHEMA, Recorder, RecordFrom, RecordingIndex, RecordingPolicy, RecordingStatus
from recordings.audio import wav_duration
from tests.support.pyvoip_operator import PyVoipOperator

pytestmark = pytest.mark.integration


class RunningEngine:
    def __init__(self, lab: LabStatus, db: Path, policy: RecordingPolicy) -> None:
        self.recorder = Recorder(database=db, root=Path(lab.recordings_dir),
                                 asterisk_root=lab.recordings_dir_in_root, policy=policy)
        self.engine = Engine(lab.ami_endpoint(), [self.recorder, CallEventLogger()])
        self.logs: list[dict[str, Any]] = []

    async def wait_log(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0
                       ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for entry in self.logs:
                    if predicate(entry):
                        return entry
                await asyncio.sleep(0.05)


@pytest.fixture
async def running(lab: LabStatus, tmp_path: Path, request: pytest.FixtureRequest
                  ) -> AsyncIterator[RunningEngine]:
    run = RunningEngine(lab, tmp_path / "siaga112.db", request.param)
    with structlog.testing.capture_logs() as logs:
        run.logs = logs
        task = asyncio.create_task(run.engine.run())
        try:
            await run.wait_log(lambda e: e.get("event") == "recording.ready")
            yield run
        finally:
            run.engine.stop()
            await task


async def _next(events: asyncio.Queue[EventItem], kind: type[ChannelEvent],
                where: Callable[[Any], bool] = lambda _e: True, timeout: float = 20.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            item = await events.get()
            if isinstance(item, kind) and where(item):
                return item


FROM_ARRIVAL = recording_policy(Recording(emergency_from=RecordFrom.ARRIVAL))


@pytest.mark.parametrize("running", [FROM_ARRIVAL], indirect=True)
async def test_emergency_recorded_from_arrival(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]], running: RunningEngine) -> None:
    conn, events = ami
    # pyVoIP rings for a second before it answers.
    with PyVoipOperator(lab, "op6"):
        await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op6", "MemberName": "op6"})
        try:
            script = CallerScript(dtmf=PRESS_EMERGENCY,
                                  number="081200006666", hold_ms=2500, audio_pcap=SPEECH_PCAP)
            result = await place_call(lab.sip["host"], lab.sip["port"], script)
        finally:
            await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op6"})
    assert result.ok, result.output
    arrival = await _next(events, Newchannel, lambda e: e.uniqueid == e.linkedid
                          and e.chan.context == "from-citizens")
    connect = await _next(events, AgentConnect, lambda e: e.linkedid == arrival.linkedid)
    hangup = await _next(events, Hangup, lambda e: e.uniqueid == arrival.linkedid)
    started = await running.wait_log(lambda e: e.get("event") == "recording.started"
                                     and e.get("linkedid") == arrival.linkedid)
    assert started["trigger"] == "arrival"
    indexed = await running.wait_log(lambda e: e.get("event") == "recording.indexed"
                                     and e.get("linkedid") == arrival.linkedid)
    assert indexed["made_at"] == arrival.time.isoformat()
    talk_s = (hangup.time - connect.time).total_seconds()
    whole_s = (hangup.time - arrival.time).total_seconds()
    duration = wav_duration(Path(indexed["path"]))
    print(f"arrival recording {duration:.3f} s; talk {talk_s:.3f} s; arrival to hangup {whole_s:.3f} s")
    assert whole_s - talk_s > 0.8  # the operator rang for a second first
    # MixMonitor was on the channel from its first event, and the entry answers the call at once (the IVR,
    # or its fail-safe to the queue): the whole stay is on record, the part before the operator included.
    assert duration > talk_s + 0.5
    assert abs(duration - whole_s) <= 0.5
    store = await open_database(running.recorder.database, [SCHEMA])
    try:
        (rec,) = await RecordingIndex(store).find(linkedid=arrival.linkedid)
    finally:
        await store.close()
    assert rec.status == RecordingStatus.OK
    assert rec.call_class == "emergency"


@pytest.mark.parametrize("running", [recording_policy()], indirect=True)
async def test_nonemergency_call_not_recorded_by_default(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]], running: RunningEngine) -> None:
    conn, events = ami
    await conn.action("QueueAdd", {"Queue": "nonemergency", "Interface": "PJSIP/op4",
                                   "MemberName": "op4"})
    try:
        async with SippOperator(lab.operators["op3"]["port"]), SippOperator(lab.operators["op4"]["port"]):
            # op3's softphone stands in for a caller the IVR sent to the non-emergency queue.
            await conn.action("Originate", {"Channel": "PJSIP/op3", "Context": "siaga-queue-nonemergency",
                                            "Exten": "s", "Priority": "1", "Async": "true"})
            connect = await _next(events, AgentConnect, lambda e: e.queue == "nonemergency")
            await conn.action("Hangup", {"Channel": connect.chan.channel})
            await _next(events, Hangup, lambda e: e.uniqueid == connect.linkedid)
    finally:
        await conn.action("QueueRemove", {"Queue": "nonemergency", "Interface": "PJSIP/op4"})
    # The engine applies events in order: once the call-event logger (after the recorder) has seen the
    # caller's hangup, the recorder has seen the whole call; then its own work must be done.
    await running.wait_log(lambda e: e.get("event") == "call.event" and e.get("ami_event") == "Hangup"
                           and e.get("uniqueid") == connect.linkedid)
    async with asyncio.timeout(10):
        await running.recorder.wait_idle()
    store = await open_database(running.recorder.database, [SCHEMA])
    try:
        assert await RecordingIndex(store).find(linkedid=connect.linkedid) == []
    finally:
        await store.close()
    assert not [e for e in running.logs if e.get("event") == "recording.started"]
