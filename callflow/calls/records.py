"""The ``calls_records`` table: one row per call (keyed by Linkedid), the record as canonical JSON plus
the columns readers filter on. Rows are written only from derivation, so rebuilding gives equal rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from callflow.calls.model import CallClass, CallRecord, Instant, InstantSource, Leg, Outcome
from callflow.store import Database, Schema

RECORDS_SCHEMA = Schema("calls_records", (
    """
    CREATE TABLE calls_records (
        linkedid TEXT PRIMARY KEY,
        arrival TEXT NOT NULL,
        ended TEXT,
        outcome TEXT NOT NULL,
        call_class TEXT NOT NULL,
        queue TEXT NOT NULL,
        operator TEXT NOT NULL,
        answered TEXT,
        sources TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX calls_records_arrival ON calls_records(arrival);
    """,
))


def _t(value: datetime | None) -> str | None:
    """UTC ISO text: stored and queried instants compare correctly as strings whatever zone a caller
    passes (a report period in Manado time, +08:00)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds") if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def record_to_dict(record: CallRecord) -> dict[str, Any]:
    """The export/JSON form (documented in the README)."""
    return {
        "linkedid": record.linkedid,
        "caller_number": record.caller_number,
        "caller_name": record.caller_name,
        "dialed": record.dialed,
        "call_class": str(record.call_class),
        "outcome": str(record.outcome),
        "arrival": _t(record.arrival),
        "answered": _t(record.answered),
        "ended": _t(record.ended),
        "answer_seconds": record.answer_seconds,
        "operator": record.operator,
        "queue": record.queue,
        "category": record.category,
        "ivr_path": list(record.ivr_path),
        "contact": record.contact,
        "contact_detail": record.contact_detail,
        "hangup_by": record.hangup_by,
        "instants": [{"name": i.name, "at": _t(i.at), "source": str(i.source), "detail": i.detail}
                     | ({"precision_s": i.precision_s} if i.precision_s is not None else {})
                     for i in record.instants],
        "legs": [{"uniqueid": leg.uniqueid, "channel": leg.channel, "role": leg.role,
                  "created": _t(leg.created), "answered": _t(leg.answered), "ended": _t(leg.ended),
                  "hangup_cause": leg.hangup_cause} for leg in record.legs],
        "sources": list(record.sources),
        "notes": list(record.notes),
    } | ({"follows_up": record.follows_up} if record.follows_up else {}) \
      | ({"node": record.node} if record.node else {})


def record_from_dict(d: dict[str, Any]) -> CallRecord:
    arrival = _dt(d["arrival"])
    assert arrival is not None  # noqa: S101 - the column is NOT NULL
    return CallRecord(
        linkedid=d["linkedid"], caller_number=d["caller_number"], caller_name=d["caller_name"],
        dialed=d["dialed"], call_class=CallClass(d["call_class"]), outcome=Outcome(d["outcome"]),
        arrival=arrival, ended=_dt(d["ended"]), answered=_dt(d["answered"]), operator=d["operator"],
        queue=d["queue"], category=d["category"], ivr_path=tuple(d["ivr_path"]), hangup_by=d["hangup_by"],
        contact=d.get("contact", ""), contact_detail=d.get("contact_detail", ""),
        instants=tuple(Instant(i["name"], _dt(i["at"]) or arrival, InstantSource(i["source"]), i["detail"],
                               i.get("precision_s")) for i in d["instants"]),
        legs=tuple(Leg(g["uniqueid"], g["channel"], g["role"], _dt(g["created"]), _dt(g["answered"]),
                       _dt(g["ended"]), g["hangup_cause"]) for g in d["legs"]),
        sources=tuple(d["sources"]), notes=tuple(d["notes"]), follows_up=d.get("follows_up", ""),
        node=d.get("node", ""),
    )


def record_json(record: CallRecord) -> str:
    return json.dumps(record_to_dict(record), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def record_row(record: CallRecord) -> tuple[Any, ...]:
    return (record.linkedid, _t(record.arrival), _t(record.ended), str(record.outcome),
            str(record.call_class), record.queue, record.operator, _t(record.answered),
            ",".join(record.sources), record_json(record))


async def store_records(conn: Database, records: Sequence[CallRecord]) -> None:
    """Insert or replace (re-derivation replaces a row with an equal one); commits."""
    await conn.executemany("INSERT INTO calls_records VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (linkedid) DO "
                           "UPDATE SET arrival = excluded.arrival, ended = excluded.ended, outcome = "
                           "excluded.outcome, call_class = excluded.call_class, queue = excluded.queue, "
                           "operator = excluded.operator, answered = excluded.answered, sources = "
                           "excluded.sources, record = excluded.record",
                           [record_row(r) for r in records])
    await conn.commit()


async def recorded_linkedids(conn: Database) -> set[str]:
    async with conn.execute("SELECT linkedid FROM calls_records") as cur:
        return {str(r[0]) for r in await cur.fetchall()}


async def load_records(conn: Database, *, since: datetime | None = None,
                       until: datetime | None = None, linkedid: str | None = None) -> list[CallRecord]:
    """Records by arrival (``since`` inclusive, ``until`` exclusive), oldest first."""
    sql, args = "SELECT record FROM calls_records WHERE 1=1", list[str | None]()
    if since is not None:
        sql, args = sql + " AND arrival >= ?", [*args, _t(since)]
    if until is not None:
        sql, args = sql + " AND arrival < ?", [*args, _t(until)]
    if linkedid is not None:
        sql, args = sql + " AND linkedid = ?", [*args, linkedid]
    async with conn.execute(sql + " ORDER BY arrival, linkedid", args) as cur:
        return [record_from_dict(json.loads(r[0])) for r in await cur.fetchall()]


async def record_rows(conn: Database) -> list[tuple[Any, ...]]:
    """Every stored row, for comparisons (rebuild must reproduce them exactly)."""
    async with conn.execute("SELECT * FROM calls_records ORDER BY linkedid") as cur:
        return [tuple(r) for r in await cur.fetchall()]


class StoredCallRecords:
    """The tracker's stored call records as a read-only source for reports and the console
    (:class:`callflow.reports.sources.CallRecordSource`)."""

    def __init__(self, conn: Database) -> None:
        self._conn = conn

    async def get(self, linkedid: str) -> CallRecord | None:
        found = await load_records(self._conn, linkedid=linkedid)
        return found[0] if found else None

    async def between(self, since: datetime, until: datetime) -> list[CallRecord]:
        return await load_records(self._conn, since=since, until=until)
