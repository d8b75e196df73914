"""The wallboard's thresholds: the alerts raised (watchers), and a supervisor's acknowledgement (audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from callflow.console.accounts import Session
from callflow.console.providers import ProviderUnavailable
from callflow.console.roles import SUPERVISORS, WATCHERS
from callflow.console.security import client_address, context, require
from callflow.console.thresholds import Alert, ThresholdWatch

router = APIRouter(prefix="/api", tags=["wallboard"])

Watcher = Annotated[Session, Depends(require(WATCHERS))]
Supervisor = Annotated[Session, Depends(require(SUPERVISORS))]
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
