"""Recording faults on the real lab: the recordings root unwritable or full. The engine warns loudly and
flags the call's recording as failed, on the recording's row and on the call record; the call itself is
answered and ends normally."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from callflow.ami import AmiConnection, EventItem
from callflow.calls.records import StoredCallRecords
from callflow.calls.tracker import SCHEMAS, CallTracker
from callflow.lab import LabStatus
from callflow.lab.sipp import CallerScript, SippOperator, place_call
from callflow.policies import recording_policy
from callflow.service import Engine
from callflow.store import open_database
from recordings import SCHEMA, Recorder, RecordingIndex, RecordingStatus

pytestmark = pytest.mark.integration


def _unwritable(tmp_path: Path) -> dict[str, Any]:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the recordings root should be")
    return {"root": blocker / "recordings"}


def _full(tmp_path: Path) -> dict[str, Any]:
    return {"root": tmp_path / "recordings", "disk_usage": lambda _p: SimpleNamespace(free=5 * 1024 * 1024)}


async def _wait_log(logs: list[dict[str, Any]], event: str, timeout: float = 20.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            for entry in logs:
                if entry.get("event") == event:
                    return entry
            await asyncio.sleep(0.05)


FAULTS: dict[str, tuple[Callable[[Path], dict[str, Any]], str]] = {
    "unwritable": (_unwritable, "unusable"),
    "full": (_full, "is full"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_unusable_root_flags_the_recording_and_the_call_proceeds(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]], tmp_path: Path,
        fault: str) -> None:
    recorder_options, expected = FAULTS[fault]
    db = tmp_path / "siaga112.db"
    recorder = Recorder(database=db, policy=recording_policy(), **recorder_options(tmp_path))
    tracker = CallTracker(db)
    engine = Engine(lab.ami_endpoint(), [tracker, recorder])
    conn, _ = ami
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(engine.run())
        try:
            await _wait_log(logs, "recording.ready")
            await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op2",
                                           "MemberName": "op2"})
            try:
                async with SippOperator(lab.operators["op2"]["port"]):
                    result = await place_call(lab.sip["host"], lab.sip["port"],
                                              CallerScript(number="081200007777", hold_ms=1500))
            finally:
                await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op2"})
            warning = await _wait_log(logs, "recording.root_unusable")
            await _wait_log(logs, "call.record")
        finally:
            engine.stop()
            await task
    assert result.ok, result.output  # the call was answered and ended as the caller scripted it
    assert warning["log_level"] == "error"
    assert expected in warning["problem"], warning
    assert "NOT RECORDED" in warning["action"]
    store = await open_database(db, [SCHEMA])
    try:
        (rec,) = await RecordingIndex(store).find(linkedid=warning["linkedid"])
    finally:
        await store.close()
    assert rec.status == RecordingStatus.FAILED, fault
    assert expected in rec.problem
    assert not rec.path.exists()
    # ... and the call record itself carries the flag (through the SiagaRecording user event)
    calls = await open_database(db, SCHEMAS)
    try:
        record = await StoredCallRecords(calls).get(warning["linkedid"])
    finally:
        await calls.close()
    assert record is not None
    assert any(n.startswith("recording failed:") and expected in n for n in record.notes), record.notes
