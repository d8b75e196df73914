"""``/api/agency``: an agency's desk (its own reports only) and the centre's view of hand-offs.

Agency accounts (role ``agency``) list the open reports handed to their agency, acknowledge them, add
notes, record en route / on scene and mark them done with what was done. Asking for a report handed to
another agency is 403 (audited). Every instant is the engine's clock; every action is audited. The
caller's number is shown only when the site file's ``[agencies] show_caller_number`` allows it.
Supervisors and admins see the overdue hand-offs (who was told, when) and the open backlog per agency.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field

from callflow.agencies import (
    AgencyDesk,
    Handoff,
    HandoffStore,
    NotHanded,
    Refusal,
    Stage,
    caller_number_shown,
    overdue,
)
from callflow.centre import CENTRE_TIMEZONE
from callflow.console.accounts import Session
from callflow.console.audit import AuditAction, AuditOutcome
from callflow.console.providers import Refused
from callflow.console.roles import AGENCIES, WATCHERS
from callflow.console.security import client_address, context, require
from callflow.incidents import CATEGORIES, DispatchState
from callflow.reports.agencies import agency_report, open_count, report_as_dict

router = APIRouter(prefix="/api/agency", tags=["agencies"])

AgencyUser = Annotated[Session, Depends(require(AGENCIES, audited=AuditAction.AGENCY_VIEW))]
Watcher = Annotated[Session, Depends(require(WATCHERS))]
ReportId = Annotated[int, Path(ge=1, le=2**62)]


class NoteView(BaseModel):
    at: datetime
    by: str
    text: str


class UnitStep(BaseModel):
    unit_id: str
    unit_name: str
    state: str


class AgencyReport(BaseModel):
    id: int
    agency_id: str
    category: str
    category_label: str
    category_class: str
    district: str
    address: str
    notes: str
    status: str
    created_at: datetime
    handed_at: datetime
    acknowledged_at: datetime | None
    en_route_at: datetime | None
    on_scene_at: datetime | None
    done_at: datetime | None
    done_note: str
    acknowledge_due: datetime
    done_due: datetime
    overdue: list[str]
    caller_number: str | None = Field(description="only when the site allows agencies to see it")
    units: list[UnitStep]
    progress: list[NoteView]


def report_view(h: Handoff, desk: AgencyDesk, now: datetime) -> AgencyReport:
    i = h.incident
    info = CATEGORIES[i.category]
    return AgencyReport(
        id=i.id, agency_id=h.agency_id, category=i.category.value, category_label=info.label_en,
        category_class=info.category_class.value, district=i.district.value, address=i.address,
        notes=i.notes, status=i.status.value, created_at=i.created_at, handed_at=h.handed_at,
        acknowledged_at=h.acknowledged_at, en_route_at=h.en_route_at, on_scene_at=h.on_scene_at,
        done_at=h.done_at, done_note=h.done_note, acknowledge_due=h.due(desk.policy, Stage.ACKNOWLEDGE),
        done_due=h.due(desk.policy, Stage.DONE),
        overdue=[o.stage.value for o in overdue(h, desk.policy, now)],
        caller_number=caller_number_shown(h, desk.policy),
        units=[UnitStep(unit_id=d.unit_id, unit_name=d.unit_name, state=d.state.value) for d in h.dispatches],
        progress=[NoteView(at=e.at, by=e.by, text=e.note) for e in h.notes])


class NoteRequest(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


class StepRequest(BaseModel):
    state: Literal["en_route", "on_scene"]


class DoneRequest(BaseModel):
    what: str = Field(min_length=1, max_length=2000, description="what was done")


def _agency(session: Session) -> str:
    agency = session.user.agency_id
    if agency is None:  # the table's CHECK makes this impossible; refuse rather than show everything
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this account is bound to no agency")
    return agency


async def _audited(request: Request, session: Session, action: AuditAction, report_id: int,
                   work: Awaitable[Handoff], *, detail: str = "") -> AgencyReport:
    """Run ``work`` (an awaitable giving the hand-off) and audit it: ok, denied (not this agency's
    report: 403) or failed (the hand-off's state refuses it: 409)."""
    ctx = context(request)
    desk = ctx.providers.agencies.desk
    where = {"target": f"report:{report_id}", "address": client_address(request)}
    try:
        handoff = await work
    except NotHanded as exc:
        await ctx.audit.record(session.user.name, action, AuditOutcome.DENIED, **where,
                               detail=f"agency={_agency(session)}")
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    except Refusal as exc:
        await ctx.audit.record(session.user.name, action, AuditOutcome.FAILED, **where, detail=str(exc))
        field, _, message = str(exc).partition(": ")
        if not message or " " in field:
            field, message = "report_id", str(exc)
        raise Refused(field, message, status.HTTP_409_CONFLICT) from exc
    await ctx.audit.record(session.user.name, action, AuditOutcome.OK, **where,
                           detail=f"agency={handoff.agency_id}{' ' + detail if detail else ''}")
    return report_view(handoff, desk, ctx.clock())


@router.get("/reports", response_model=list[AgencyReport])
async def my_reports(request: Request, session: AgencyUser) -> list[AgencyReport]:
    """The open reports handed to the account's agency, oldest first."""
    ctx = context(request)
    desk = ctx.providers.agencies.desk
    now = ctx.clock()
    return [report_view(h, desk, now) for h in await desk.handoffs(_agency(session))]


@router.get("/reports/{report_id}", response_model=AgencyReport)
async def one_report(report_id: ReportId, request: Request, session: AgencyUser) -> AgencyReport:
    desk = context(request).providers.agencies.desk
    return await _audited(request, session, AuditAction.AGENCY_VIEW, report_id,
                          desk.handoff(_agency(session), report_id))


@router.post("/reports/{report_id}/acknowledge", response_model=AgencyReport)
async def acknowledge(report_id: ReportId, request: Request, session: AgencyUser) -> AgencyReport:
    desk = context(request).providers.agencies.desk
    return await _audited(request, session, AuditAction.AGENCY_ACKNOWLEDGE, report_id,
                          desk.acknowledge(_agency(session), report_id, by=session.user.name))


@router.post("/reports/{report_id}/notes", response_model=AgencyReport)
async def add_note(report_id: ReportId, body: NoteRequest, request: Request,
                   session: AgencyUser) -> AgencyReport:
    desk = context(request).providers.agencies.desk
    return await _audited(request, session, AuditAction.AGENCY_NOTE, report_id,
                          desk.add_note(_agency(session), report_id, body.text, by=session.user.name))


@router.post("/reports/{report_id}/step", response_model=AgencyReport)
async def step(report_id: ReportId, body: StepRequest, request: Request, session: AgencyUser) -> AgencyReport:
    """En route or on scene, stamped by the engine's clock."""
    desk = context(request).providers.agencies.desk
    return await _audited(request, session, AuditAction.AGENCY_STEP, report_id,
                          desk.step(_agency(session), report_id, DispatchState(body.state),
                                    by=session.user.name), detail=f"state={body.state}")


@router.post("/reports/{report_id}/done", response_model=AgencyReport)
async def done(report_id: ReportId, body: DoneRequest, request: Request, session: AgencyUser) -> AgencyReport:
    desk = context(request).providers.agencies.desk
    return await _audited(request, session, AuditAction.AGENCY_DONE, report_id,
                          desk.done(_agency(session), report_id, body.what, by=session.user.name))


class EscalationView(BaseModel):
    report_id: int
    agency_id: str
    agency_name: str
    stage: str
    due_at: datetime
    escalated_at: datetime
    notified: list[str]
    still_open: bool


class BacklogRow(BaseModel):
    agency_id: str
    agency_name: str
    open: int
    overdue: int


@router.get("/overdue", response_model=list[EscalationView])
async def overdue_handoffs(request: Request, _: Watcher) -> list[EscalationView]:
    """Escalated hand-offs, newest first: the stage missed, its deadline, when it was escalated and who
    was told; ``still_open``: the agency has not finished it yet."""
    desk = context(request).providers.agencies.desk
    names = await desk.incidents.agency_names()
    open_now = {(h.incident.id, h.agency_id) for h in await desk.handoffs()}
    return [EscalationView(report_id=e.incident_id, agency_id=e.agency_id,
                           agency_name=names.get(e.agency_id, e.agency_id), stage=e.stage.value,
                           due_at=e.due_at, escalated_at=e.escalated_at, notified=list(e.notified),
                           still_open=(e.incident_id, e.agency_id) in open_now)
            for e in reversed(await desk.escalations())]


@router.get("/backlog", response_model=list[BacklogRow])
async def backlog(request: Request, _: Watcher) -> list[BacklogRow]:
    """Open hand-offs per agency (the wallboard's panel), most open first."""
    ctx = context(request)
    desk = ctx.providers.agencies.desk
    names = await desk.incidents.agency_names()
    now = ctx.clock()
    handoffs = await desk.handoffs()
    late: dict[str, int] = {}
    for h in handoffs:
        late[h.agency_id] = late.get(h.agency_id, 0) + bool(overdue(h, desk.policy, now))
    counts = open_count(handoffs, now)  # the report's definition (callflow/reports/agencies.py)
    return [BacklogRow(agency_id=a, agency_name=names.get(a, a), open=n, overdue=late.get(a, 0))
            for a, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


class AttemptView(BaseModel):
    attempt: int
    at: datetime
    status: int | None
    error: str
    duration_ms: float


class DeliveryView(BaseModel):
    id: int
    agency_id: str
    report_id: int
    reason: str
    created_at: datetime
    state: str
    next_attempt_at: datetime | None
    attempts: list[AttemptView]


@router.get("/deliveries", response_model=list[DeliveryView])
async def deliveries(request: Request, _: Watcher,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[DeliveryView]:
    """Messages to agencies' own systems, newest first, with every attempt (status or error)."""
    service = context(request).providers.agencies
    store = HandoffStore(service.desk_connection)
    messages = await store.messages(limit=limit)
    attempts: dict[int, list[AttemptView]] = {}
    for a in await store.attempts([m.id for m in messages]):
        attempts.setdefault(a.outbox_id, []).append(AttemptView(attempt=a.attempt, at=a.at, status=a.status,
                                                                error=a.error, duration_ms=a.duration_ms))
    return [DeliveryView(id=m.id, agency_id=m.agency_id, report_id=m.incident_id, reason=m.reason,
                         created_at=m.created_at, state=m.state.value, next_attempt_at=m.next_attempt_at,
                         attempts=attempts.get(m.id, [])) for m in messages]


@router.get("/report")
async def agency_figures(request: Request, _: Watcher, start: datetime, end: datetime) -> dict[str, Any]:
    """``siaga112 report agencies`` for the reports created in ``[start, end)``: completion per agency and
    category against the 60 % goal, time to acknowledge and to done, backlog by age now, trend by month
    (callflow/reports/agencies.py defines each figure)."""
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "start/end: give a time zone (e.g. 2026-11-01T00:00:00+08:00); end after start")
    ctx = context(request)
    desk = ctx.providers.agencies.desk
    handoffs = await desk.handoffs(open_only=False, since=start, until=end)
    zone = ctx.timezone if isinstance(ctx.timezone, ZoneInfo) else ZoneInfo(CENTRE_TIMEZONE)
    return report_as_dict(agency_report(handoffs, desk.policy, ctx.clock(), zone))
