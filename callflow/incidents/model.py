"""The incident (a report) and its dispatches, as values. The service builds them from the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from callflow.calls.model import InstantSource
from callflow.incidents.categories import Category, CategoryClass, District


class IncidentStatus(StrEnum):
    """wait (menunggu) -> handling (ditangani) -> done (selesai). Only forward."""

    WAIT = "wait"
    HANDLING = "handling"
    DONE = "done"

    @property
    def rank(self) -> int:
        return _STATUS_ORDER.index(self)

    @property
    def label_id(self) -> str:
        return {"wait": "menunggu", "handling": "ditangani", "done": "selesai"}[self.value]

    @property
    def label_en(self) -> str:
        return {"wait": "waiting", "handling": "being handled", "done": "done"}[self.value]


_STATUS_ORDER = (IncidentStatus.WAIT, IncidentStatus.HANDLING, IncidentStatus.DONE)


class DispatchState(StrEnum):
    """dispatched -> en_route -> on_scene -> closed (en_route and on_scene may be skipped)."""

    DISPATCHED = "dispatched"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    CLOSED = "closed"

    @property
    def rank(self) -> int:
        return _DISPATCH_ORDER.index(self)


_DISPATCH_ORDER = (DispatchState.DISPATCHED, DispatchState.EN_ROUTE, DispatchState.ON_SCENE,
                   DispatchState.CLOSED)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One status change: who, when, from where the time came."""

    from_status: IncidentStatus | None  # None: the incident was created
    to_status: IncidentStatus
    at: datetime
    by: str
    source: InstantSource
    note: str = ""


@dataclass(frozen=True, slots=True)
class DispatchStep:
    state: DispatchState
    at: datetime
    by: str
    source: InstantSource


@dataclass(frozen=True, slots=True)
class Dispatch:
    id: int
    incident_id: int
    unit_id: str
    unit_name: str
    agency_id: str
    agency_type: str
    example: bool  # the unit comes from example data
    steps: tuple[DispatchStep, ...]

    def at(self, state: DispatchState) -> datetime | None:
        for step in self.steps:
            if step.state is state:
                return step.at
        return None

    @property
    def dispatched_at(self) -> datetime:
        at = self.at(DispatchState.DISPATCHED)
        assert at is not None  # noqa: S101 - every dispatch row is created with its dispatched step
        return at

    @property
    def en_route_at(self) -> datetime | None:
        return self.at(DispatchState.EN_ROUTE)

    @property
    def on_scene_at(self) -> datetime | None:
        return self.at(DispatchState.ON_SCENE)

    @property
    def closed_at(self) -> datetime | None:
        return self.at(DispatchState.CLOSED)

    @property
    def state(self) -> DispatchState:
        return max((s.state for s in self.steps), key=lambda s: s.rank)

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    category: Category
    district: District
    address: str
    notes: str
    status: IncidentStatus
    created_at: datetime
    created_by: str  # the operator who took the report
    linkedids: tuple[str, ...]  # the calls about this event
    history: tuple[StatusChange, ...]
    dispatches: tuple[Dispatch, ...]
    caller_number: str = ""  # the number the report came from ("" when not given)

    @property
    def category_class(self) -> CategoryClass:
        return self.category.category_class

    def status_at(self, status: IncidentStatus) -> datetime | None:
        for change in self.history:
            if change.to_status is status:
                return change.at
        return None

    @property
    def first_dispatch(self) -> Dispatch | None:
        return min(self.dispatches, key=lambda d: d.dispatched_at, default=None)

    @property
    def open_dispatches(self) -> tuple[Dispatch, ...]:
        return tuple(d for d in self.dispatches if d.is_open)
