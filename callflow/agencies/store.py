"""The agencies' tables in the shared store (prefix ``agency_``, beside the registry's): what agencies
record on their hand-offs, the escalations of overdue ones, and (later) the outbox to their systems.

Times are UTC ISO-8601 text with microseconds, as the incident tables store them, so text order is time
order. The store owns its tables; it knows no rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from callflow.agencies.delivery import DeliveryState
from callflow.agencies.rules import EventKind, HandoffEvent, Overdue, Stage
from callflow.store import Database, Row, Schema

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
    # 2: the outbox to agencies' own systems and every delivery attempt
    """
    CREATE TABLE agency_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        agency_id TEXT NOT NULL,
        incident_id INTEGER NOT NULL REFERENCES incident_incident (id),
        reason TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT
    );
    CREATE INDEX agency_outbox_due ON agency_outbox (state, next_attempt_at);
    CREATE TABLE agency_delivery (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        outbox_id INTEGER NOT NULL REFERENCES agency_outbox (id),
        attempt INTEGER NOT NULL,
        at TEXT NOT NULL,
        status INTEGER,
        error TEXT NOT NULL DEFAULT '',
        duration_ms REAL NOT NULL
    );
    CREATE INDEX agency_delivery_outbox ON agency_delivery (outbox_id);
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


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    agency_id: str
    incident_id: int
    reason: str
    body: str
    created_at: datetime
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    outbox_id: int
    attempt: int
    at: datetime
    status: int | None  # the HTTP status; None: no answer (the error says why)
    error: str
    duration_ms: float


_OUTBOX = ("SELECT id, agency_id, incident_id, reason, body, created_at, state, attempts, next_attempt_at "
           "FROM agency_outbox")


def _message(r: Row) -> OutboxMessage:
    return OutboxMessage(int(str(r[0])), str(r[1]), int(str(r[2])), str(r[3]), str(r[4]),
                         from_text(str(r[5])), DeliveryState(str(r[6])), int(str(r[7])),
                         from_text(str(r[8])) if r[8] else None)


class HandoffStore:
    def __init__(self, conn: Database) -> None:
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

    # -- outbox ---------------------------------------------------------------------------------------
    async def enqueue(self, agency_id: str, incident_id: int, reason: str, body: str, at: datetime) -> int:
        message_id = await self._conn.insert(
            "INSERT INTO agency_outbox (agency_id, incident_id, reason, body, created_at, state, "
            "next_attempt_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
            (agency_id, incident_id, reason, body, to_text(at), to_text(at)))
        await self._conn.commit()
        return message_id

    async def due(self, at: datetime, limit: int = 50) -> list[OutboxMessage]:
        """Pending messages whose next attempt is due, oldest first (a report's messages stay in order)."""
        async with self._conn.execute(_OUTBOX + " WHERE state = 'pending' AND next_attempt_at <= ? "
                                      "ORDER BY id LIMIT ?", (to_text(at), limit)) as cur:
            return [_message(r) for r in await cur.fetchall()]

    async def messages(self, *, agency_id: str | None = None, limit: int = 200) -> list[OutboxMessage]:
        where, params = ("WHERE agency_id = ? ", (agency_id,)) if agency_id is not None else ("", ())
        async with self._conn.execute(_OUTBOX + f" {where}ORDER BY id DESC LIMIT ?", (*params, limit)) as cur:
            return [_message(r) for r in await cur.fetchall()]

    async def record_attempt(self, attempt: DeliveryAttempt, state: DeliveryState,
                             next_attempt_at: datetime | None) -> None:
        """The attempt and its message's new state, in one transaction."""
        await self._conn.execute(
            "INSERT INTO agency_delivery (outbox_id, attempt, at, status, error, duration_ms) "
            "VALUES (?, ?, ?, ?, ?, ?)", (attempt.outbox_id, attempt.attempt, to_text(attempt.at),
                                          attempt.status, attempt.error, attempt.duration_ms))
        await self._conn.execute(
            "UPDATE agency_outbox SET state = ?, attempts = ?, next_attempt_at = ? WHERE id = ?",
            (state.value, attempt.attempt, to_text(next_attempt_at) if next_attempt_at else None,
             attempt.outbox_id))
        await self._conn.commit()

    async def attempts(self, outbox_ids: list[int]) -> list[DeliveryAttempt]:
        if not outbox_ids:
            return []
        marks = ", ".join("?" for _ in outbox_ids)
        async with self._conn.execute(
                "SELECT outbox_id, attempt, at, status, error, duration_ms FROM agency_delivery "  # noqa: S608
                f"WHERE outbox_id IN ({marks}) ORDER BY id", outbox_ids) as cur:
            return [DeliveryAttempt(int(r[0]), int(r[1]), from_text(str(r[2])),
                                    None if r[3] is None else int(r[3]), str(r[4]), float(r[5]))
                    for r in await cur.fetchall()]

    async def escalated_keys(self) -> set[tuple[int, str, Stage]]:
        async with self._conn.execute("SELECT incident_id, agency_id, stage FROM agency_escalation") as cur:
            return {(int(r[0]), str(r[1]), Stage(str(r[2]))) for r in await cur.fetchall()}
