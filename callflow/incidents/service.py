"""``IncidentService``: the Python API for incidents and dispatch (the CLI uses it; the console will
serve it over HTTP). Every write is one transaction: it is checked against the stored state inside the
transaction and either applied whole or refused with an :class:`IncidentError` and nothing changed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import structlog

from callflow.calls.model import InstantSource
from callflow.incidents import _tables as tables
from callflow.incidents.categories import Category, District, parse_category, parse_district
from callflow.incidents.errors import DispatchError, IllegalTransition, IncidentError, IncidentNotFound
from callflow.incidents.model import Dispatch, DispatchState, Incident, IncidentStatus
from callflow.incidents.registry import AgencyRegistry, Unit, suggest_unit
from callflow.store import Database, StoreLocation, open_database

log = structlog.get_logger("callflow.incidents")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class IncidentService:
    """Incidents, their calls, status history and dispatches, in the engine's SQLite store.

    Times: pass ``at`` for a time the operator entered (source ``operator``); without it the service's
    clock stamps the change (source ``engine_clock``)."""

    def __init__(self, conn: Database, *, clock: Clock = utc_now) -> None:
        self._conn = conn
        self._clock = clock
        self._write_lock = asyncio.Lock()  # one connection: one write transaction at a time

    @classmethod
    @asynccontextmanager
    async def open(cls, path: StoreLocation, *, clock: Clock = utc_now) -> AsyncIterator[IncidentService]:
        conn = await open_database(path, [tables.SCHEMA])
        try:
            yield cls(conn, clock=clock)
        finally:
            await conn.close()

    # -- plumbing -------------------------------------------------------------------------------
    def _stamp(self, at: datetime | None) -> tuple[datetime, InstantSource]:
        if at is None:
            return self._clock(), InstantSource.ENGINE_CLOCK
        if at.tzinfo is None:
            raise IncidentError(f"time {at.isoformat()} has no time zone; give it with an offset "
                                "(e.g. +08:00 for Manado) or in UTC")
        return at.astimezone(UTC), InstantSource.OPERATOR

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Database]:
        async with self._write_lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.rollback()
                raise
            await self._conn.commit()

    async def _one(self, incident_id: int) -> Incident:
        found = await tables.read_incidents(self._conn, "i.id = ?", (incident_id,))
        if not found:
            raise IncidentNotFound(f"no incident #{incident_id}; list them with `siaga112 incidents list`")
        return found[0]

    # -- registry -------------------------------------------------------------------------------
    async def load_registry(self, registry: AgencyRegistry) -> None:
        """Store the agencies and units of a file; units no longer in it stay (for history), inactive."""
        async with self._transaction() as conn:
            for a in registry.agencies:
                await conn.execute(
                    "INSERT INTO agency_agency (id, name, type, district, phone, example, source) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
                    "type = excluded.type, district = excluded.district, phone = excluded.phone, "
                    "example = excluded.example, source = excluded.source",
                    (a.id, a.name, a.type.value, a.district.value, a.phone, int(a.example), registry.source))
            await conn.execute("UPDATE agency_unit SET active = 0")
            for u in registry.units:
                await conn.execute(
                    "INSERT INTO agency_unit (id, agency_id, name, district, categories, active) "
                    "VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT(id) DO UPDATE SET agency_id = excluded.agency_id, "
                    "name = excluded.name, district = excluded.district, categories = excluded.categories, "
                    "active = 1",
                    (u.id, u.agency_id, u.name, u.district.value, ",".join(sorted(u.categories))))
        log.info("incidents.registry_loaded", source=registry.source, agencies=len(registry.agencies),
                 units=len(registry.units), example=registry.example)

    async def units(self) -> list[Unit]:
        return await tables.active_units(self._conn)

    async def agency_names(self) -> dict[str, str]:
        """Every stored agency's id and name (agencies dropped from the registry file stay, for history)."""
        async with self._conn.execute("SELECT id, name FROM agency_agency ORDER BY id") as cur:
            return {str(r[0]): str(r[1]) for r in await cur.fetchall()}

    async def busy_units(self) -> set[str]:
        return await tables.busy_units(self._conn)

    # -- incidents ------------------------------------------------------------------------------
    async def create(self, *, category: Category | str, district: District | str, by: str,
                     address: str = "", notes: str = "", linkedids: Iterable[str] = (),
                     caller_number: str = "", at: datetime | None = None) -> Incident:
        """A new incident in status ``wait``, linked to the calls about it."""
        cat = category if isinstance(category, Category) else parse_category(category)
        dist = district if isinstance(district, District) else parse_district(district)
        if not by.strip():
            raise IncidentError("who created the incident? give the operator's name (--by)")
        calls = list(dict.fromkeys(linkedids))
        when, source = self._stamp(at)
        stamp = tables.to_text(when)
        async with self._transaction() as conn:
            incident_id = await conn.insert(
                "INSERT INTO incident_incident (category, district, address, notes, status, created_at, "
                "created_by, caller_number) VALUES (?, ?, ?, ?, 'wait', ?, ?, ?)",
                (cat.value, dist.value, address, notes, stamp, by, caller_number.strip()))
            await conn.execute(
                "INSERT INTO incident_status_change (incident_id, from_status, to_status, at, by, source) "
                "VALUES (?, NULL, 'wait', ?, ?, ?)", (incident_id, stamp, by, source.value))
            for linkedid in calls:
                await conn.execute("INSERT INTO incident_call (incident_id, linkedid, linked_at, linked_by) "
                                   "VALUES (?, ?, ?, ?)", (incident_id, linkedid, stamp, by))
        log.info("incidents.created", incident=incident_id, category=cat.value, district=dist.value,
                 by=by, calls=len(calls))
        return await self._one(incident_id)

    async def link_call(self, incident_id: int, linkedid: str, *, by: str,
                        at: datetime | None = None) -> Incident:
        """Another call about the same event."""
        when, _ = self._stamp(at)
        async with self._transaction() as conn:
            await self._one(incident_id)
            await conn.execute("INSERT OR IGNORE INTO incident_call (incident_id, linkedid, linked_at, "
                               "linked_by) VALUES (?, ?, ?, ?)",
                               (incident_id, linkedid, tables.to_text(when), by))
        return await self._one(incident_id)

    async def get(self, incident_id: int) -> Incident:
        return await self._one(incident_id)

    async def list(self, *, status: IncidentStatus | None = None, category: Category | None = None,
                   district: District | None = None, since: datetime | None = None,
                   until: datetime | None = None, limit: int | None = None,
                   caller_number: str | None = None, linkedids: Iterable[str] = (),
                   agency_id: str | None = None, ids: Iterable[int] | None = None) -> list[Incident]:
        """Incidents created in ``[since, until)`` and matching the filters, oldest first. With
        ``caller_number``: the incidents reported from that number or linked to one of ``linkedids``
        (the calls from that number). With ``agency_id``: the incidents one of that agency's units was
        dispatched to (handed to the agency). With ``ids``: only those incidents."""
        where: list[str] = []
        params: list[object] = []
        if agency_id is not None:
            where.append("i.id IN (SELECT d.incident_id FROM dispatch_dispatch d JOIN agency_unit u "
                         "ON u.id = d.unit_id WHERE u.agency_id = ?)")
            params.append(agency_id)
        if ids is not None:
            chosen = [int(i) for i in ids]
            where.append(f"i.id IN ({', '.join('?' for _ in chosen) or 'NULL'})")
            params.extend(chosen)
        if caller_number is not None:
            calls = list(dict.fromkeys(linkedids))
            linked = (f" OR i.id IN (SELECT incident_id FROM incident_call WHERE linkedid IN "
                      f"({', '.join('?' for _ in calls)}))") if calls else ""
            where.append(f"(i.caller_number = ?{linked})")
            params.extend([caller_number, *calls])
        for column, value in (("status", status), ("category", category), ("district", district)):
            if value is not None:
                where.append(f"i.{column} = ?")
                params.append(value.value)
        if since is not None:
            where.append("i.created_at >= ?")
            params.append(tables.to_text(since))
        if until is not None:
            where.append("i.created_at < ?")
            params.append(tables.to_text(until))
        return await tables.read_incidents(self._conn, " AND ".join(where), tuple(params), limit)

    async def set_status(self, incident_id: int, status: IncidentStatus | str, *, by: str,
                         at: datetime | None = None, note: str = "") -> Incident:
        """Move the status forward (wait -> handling -> done; wait -> done allowed). ``done`` also
        closes the incident's open dispatches at the same instant."""
        try:
            target = IncidentStatus(status)
        except ValueError:
            raise IncidentError(f"unknown status {status!r}; use wait, handling or done") from None
        when, source = self._stamp(at)
        async with self._transaction() as conn:
            incident = await self._one(incident_id)
            self._check_forward(incident, target, when)
            await self._apply_status(conn, incident, target, when=when, by=by, source=source, note=note)
            if target is IncidentStatus.DONE:
                for d in incident.open_dispatches:
                    self._check_after(d, DispatchState.CLOSED, when)
                    await self._apply_step(conn, d, DispatchState.CLOSED, when=when, by=by, source=source)
        log.info("incidents.status", incident=incident_id, status=target.value, by=by)
        return await self._one(incident_id)

    @staticmethod
    def _check_forward(incident: Incident, target: IncidentStatus, when: datetime) -> None:
        if target.rank <= incident.status.rank:
            raise IllegalTransition(
                f"incident #{incident.id} is {incident.status.value}: its status cannot move "
                f"{'back ' if target.rank < incident.status.rank else ''}to {target.value} "
                "(wait -> handling -> done, forward only)")
        last = incident.history[-1].at
        if when < last:
            raise IllegalTransition(f"incident #{incident.id}: {target.value} at {when.isoformat()} is "
                                    f"before its last change at {last.isoformat()}; check the time given")

    @staticmethod
    async def _apply_status(conn: Database, incident: Incident, target: IncidentStatus, *,
                            when: datetime, by: str, source: InstantSource, note: str = "") -> None:
        await conn.execute("UPDATE incident_incident SET status = ? WHERE id = ?",
                           (target.value, incident.id))
        await conn.execute(
            "INSERT INTO incident_status_change (incident_id, from_status, to_status, at, by, source, note) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (incident.id, incident.status.value, target.value, tables.to_text(when), by, source.value, note))

    # -- dispatch -------------------------------------------------------------------------------
    async def suggest(self, incident_id: int) -> Unit | None:
        """The free unit this incident should get (its district first, by its category's agency types)."""
        incident = await self._one(incident_id)
        return suggest_unit(await self.units(), incident.category, incident.district, await self.busy_units())

    async def dispatch(self, incident_id: int, *, by: str, unit_id: str | None = None,
                       at: datetime | None = None) -> Dispatch:
        """Send a unit (the suggested one when ``unit_id`` is None). A waiting incident moves to handling."""
        when, source = self._stamp(at)
        async with self._transaction() as conn:
            incident = await self._one(incident_id)
            if incident.status is IncidentStatus.DONE:
                raise DispatchError(f"incident #{incident_id} is done (closed); a closed incident cannot be "
                                    "dispatched. Create a new incident if help is needed again")
            if when < incident.created_at:
                raise DispatchError(f"incident #{incident_id}: dispatch at {when.isoformat()} is before the "
                                    f"incident was created ({incident.created_at.isoformat()})")
            busy = await tables.busy_units(conn)
            if unit_id is None:
                unit = suggest_unit(await tables.active_units(conn), incident.category, incident.district,
                                    busy)
                if unit is None:
                    raise DispatchError(f"no free unit for {incident.category.value} in the registry; load "
                                        "an agency file (--agencies) or name a unit with --unit")
            else:
                found = await tables.unit_by_id(conn, unit_id)
                if found is None:
                    raise DispatchError(f"unknown unit {unit_id!r}; list units with "
                                        "`siaga112 incidents units`")
                if not await tables.unit_is_active(conn, unit_id):
                    raise DispatchError(f"unit {unit_id!r} is no longer in the agency registry; pick a unit "
                                        "from `siaga112 incidents units`")
                unit = found
            if unit.id in busy:
                raise DispatchError(f"unit {unit.id!r} is still on another dispatch; close that first or "
                                    "pick another unit")
            dispatch_id = await conn.insert(
                "INSERT INTO dispatch_dispatch (incident_id, unit_id, state, dispatched_at) "
                "VALUES (?, ?, 'dispatched', ?)", (incident_id, unit.id, tables.to_text(when)))
            await conn.execute("INSERT INTO dispatch_event (dispatch_id, state, at, by, source) "
                               "VALUES (?, 'dispatched', ?, ?, ?)",
                               (dispatch_id, tables.to_text(when), by, source.value))
            if incident.status is IncidentStatus.WAIT:
                await self._apply_status(conn, incident, IncidentStatus.HANDLING,
                                         when=max(when, incident.history[-1].at), by=by, source=source,
                                         note=f"dispatched {unit.id}")
        log.info("incidents.dispatched", incident=incident_id, unit=unit.id, by=by)
        return await self._dispatch(incident_id, dispatch_id)

    async def _dispatch(self, incident_id: int, dispatch_id: int) -> Dispatch:
        incident = await self._one(incident_id)
        return next(d for d in incident.dispatches if d.id == dispatch_id)

    async def en_route(self, incident_id: int, *, by: str, dispatch_id: int | None = None,
                       at: datetime | None = None) -> Dispatch:
        return await self._step(incident_id, DispatchState.EN_ROUTE, by, dispatch_id, at)

    async def arrive(self, incident_id: int, *, by: str, dispatch_id: int | None = None,
                     at: datetime | None = None) -> Dispatch:
        """The unit is on scene."""
        return await self._step(incident_id, DispatchState.ON_SCENE, by, dispatch_id, at)

    async def close_dispatch(self, incident_id: int, *, by: str, dispatch_id: int | None = None,
                             at: datetime | None = None) -> Dispatch:
        """The unit is finished (free again); the incident keeps its status."""
        return await self._step(incident_id, DispatchState.CLOSED, by, dispatch_id, at)

    async def close(self, incident_id: int, *, by: str, at: datetime | None = None,
                    note: str = "") -> Incident:
        """Close the incident: its open dispatches are closed and its status becomes done."""
        return await self.set_status(incident_id, IncidentStatus.DONE, by=by, at=at, note=note)

    async def _step(self, incident_id: int, state: DispatchState, by: str, dispatch_id: int | None,
                    at: datetime | None) -> Dispatch:
        when, source = self._stamp(at)
        async with self._transaction() as conn:
            incident = await self._one(incident_id)
            d = self._pick(incident, dispatch_id, state)
            self._check_after(d, state, when)
            await self._apply_step(conn, d, state, when=when, by=by, source=source)
        log.info("incidents.dispatch_step", incident=incident_id, dispatch=d.id, state=state.value, by=by)
        return await self._dispatch(incident_id, d.id)

    @staticmethod
    def _pick(incident: Incident, dispatch_id: int | None, state: DispatchState) -> Dispatch:
        what = state.value.replace("_", " ")
        if not incident.dispatches:
            raise DispatchError(f"incident #{incident.id} has not been dispatched: {what} before dispatch "
                                "is impossible. Dispatch it first (`siaga112 incidents dispatch`)")
        if dispatch_id is not None:
            found = next((d for d in incident.dispatches if d.id == dispatch_id), None)
            if found is None:
                raise DispatchError(f"dispatch {dispatch_id} does not belong to incident #{incident.id}")
            return found
        candidates = [d for d in incident.open_dispatches if d.state.rank < state.rank]
        if len(candidates) != 1:
            shown = ", ".join(f"{d.id} ({d.unit_id}, {d.state.value})" for d in incident.dispatches)
            raise DispatchError(f"incident #{incident.id}: {'no' if not candidates else 'several'} open "
                                f"dispatch(es) can be marked {what} [{shown}]; name one with --dispatch")
        return candidates[0]

    @staticmethod
    def _check_after(d: Dispatch, state: DispatchState, when: datetime) -> None:
        what = state.value.replace("_", " ")
        if d.state.rank >= state.rank:
            now = d.state.value.replace("_", " ")
            raise DispatchError(f"dispatch {d.id} ({d.unit_id}) is already {now}; it cannot be marked "
                                f"{what} now")
        last = max(s.at for s in d.steps)
        if when < last:
            raise DispatchError(f"dispatch {d.id} ({d.unit_id}): {what} at {when.isoformat()} is before its "
                                f"{d.state.value.replace('_', ' ')} time {last.isoformat()}; check the time")

    @staticmethod
    async def _apply_step(conn: Database, d: Dispatch, state: DispatchState, *, when: datetime,
                          by: str, source: InstantSource) -> None:
        column = {DispatchState.EN_ROUTE: "en_route_at", DispatchState.ON_SCENE: "on_scene_at",
                  DispatchState.CLOSED: "closed_at"}[state]
        await conn.execute(f"UPDATE dispatch_dispatch SET state = ?, {column} = ? WHERE id = ?",
                           (state.value, tables.to_text(when), d.id))
        await conn.execute("INSERT INTO dispatch_event (dispatch_id, state, at, by, source) VALUES "
                           "(?, ?, ?, ?, ?)", (d.id, state.value, tables.to_text(when), by, source.value))
