"""What people do with recordings after the call: verify, purge by retention, export, legal hold.

Every function takes ``now`` (the injectable clock). Nothing here re-indexes a file: a recording's
hash is written once, when Asterisk closed it; ``verify`` only compares and flags.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from callflow.calls.model import CallClass
from recordings.audio import sha256_of
from recordings.index import Recording, RecordingIndex, RecordingStatus, iso
from recordings.policy import RecordingPolicy
from recordings.recorder import FILE_MODE

VERIFIABLE = (RecordingStatus.OK, RecordingStatus.MISSING, RecordingStatus.ALTERED)


class RecordingError(Exception):
    """A recordings operation cannot be done; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class VerifyResult:
    recording: Recording
    status: RecordingStatus
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == RecordingStatus.OK


async def verify(index: RecordingIndex, now: datetime, *, recording_id: int | None = None
                 ) -> list[VerifyResult]:
    """Recompute each recording's hash: missing and altered files are flagged (status), never
    re-indexed; a file that is back with its original hash is ``ok`` again."""
    if recording_id is not None:
        one = await index.get(recording_id)
        if one is None:
            raise RecordingError(f"no recording with id {recording_id}: see `siaga112 recordings list`")
        candidates = [one] if one.status in VERIFIABLE else []
    else:
        candidates = [r for status in VERIFIABLE for r in await index.find(status=status)]
    results = []
    for rec in sorted(candidates, key=lambda r: r.id):
        if not await asyncio.to_thread(rec.path.is_file):
            status, detail = RecordingStatus.MISSING, f"file {rec.path} does not exist"
        else:
            actual = await asyncio.to_thread(sha256_of, rec.path)
            if actual == rec.sha256:
                status, detail = RecordingStatus.OK, "hash matches"
            else:
                status, detail = RecordingStatus.ALTERED, f"sha256 is {actual}, indexed {rec.sha256}"
        await index.set_status(rec.id, status, "" if status == RecordingStatus.OK else detail,
                               verified_at=now)
        results.append(VerifyResult(rec, status, detail))
    return results


@dataclass(frozen=True, slots=True)
class PurgeResult:
    recording: Recording
    purged: bool
    reason: str


async def purge(index: RecordingIndex, now: datetime, policy: RecordingPolicy, *, dry_run: bool = False,
                by_whom: str = "retention") -> list[PurgeResult]:
    """Delete the recordings whose retention under ``policy`` (the site's, in force now) has ended: made
    at least ``retention_days`` of their call class ago. A recording on legal hold (its own hold flag,
    its call listed in the policy, or a site-wide hold) is never deleted; it is listed with the reason it
    was kept. The deadline stored with each recording is the one in force when it was made; a retention
    changed since applies to recordings already made."""
    results = []
    for rec in await index.made_before(now - policy.shortest_retention):
        deadline = policy.deadline(rec.made_at, _call_class(rec.call_class))
        if deadline > now:
            continue
        ended = f"retention ended {iso(deadline)}"
        held = policy.hold_reason(rec.linkedid) or ("recording on legal hold" if rec.hold else None)
        if held is not None:
            results.append(PurgeResult(rec, False, held))
            continue
        if dry_run:
            results.append(PurgeResult(rec, False, f"would purge: {ended}"))
            continue
        await asyncio.to_thread(rec.path.unlink, missing_ok=True)
        await index.set_status(rec.id, RecordingStatus.PURGED, "", purged_at=now)
        await index.audit(rec.id, at=now, action="purge", by_whom=by_whom, reason=ended, detail=str(rec.path))
        results.append(PurgeResult(rec, True, ended))
    return results


def _call_class(stored: str) -> CallClass:
    """The class stored with a recording; a value this version does not know is kept as long as an
    emergency (unknown calls are treated as emergencies)."""
    try:
        return CallClass(stored)
    except ValueError:
        return CallClass.UNKNOWN


async def export(index: RecordingIndex, recording_id: int, to_dir: Path, *, by_whom: str, reason: str,
                 now: datetime) -> Path:
    """Copy a recording out (mode 0640) after checking it is unaltered; record who, when and why."""
    if not by_whom.strip() or not reason.strip():
        raise RecordingError("an export needs --by (who) and --reason (why): both are recorded")
    rec = await index.get(recording_id)
    if rec is None:
        raise RecordingError(f"no recording with id {recording_id}: see `siaga112 recordings list`")
    if rec.status not in (RecordingStatus.OK,):
        raise RecordingError(f"recording {recording_id} is {rec.status}"
                             f"{': ' + rec.problem if rec.problem else ''}; only an intact recording is "
                             "exported (run `siaga112 recordings verify`)")
    if not rec.path.is_file():
        raise RecordingError(f"recording {recording_id}: file {rec.path} is missing; run "
                             "`siaga112 recordings verify` to flag it")
    actual = await asyncio.to_thread(sha256_of, rec.path)
    if actual != rec.sha256:
        raise RecordingError(f"recording {recording_id} has been altered (sha256 {actual}, indexed "
                             f"{rec.sha256}); not exported. Run `siaga112 recordings verify`.")
    await asyncio.to_thread(to_dir.mkdir, parents=True, exist_ok=True)
    target = to_dir / f"recording-{rec.id}-{rec.path.name}"
    if await asyncio.to_thread(target.exists):
        raise RecordingError(f"{target} already exists; choose another --to directory or remove it")
    await asyncio.to_thread(shutil.copyfile, rec.path, target)
    await asyncio.to_thread(os.chmod, target, FILE_MODE)
    copied = await asyncio.to_thread(sha256_of, target)
    if copied != rec.sha256:
        await asyncio.to_thread(target.unlink, missing_ok=True)
        raise RecordingError(f"the copy at {target} does not match the recording's hash; removed. "
                             "Check the target disk and try again.")
    await index.audit(rec.id, at=now, action="export", by_whom=by_whom, reason=reason,
                      detail=f"{target} sha256={copied}")
    return target


async def set_hold(index: RecordingIndex, recording_id: int, hold: bool, *, by_whom: str, reason: str,
                   now: datetime) -> Recording:
    rec = await index.get(recording_id)
    if rec is None:
        raise RecordingError(f"no recording with id {recording_id}: see `siaga112 recordings list`")
    await index.set_hold(recording_id, hold)
    await index.audit(recording_id, at=now, action="hold" if hold else "hold-clear", by_whom=by_whom,
                      reason=reason)
    updated = await index.get(recording_id)
    if updated is None:  # deleted between the two reads: nothing in siaga112 deletes rows
        raise RecordingError(f"recording {recording_id} disappeared while setting its hold")
    return updated
