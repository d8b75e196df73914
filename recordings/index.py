"""The recordings index: one row per recording, linked to its call by ``linkedid``, plus an audit trail
(export, hold, purge). Tables are the recordings component's own (``recordings_*``) in the shared store.

Times are stored as ISO-8601 UTC strings with microseconds (they sort as text).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from callflow.store import Database, Row, Schema

SCHEMA = Schema("recordings", (
    """
    CREATE TABLE recordings_files (
        id INTEGER PRIMARY KEY,
        linkedid TEXT NOT NULL,
        uniqueid TEXT NOT NULL,
        call_class TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        format TEXT NOT NULL,
        made_at TEXT NOT NULL,
        ended_at TEXT,
        duration_s REAL,
        size_bytes INTEGER,
        sha256 TEXT,
        retain_until TEXT NOT NULL,
        hold INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        problem TEXT NOT NULL DEFAULT '',
        verified_at TEXT,
        purged_at TEXT
    );
    CREATE INDEX recordings_files_linkedid ON recordings_files (linkedid);
    CREATE INDEX recordings_files_retain ON recordings_files (retain_until);
    CREATE TABLE recordings_audit (
        id INTEGER PRIMARY KEY,
        recording_id INTEGER NOT NULL REFERENCES recordings_files (id),
        at TEXT NOT NULL,
        action TEXT NOT NULL,
        by_whom TEXT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX recordings_audit_recording ON recordings_audit (recording_id);
    """,
))


class RecordingStatus(StrEnum):
    RECORDING = "recording"  # MixMonitor started; not finished or not indexed yet
    OK = "ok"  # finished, hashed, indexed (and, once verified, unchanged)
    FAILED = "failed"  # could not be made (root full/unwritable, MixMonitor refused, no file)
    MISSING = "missing"  # verify found no file
    ALTERED = "altered"  # verify found a different hash
    PURGED = "purged"  # deleted by retention
    DISCARDED = "discarded"  # recorded from arrival, then the class turned out not to be recorded


def iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("naive datetime: every stored instant is UTC-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def parse_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, slots=True)
class Recording:
    id: int
    linkedid: str
    uniqueid: str
    call_class: str
    path: Path
    format: str
    made_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    size_bytes: int | None
    sha256: str | None
    retain_until: datetime
    hold: bool
    status: RecordingStatus
    problem: str
    verified_at: datetime | None
    purged_at: datetime | None

    @classmethod
    def from_row(cls, row: Row) -> Recording:
        (rid, linkedid, uniqueid, call_class, path, fmt, made_at, ended_at, duration, size, sha,
         retain_until, hold, status, problem, verified_at, purged_at) = tuple(row)
        made, retain = datetime.fromisoformat(made_at), datetime.fromisoformat(retain_until)
        return cls(int(rid), linkedid, uniqueid, call_class, Path(path), fmt, made, parse_iso(ended_at),
                   duration, size, sha, retain, bool(hold), RecordingStatus(status), problem,
                   parse_iso(verified_at), parse_iso(purged_at))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "linkedid": self.linkedid, "uniqueid": self.uniqueid,
            "call_class": self.call_class, "path": str(self.path), "format": self.format,
            "made_at": iso(self.made_at), "ended_at": iso(self.ended_at) if self.ended_at else None,
            "duration_s": self.duration_s, "size_bytes": self.size_bytes, "sha256": self.sha256,
            "retain_until": iso(self.retain_until), "hold": self.hold, "status": str(self.status),
            "problem": self.problem,
            "verified_at": iso(self.verified_at) if self.verified_at else None,
            "purged_at": iso(self.purged_at) if self.purged_at else None,
        }


@dataclass(frozen=True, slots=True)
class AuditEntry:
    recording_id: int
    at: datetime
    action: str
    by_whom: str
    reason: str
    detail: str


_COLUMNS = ("id, linkedid, uniqueid, call_class, path, format, made_at, ended_at, duration_s, size_bytes, "
            "sha256, retain_until, hold, status, problem, verified_at, purged_at")


class RecordingIndex:
    """Reads and writes of the recordings tables over one open store connection."""

    def __init__(self, conn: Database) -> None:
        self.conn = conn

    async def add(self, *, linkedid: str, uniqueid: str, call_class: str, path: Path, fmt: str,
                  made_at: datetime, retain_until: datetime, status: RecordingStatus,
                  problem: str = "") -> int:
        rid = await self.conn.insert(
            "INSERT INTO recordings_files (linkedid, uniqueid, call_class, path, format, made_at, "
            "retain_until, status, problem) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (linkedid, uniqueid, call_class, str(path), fmt, iso(made_at), iso(retain_until), str(status),
             problem))
        await self.conn.commit()
        return rid

    async def finish(self, rid: int, *, ended_at: datetime | None, duration_s: float | None,
                     size_bytes: int, sha256: str, call_class: str, retain_until: datetime) -> None:
        await self.conn.execute(
            "UPDATE recordings_files SET ended_at = ?, duration_s = ?, size_bytes = ?, sha256 = ?, "
            "call_class = ?, retain_until = ?, status = ?, problem = '' WHERE id = ?",
            (iso(ended_at) if ended_at else None, duration_s, size_bytes, sha256, call_class,
             iso(retain_until), str(RecordingStatus.OK), rid))
        await self.conn.commit()

    async def set_status(self, rid: int, status: RecordingStatus, problem: str = "", *,
                         verified_at: datetime | None = None, purged_at: datetime | None = None) -> None:
        sets, values = ["status = ?", "problem = ?"], [str(status), problem]
        if verified_at is not None:
            sets.append("verified_at = ?")
            values.append(iso(verified_at))
        if purged_at is not None:
            sets.append("purged_at = ?")
            values.append(iso(purged_at))
        await self.conn.execute(f"UPDATE recordings_files SET {', '.join(sets)} WHERE id = ?",  # noqa: S608 (fixed column names)
                                (*values, rid))
        await self.conn.commit()

    async def set_hold(self, rid: int, hold: bool) -> None:
        await self.conn.execute("UPDATE recordings_files SET hold = ? WHERE id = ?", (int(hold), rid))
        await self.conn.commit()

    async def get(self, rid: int) -> Recording | None:
        async with self.conn.execute(f"SELECT {_COLUMNS} FROM recordings_files WHERE id = ?",  # noqa: S608
                                     (rid,)) as cur:
            row = await cur.fetchone()
        return Recording.from_row(row) if row else None

    async def find(self, *, linkedid: str | None = None, status: RecordingStatus | None = None,
                   limit: int | None = None) -> list[Recording]:
        where, values = [], []
        if linkedid is not None:
            where.append("linkedid = ?")
            values.append(linkedid)
        if status is not None:
            where.append("status = ?")
            values.append(str(status))
        sql = f"SELECT {_COLUMNS} FROM recordings_files"  # noqa: S608 (fixed column names)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY made_at DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        async with self.conn.execute(sql, values) as cur:
            rows = await cur.fetchall()
        return [Recording.from_row(r) for r in rows]

    async def made_before(self, cutoff: datetime) -> list[Recording]:
        """Recordings made at or before ``cutoff`` whose file may still exist (purge's candidates: the
        retention rule itself is the policy's)."""
        statuses = (RecordingStatus.OK, RecordingStatus.ALTERED, RecordingStatus.MISSING)
        async with self.conn.execute(
                f"SELECT {_COLUMNS} FROM recordings_files WHERE made_at <= ? "  # noqa: S608
                f"AND status IN ({', '.join('?' for _ in statuses)}) ORDER BY made_at, id",
                (iso(cutoff), *map(str, statuses))) as cur:
            rows = await cur.fetchall()
        return [Recording.from_row(r) for r in rows]

    async def audit(self, rid: int, *, at: datetime, action: str, by_whom: str, reason: str,
                    detail: str = "") -> None:
        await self.conn.execute(
            "INSERT INTO recordings_audit (recording_id, at, action, by_whom, reason, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)", (rid, iso(at), action, by_whom, reason, detail))
        await self.conn.commit()

    async def audit_trail(self, rid: int) -> list[AuditEntry]:
        async with self.conn.execute(
                "SELECT recording_id, at, action, by_whom, reason, detail FROM recordings_audit "
                "WHERE recording_id = ? ORDER BY at, id", (rid,)) as cur:
            rows = await cur.fetchall()
        return [AuditEntry(r[0], datetime.fromisoformat(r[1]), r[2], r[3], r[4], r[5]) for r in rows]

    async def call_record(self, linkedid: str) -> tuple[str, dict[str, Any]] | None:
        """The call's own record, if the call tracker's table is in this store: the first table whose
        name starts with ``call`` and that has a ``linkedid`` column."""
        for table in await self.conn.tables("call"):
            columns = await self.conn.columns(table)
            if "linkedid" not in columns:
                continue
            async with self.conn.execute(f'SELECT * FROM "{table}" WHERE linkedid = ? LIMIT 1',  # noqa: S608 (table names from the store's catalogue)
                                         (linkedid,)) as cur:
                row = await cur.fetchone()
            if row is not None:
                return table, dict(zip(columns, row, strict=True))
        return None
