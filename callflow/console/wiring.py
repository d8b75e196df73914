"""The console's real providers over the engine's one shared store (settings.database).

Each adapter reads (or, for incidents, writes through :class:`IncidentService`) the tables another
component owns; none keeps state of its own. Connections open when the console starts
(:meth:`StoreConnection.start`) and close when it stops; before that a provider answers
:class:`ProviderUnavailable`, never made-up data.

* calls: the call tracker's stored records (``calls_records``),
* incidents and dispatch: :class:`callflow.incidents.IncidentService` (its own connection: its write
  transactions never mix with other writes),
* reports: the summary of :mod:`callflow.reports` and the call records as CSV,
* recordings: the recordings index (``recordings_files``) and the files under the recordings root.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog

from callflow.agencies import SCHEMA as AGENCIES_SCHEMA
from callflow.agencies import HandoffPolicy
from callflow.ami.client import Clock, utc_now
from callflow.calls.export import export_csv
from callflow.calls.model import CallRecord
from callflow.calls.nature import Nature, natures_of, prank_counts, tag_call
from callflow.calls.records import load_records, record_from_dict
from callflow.calls.tracker import SCHEMAS as CALL_SCHEMAS
from callflow.centre import CENTRE_TIMEZONE
from callflow.console import catalog
from callflow.console.agency_wiring import AgencyDeskService
from callflow.console.models import (
    AnswerStats,
    DispatchStepState,
    DispatchView,
    Incident,
    IncidentDraft,
    NatureTagView,
    NuisanceHourView,
    PrankCountsView,
    RecordingInfo,
    RepeatNumberView,
    ReportSummary,
    UnitView,
)
from callflow.console.providers import (
    CALLS,
    INCIDENTS,
    RECORDINGS,
    REPORTS,
    NotFound,
    Providers,
    ProviderUnavailable,
    RecordingFile,
    Refused,
)
from callflow.incidents import SCHEMA as INCIDENTS_SCHEMA
from callflow.incidents import model as incident_model
from callflow.incidents.errors import DispatchError, IllegalTransition, IncidentError, IncidentNotFound
from callflow.incidents.registry import AgencyRegistry, Unit, suggest_unit
from callflow.incidents.service import IncidentService
from callflow.reports.measures import CallbackTaskFacts, answer_times, callback_measures, nuisance_measures
from callflow.reports.render import as_dict
from callflow.reports.sources import REPORT_SCHEMAS, StoredCentre, callback_facts
from callflow.reports.summary import Period, SummaryConfig, build_summary
from callflow.store import Database, Schema, StoreLocation, open_database
from recordings.index import SCHEMA as RECORDING_SCHEMA
from recordings.index import Recording, RecordingIndex, RecordingStatus

log = structlog.get_logger("callflow.console.wiring")

MEDIA_TYPES = {"wav": "audio/wav", "gsm": "audio/x-gsm", "ogg": "audio/ogg", "mp3": "audio/mpeg"}
DOWNLOADABLE = (RecordingStatus.OK, RecordingStatus.ALTERED)


class Resource(Protocol):
    """Something the console opens when it starts and closes when it stops."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class StoreConnection:
    """One connection to the shared store, with the schemas its readers need applied."""

    def __init__(self, path: StoreLocation, schemas: Sequence[Schema], component: str) -> None:
        self.path = path
        self.schemas = list(schemas)
        self.component = component
        self._conn: Database | None = None

    async def start(self) -> None:
        if self._conn is None:
            self._conn = await open_database(self.path, self.schemas)

    async def stop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    @property
    def conn(self) -> Database:
        if self._conn is None:
            raise ProviderUnavailable(self.component, f"{self.component}: the store at {self.path} is not "
                                                      "open (the console is starting or stopping)")
        return self._conn


# -- calls -------------------------------------------------------------------------------------------
def answer_stats(records: Sequence[CallRecord], callbacks: Sequence[CallbackTaskFacts],
                 since: datetime, natures: Mapping[str, str] | None = None, *, zone: tzinfo = UTC,
                 show_numbers: bool = False) -> AnswerStats:
    """The wallboard's figures since ``since``, as callflow/reports/measures.py defines them; hours in
    ``zone`` (the centre's), the top repeat numbers masked unless ``show_numbers`` (supervisors)."""
    a = answer_times(records)
    c = callback_measures(callbacks)
    n = nuisance_measures(records, natures or {}, lambda r: f"{r.arrival.astimezone(zone).hour:02d}")
    g = n.genuine
    return AnswerStats(since=since, citizen_calls=a.citizen_calls, short_abandons=a.short_abandons,
                       offered=a.offered, answered=a.answered, within_10s=a.answered_within[10],
                       within_15s=a.answered_within[15], within_20s=a.answered_within[20],
                       abandoned=a.abandoned, unanswered=a.unanswered, p50_s=a.percentiles_s[50],
                       p90_s=a.percentiles_s[90], callback_tasks=c.tasks, callback_attempts=c.attempts,
                       callback_citizens_reached=c.citizens_reached, genuine_offered=g.offered,
                       genuine_answered=g.answered, genuine_within_10s=g.answered_within[10],
                       genuine_within_15s=g.answered_within[15], genuine_within_20s=g.answered_within[20],
                       genuine_p50_s=g.percentiles_s[50],
                       nuisance_by_hour={h: NuisanceHourView(nuisance=v.nuisance, calls=v.calls,
                                                             share=v.share) for h, v in n.by_hour.items()},
                       top_repeat_numbers=[RepeatNumberView(number=num, nuisance_calls=k)
                                           for num, k in n.top(show_numbers=show_numbers)],
                       numbers_masked=not show_numbers)


class StoredCalls:
    """The call tracker's finished call records (a call shows here once it has ended)."""

    def __init__(self, store: StoreConnection, *, clock: Clock = utc_now) -> None:
        self.store = store
        self.clock = clock

    async def _select(self, sql: str, args: Sequence[object]) -> list[CallRecord]:
        async with self.store.conn.execute(sql, args) as cur:
            return [record_from_dict(json.loads(r[0])) for r in await cur.fetchall()]

    async def recent(self, limit: int) -> Sequence[CallRecord]:
        return await self._select("SELECT record FROM calls_records ORDER BY arrival DESC, linkedid DESC "
                                  "LIMIT ?", (limit,))

    async def from_number(self, number: str, since: datetime) -> Sequence[CallRecord]:
        """Newest first; the arrival index narrows the rows before the number is compared."""
        return await self._select(
            "SELECT record FROM calls_records WHERE arrival >= ? "
            "AND json_extract(record, '$.caller_number') = ? ORDER BY arrival DESC, linkedid DESC",
            (since.astimezone(UTC).isoformat(timespec="microseconds"), number))

    async def answer_stats(self, since: datetime, *, zone: tzinfo = UTC, show_numbers: bool = False
                           ) -> AnswerStats:
        conn = self.store.conn
        records = await load_records(conn, since=since)
        return answer_stats(records, await callback_facts(conn, since, None), since,
                            await self.natures([r.linkedid for r in records]), zone=zone,
                            show_numbers=show_numbers)

    async def natures(self, linkedids: Sequence[str]) -> Mapping[str, str]:
        return {lid: str(t.nature) for lid, t in (await natures_of(self.store.conn, linkedids)).items()}

    async def tag(self, linkedid: str, nature: Nature, caller_number: str, by: str) -> NatureTagView:
        """Tag a call's nature; its number from the stored record, else (still live) the screen's."""
        found = await load_records(self.store.conn, linkedid=linkedid)
        number = found[0].caller_number if found else caller_number
        if not number:
            raise Refused("caller_number", f"no stored record for call {linkedid}: send the caller's "
                                  "number with the tag (the call is still live), or tag it after it ends")
        t = await tag_call(self.store.conn, linkedid=linkedid, caller_number=number, nature=nature, by=by,
                           at=self.clock())
        return NatureTagView(linkedid=t.linkedid, caller_number=t.caller_number, nature=str(t.nature),
                             tagged_by=t.tagged_by, tagged_at=t.tagged_at)

    async def prank_counts(self, number: str) -> PrankCountsView:
        counts = await prank_counts(self.store.conn, number, self.clock())
        return PrankCountsView(number=number, last_24h=counts.day, last_30d=counts.month)


# -- incidents and dispatch --------------------------------------------------------------------------
def _incident_id(text: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise NotFound(f"incident_id: no incident {text!r} (incident ids are numbers, e.g. 12)")
    return int(text)


def incident_view(i: incident_model.Incident) -> Incident:
    dispatches = [DispatchView(id=d.id, unit_id=d.unit_id, unit_name=d.unit_name, agency_type=d.agency_type,
                               state=d.state.value, dispatched_at=d.dispatched_at, en_route_at=d.en_route_at,
                               on_scene_at=d.on_scene_at, closed_at=d.closed_at, example_data=d.example)
                  for d in i.dispatches]
    return Incident(id=str(i.id), category=catalog.Category(i.category.value),
                    district=catalog.District(i.district.value),
                    status=catalog.IncidentStatus(i.status.value), notes=i.notes, address=i.address,
                    linkedid=i.linkedids[0] if i.linkedids else None, caller_number=i.caller_number or None,
                    created_at=i.created_at, created_by=i.created_by,
                    dispatched_to=[d.unit_id for d in i.dispatches], dispatches=dispatches,
                    linkedids=list(i.linkedids))


def _dispatch_id(text: str, incident: int) -> int:
    if not text.isdigit() or len(text) > 18:
        raise NotFound(f"dispatch_id: incident #{incident} has no dispatch {text!r} (dispatch ids are "
                       "numbers: the incident's dispatches[].id in GET /api/incidents)")
    return int(text)


STEP_ORDER = ("steps go dispatched -> en route -> on scene -> closed, forward only, and en route or on scene "
              "may be skipped: reload the incident list to see the dispatch's current step")


class ServiceIncidents:
    """Incidents, status and dispatch through :class:`IncidentService`: each write is one transaction,
    checked against the stored state; a refusal changes nothing and names the field."""

    def __init__(self, store: StoreConnection, calls: StoredCalls, *, clock: Clock = utc_now,
                 registry: AgencyRegistry | None = None) -> None:
        self.store = store
        self.calls = calls
        self.clock = clock
        self.registry = registry
        self._service: IncidentService | None = None
        self.notify: Callable[[dict[str, Any]], None] | None = None  # the console's live stream

    def _changed(self, incident: Incident, change: str) -> Incident:
        if self.notify is not None:
            self.notify({"type": "incident.changed", "at": self.clock().isoformat(), "id": incident.id,
                         "change": change, "status": incident.status.value,
                         "caller": incident.caller_number or "", "linkedid": incident.linkedid or ""})
        return incident

    async def start(self) -> None:
        await self.store.start()
        self._service = IncidentService(self.store.conn, clock=self.clock)
        if self.registry is not None:
            await self._service.load_registry(self.registry)

    async def stop(self) -> None:
        self._service = None
        await self.store.stop()

    @property
    def service(self) -> IncidentService:
        if self._service is None:
            raise ProviderUnavailable(INCIDENTS, f"{INCIDENTS}: the store is not open (the console is "
                                                 "starting or stopping)")
        return self._service

    async def incidents(self, *, status: catalog.IncidentStatus | None, caller_number: str | None,
                        since: datetime | None) -> Sequence[Incident]:
        """Newest first."""
        linkedids: list[str] = []
        if caller_number is not None:
            window = since or self.clock() - timedelta(days=366)
            linkedids = [r.linkedid for r in await self.calls.from_number(caller_number, window)]
        found = await self.service.list(
            status=incident_model.IncidentStatus(status.value) if status is not None else None,
            since=since, caller_number=caller_number, linkedids=linkedids)
        units, busy = await self.service.units(), await self.service.busy_units()
        return [self._suggesting(incident_view(i), i, units, busy) for i in reversed(found)]

    @staticmethod
    def _suggesting(view: Incident, incident: incident_model.Incident, units: Sequence[Unit],
                    busy: set[str]) -> Incident:
        if incident.status is incident_model.IncidentStatus.DONE:
            return view
        unit = suggest_unit(list(units), incident.category, incident.district, busy)
        return view.model_copy(update={"suggested_unit": unit.id if unit is not None else None})

    async def create(self, draft: IncidentDraft, by: str) -> Incident:
        try:
            created = await self.service.create(
                category=draft.category.value, district=draft.district.value, by=by, address=draft.address,
                notes=draft.notes, linkedids=[draft.linkedid] if draft.linkedid else (),
                caller_number=draft.caller_number or "")
        except IncidentError as exc:
            raise Refused("body", str(exc), 422) from exc
        return self._changed(incident_view(created), "created")

    async def dispatch(self, incident_id: str, unit: str, by: str) -> Incident:
        number = _incident_id(incident_id)
        try:
            current = await self.service.get(number)
            if current.status is incident_model.IncidentStatus.DONE:
                raise Refused("incident_id", f"incident #{number} is done (closed); a closed incident cannot "
                                             "be dispatched. Create a new incident if help is needed again")
            await self.service.dispatch(number, by=by, unit_id=unit)
        except IncidentNotFound as exc:
            raise NotFound(f"incident_id: {exc}") from exc
        except DispatchError as exc:
            raise Refused("unit", str(exc).replace("`siaga112 incidents units`", "GET /api/units")) from exc
        return self._changed(incident_view(await self.service.get(number)), "dispatched")

    async def set_status(self, incident_id: str, status: catalog.IncidentStatus, by: str) -> Incident:
        number = _incident_id(incident_id)
        try:
            changed = await self.service.set_status(number, status.value, by=by)
        except IncidentNotFound as exc:
            raise NotFound(f"incident_id: {exc}") from exc
        except (IllegalTransition, DispatchError) as exc:
            raise Refused("status", str(exc)) from exc
        return self._changed(incident_view(changed), "status")

    async def dispatch_step(self, incident_id: str, dispatch_id: str, state: DispatchStepState,
                            by: str) -> Incident:
        """En route, on scene or closed, stamped by the service's clock (never a client's time)."""
        number = _incident_id(incident_id)
        dispatch = _dispatch_id(dispatch_id, number)
        what = state.value.replace("_", " ")
        try:
            current = await self.service.get(number)
            found = next((d for d in current.dispatches if d.id == dispatch), None)
            if found is None:
                shown = ", ".join(f"{d.id} ({d.unit_id})" for d in current.dispatches) or "none yet"
                raise NotFound(f"dispatch_id: incident #{number} has no dispatch {dispatch} (its dispatches: "
                               f"{shown}); reload the incident list")
            if current.status is incident_model.IncidentStatus.DONE:
                raise Refused("incident_id", f"incident #{number} is done (closed), and its dispatches with "
                                             f"it; dispatch {dispatch} cannot be marked {what}. Create a new "
                                             "incident if help is needed again")
            if not found.is_open:
                raise Refused("dispatch_id", f"dispatch {dispatch} ({found.unit_id}) is closed; it cannot be "
                                             f"marked {what}. Dispatch the unit again if it is needed")
            step = {DispatchStepState.EN_ROUTE: self.service.en_route,
                    DispatchStepState.ON_SCENE: self.service.arrive,
                    DispatchStepState.CLOSED: self.service.close_dispatch}[state]
            await step(number, by=by, dispatch_id=dispatch)
        except IncidentNotFound as exc:
            raise NotFound(f"incident_id: {exc}") from exc
        except DispatchError as exc:
            raise Refused("state", f"{exc} ({STEP_ORDER})") from exc
        return self._changed(incident_view(await self.service.get(number)), f"dispatch_{state.value}")

    async def units(self) -> Sequence[UnitView]:
        busy = await self.service.busy_units()
        return [UnitView(id=u.id, name=u.name, agency_name=u.agency_name, type=u.agency_type.value,
                         district=u.district.value, busy=u.id in busy, example_data=u.example,
                         serves=[c for c in catalog.Category if u.serves(c)])
                for u in await self.service.units()]


# -- reports -----------------------------------------------------------------------------------------
def _numbers(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _numbers(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and "id" in item:
                _numbers(f"{prefix}.{item['id']}", {k: v for k, v in item.items() if k != "id"}, out)
    elif isinstance(value, int | float):  # bools too (meets_goal -> 1.0)
        out[prefix] = float(value)


class StoreReports:
    """The summary of :mod:`callflow.reports` over a period of instants, and the period's call records."""

    def __init__(self, incidents: ServiceIncidents, store: StoreConnection, zone: tzinfo,
                 timezone_name: str) -> None:
        self.incidents = incidents
        self.store = store
        self.zone = zone
        self.timezone_name = timezone_name

    async def summary(self, start: datetime, end: datetime) -> ReportSummary:
        incidents = await self.incidents.service.list(since=start, until=end)
        source = StoredCentre(self.store.conn)
        calls = await source.between(start, end)
        linked = {c.linkedid: c for c in calls}
        for incident in incidents:
            for lid in incident.linkedids:
                if lid not in linked and (record := await source.get(lid)) is not None:
                    linked[lid] = record
        period = Period(start.astimezone(self.zone).date(),
                        (end - timedelta(microseconds=1)).astimezone(self.zone).date(), self.timezone_name)
        report = build_summary(period, incidents, calls, linked, SummaryConfig(timezone=self.timezone_name),
                               callbacks=await source.callbacks(start, end),
                               natures=await source.natures([c.linkedid for c in calls]))
        figures: dict[str, float] = {}
        data = as_dict(report, show_numbers=True)  # the route is for supervisors only
        for key in ("total", "classes", "categories", "status", "completion", "answer_time",
                    "answer_to_dispatch", "response", "callbacks", "genuine", "nuisance_by_hour"):
            _numbers(key, data[key], figures)
        figures["calls"] = float(len(calls))
        return ReportSummary(start=start, end=end, figures=figures, notes=list(report.notes),
                             top_repeat_numbers=[RepeatNumberView(**t) for t in data["top_repeat_numbers"]])

    async def export_csv(self, start: datetime, end: datetime) -> bytes:
        """The CSV of ``siaga112 calls export`` (formula cells quoted there, :mod:`callflow.csvsafe`), with
        the operators' tags."""
        records = await load_records(self.store.conn, since=start, until=end)
        tags = {lid: str(t.nature) for lid, t in (await natures_of(self.store.conn,
                                                                   [r.linkedid for r in records])).items()}
        return export_csv(records, tags).encode("utf-8")


# -- recordings --------------------------------------------------------------------------------------
def recording_info(r: Recording) -> RecordingInfo:
    return RecordingInfo(id=str(r.id), linkedid=r.linkedid, started_at=r.made_at, duration_s=r.duration_s,
                         size_bytes=r.size_bytes or 0,
                         media_type=MEDIA_TYPES.get(r.format, "application/octet-stream"),
                         status=str(r.status), call_class=r.call_class)


class IndexedRecordings:
    """The recordings index and its files; a download is also written to the recording's own audit trail."""

    def __init__(self, store: StoreConnection, root: Path, *, clock: Clock = utc_now,
                 limit: int = 200) -> None:
        self.store = store
        self.root = root
        self.clock = clock
        self.limit = limit

    async def recordings(self, linkedid: str | None) -> Sequence[RecordingInfo]:
        """Newest first (at most ``limit`` without a linkedid)."""
        found = await RecordingIndex(self.store.conn).find(linkedid=linkedid,
                                                             limit=None if linkedid else self.limit)
        return [recording_info(r) for r in found]

    async def open(self, recording_id: str, by: str) -> RecordingFile:
        if not recording_id.isdigit() or len(recording_id) > 18:
            raise NotFound(f"recording_id: no recording {recording_id!r} (recording ids are numbers)")
        index = RecordingIndex(self.store.conn)
        rec = await index.get(int(recording_id))
        if rec is None:
            raise NotFound(f"recording_id: no recording {recording_id!r}")
        if rec.status not in DOWNLOADABLE:
            raise Refused("recording_id", f"recording {rec.id} is {rec.status}"
                                          f"{' (' + rec.problem + ')' if rec.problem else ''}: there is no "
                                          "file to download")
        root = self.root.resolve()
        path = rec.path.resolve()
        if not path.is_relative_to(root):
            log.warning("console.recording_outside_root", recording_id=rec.id, root=str(root))
            raise Refused("recording_id", f"recording {rec.id}'s file is outside the recordings root "
                                          f"{root}; it is not served (check the index with "
                                          "`siaga112 recordings verify`)")
        if not path.is_file():
            raise Refused("recording_id", f"recording {rec.id}'s file is missing from {root}; run "
                                          "`siaga112 recordings verify` and restore it from a backup")
        await index.audit(rec.id, at=self.clock(), action="download", by_whom=by,
                          reason="console download", detail=path.name)
        return RecordingFile(path, MEDIA_TYPES.get(rec.format, "application/octet-stream"), path.name)


# -- all of them -------------------------------------------------------------------------------------
STORE_SCHEMAS: tuple[Schema, ...] = (*REPORT_SCHEMAS, INCIDENTS_SCHEMA, AGENCIES_SCHEMA, RECORDING_SCHEMA)


async def prepare_store(database: StoreLocation) -> None:
    """Create or migrate the tables the providers read, once, before the engine's components start:
    the recorder and the console would otherwise both create ``recordings_*`` on a new database at the
    same moment. Raises StoreError (file untouched) for a foreign or corrupt file."""
    conn = await open_database(database, STORE_SCHEMAS)
    await conn.close()


@dataclass
class StoreWiring:
    providers: Providers
    resources: list[Resource]  # start with the console, stop after it
    incidents: ServiceIncidents  # set ``incidents.notify`` to publish incident changes live
    agencies: AgencyDeskService  # set ``agencies.publish`` to publish hand-off changes and escalations


def store_providers(database: StoreLocation, *, recordings_root: Path, clock: Clock = utc_now,
                    timezone_name: str = CENTRE_TIMEZONE, zone: tzinfo | None = None,
                    registry: AgencyRegistry | None = None,
                    handoffs: HandoffPolicy | None = None) -> StoreWiring:
    """Calls, incidents (with dispatch), reports and recordings over ``database``; the resources to
    start with the console. Queue status is wired by the console itself (it needs the AMI session);
    operators and callbacks keep their stand-ins until their component replaces them."""
    reads = StoreConnection(database, STORE_SCHEMAS, CALLS)
    writes = StoreConnection(database, [*CALL_SCHEMAS, INCIDENTS_SCHEMA], INCIDENTS)
    calls = StoredCalls(reads, clock=clock)
    incidents = ServiceIncidents(writes, calls, clock=clock, registry=registry)
    reports = StoreReports(incidents, reads, zone or ZoneInfo(timezone_name), timezone_name)
    recordings = IndexedRecordings(reads, recordings_root, clock=clock)
    agencies = AgencyDeskService(
        lambda: open_database(database, [*CALL_SCHEMAS, INCIDENTS_SCHEMA, AGENCIES_SCHEMA]), incidents,
        handoffs or HandoffPolicy(), clock=clock)
    providers = Providers(calls=calls, incidents=incidents, reports=reports, recordings=recordings,
                          agencies=agencies)
    return StoreWiring(providers, [reads, incidents, agencies], incidents, agencies)


__all__ = [
    "DOWNLOADABLE",
    "INCIDENTS",
    "RECORDINGS",
    "REPORTS",
    "STORE_SCHEMAS",
    "IndexedRecordings",
    "Resource",
    "ServiceIncidents",
    "StoreConnection",
    "StoreReports",
    "StoreWiring",
    "StoredCalls",
    "answer_stats",
    "incident_view",
    "prepare_store",
    "recording_info",
    "store_providers",
]
