"""The wallboard's thresholds (the alerts raised; a supervisor's acknowledgement, audited) and supervisors
listening in on an operator's live call with their own phone (listen, whisper, barge; every step audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from callflow.console.accounts import Session
from callflow.console.audit import AuditAction
from callflow.console.listen import ListenMode, ListenService
from callflow.console.listen import Session as ListenSession
from callflow.console.providers import ProviderUnavailable
from callflow.console.roles import SUPERVISORS, WATCHERS
from callflow.console.security import client_address, context, require
from callflow.console.thresholds import Alert, ThresholdWatch

router = APIRouter(prefix="/api", tags=["wallboard"])

Watcher = Annotated[Session, Depends(require(WATCHERS))]
Supervisor = Annotated[Session, Depends(require(SUPERVISORS))]
Listener = Annotated[Session, Depends(require(SUPERVISORS, audited=AuditAction.LISTEN))]
THRESHOLDS = "wallboard thresholds"


class AlertView(BaseModel):
    id: int
    kind: str
    raised_at: datetime
    detail: str
    active: bool
    acknowledged_by: str
    acknowledged_at: datetime | None
    cleared_at: datetime | None

    @classmethod
    def of(cls, a: Alert) -> AlertView:
        return cls(id=a.id, kind=a.kind.value, raised_at=a.raised_at, detail=a.detail, active=a.active,
                   acknowledged_by=a.acknowledged_by, acknowledged_at=a.acknowledged_at,
                   cleared_at=a.cleared_at)


def _watch(request: Request) -> ThresholdWatch:
    watch = context(request).thresholds
    if watch is None:
        raise ProviderUnavailable(THRESHOLDS, f"{THRESHOLDS}: not running (the console is starting)")
    return watch


@router.get("/thresholds", response_model=list[AlertView])
async def thresholds(request: Request, _: Watcher) -> list[AlertView]:
    """Active alerts (service level below target, an emergency caller waiting too long, a callback
    overdue), then those cleared in the last hour."""
    return [AlertView.of(a) for a in await _watch(request).alerts()]


@router.post("/thresholds/{alert_id}/ack", response_model=AlertView)
async def acknowledge(alert_id: Annotated[int, Path(ge=1)], request: Request,
                      session: Supervisor) -> AlertView:
    """A supervisor acknowledges an active alert (who and when are kept and audited); 409 when it ended or
    was acknowledged already."""
    acked = await _watch(request).acknowledge(alert_id, session.user.name, client_address(request))
    return AlertView.of(acked)


# -- nodes -------------------------------------------------------------------------------------------------
class NodeStatus(BaseModel):
    node: str
    state: str = Field(description="alive | lost (no heartbeat, or its Asterisk unreachable, for [node] "
                                   "lost_after_s)")
    leader: bool = Field(description="holds the leader lease: dials callbacks, closes lost nodes' calls")
    here: bool = Field(description="this console is served by this node's engine")
    engine_up: bool = Field(description="its engine's heartbeat is fresh (no older than lost_after_s)")
    heartbeat_at: datetime
    heartbeat_age_s: float
    asterisk: str = Field(description="up | unreachable (its engine's AMI link is down) | unknown (its "
                                      "engine is silent: its last word is stale)")
    asterisk_up: bool = Field(description="its engine's last word about its Asterisk (see `asterisk`)")
    asterisk_down_since: datetime | None = Field(description="unreachable since (its engine's clock)")
    started_at: datetime = Field(description="its engine's start")


@router.get("/nodes", response_model=list[NodeStatus])
async def nodes(request: Request, _: Watcher) -> list[NodeStatus]:
    """Each engine node sharing the store: alive or lost, which one leads, its engine and its Asterisk.
    Empty for a single engine (no ``[node] name``)."""
    return [NodeStatus(node=n.node, state=str(n.state), leader=n.leader, here=n.here, engine_up=n.engine_up,
                       heartbeat_at=n.heartbeat_at, heartbeat_age_s=n.heartbeat_age_s,
                       asterisk=str(n.asterisk), asterisk_up=n.asterisk_up,
                       asterisk_down_since=n.asterisk_down_since, started_at=n.started_at)
            for n in await context(request).providers.nodes.nodes()]


# -- listening in --------------------------------------------------------------------------------------
LISTEN = "listen-in"


class ListenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    operator: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$", description="the operator (queue member name)")
    mode: ListenMode = Field(default=ListenMode.LISTEN, description="listen | whisper (the operator alone "
                                                                    "hears you) | barge (both hear you)")


class ModeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: ListenMode


class ListenView(BaseModel):
    id: int
    supervisor: str
    operator: str
    linkedid: str
    mode: str
    modes: list[str] = Field(description="every mode the session was in, in order")
    state: str = Field(description="ringing (your phone) | active | ended")
    requested_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    end_reason: str

    @classmethod
    def of(cls, s: ListenSession, modes: str = "") -> ListenView:
        return cls(id=s.id, supervisor=s.supervisor, operator=s.operator, linkedid=s.linkedid,
                   mode=s.mode.value, modes=(modes or s.mode.value).split(","), state=s.state.value,
                   requested_at=s.requested_at,
                   started_at=s.started_at, ended_at=s.ended_at, end_reason=s.end_reason)


def _listen(request: Request) -> ListenService:
    service = context(request).listen
    if service is None:
        raise ProviderUnavailable(LISTEN, f"{LISTEN}: not running (the console is starting)")
    return service


@router.get("/listen", response_model=list[ListenView])
async def listen_sessions(request: Request, _: Supervisor) -> list[ListenView]:
    """The newest listen-in sessions (who, whom, which call, modes, start, end)."""
    return [ListenView.of(s, modes) for s, modes in await _listen(request).sessions()]


@router.post("/listen", response_model=ListenView, status_code=201)
async def listen_in(body: ListenRequest, request: Request, session: Listener) -> ListenView:
    """Ring the supervisor's own phone (the account's operator id) into ChanSpy on the operator's live call.
    409 when the operator is on no call or the account has no phone; every request is audited."""
    started = await _listen(request).start(session.user.name, session.user.operator_id, body.operator,
                                           body.mode, client_address(request))
    return ListenView.of(started)


@router.post("/listen/{session_id}/mode", response_model=ListenView)
async def listen_mode(session_id: Annotated[int, Path(ge=1)], body: ModeRequest, request: Request,
                      session: Listener) -> ListenView:
    """Switch an active session to listen, whisper or barge (the phone does not ring again)."""
    changed = await _listen(request).change(session_id, session.user.name, body.mode, client_address(request))
    return ListenView.of(changed)


@router.post("/listen/{session_id}/stop", status_code=204)
async def listen_stop(session_id: Annotated[int, Path(ge=1)], request: Request, session: Listener) -> None:
    """Hang up the supervisor's phone: the session ends (ChanSpyStop)."""
    await _listen(request).stop(session_id, session.user.name, client_address(request))
