"""The thresholds' table in the shared store: every alert raised, its acknowledgement and its end."""

from __future__ import annotations

from callflow.console.schema import iso, parse_iso
from callflow.console.thresholds.rules import Alert, ThresholdKind
from callflow.store import Database, Row, Schema

THRESHOLDS_SCHEMA = Schema(
    name="console_thresholds",
    steps=(
        """
        CREATE TABLE console_thresholds (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            raised_at TEXT NOT NULL,
            detail TEXT NOT NULL,
            acknowledged_by TEXT NOT NULL DEFAULT '',
            acknowledged_at TEXT,
            cleared_at TEXT
        );
        CREATE INDEX console_thresholds_active ON console_thresholds(cleared_at);
        """,
    ),
)

_COLUMNS = "id, kind, raised_at, detail, acknowledged_by, acknowledged_at, cleared_at"


def _alert(row: Row) -> Alert:
    return Alert(id=int(str(row[0])), kind=ThresholdKind(str(row[1])), raised_at=parse_iso(str(row[2])),
                 detail=str(row[3]), acknowledged_by=str(row[4]),
                 acknowledged_at=parse_iso(str(row[5])) if row[5] else None,
                 cleared_at=parse_iso(str(row[6])) if row[6] else None)


async def active(conn: Database) -> list[Alert]:
    async with conn.execute(f"SELECT {_COLUMNS} FROM console_thresholds WHERE cleared_at IS NULL "  # noqa: S608 -- constant columns
                            "ORDER BY id") as cur:
        return [_alert(r) for r in await cur.fetchall()]


async def recent(conn: Database, limit: int = 50) -> list[Alert]:
    async with conn.execute(f"SELECT {_COLUMNS} FROM console_thresholds ORDER BY id DESC LIMIT ?",  # noqa: S608 -- constant columns
                            (limit,)) as cur:
        return [_alert(r) for r in await cur.fetchall()]


async def insert(conn: Database, alert: Alert) -> Alert:
    alert_id = await conn.insert(
        "INSERT INTO console_thresholds (kind, raised_at, detail) VALUES (?, ?, ?)",
        (alert.kind.value, iso(alert.raised_at), alert.detail))
    await conn.commit()
    return Alert(id=alert_id, kind=alert.kind, raised_at=alert.raised_at, detail=alert.detail)


async def save(conn: Database, alert: Alert) -> None:
    await conn.execute(
        "UPDATE console_thresholds SET detail = ?, acknowledged_by = ?, acknowledged_at = ?, cleared_at = ? "
        "WHERE id = ?",
        (alert.detail, alert.acknowledged_by, iso(alert.acknowledged_at) if alert.acknowledged_at else None,
         iso(alert.cleared_at) if alert.cleared_at else None, alert.id))
    await conn.commit()
