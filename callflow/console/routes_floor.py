"""The floor's API: live queues, operators, calls, incidents and callbacks, and the form's catalog."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, status

from callflow.console.accounts import Session
from callflow.console.catalog import IncidentStatus, catalog_view
from callflow.console.context import start_of_day
from callflow.console.models import (
    NUMBER_PATTERN,
    AnswerStats,
    Callback,
    CallSummary,
    DispatchRequest,
    DispatchStepRequest,
    Incident,
    IncidentDraft,
    NatureChange,
    NatureTagView,
    OperatorStatus,
    PrankCountsView,
    QueueBoard,
    StateChange,
    StatusChangeRequest,
    UnitView,
)
from callflow.console.roles import ANY_ROLE, FLOOR, OPERATORS, Role
from callflow.console.security import context, require

router = APIRouter(prefix="/api", tags=["floor"])

AnyUser = Annotated[Session, Depends(require(ANY_ROLE))]
FloorUser = Annotated[Session, Depends(require(FLOOR))]
Operator = Annotated[Session, Depends(require(OPERATORS))]
IncidentId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_\-]+$")]
CallId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_.\-]+$")]
DispatchId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_\-]+$")]


@router.get("/catalog")
async def catalog(request: Request, _: AnyUser) -> dict[str, Any]:
    """The incident form's choices: the categories the site lists, the 11 districts, the three statuses."""
    return catalog_view(context(request).providers.categories())


@router.get("/queues", response_model=QueueBoard)
async def queues(request: Request, _: AnyUser) -> QueueBoard:
    """Callers waiting in each queue, straight from Asterisk."""
    return await context(request).providers.queues.board()


@router.get("/operators", response_model=list[OperatorStatus])
async def operators(request: Request, _: AnyUser) -> list[OperatorStatus]:
    return list(await context(request).providers.operators.operators())


@router.post("/operators/me/state", response_model=OperatorStatus)
async def set_my_state(body: StateChange, request: Request, session: Operator) -> OperatorStatus:
    """Ready, pause (with a reason) or wrap-up, for the operator who is logged in."""
    operator_id = session.user.operator_id or session.user.name
    return await context(request).providers.operators.set_state(operator_id, body.state, body.reason)


@router.get("/calls/recent", response_model=list[CallSummary])
async def recent_calls(request: Request, _: AnyUser,
                       limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[CallSummary]:
    calls = context(request).providers.calls
    records = await calls.recent(limit)
    tags = await calls.natures([r.linkedid for r in records])
    return [CallSummary.of(r, tags.get(r.linkedid, "")) for r in records]


@router.get("/calls/by-number/{number}", response_model=list[CallSummary])
async def calls_from_number(request: Request, _: AnyUser,
                            number: Annotated[str, Path(pattern=NUMBER_PATTERN)],
                            days: Annotated[int, Query(ge=1, le=90)] = 30) -> list[CallSummary]:
    """Earlier calls from one number (repeat callers, possible hoaxes): the last ``days`` days."""
    ctx = context(request)
    since = ctx.clock() - timedelta(days=days)
    records = await ctx.providers.calls.from_number(number, since)
    tags = await ctx.providers.calls.natures([r.linkedid for r in records])
    return [CallSummary.of(r, tags.get(r.linkedid, "")) for r in records]


@router.get("/calls/by-number/{number}/pranks", response_model=PrankCountsView)
async def pranks_from_number(request: Request, _: AnyUser,
                             number: Annotated[str, Path(pattern=NUMBER_PATTERN)]) -> PrankCountsView:
    """How many calls from this number operators tagged prank: last 24 hours and last 30 days."""
    return await context(request).providers.calls.prank_counts(number)


@router.post("/calls/{linkedid}/nature", response_model=NatureTagView)
async def tag_call_nature(linkedid: CallId, body: NatureChange, request: Request,
                          session: FloorUser) -> NatureTagView:
    """The operator's tag of the call's nature (genuine emergency, non-emergency, information, prank,
    silent, accidental, test); a later tag replaces it, every tag is kept with who and when."""
    return await context(request).providers.calls.tag(linkedid, body.nature, body.caller_number,
                                                      session.user.name)


@router.get("/calls/stats/today", response_model=AnswerStats)
async def answer_stats_today(request: Request, session: AnyUser) -> AnswerStats:
    """Offered, answered within 10/15/20 s, and abandoned calls since midnight; the same over genuine
    calls, the nuisance share by hour and the top repeat numbers (masked except for supervisors)."""
    ctx = context(request)
    return await ctx.providers.calls.answer_stats(start_of_day(ctx.clock(), ctx.timezone), zone=ctx.timezone,
                                                  show_numbers=session.user.role is Role.SUPERVISOR)


@router.get("/incidents", response_model=list[Incident])
async def incidents(request: Request, _: AnyUser,
                    status_: Annotated[IncidentStatus | None, Query(alias="status")] = None,
                    caller_number: Annotated[str | None, Query(pattern=NUMBER_PATTERN)] = None,
                    days: Annotated[int | None, Query(ge=1, le=366)] = None) -> list[Incident]:
    ctx = context(request)
    since = ctx.clock() - timedelta(days=days) if days else None
    return list(await ctx.providers.incidents.incidents(status=status_, caller_number=caller_number,
                                                        since=since))


@router.post("/incidents", response_model=Incident, status_code=status.HTTP_201_CREATED)
async def create_incident(body: IncidentDraft, request: Request, session: FloorUser) -> Incident:
    return await context(request).providers.incidents.create(body, session.user.name)


@router.post("/incidents/{incident_id}/dispatch", response_model=Incident)
async def dispatch_incident(incident_id: IncidentId, body: DispatchRequest, request: Request,
                            session: FloorUser) -> Incident:
    return await context(request).providers.incidents.dispatch(incident_id, body.unit, session.user.name)


@router.post("/incidents/{incident_id}/dispatches/{dispatch_id}/step", response_model=Incident)
async def dispatch_step(incident_id: IncidentId, dispatch_id: DispatchId, body: DispatchStepRequest,
                        request: Request, session: FloorUser) -> Incident:
    """Record a dispatched unit's next step (en route, on scene, closed) at the engine's clock: the times
    feed the centre's "dispatch -> on scene" measure. Forward only; a refusal (409) changes nothing."""
    return await context(request).providers.incidents.dispatch_step(incident_id, dispatch_id, body.state,
                                                                    session.user.name)


@router.post("/incidents/{incident_id}/status", response_model=Incident)
async def change_incident_status(incident_id: IncidentId, body: StatusChangeRequest, request: Request,
                                 session: FloorUser) -> Incident:
    return await context(request).providers.incidents.set_status(incident_id, body.status,
                                                                 session.user.name)


@router.get("/units", response_model=list[UnitView])
async def units(request: Request, _: AnyUser) -> list[UnitView]:
    """The agency units a dispatch can go to (the agency registry), busy ones flagged."""
    return list(await context(request).providers.incidents.units())


@router.get("/callbacks", response_model=list[Callback])
async def callbacks(request: Request, _: AnyUser, open_only: bool = True) -> list[Callback]:
    return list(await context(request).providers.callbacks.callbacks(open_only=open_only))
