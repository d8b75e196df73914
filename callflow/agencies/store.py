"""The agencies' tables in the shared store (prefix ``agency_``, beside the registry's): what agencies
record on their hand-offs, the escalations of overdue ones, and (later) the outbox to their systems.

Times are UTC ISO-8601 text with microseconds, as the incident tables store them, so text order is time
order. The store owns its tables; it knows no rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import aiosqlite

from callflow.agencies.rules import EventKind, HandoffEvent, Overdue, Stage
from callflow.store import Schema

SCHEMA = Schema("agencies", (
    """
    CREATE TABLE agency_handoff_event (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incident_incident (id),
        agency_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('acknowledged', 'note', 'done')),
        at TEXT NOT NULL,
        by TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX agency_handoff_event_incident ON agency_handoff_event (incident_id, agency_id);
    CREATE TABLE agency_escalation (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incident_incident (id),
        agency_id TEXT NOT NULL,
        stage TEXT NOT NULL CHECK (stage IN ('acknowledge', 'done')),
        due_at TEXT NOT NULL,
        escalated_at TEXT NOT NULL,
        notified TEXT NOT NULL DEFAULT '[]',
        UNIQUE (incident_id, agency_id, stage)
    );
    """,
))


def to_text(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("naive datetime: give a UTC-aware time")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Escalation:
    """An overdue stage, when it was escalated and who was told."""

    incident_id: int
    agency_id: str
    stage: Stage
    due_at: datetime
    escalated_at: datetime
    notified: tuple[str, ...]


class HandoffStore:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def add_event(self, event: HandoffEvent) -> None:
        """Inside the caller's transaction (no commit here)."""
        await self._conn.execute(
            "INSERT INTO agency_handoff_event (incident_id, agency_id, kind, at, by, note) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (event.incident_id, event.agency_id, event.kind.value, to_text(event.at), event.by, event.note))

    async def events(self, incident_ids: list[int]) -> list[HandoffEvent]:
        if not incident_ids:
            return []
        marks = ", ".join("?" for _ in incident_ids)
        async with self._conn.execute(
                "SELECT incident_id, agency_id, kind, at, by, note FROM agency_handoff_event "  # noqa: S608
                f"WHERE incident_id IN ({marks}) ORDER BY id", incident_ids) as cur:
            return [HandoffEvent(int(r[0]), str(r[1]), EventKind(str(r[2])), from_text(str(r[3])), str(r[4]),
                                 str(r[5])) for r in await cur.fetchall()]

    async def add_escalation(self, overdue: Overdue, at: datetime, notified: list[str]) -> bool:
        """False when that stage was escalated already (the unique key keeps it once)."""
        cur = await self._conn.execute(
            "INSERT OR IGNORE INTO agency_escalation (incident_id, agency_id, stage, due_at, escalated_at, "
            "notified) VALUES (?, ?, ?, ?, ?, ?)",
            (overdue.incident_id, overdue.agency_id, overdue.stage.value, to_text(overdue.due_at),
             to_text(at), json.dumps(notified)))
        return bool(cur.rowcount)

    async def escalations(self, *, agency_id: str | None = None) -> list[Escalation]:
        where, params = ("WHERE agency_id = ?", (agency_id,)) if agency_id is not None else ("", ())
        async with self._conn.execute(
                "SELECT incident_id, agency_id, stage, due_at, escalated_at, notified "  # noqa: S608
                f"FROM agency_escalation {where} ORDER BY escalated_at, id", params) as cur:
            return [Escalation(int(r[0]), str(r[1]), Stage(str(r[2])), from_text(str(r[3])),
                               from_text(str(r[4])), tuple(json.loads(str(r[5]))))
                    for r in await cur.fetchall()]

    async def escalated_keys(self) -> set[tuple[int, str, Stage]]:
        async with self._conn.execute("SELECT incident_id, agency_id, stage FROM agency_escalation") as cur:
            return {(int(r[0]), str(r[1]), Stage(str(r[2]))) for r in await cur.fetchall()}
