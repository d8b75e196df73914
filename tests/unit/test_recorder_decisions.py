"""The recorder's decisions, event by event: when MixMonitor starts and stops, what is indexed,
discarded or flagged. The AMI peer here only answers actions (and writes the file Asterisk would);
the real Asterisk path is covered by tests/integration/test_recordings.py."""

from __future__ import annotations

import asyncio
import stat
import struct
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from callflow.ami import ActionFailed, AmiCodec, AmiMessage, LinkEvent, parse_event
from callflow.policies import recording_policy
from callflow.siteconfig import Recording
from callflow.store import open_database
from recordings import SCHEMA, Recorder, RecordFrom, RecordingIndex, RecordingPolicy, RecordingStatus

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
TS = "1795334400.250000"  # 2026-11-22 08:00:00.25 UTC


class AsteriskStandIn:
    """Answers MixMonitor/StopMixMonitor; on MixMonitor writes a closed 1 s WAV where Asterisk would."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.actions: list[tuple[str, dict[str, str]]] = []
        self.refuse = refuse

    async def action(self, name: str, headers: dict[str, str] | None = None, **_: Any) -> AmiMessage:
        self.actions.append((name, dict(headers or {})))
        if self.refuse:
            raise ActionFailed(name, "Could not start monitoring channel")
        if name == "MixMonitor":
            path = Path(headers["File"])  # type: ignore[index]
            with wave.open(str(path), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(8000)
                wav.writeframes(struct.pack("<8000h", *([1000, -1000] * 4000)))
        return AmiMessage((("Response", "Success"),))

    async def list_action(self, name: str, headers: dict[str, str] | None = None, **_: Any
                          ) -> tuple[AmiMessage, list[Any]]:
        self.actions.append((name, dict(headers or {})))
        return AmiMessage((("Response", "Success"),)), []  # no channel up any more


class FakeEngine:
    def __init__(self, session: AsteriskStandIn) -> None:
        self.session = session


def ev(name: str, **headers: str) -> Any:
    lines = [f"Event: {name}", f"Timestamp: {TS}"] + [f"{k}: {v}" for k, v in headers.items()]
    codec = AmiCodec()
    (msg,) = codec.feed(b"Asterisk Call Manager/11.0.0\r\n" + "\r\n".join(lines).encode() + b"\r\n\r\n")
    return parse_event(msg, NOW)


def caller(linkedid: str = "1795334400.7", **extra: str) -> dict[str, str]:
    return {"Channel": "PJSIP/citizen-00000001", "Uniqueid": linkedid, "Linkedid": linkedid,
            "Context": "from-citizens", **extra}


FROM_ARRIVAL = recording_policy(Recording(emergency_from=RecordFrom.ARRIVAL))


async def started(tmp_path: Path, policy: RecordingPolicy, *, refuse: bool = False
                  ) -> AsyncIterator[tuple[Recorder, AsteriskStandIn]]:
    session = AsteriskStandIn(refuse=refuse)
    recorder = Recorder(database=tmp_path / "db.sqlite", root=tmp_path / "rec", policy=policy,
                        settle_timeout=2.0)
    task = asyncio.create_task(recorder.run(FakeEngine(session)))  # type: ignore[arg-type]
    try:
        yield recorder, session
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def rows(recorder: Recorder) -> list[Any]:
    conn = await open_database(recorder.database, [SCHEMA])
    try:
        return await RecordingIndex(conn).find()
    finally:
        await conn.close()


async def test_answered_emergency_is_recorded_and_indexed(tmp_path: Path) -> None:
    async for recorder, session in started(tmp_path, recording_policy()):
        await recorder.handle(ev("UserEvent", UserEvent="SiagaQueueEntry", Class="emergency", **caller()))
        await recorder.handle(ev("Newchannel", **caller()))
        assert session.actions == []  # default policy: from the answer
        await recorder.handle(ev("AgentConnect", Queue="emergency", MemberName="op1", **caller()))
        await recorder.handle(ev("Hangup", **caller()))
        await asyncio.wait_for(recorder.wait_idle(), 10)
        ((name, headers),) = session.actions
        assert name == "MixMonitor"
        assert headers["Channel"] == "PJSIP/citizen-00000001"
        (rec,) = await rows(recorder)
        assert rec.status == RecordingStatus.OK
        assert rec.duration_s == 1.0
        assert str(rec.path) == headers["File"]
        assert stat.S_IMODE(rec.path.stat().st_mode) == 0o640
        day, month, year = rec.path.parents[0], rec.path.parents[1], rec.path.parents[2]
        assert (year.parent, year.name, month.name, day.name) == (recorder.root, "2026", "11", "22")
        # README: folders 0750; the parents made by mkdir(parents=True) were 0755 (issue 17)
        assert [stat.S_IMODE(d.stat().st_mode) for d in (year, month, day)] == [0o750] * 3
        assert rec.made_at == datetime(2026, 11, 22, 8, 0, 0, 250000, tzinfo=UTC)


async def test_arrival_recording_of_a_call_that_turns_nonemergency_is_discarded(tmp_path: Path) -> None:
    async for recorder, session in started(tmp_path, FROM_ARRIVAL):
        await recorder.handle(ev("Newchannel", **caller()))
        await recorder.handle(ev("UserEvent", UserEvent="SiagaQueueEntry", Class="nonemergency", **caller()))
        await recorder.handle(ev("AgentConnect", Queue="nonemergency", MemberName="op1", **caller()))
        await recorder.handle(ev("Hangup", **caller()))
        await asyncio.wait_for(recorder.wait_idle(), 10)
        assert [name for name, _ in session.actions] == ["MixMonitor", "StopMixMonitor"]
        (rec,) = await rows(recorder)
        assert rec.status == RecordingStatus.DISCARDED
        assert not rec.path.exists()


async def test_refused_mixmonitor_flags_the_call(tmp_path: Path) -> None:
    async for recorder, _ in started(tmp_path, recording_policy(), refuse=True):
        await recorder.handle(ev("AgentConnect", Queue="emergency", MemberName="op1", **caller()))
        await recorder.handle(ev("Hangup", **caller()))
        await asyncio.wait_for(recorder.wait_idle(), 10)
        (rec,) = await rows(recorder)
        assert rec.status == RecordingStatus.FAILED
        assert "MixMonitor refused" in rec.problem


async def test_hostile_ids_stay_inside_the_root(tmp_path: Path) -> None:
    async for recorder, session in started(tmp_path, recording_policy()):
        bad = caller(linkedid="../../../etc/passwd")
        await recorder.handle(ev("AgentConnect", Queue="emergency", MemberName="op1", **bad))
        await recorder.handle(ev("Hangup", **bad))
        await asyncio.wait_for(recorder.wait_idle(), 10)
        ((_, headers),) = session.actions
        assert Path(headers["File"]).resolve().is_relative_to((tmp_path / "rec").resolve())


async def test_hangup_lost_in_an_ami_gap_is_reconciled_on_reconnect(tmp_path: Path) -> None:
    async for recorder, session in started(tmp_path, recording_policy()):
        await recorder.handle(ev("AgentConnect", Queue="emergency", MemberName="op1", **caller()))
        await asyncio.wait_for(recorder.wait_idle(), 10)
        back = datetime(2026, 11, 22, 8, 0, 30, tzinfo=UTC)
        await recorder.handle(LinkEvent("down", NOW, reason="peer closed"))
        await recorder.handle(LinkEvent("up", back, gap_started=NOW, reconnect=True))
        await asyncio.wait_for(recorder.wait_idle(), 10)
        assert [name for name, _ in session.actions] == ["MixMonitor", "CoreShowChannels"]
        (rec,) = await rows(recorder)
        assert rec.status == RecordingStatus.OK
        assert rec.ended_at == back
