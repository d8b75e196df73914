"""verify / purge / export / hold over a real store and real files, with an injected clock."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callflow.store import open_database
from recordings import (
    SCHEMA,
    RecordingError,
    RecordingIndex,
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
                     linkedid: str = "1.1") -> tuple[int, Path]:
    path = root / f"{name}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(name.encode() * 100)
    rid = await index.add(linkedid=linkedid, uniqueid=linkedid, call_class="emergency", path=path, fmt="wav",
                          made_at=T0, retain_until=T0 + timedelta(days=retain_days),
                          status=RecordingStatus.RECORDING)
    await index.finish(rid, ended_at=T0 + timedelta(seconds=30), duration_s=30.0,
                       size_bytes=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                       call_class="emergency", retain_until=T0 + timedelta(days=retain_days))
    return rid, path


async def test_purge_removes_only_past_retention_and_not_held(index: RecordingIndex, tmp_path: Path) -> None:
    old, old_path = await _recording(index, tmp_path, "old", retain_days=10)
    held, held_path = await _recording(index, tmp_path, "held", retain_days=10)
    _young, young_path = await _recording(index, tmp_path, "young", retain_days=100)
    await set_hold(index, held, True, by_whom="legal", reason="case 5", now=T0)
    now = T0 + timedelta(days=50)

    assert await purge(index, T0 + timedelta(days=10) - timedelta(microseconds=1)) == []
    dry = await purge(index, now, dry_run=True)
    assert {(r.recording.id, r.purged) for r in dry} == {(old, False), (held, False)}
    assert old_path.exists()
    site_hold = await purge(index, now, legal_hold=True)
    assert all(not r.purged for r in site_hold)
    assert old_path.exists()

    done = await purge(index, now, by_whom="nightly")
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
    again = await purge(index, now)  # idempotent: only the held one is still past retention
    assert [(r.recording.id, r.purged) for r in again] == [(held, False)]


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
