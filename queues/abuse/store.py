"""The repeat-abuse flags in the engine's shared SQLite database: one row per flag, never deleted (the rows
are the audit: who set it, why, when, until when, who lifted it)."""

from __future__ import annotations

from datetime import UTC, datetime

from callflow.store import Database, Row, Schema
from queues.abuse.rules import AbuseFlag, flag_in_force

ABUSE_SCHEMA = Schema("abuse", (
    """
    CREATE TABLE abuse_flags (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        number TEXT NOT NULL,
        reason TEXT NOT NULL,
        flagged_by TEXT NOT NULL,
        flagged_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        lifted_by TEXT NOT NULL DEFAULT '',
        lifted_at TEXT,
        lift_note TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX abuse_flags_number ON abuse_flags(number, expires_at);
    """,
))

_COLUMNS = "id, number, reason, flagged_by, flagged_at, expires_at, lifted_by, lifted_at, lift_note"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _flag(row: Row) -> AbuseFlag:
    r = tuple(row)
    return AbuseFlag(id=int(str(r[0])), number=str(r[1]), reason=str(r[2]), flagged_by=str(r[3]),
                     flagged_at=datetime.fromisoformat(str(r[4])),
                     expires_at=datetime.fromisoformat(str(r[5])),
                     lifted_by=str(r[6]), lifted_at=datetime.fromisoformat(str(r[7])) if r[7] else None,
                     lift_note=str(r[8]))


async def add_flag(conn: Database, *, number: str, reason: str, by: str, at: datetime,
                   expires_at: datetime) -> AbuseFlag:
    flag_id = await conn.insert(
        "INSERT INTO abuse_flags (number, reason, flagged_by, flagged_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        (number, reason, by, _iso(at), _iso(expires_at)))
    await conn.commit()
    flags = [f for f in await flags_of(conn, number) if f.id == flag_id]
    return flags[0]


async def lift_flags(conn: Database, number: str, *, by: str, at: datetime, note: str
                     ) -> list[AbuseFlag]:
    """Lift every flag on ``number`` in force at ``at``; the lifted flags (none: nothing was in force)."""
    live = [f for f in await flags_of(conn, number) if f.in_force(at)]
    for f in live:
        await conn.execute("UPDATE abuse_flags SET lifted_by = ?, lifted_at = ?, lift_note = ? WHERE id = ?",
                           (by, _iso(at), note, f.id))
    await conn.commit()
    ids = {f.id for f in live}
    return [f for f in await flags_of(conn, number) if f.id in ids]


async def flags_of(conn: Database, number: str) -> list[AbuseFlag]:
    async with conn.execute(f"SELECT {_COLUMNS} FROM abuse_flags WHERE number = ? ORDER BY id",  # noqa: S608
                            (number,)) as cur:
        return [_flag(r) for r in await cur.fetchall()]


async def all_flags(conn: Database) -> list[AbuseFlag]:
    async with conn.execute(f"SELECT {_COLUMNS} FROM abuse_flags ORDER BY id") as cur:  # noqa: S608
        return [_flag(r) for r in await cur.fetchall()]


async def flag_at(conn: Database, number: str, at: datetime) -> AbuseFlag | None:
    """The flag on ``number`` in force at ``at``, or None."""
    return flag_in_force(await flags_of(conn, number), at)
