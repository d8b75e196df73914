"""Recordings on the real lab: a pyVoIP operator answers an emergency call and plays a tone while the
SIPp caller sends speech; the engine records it, links it to the call, and the CLI verifies, exports,
holds and purges it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.calls.model import CallClass
from callflow.lab import LabStatus
from callflow.lab.sipp import PRESS_EMERGENCY, SPEECH_PCAP, CallerScript, place_call
from callflow.policies import recording_policy
from callflow.siteconfig import load_site, pbx_config_dir
from callflow.store import open_database
from recordings import SCHEMA, RecordingIndex, RecordingStatus, purge
from recordings.audio import wav_duration, wav_rms
from tests.support.engine import EngineProcess
from tests.support.pyvoip_operator import PyVoipOperator
from tests.support.tones import tone_prominence

pytestmark = pytest.mark.integration

CALLER = "081200008888"


async def cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow.cli", "recordings", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_emergency_call_recorded_linked_verified_exported_and_purged(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]], tmp_path: Path) -> None:
    db = tmp_path / "siaga112.db"
    engine = EngineProcess(lab.instance, env={"SIAGA112_DATABASE": str(db)})
    await engine.start()
    conn, _ = ami
    try:
        await engine.wait_for(lambda r: r.get("event") == "recording.ready")
        with PyVoipOperator(lab, "op5") as operator:
            await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op5",
                                           "MemberName": "op5"})
            try:
                result = await place_call(lab.sip["host"], lab.sip["port"],
                                          CallerScript(dtmf=PRESS_EMERGENCY,
                                                       # hold covers the IVR, the queue and > 3 s of talk
                                                       number=CALLER, hold_ms=6000, audio_pcap=SPEECH_PCAP))
            finally:
                await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op5"})
            assert result.ok, result.output
            assert await asyncio.to_thread(operator.ended.wait, 15), "pyVoIP operator never saw the end"
            assert operator.answered.is_set()
            assert operator.error is None, operator.error
        connect = await engine.wait_for(lambda r: r.get("ami_event") == "AgentConnect"
                                        and r.get("member_name") == "op5")
        linkedid = connect["linkedid"]
        hangup = await engine.wait_for(lambda r: r.get("ami_event") == "Hangup"
                                       and r.get("uniqueid") == linkedid)
        indexed = await engine.wait_for(lambda r: r.get("event") == "recording.indexed"
                                        and r.get("linkedid") == linkedid, timeout=20)
    finally:
        await engine.stop()

    # The file: under the lab's recordings root, named from ids only, mode 0640, real audio.
    path = Path(indexed["path"])
    assert path.is_file()
    assert path.is_relative_to(Path(lab.recordings_dir))
    assert CALLER not in str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    talk_s = (datetime.fromisoformat(hangup["ts"]) - datetime.fromisoformat(connect["ts"])).total_seconds()
    assert talk_s > 3.0
    assert abs(wav_duration(path) - talk_s) <= 0.5, (wav_duration(path), talk_s)
    print(f"recording {wav_duration(path):.3f} s, talk {talk_s:.3f} s, rms {wav_rms(path):.1f}, "
          f"1 kHz prominence {tone_prominence(path, 1000.0):.1f}")
    assert wav_rms(path) > 300, f"recording is (near) silence: rms {wav_rms(path):.1f}"
    assert tone_prominence(path, 1000.0) > 20, "the operator's 1 kHz tone is not in the recording"

    # The index: linked to the call, hash of the file as Asterisk closed it.
    conn_db = await open_database(db, [SCHEMA])
    try:
        index = RecordingIndex(conn_db)
        (rec,) = await index.find(linkedid=linkedid)
        assert rec.status == RecordingStatus.OK
        assert rec.call_class == "emergency"
        assert rec.path == path
        assert rec.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert rec.duration_s is not None
        assert abs(rec.duration_s - talk_s) <= 0.5
        # retention as the site file (pbx-config/site.toml, what the lab's engine reads) sets it
        site_policy = recording_policy(load_site(pbx_config_dir() / "site.toml").site.recording)
        retention = timedelta(days=site_policy.retention_days[CallClass.EMERGENCY])
        assert rec.retain_until - rec.made_at == retention
    finally:
        await conn_db.close()

    code, out = await cli("--database", str(db), "show", str(rec.id), "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["recording"]["linkedid"] == linkedid

    # Export: a verified copy, with who/when/why in the audit trail.
    code, out = await cli("--database", str(db), "export", str(rec.id), "--to", str(tmp_path / "out"),
                          "--by", "supervisor Dewi", "--reason", "police request 17/XI")
    assert code == 0, out
    (copy,) = (tmp_path / "out").iterdir()
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == rec.sha256
    assert stat.S_IMODE(copy.stat().st_mode) == 0o640

    # Verify: intact, then tampered (ALTERED), restored, then missing (MISSING). Never re-indexed.
    original = path.read_bytes()
    assert (await cli("--database", str(db), "verify"))[0] == 0
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0xFF
    path.write_bytes(bytes(tampered))
    code, out = await cli("--database", str(db), "verify")
    assert code == 1
    assert f"ALTERED  recording {rec.id}" in out, out
    path.write_bytes(original)
    assert (await cli("--database", str(db), "verify"))[0] == 0
    aside = path.with_suffix(".aside")
    path.rename(aside)
    code, out = await cli("--database", str(db), "verify")
    assert code == 1
    assert f"MISSING  recording {rec.id}" in out, out
    aside.rename(path)
    assert (await cli("--database", str(db), "verify"))[0] == 0

    # Purge with an injected clock: held -> kept; before the deadline -> kept; after -> gone.
    code, out = await cli("--database", str(db), "hold", str(rec.id), "--by", "legal", "--reason", "case")
    assert code == 0, out
    conn_db = await open_database(db, [SCHEMA])
    try:
        index = RecordingIndex(conn_db)
        after = rec.retain_until + timedelta(seconds=1)
        kept = await purge(index, after, site_policy)
        assert [(r.recording.id, r.purged) for r in kept] == [(rec.id, False)]
        assert path.exists()
        code, out = await cli("--database", str(db), "hold", str(rec.id), "--clear", "--by", "legal",
                              "--reason", "case closed")
        assert code == 0, out
        assert await purge(index, rec.retain_until - timedelta(seconds=1), site_policy) == []
        assert path.exists()
        (gone,) = await purge(index, after, site_policy)
        assert gone.purged
        assert not path.exists()
        purged = await index.get(rec.id)
        assert purged is not None
        assert purged.status == RecordingStatus.PURGED
        actions = [a.action for a in await index.audit_trail(rec.id)]
        assert actions == ["export", "hold", "hold-clear", "purge"]
    finally:
        await conn_db.close()
