"""The incident component's tables in the shared store, and reading them back into values.

Times are stored as UTC ISO-8601 text with microseconds (``2019-03-01T02:00:00.000000+00:00``), so text
order is time order.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from callflow.calls.model import InstantSource
from callflow.incidents.categories import Category, District
from callflow.incidents.model import (
    Dispatch,
    DispatchState,
    DispatchStep,
    Incident,
    IncidentStatus,
    StatusChange,
)
from callflow.incidents.registry import AgencyType, Unit
from callflow.store import Database, Row, Schema

SCHEMA = Schema("incidents", (
    """
    CREATE TABLE incident_incident (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        category TEXT NOT NULL,
        district TEXT NOT NULL,
        address TEXT NOT NULL DEFAULT '',
        notes TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL CHECK (status IN ('wait', 'handling', 'done')),
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE INDEX incident_incident_created ON incident_incident (created_at);
    CREATE TABLE incident_status_change (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incident_incident (id),
        from_status TEXT,
        to_status TEXT NOT NULL,
        at TEXT NOT NULL,
        by TEXT NOT NULL,
        source TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX incident_status_change_incident ON incident_status_change (incident_id);
    CREATE TABLE incident_call (
        incident_id INTEGER NOT NULL REFERENCES incident_incident (id),
        linkedid TEXT NOT NULL,
        linked_at TEXT NOT NULL,
        linked_by TEXT NOT NULL,
        PRIMARY KEY (incident_id, linkedid)
    );
    CREATE INDEX incident_call_linkedid ON incident_call (linkedid);
    CREATE TABLE agency_agency (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        district TEXT NOT NULL,
        phone TEXT NOT NULL DEFAULT '',
        example INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE agency_unit (
        id TEXT PRIMARY KEY,
        agency_id TEXT NOT NULL REFERENCES agency_agency (id),
        name TEXT NOT NULL,
        district TEXT NOT NULL,
        categories TEXT NOT NULL DEFAULT '',
        active INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE dispatch_dispatch (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id INTEGER NOT NULL REFERENCES incident_incident (id),
        unit_id TEXT NOT NULL REFERENCES agency_unit (id),
        state TEXT NOT NULL,
        dispatched_at TEXT NOT NULL,
        en_route_at TEXT,
        on_scene_at TEXT,
        closed_at TEXT
    );
    CREATE INDEX dispatch_dispatch_incident ON dispatch_dispatch (incident_id);
    CREATE TABLE dispatch_event (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        dispatch_id INTEGER NOT NULL REFERENCES dispatch_dispatch (id),
        state TEXT NOT NULL,
        at TEXT NOT NULL,
        by TEXT NOT NULL,
        source TEXT NOT NULL
    );
    CREATE INDEX dispatch_event_dispatch ON dispatch_event (dispatch_id);
    """,
    # 2: the number the report came from, as the operator saw it (repeat callers, possible hoaxes)
    """
    ALTER TABLE incident_incident ADD COLUMN caller_number TEXT NOT NULL DEFAULT '';
    CREATE INDEX incident_incident_caller ON incident_incident (caller_number);
    """,
))


def to_text(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("naive datetime: give a UTC-aware time")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


_UNIT_SELECT = ("SELECT u.id, u.name, u.agency_id, a.name, a.type, u.district, u.categories, a.example "
                "FROM agency_unit u JOIN agency_agency a ON a.id = u.agency_id")


def unit_from_row(row: Row) -> Unit:
    cats = str(row[6])
    return Unit(str(row[0]), str(row[1]), str(row[2]), str(row[3]), AgencyType(str(row[4])),
                District(str(row[5])), frozenset(Category(c) for c in cats.split(",") if c), bool(row[7]))


async def active_units(conn: Database) -> list[Unit]:
    async with conn.execute(_UNIT_SELECT + " WHERE u.active = 1 ORDER BY u.id") as cur:
        return [unit_from_row(r) for r in await cur.fetchall()]


async def unit_by_id(conn: Database, unit_id: str) -> Unit | None:
    async with conn.execute(_UNIT_SELECT + " WHERE u.id = ?", (unit_id,)) as cur:
        row = await cur.fetchone()
    return unit_from_row(row) if row else None


async def unit_is_active(conn: Database, unit_id: str) -> bool:
    async with conn.execute("SELECT active FROM agency_unit WHERE id = ?", (unit_id,)) as cur:
        row = await cur.fetchone()
    return bool(row and row[0])


async def busy_units(conn: Database) -> set[str]:
    async with conn.execute("SELECT unit_id FROM dispatch_dispatch WHERE closed_at IS NULL") as cur:
        return {str(r[0]) for r in await cur.fetchall()}


async def read_incidents(conn: Database, where: str = "", params: tuple[object, ...] = (),
                         limit: int | None = None) -> list[Incident]:
    """Incidents matching ``where`` (SQL over ``incident_incident i``) with their calls, history and
    dispatches, in three extra queries whatever the count."""
    chosen = ("FROM incident_incident i " + (f"WHERE {where} " if where else "")
              + "ORDER BY i.created_at, i.id" + (f" LIMIT {int(limit)}" if limit is not None else ""))
    async with conn.execute("SELECT i.id, i.category, i.district, i.address, i.notes, i.status, "
                            "i.created_at, i.created_by, i.caller_number " + chosen, params) as cur:
        rows = list(await cur.fetchall())
    if not rows:
        return []
    # the same selection as a sub-query (no temp table: a write would open a transaction on reads)
    wanted = f"(SELECT i.id {chosen})"
    calls: dict[int, list[str]] = defaultdict(list)
    async with conn.execute("SELECT incident_id, linkedid FROM incident_call WHERE incident_id IN "
                            f"{wanted} ORDER BY linked_at, linkedid", params) as cur:
        for r in await cur.fetchall():
            calls[int(r[0])].append(str(r[1]))
    history: dict[int, list[StatusChange]] = defaultdict(list)
    async with conn.execute("SELECT incident_id, from_status, to_status, at, by, source, note "
                            f"FROM incident_status_change WHERE incident_id IN {wanted} ORDER BY id",
                            params) as cur:
        for r in await cur.fetchall():
            history[int(r[0])].append(StatusChange(
                IncidentStatus(str(r[1])) if r[1] is not None else None, IncidentStatus(str(r[2])),
                from_text(str(r[3])), str(r[4]), InstantSource(str(r[5])), str(r[6])))
    steps: dict[int, list[DispatchStep]] = defaultdict(list)
    async with conn.execute("SELECT e.dispatch_id, e.state, e.at, e.by, e.source FROM dispatch_event e "
                            "JOIN dispatch_dispatch d ON d.id = e.dispatch_id WHERE d.incident_id IN "
                            f"{wanted} ORDER BY e.id", params) as cur:
        for r in await cur.fetchall():
            steps[int(r[0])].append(DispatchStep(DispatchState(str(r[1])), from_text(str(r[2])), str(r[3]),
                                                 InstantSource(str(r[4]))))
    dispatches: dict[int, list[Dispatch]] = defaultdict(list)
    async with conn.execute("SELECT d.id, d.incident_id, d.unit_id, u.name, u.agency_id, a.type, a.example "
                            "FROM dispatch_dispatch d JOIN agency_unit u ON u.id = d.unit_id "
                            "JOIN agency_agency a ON a.id = u.agency_id WHERE d.incident_id IN "
                            f"{wanted} ORDER BY d.id", params) as cur:
        for r in await cur.fetchall():
            dispatches[int(r[1])].append(Dispatch(int(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4]),
                                                  str(r[5]), bool(r[6]), tuple(steps[int(r[0])])))
    return [Incident(int(r[0]), Category(str(r[1])), District(str(r[2])), str(r[3]), str(r[4]),
                     IncidentStatus(str(r[5])), from_text(str(r[6])), str(r[7]), tuple(calls[int(r[0])]),
                     tuple(history[int(r[0])]), tuple(dispatches[int(r[0])]), str(r[8])) for r in rows]
