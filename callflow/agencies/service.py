"""``AgencyDesk``: carries the hand-off rules out over the store and the incident service.

An agency's account acts only on reports handed to its own agency (:class:`NotHanded` otherwise). Every
instant is the engine's clock (the incident service and this desk share it); no client sends a time.
En route and on scene are the agency's dispatch steps (the incident service records them); acknowledge,
notes and done are this package's events. Done closes the agency's dispatches and, once no other
agency still works the report, the report itself (status done, with what was done as its note).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog

from callflow.agencies.rules import (
    EventKind,
    Handoff,
    HandoffEvent,
    HandoffPolicy,
    Overdue,
    Refusal,
    check_action,
    handoffs_of,
    to_escalate,
)
from callflow.agencies.store import Escalation, HandoffStore
from callflow.incidents import DispatchState, IncidentService, IncidentStatus
from callflow.store import Database

log = structlog.get_logger("callflow.agencies")

Clock = Callable[[], datetime]
# Tells the people an overdue hand-off concerns; answers who was told (names, for the record).
Notifier = Callable[[Overdue], Awaitable[list[str]]]


class NotHanded(Exception):
    """The report is not handed to this agency (or does not exist): the agency may not see it."""


class AgencyDesk:
    def __init__(self, conn: Database, incidents: IncidentService, policy: HandoffPolicy, *,
                 clock: Clock, notifier: Notifier | None = None) -> None:
        self._conn = conn
        self._store = HandoffStore(conn)
        self.incidents = incidents
        self.policy = policy
        self._clock = clock
        self.notifier = notifier
        self.listeners: list[Callable[[Handoff, str], Awaitable[None]]] = []  # outbox, live pages

    # -- reading --------------------------------------------------------------------------------
    async def handoffs(self, agency_id: str | None = None, *, open_only: bool = True,
                       since: datetime | None = None, until: datetime | None = None) -> list[Handoff]:
        """Hand-offs (of one agency, or all), oldest report first."""
        if agency_id is None:
            found = [i for i in await self.incidents.list(since=since, until=until) if i.dispatches]
        else:
            found = await self.incidents.list(agency_id=agency_id, since=since, until=until)
        events = await self._store.events([i.id for i in found])
        out = [h for i in found for h in handoffs_of(i, events)
               if agency_id is None or h.agency_id == agency_id]
        return [h for h in out if h.is_open] if open_only else out

    async def handoff(self, agency_id: str, incident_id: int) -> Handoff:
        found = await self.incidents.list(agency_id=agency_id, ids=[incident_id])
        if not found:
            raise NotHanded(f"report #{incident_id} is not handed to agency {agency_id!r}; an agency sees "
                            "only the reports its own units were dispatched to")
        events = await self._store.events([incident_id])
        return next(h for h in handoffs_of(found[0], events) if h.agency_id == agency_id)

    async def escalations(self, agency_id: str | None = None) -> list[Escalation]:
        return await self._store.escalations(agency_id=agency_id)

    # -- an agency's actions ----------------------------------------------------------------------
    async def _record(self, handoff: Handoff, kind: EventKind, by: str, note: str = "") -> datetime:
        at = self._clock()
        events = [HandoffEvent(handoff.incident.id, handoff.agency_id, kind, at, by, note)]
        if kind is EventKind.DONE and handoff.acknowledged_at is None:
            # en route or done before an explicit acknowledgement: the agency evidently has it now
            events.insert(0, HandoffEvent(handoff.incident.id, handoff.agency_id, EventKind.ACKNOWLEDGED, at,
                                          by, "implied"))
        for event in events:
            await self._store.add_event(event)
        await self._conn.commit()
        log.info("agencies.recorded", incident=handoff.incident.id, agency=handoff.agency_id,
                 kind=kind.value, by=by)
        return at

    async def _changed(self, agency_id: str, incident_id: int, change: str) -> Handoff:
        handoff = await self.handoff(agency_id, incident_id)
        for listener in self.listeners:
            await listener(handoff, change)
        return handoff

    async def acknowledge(self, agency_id: str, incident_id: int, *, by: str) -> Handoff:
        handoff = await self.handoff(agency_id, incident_id)
        check_action(handoff, EventKind.ACKNOWLEDGED)
        await self._record(handoff, EventKind.ACKNOWLEDGED, by)
        return await self._changed(agency_id, incident_id, "acknowledged")

    async def add_note(self, agency_id: str, incident_id: int, text: str, *, by: str) -> Handoff:
        handoff = await self.handoff(agency_id, incident_id)
        check_action(handoff, EventKind.NOTE)
        if not text.strip():
            raise Refusal("note: write what happened (the note is empty)")
        await self._record(handoff, EventKind.NOTE, by, text.strip())
        return await self._changed(agency_id, incident_id, "note")

    async def step(self, agency_id: str, incident_id: int, state: DispatchState, *, by: str) -> Handoff:
        """En route or on scene: the agency's open dispatch on this report takes the step."""
        if state not in (DispatchState.EN_ROUTE, DispatchState.ON_SCENE):
            raise Refusal(f"state: an agency records en_route or on_scene here, not {state.value}")
        handoff = await self.handoff(agency_id, incident_id)
        check_action(handoff, state.value)
        ready = [d for d in handoff.dispatches if d.is_open and d.state.rank < state.rank]
        if not ready:
            shown = ", ".join(f"{d.unit_id} ({d.state.value})" for d in handoff.dispatches)
            raise Refusal(f"state: no unit of {agency_id} on report #{incident_id} can be marked "
                          f"{state.value.replace('_', ' ')} now [{shown}]")
        if handoff.acknowledged_at is None:
            await self._record(handoff, EventKind.ACKNOWLEDGED, by, "implied")
        take = self.incidents.en_route if state is DispatchState.EN_ROUTE else self.incidents.arrive
        for d in ready:
            await take(incident_id, by=by, dispatch_id=d.id)
        return await self._changed(agency_id, incident_id, state.value)

    async def done(self, agency_id: str, incident_id: int, what: str, *, by: str) -> Handoff:
        """The agency's work on the report is finished; ``what`` says what was done."""
        handoff = await self.handoff(agency_id, incident_id)
        check_action(handoff, EventKind.DONE)
        if not what.strip():
            raise Refusal("what: say what was done (e.g. 'power line repaired, area safe')")
        at = await self._record(handoff, EventKind.DONE, by, what.strip())
        for d in handoff.dispatches:
            if d.is_open:
                await self.incidents.close_dispatch(incident_id, by=by, dispatch_id=d.id)
        others = [h for h in await self.handoffs_of_incident(incident_id) if h.agency_id != agency_id]
        incident = await self.incidents.get(incident_id)
        if incident.status is not IncidentStatus.DONE and not any(h.is_open for h in others):
            await self.incidents.set_status(incident_id, IncidentStatus.DONE, by=by,
                                            note=f"{agency_id}: {what.strip()}")
        log.info("agencies.done", incident=incident_id, agency=agency_id, at=at.isoformat())
        return await self._changed(agency_id, incident_id, "done")

    async def handoffs_of_incident(self, incident_id: int) -> list[Handoff]:
        found = await self.incidents.list(ids=[incident_id])
        return handoffs_of(found[0], await self._store.events([incident_id])) if found else []

    # -- deadlines --------------------------------------------------------------------------------
    async def sweep(self) -> list[Escalation]:
        """Escalate every open hand-off past a deadline that was not escalated yet: tell who it concerns
        (the notifier), then record when and whom."""
        now = self._clock()
        due = to_escalate(await self.handoffs(), self.policy, now, await self._store.escalated_keys())
        made: list[Escalation] = []
        for overdue in due:
            told = await self.notifier(overdue) if self.notifier is not None else []
            if await self._store.add_escalation(overdue, now, told):
                made.append(Escalation(overdue.incident_id, overdue.agency_id, overdue.stage, overdue.due_at,
                                       now, tuple(told)))
                log.warning("agencies.overdue", incident=overdue.incident_id, agency=overdue.agency_id,
                            stage=overdue.stage.value, due=overdue.due_at.isoformat(), notified=told)
        await self._conn.commit()
        return made
