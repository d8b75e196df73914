"""The recorder's decisions, event by event: which recording the dial plan announced counts, what is
indexed, stopped, discarded or flagged. The AMI peer here only answers actions (the test writes the file
Asterisk's MixMonitor would);
the real Asterisk path is covered by tests/integration/test_recordings.py."""

from __future__ import annotations

import asyncio
import stat
import struct
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from callflow.ami import AmiCodec, AmiMessage, LinkEvent, parse_event
from callflow.lease import LEASE_S
from callflow.policies import recording_policy
from callflow.siteconfig import Recording
from callflow.store import OperationalError, open_database
from recordings import SCHEMA, Recorder, RecordFrom, RecordingIndex, RecordingPolicy, RecordingStatus
from recordings.naming import relative_path

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
TS = "1795334400.250000"  # 2026-11-22 08:00:00.25 UTC


LEASE_ACTIONS = {"Getvar", "Setvar"}  # the recorder's globals and lease (test_the_dial_plan_is_told_...)


class AsteriskStandIn:
    """Answers the recorder's actions (Asterisk's clock for the lease: Getvar EPOCH)."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, dict[str, str]]] = []
        self.lease: list[tuple[str, dict[str, str]]] = []

    async def action(self, name: str, headers: dict[str, str] | None = None, **_: Any) -> AmiMessage:
        (self.lease if name in LEASE_ACTIONS else self.actions).append((name, dict(headers or {})))
        if name == "Getvar":
            return AmiMessage((("Response", "Success"), ("Value", "1795334400")))
        return AmiMessage((("Response", "Success"),))

    async def list_action(self, name: str, headers: dict[str, str] | None = None, **_: Any
                          ) -> tuple[AmiMessage, list[Any]]:
        self.actions.append((name, dict(headers or {})))
        return AmiMessage((("Response", "Success"),)), []  # no channel up any more


def write_wav(path: Path) -> None:
    """A closed 1 s WAV where Asterisk's MixMonitor would have written it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(struct.pack("<8000h", *([1000, -1000] * 4000)))


def dial_plan_file(linkedid: str = "1795334400.7") -> str:
    """The name pbx-config/extensions.conf [siaga-record] gives (Asterisk's ids and clock)."""
    return str(relative_path(linkedid, linkedid, datetime(2026, 11, 22, 8, 0, 0, 120000, tzinfo=UTC), "wav"))


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


async def started(tmp_path: Path, policy: RecordingPolicy, **options: Any
                  ) -> AsyncIterator[tuple[Recorder, AsteriskStandIn]]:
    session = AsteriskStandIn()
    recorder = Recorder(database=tmp_path / "db.sqlite", root=tmp_path / "rec", policy=policy,
                        settle_timeout=2.0, **options)
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
        await recorder.handle(ev("Newchannel", **caller()))
        await recorder.handle(ev("UserEvent", UserEvent="SiagaQueueEntry", Class="emergency", **caller()))
        # the dial plan arms MixMonitor (b: audio once bridged) and says which file
        await recorder.handle(ev("UserEvent", UserEvent="SiagaRecording", Status="armed", Trigger="answer",
                                 File=dial_plan_file(), **caller()))
        await recorder.handle(ev("AgentConnect", Queue="emergency", MemberName="op1", **caller()))
        write_wav(recorder.root / dial_plan_file())
        await recorder.handle(ev("Hangup", **caller()))
        await asyncio.wait_for(recorder.wait_idle(), 10)
        assert session.actions == []  # no MixMonitor action: the dial plan records (no `system` class)
        (rec,) = await rows(recorder)
        assert rec.status == RecordingStatus.OK
        assert rec.duration_s == 1.0
        assert rec.path == recorder.root / dial_plan_file()
        assert stat.S_IMODE(rec.path.stat().st_mode) == 0o640
        day, month, year = rec.path.parents[0], rec.path.parents[1], rec.path.parents[2]
        assert (year.parent, year.name, month.name, day.name) == (recorder.root, "2026", "11", "22")
        # README: folders 0750 (the recorder tightens what it finds, Asterisk's mkdir included)
        assert [stat.S_IMODE(d.stat().st_mode) for d in (year, month, day)] == [0o750] * 3
        assert rec.made_at == datetime(2026, 11, 22, 8, 0, 0, 250000, tzinfo=UTC)  # the answer


async def test_arrival_recording_of_a_call_that_turns_nonemergency_is_discarded(tmp_path: Path) -> None:
    async for recorder, session in started(tmp_path, FROM_ARRIVAL):
        await recorder.handle(ev("Newchannel", **caller()))
        await recorder.handle(ev("UserEvent", UserEvent="SiagaRecording", Status="started", Trigger="arrival",
                                 File=dial_plan_file(), **caller()))
        write_wav(recorder.root / dial_plan_file())
        await recorder.handle(ev("UserEvent", UserEvent="SiagaQueueEntry", Class="nonemergency", **caller()))
        await recorder.handle(ev("AgentConnect", Queue="nonemergency", MemberName="op1", **caller()))
        await recorder.handle(ev("Hangup", **caller()))
        await asyncio.wait_for(recorder.wait_idle(), 10)
        assert [name for name, _ in session.actions] == ["StopMixMonitor"]
        (rec,) = await rows(recorder)
        assert rec.status == RecordingStatus.DISCARDED
        assert not rec.path.exists()


async def test_an_answered_call_the_dial_plan_did_not_record_is_flagged(tmp_path: Path) -> None:
    async for recorder, session in started(tmp_path, recording_policy()):
        await recorder.handle(ev("AgentConnect", Queue="emergency", MemberName="op1", **caller()))
        await recorder.handle(ev("Hangup", **caller()))
        await asyncio.wait_for(recorder.wait_idle(), 10)
        (rec,) = await rows(recorder)
        assert rec.status == RecordingStatus.FAILED
        assert "dial plan started no recording" in rec.problem
        ((name, headers),) = session.actions  # the call record is marked too
        assert (name, headers["UserEvent"], headers["Status"]) == ("UserEvent", "SiagaRecording", "failed")


async def test_a_full_root_stops_the_armed_recording_before_the_answer(tmp_path: Path) -> None:
    full = {"disk_usage": lambda _p: SimpleNamespace(free=5 * 1024 * 1024)}
    async for recorder, session in started(tmp_path, recording_policy(), **full):
        await recorder.handle(ev("UserEvent", UserEvent="SiagaRecording", Status="armed", Trigger="answer",
                                 File=dial_plan_file(), **caller()))
        await asyncio.wait_for(recorder.wait_idle(), 10)
        assert [name for name, _ in session.actions] == ["StopMixMonitor"]
        await recorder.handle(ev("AgentConnect", Queue="emergency", MemberName="op1", **caller()))
        await recorder.handle(ev("Hangup", **caller()))
        await asyncio.wait_for(recorder.wait_idle(), 10)
        (rec,) = await rows(recorder)
        assert rec.status == RecordingStatus.FAILED
        assert "is full" in rec.problem


@pytest.mark.parametrize("announced", [
    "../../../etc/passwd",
    "2026/11/22/1795334400_9-1795334400_9-080000120000.wav",  # another channel's name
    "2026/11/22/1795334400_7-1795334400_7-080000120000.wav,b",
])
async def test_a_file_name_not_the_channels_is_refused_and_stopped(tmp_path: Path, announced: str) -> None:
    async for recorder, session in started(tmp_path, recording_policy()):
        with capture_logs() as logs:
            await recorder.handle(ev("UserEvent", UserEvent="SiagaRecording", Status="armed",
                                     Trigger="answer", File=announced, **caller()))
            await asyncio.wait_for(recorder.wait_idle(), 10)
        assert [name for name, _ in session.actions] == ["StopMixMonitor"]
        [refused] = [e for e in logs if e["event"] == "recording.bad_path"]
        assert refused["log_level"] == "error"
        assert await rows(recorder) == []


async def test_hostile_ids_stay_inside_the_root(tmp_path: Path) -> None:
    async for recorder, _ in started(tmp_path, recording_policy()):
        bad = caller(linkedid="../../../etc/passwd")
        await recorder.handle(ev("UserEvent", UserEvent="SiagaRecording", Status="armed", Trigger="answer",
                                 File=dial_plan_file("../../../etc/passwd"), **bad))
        await recorder.handle(ev("AgentConnect", Queue="emergency", MemberName="op1", **bad))
        await recorder.handle(ev("Hangup", **bad))
        await asyncio.wait_for(recorder.wait_idle(), 10)
        (rec,) = await rows(recorder)
        assert rec.path.resolve().is_relative_to((tmp_path / "rec").resolve())


async def test_hangup_lost_in_an_ami_gap_is_reconciled_on_reconnect(tmp_path: Path) -> None:
    async for recorder, session in started(tmp_path, recording_policy()):
        await recorder.handle(ev("UserEvent", UserEvent="SiagaRecording", Status="armed", Trigger="answer",
                                 File=dial_plan_file(), **caller()))
        await recorder.handle(ev("AgentConnect", Queue="emergency", MemberName="op1", **caller()))
        write_wav(recorder.root / dial_plan_file())
        await asyncio.wait_for(recorder.wait_idle(), 10)
        back = datetime(2026, 11, 22, 8, 0, 30, tzinfo=UTC)
        await recorder.handle(LinkEvent("down", NOW, reason="peer closed"))
        await recorder.handle(LinkEvent("up", back, gap_started=NOW, reconnect=True))
        await asyncio.wait_for(recorder.wait_idle(), 10)
        assert [name for name, _ in session.actions] == ["CoreShowChannels"]
        (rec,) = await rows(recorder)
        assert rec.status == RecordingStatus.OK
        assert rec.ended_at == back


async def test_the_dial_plan_is_told_the_policy_and_holds_a_lease(tmp_path: Path) -> None:
    async for recorder, session in started(tmp_path, FROM_ARRIVAL):
        async with asyncio.timeout(5):
            while not any(h.get("Variable") == "SIAGA_REC_LEASE" for _, h in session.lease):  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # the recorder renews from its own task
        values = {h["Variable"]: h["Value"] for name, h in session.lease if name == "Setvar"}
        assert values == {"SIAGA_REC_ROOT": str(tmp_path / "rec"), "SIAGA_REC_FORMAT": "wav",
                          "SIAGA_REC_ARRIVAL": "1", "SIAGA_REC_NONEMERGENCY": "0",
                          "SIAGA_REC_LEASE": str(1795334400 + LEASE_S)}  # Asterisk's clock + the lease
        # a dial plan reload resets the globals (clearglobalvars): all of them are sent again at once
        sent = len(session.lease)
        await recorder.handle(ev("Reload", Module="pbx_config.so", Status="0"))
        async with asyncio.timeout(1):  # well before the next renewal (RENEW_S)
            while not any(h.get("Variable") == "SIAGA_REC_ROOT" for _, h in session.lease[sent:]):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        # the site file changed (serve follows it): the dial plan gets the new policy at once
        sent = len(session.lease)
        recorder.policy = recording_policy(Recording(nonemergency=True))
        wanted = ("Setvar", {"Variable": "SIAGA_REC_NONEMERGENCY", "Value": "1"})
        async with asyncio.timeout(1):
            while wanted not in session.lease[sent:]:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert ("Setvar", {"Variable": "SIAGA_REC_ARRIVAL", "Value": "0"}) in session.lease[sent:]
        await recorder.before_stop()  # stopping: no new recordings from now on
        assert session.lease[-1] == ("Setvar", {"Variable": "SIAGA_REC_LEASE", "Value": "0"})


class UnreachableFor:
    """The recorder's real store connection, whose next ``failures`` writes fail as an unreachable
    PostgreSQL's do (bench/failover.py postgresql-stop: recording.job_failed, recordings left unindexed)."""

    def __init__(self, real: Any, failures: int) -> None:
        self.real = real
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if name not in {"insert", "execute"}:
            return attr

        def failing(*args: Any, **kw: Any) -> Any:
            if self.failures > 0:
                self.failures -= 1
                raise OperationalError("the connection to the server was lost")
            return attr(*args, **kw)
        return failing


async def test_a_recording_is_indexed_once_the_store_is_back(tmp_path: Path) -> None:
    async for recorder, _session in started(tmp_path, recording_policy()):
        await asyncio.wait_for(recorder._ready.wait(), 10)
        assert recorder.index is not None
        recorder.index.conn = UnreachableFor(recorder.index.conn, failures=2)
        await recorder.handle(ev("Newchannel", **caller()))
        await recorder.handle(ev("UserEvent", UserEvent="SiagaQueueEntry", Class="emergency", **caller()))
        await recorder.handle(ev("UserEvent", UserEvent="SiagaRecording", Status="armed", Trigger="answer",
                                 File=dial_plan_file(), **caller()))
        await recorder.handle(ev("AgentConnect", Queue="emergency", MemberName="op1", **caller()))
        write_wav(recorder.root / dial_plan_file())
        await recorder.handle(ev("Hangup", **caller()))
        await asyncio.wait_for(recorder.wait_idle(), 10)
        (rec,) = await rows(recorder)
        assert rec.status == RecordingStatus.OK
        assert rec.duration_s == 1.0
