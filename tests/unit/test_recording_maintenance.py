"""verify / purge / export / hold over a real store and real files, with an injected clock."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import stat
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from callflow.policies import recording_policy
from callflow.siteconfig import Recording, Retention, pbx_config_dir
from callflow.store import open_database
from recordings import (
    SCHEMA,
    RecordingError,
    RecordingIndex,
    RecordingPolicy,
    RecordingStatus,
    export,
    purge,
    set_hold,
    verify,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[RecordingIndex]:
    conn = await open_database(tmp_path / "store.db", [SCHEMA])
    yield RecordingIndex(conn)
    await conn.close()


async def _recording(index: RecordingIndex, root: Path, name: str, *, retain_days: int,
                     linkedid: str = "1.1", made_at: datetime = T0) -> tuple[int, Path]:
    """A finished emergency recording; ``retain_days`` is the deadline stored when it was made."""
    path = root / f"{name}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(name.encode() * 100)
    retain_until = made_at + timedelta(days=retain_days)
    rid = await index.add(linkedid=linkedid, uniqueid=linkedid, call_class="emergency", path=path, fmt="wav",
                          made_at=made_at, retain_until=retain_until, status=RecordingStatus.RECORDING)
    await index.finish(rid, ended_at=made_at + timedelta(seconds=30), duration_s=30.0,
                       size_bytes=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                       call_class="emergency", retain_until=retain_until)
    return rid, path


def site_recording(**keys: Any) -> RecordingPolicy:
    """The policy of a site file whose ``[recording]`` section says ``keys`` (emergency kept 10 days)."""
    keys.setdefault("retention_days", Retention(emergency=10, nonemergency=5))
    return recording_policy(Recording(**keys))


async def test_purge_removes_only_past_retention_and_not_held(index: RecordingIndex, tmp_path: Path) -> None:
    old, old_path = await _recording(index, tmp_path, "old", retain_days=10)
    held, held_path = await _recording(index, tmp_path, "held", retain_days=10)
    _young, young_path = await _recording(index, tmp_path, "young", retain_days=10,
                                          made_at=T0 + timedelta(days=45))
    await set_hold(index, held, True, by_whom="legal", reason="case 5", now=T0)
    now = T0 + timedelta(days=50)
    policy = site_recording()

    assert await purge(index, T0 + timedelta(days=10) - timedelta(microseconds=1), policy) == []
    dry = await purge(index, now, policy, dry_run=True)
    assert {(r.recording.id, r.purged) for r in dry} == {(old, False), (held, False)}
    assert old_path.exists()
    site_hold = await purge(index, now, site_recording(legal_hold=True))
    assert all(not r.purged for r in site_hold)
    assert {r.reason for r in site_hold} == {"site-wide legal hold ([recording] legal_hold)"}
    assert old_path.exists()

    done = await purge(index, now, policy, by_whom="nightly")
    assert {(r.recording.id, r.purged) for r in done} == {(old, True), (held, False)}
    assert not old_path.exists()
    assert held_path.exists()
    assert young_path.exists()
    purged = await index.get(old)
    assert purged is not None
    assert purged.status == RecordingStatus.PURGED
    assert purged.purged_at == now
    (entry,) = await index.audit_trail(old)
    assert (entry.action, entry.by_whom, entry.at) == ("purge", "nightly", now)
    again = await purge(index, now, policy)  # idempotent: only the held one is still past retention
    assert [(r.recording.id, r.purged) for r in again] == [(held, False)]


async def test_purge_follows_the_sites_retention_and_its_held_calls(index: RecordingIndex,
                                                                    tmp_path: Path) -> None:
    """The site's retention in force decides, not the deadline stored when the file was made (it was
    365 days here); a call listed in ``legal_hold_calls`` is kept like a held recording."""
    short, short_path = await _recording(index, tmp_path, "short", retain_days=365, linkedid="17953.1")
    listed, listed_path = await _recording(index, tmp_path, "listed", retain_days=365, linkedid="17953.2")
    now = T0 + timedelta(days=11)
    policy = site_recording(legal_hold_calls=["17953.2"])
    done = await purge(index, now, policy)
    assert {(r.recording.id, r.purged) for r in done} == {(short, True), (listed, False)}
    assert {r.recording.id: r.reason for r in done}[listed] == (
        "call on legal hold ([recording] legal_hold_calls)")
    assert not short_path.exists()
    assert listed_path.exists()
    # a retention made longer since keeps a recording whose stored deadline has passed
    _, longer_path = await _recording(index, tmp_path, "longer", retain_days=1, linkedid="17953.3")
    longer_retention = site_recording(retention_days=Retention(emergency=30))
    assert await purge(index, T0 + timedelta(days=5), longer_retention) == []
    assert longer_path.exists()


async def test_recordings_purge_command_follows_the_site_file(index: RecordingIndex, tmp_path: Path) -> None:
    """``siaga112 recordings purge`` reads retention and legal hold from the site file (here
    SIAGA112_SITE_FILE): emergency kept 10 days, one call on legal hold. Both recordings were made 50
    days ago with the 365 days then in force: the unheld one is deleted, the held one kept."""
    old, old_path = await _recording(index, tmp_path / "rec", "old", retain_days=365, linkedid="17953.1")
    held, held_path = await _recording(index, tmp_path / "rec", "held", retain_days=365, linkedid="17953.2")
    shipped = (pbx_config_dir() / "site.toml").read_text(encoding="utf-8")
    site_text, count = re.subn(r"\[recording\.retention_days\]\nemergency = \d+\nnonemergency = \d+\n",
                               "[recording.retention_days]\nemergency = 10\nnonemergency = 5\n", shipped)
    assert count == 1
    site_text = site_text.replace("legal_hold_calls = []", 'legal_hold_calls = ["17953.2"]')
    assert 'legal_hold_calls = ["17953.2"]' in site_text
    site_file = tmp_path / "site.toml"
    site_file.write_text(site_text, encoding="utf-8")
    (tmp_path / "ivr.toml").write_text((pbx_config_dir() / "ivr.toml").read_text(encoding="utf-8"))
    as_of = (T0 + timedelta(days=50)).isoformat()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow.cli", "recordings", "--database", str(tmp_path / "store.db"), "purge",
        "--as-of", as_of, "--by", "nightly", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SIAGA112_SITE_FILE": str(site_file)})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    stdout = out.decode()
    assert f"retention from site file {site_file}: emergency 10 days" in stdout
    assert f"PURGED  recording {old} (call 17953.1)" in stdout
    assert f"KEPT    recording {held} (call 17953.2): call on legal hold" in stdout
    assert not old_path.exists()
    assert held_path.exists()
    assert [r.status for r in await index.find()] == [RecordingStatus.OK, RecordingStatus.PURGED]


async def test_verify_flags_altered_and_missing_and_never_reindexes(index: RecordingIndex,
                                                                    tmp_path: Path) -> None:
    rid, path = await _recording(index, tmp_path, "a", retain_days=10)
    indexed = (await index.get(rid)).sha256  # type: ignore[union-attr]
    (result,) = await verify(index, T0)
    assert result.ok
    original = path.read_bytes()
    path.write_bytes(original[:-1] + b"X")
    (result,) = await verify(index, T0 + timedelta(hours=1))
    assert result.status == RecordingStatus.ALTERED
    rec = await index.get(rid)
    assert rec is not None
    assert rec.status == RecordingStatus.ALTERED
    assert rec.sha256 == indexed  # the original hash stays
    assert rec.verified_at == T0 + timedelta(hours=1)
    path.unlink()
    (result,) = await verify(index, T0)
    assert result.status == RecordingStatus.MISSING
    path.write_bytes(original)
    (result,) = await verify(index, T0, recording_id=rid)
    assert result.ok
    with pytest.raises(RecordingError, match="no recording with id 99"):
        await verify(index, T0, recording_id=99)


async def test_export_copies_checks_and_records_who_when_why(index: RecordingIndex, tmp_path: Path) -> None:
    rid, path = await _recording(index, tmp_path / "rec", "e", retain_days=10)
    with pytest.raises(RecordingError, match="--by"):
        await export(index, rid, tmp_path / "out", by_whom="", reason="x", now=T0)
    target = await export(index, rid, tmp_path / "out", by_whom="Dewi", reason="police 17", now=T0)
    assert target.read_bytes() == path.read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    (entry,) = await index.audit_trail(rid)
    assert (entry.action, entry.by_whom, entry.reason, entry.at) == ("export", "Dewi", "police 17", T0)
    with pytest.raises(RecordingError, match="already exists"):
        await export(index, rid, tmp_path / "out", by_whom="Dewi", reason="again", now=T0)
    path.write_bytes(b"tampered")
    with pytest.raises(RecordingError, match="altered"):
        await export(index, rid, tmp_path / "out2", by_whom="Dewi", reason="x", now=T0)
    assert not (tmp_path / "out2").exists()


async def test_show_links_to_the_call_record_when_the_calls_table_exists(index: RecordingIndex,
                                                                         tmp_path: Path) -> None:
    rid, _ = await _recording(index, tmp_path, "c", retain_days=10, linkedid="77.1")
    assert await index.call_record("77.1") is None
    await index.conn.execute("CREATE TABLE calls_records (linkedid TEXT PRIMARY KEY, outcome TEXT)")
    await index.conn.execute("INSERT INTO calls_records VALUES ('77.1', 'answered')")
    found = await index.call_record("77.1")
    assert found == ("calls_records", {"linkedid": "77.1", "outcome": "answered"})
    rec = await index.get(rid)
    assert rec is not None
    assert rec.linkedid == "77.1"
