"""What the console reads and asks of the engine's other components, as Protocols.

The console owns no call, operator, incident, callback or recording state: each comes from the component
that owns it, through one of these Protocols. Until a component is wired in, its ``Unavailable...``
stand-in raises :class:`ProviderUnavailable`, which the API answers with 503 naming the missing component.
Never fake data.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Protocol

from callflow.agencies import AgencyDesk
from callflow.calls.model import CallRecord
from callflow.calls.nature import Nature
from callflow.cluster.rules import NodeView
from callflow.console.catalog import IncidentStatus
from callflow.console.models import (
    AnswerStats,
    Callback,
    DispatchStepState,
    Incident,
    IncidentDraft,
    NatureTagView,
    OperatorState,
    OperatorStatus,
    PrankCountsView,
    QueueBoard,
    RecordingInfo,
    ReportSummary,
    UnitView,
)
from callflow.store import Database


class ProviderUnavailable(Exception):
    """The component behind a panel is not wired into this engine (or not reachable right now)."""

    def __init__(self, component: str, detail: str = "") -> None:
        self.component = component
        super().__init__(detail or f"{component} is not wired into this engine yet; "
                                   "this panel has no data source")


class NotFound(LookupError):
    """The provider has no such item (-> 404)."""


class Refused(Exception):
    """The owning component refused a valid-looking request (-> 409, or ``status``), naming the field.

    Raising it means nothing was changed (the owner checks and writes in one transaction)."""

    def __init__(self, field: str, message: str, status: int = 409) -> None:
        self.field = field
        self.message = message
        self.status = status
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True, slots=True)
class RecordingFile:
    path: Path
    media_type: str
    filename: str


class QueuesProvider(Protocol):
    async def board(self) -> QueueBoard: ...


class CallsProvider(Protocol):
    async def recent(self, limit: int) -> Sequence[CallRecord]: ...

    async def from_number(self, number: str, since: datetime) -> Sequence[CallRecord]: ...

    async def answer_stats(self, since: datetime, *, zone: tzinfo = UTC, show_numbers: bool = False
                           ) -> AnswerStats: ...

    async def natures(self, linkedids: Sequence[str]) -> Mapping[str, str]: ...

    async def tag(self, linkedid: str, nature: Nature, caller_number: str, by: str) -> NatureTagView: ...

    async def prank_counts(self, number: str) -> PrankCountsView: ...


class OperatorsProvider(Protocol):
    async def operators(self) -> Sequence[OperatorStatus]: ...

    async def set_state(self, operator: str, state: OperatorState, reason: str) -> OperatorStatus: ...


class IncidentsProvider(Protocol):
    async def incidents(self, *, status: IncidentStatus | None, caller_number: str | None,
                        since: datetime | None) -> Sequence[Incident]: ...

    async def create(self, draft: IncidentDraft, by: str) -> Incident: ...

    async def dispatch(self, incident_id: str, unit: str, by: str) -> Incident: ...

    async def set_status(self, incident_id: str, status: IncidentStatus, by: str) -> Incident: ...

    async def dispatch_step(self, incident_id: str, dispatch_id: str, state: DispatchStepState,
                            by: str) -> Incident: ...

    async def units(self) -> Sequence[UnitView]: ...


class CallbacksProvider(Protocol):
    async def callbacks(self, *, open_only: bool) -> Sequence[Callback]: ...


class ReportsProvider(Protocol):
    async def summary(self, start: datetime, end: datetime) -> ReportSummary: ...

    async def export_csv(self, start: datetime, end: datetime) -> bytes: ...


class RecordingsProvider(Protocol):
    async def recordings(self, linkedid: str | None) -> Sequence[RecordingInfo]: ...

    async def open(self, recording_id: str, by: str) -> RecordingFile: ...


# -- stand-ins until the owning components are wired (each names its owner) -------------------------
CALLS = "call records (call tracker)"
OPERATORS = "operator state (queues/operator manager)"
INCIDENTS = "incidents and dispatch"
AGENCIES = "agencies' desk"
CALLBACKS = "callbacks (queues/operator manager)"
REPORTS = "reports"
RECORDINGS = "recordings"
QUEUES = "queue status (AMI link to Asterisk)"


class UnavailableCalls:
    async def recent(self, limit: int) -> Sequence[CallRecord]:
        raise ProviderUnavailable(CALLS)

    async def from_number(self, number: str, since: datetime) -> Sequence[CallRecord]:
        raise ProviderUnavailable(CALLS)

    async def answer_stats(self, since: datetime, *, zone: tzinfo = UTC, show_numbers: bool = False
                           ) -> AnswerStats:
        raise ProviderUnavailable(CALLS)

    async def natures(self, linkedids: Sequence[str]) -> Mapping[str, str]:
        raise ProviderUnavailable(CALLS)

    async def tag(self, linkedid: str, nature: Nature, caller_number: str, by: str) -> NatureTagView:
        raise ProviderUnavailable(CALLS)

    async def prank_counts(self, number: str) -> PrankCountsView:
        raise ProviderUnavailable(CALLS)


class UnavailableOperators:
    async def operators(self) -> Sequence[OperatorStatus]:
        raise ProviderUnavailable(OPERATORS)

    async def set_state(self, operator: str, state: OperatorState, reason: str) -> OperatorStatus:
        raise ProviderUnavailable(OPERATORS)


class UnavailableIncidents:
    async def incidents(self, *, status: IncidentStatus | None, caller_number: str | None,
                        since: datetime | None) -> Sequence[Incident]:
        raise ProviderUnavailable(INCIDENTS)

    async def create(self, draft: IncidentDraft, by: str) -> Incident:
        raise ProviderUnavailable(INCIDENTS)

    async def dispatch(self, incident_id: str, unit: str, by: str) -> Incident:
        raise ProviderUnavailable(INCIDENTS)

    async def set_status(self, incident_id: str, status: IncidentStatus, by: str) -> Incident:
        raise ProviderUnavailable(INCIDENTS)

    async def dispatch_step(self, incident_id: str, dispatch_id: str, state: DispatchStepState,
                            by: str) -> Incident:
        raise ProviderUnavailable(INCIDENTS)

    async def units(self) -> Sequence[UnitView]:
        raise ProviderUnavailable(INCIDENTS)


class UnavailableCallbacks:
    async def callbacks(self, *, open_only: bool) -> Sequence[Callback]:
        raise ProviderUnavailable(CALLBACKS)


class UnavailableReports:
    async def summary(self, start: datetime, end: datetime) -> ReportSummary:
        raise ProviderUnavailable(REPORTS)

    async def export_csv(self, start: datetime, end: datetime) -> bytes:
        raise ProviderUnavailable(REPORTS)


class UnavailableRecordings:
    async def recordings(self, linkedid: str | None) -> Sequence[RecordingInfo]:
        raise ProviderUnavailable(RECORDINGS)

    async def open(self, recording_id: str, by: str) -> RecordingFile:
        raise ProviderUnavailable(RECORDINGS)


class UnavailableQueues:
    async def board(self) -> QueueBoard:
        raise ProviderUnavailable(QUEUES)


class NodesProvider(Protocol):
    """The cluster's nodes (callflow/cluster): each node's state, the leader, the last heartbeat."""

    async def nodes(self) -> Sequence[NodeView]: ...


class SingleEngine:
    """No cluster ([node] name unset): one engine, no nodes to show."""

    async def nodes(self) -> Sequence[NodeView]:
        return ()


class AgencyDeskProvider(Protocol):
    @property
    def desk(self) -> AgencyDesk: ...

    @property
    def desk_connection(self) -> Database: ...


class UnavailableAgencyDesk:
    @property
    def desk(self) -> AgencyDesk:
        raise ProviderUnavailable(AGENCIES)

    @property
    def desk_connection(self) -> Database:
        raise ProviderUnavailable(AGENCIES)


@dataclass
class Providers:
    """The console's data sources; the engine's wiring replaces each stand-in with the real component."""

    queues: QueuesProvider = field(default_factory=UnavailableQueues)
    calls: CallsProvider = field(default_factory=UnavailableCalls)
    operators: OperatorsProvider = field(default_factory=UnavailableOperators)
    incidents: IncidentsProvider = field(default_factory=UnavailableIncidents)
    callbacks: CallbacksProvider = field(default_factory=UnavailableCallbacks)
    reports: ReportsProvider = field(default_factory=UnavailableReports)
    recordings: RecordingsProvider = field(default_factory=UnavailableRecordings)
    agencies: AgencyDeskProvider = field(default_factory=UnavailableAgencyDesk)
    nodes: NodesProvider = field(default_factory=SingleEngine)
    # the report categories the site runs lists (the form's catalog); None: every category
    categories: Callable[[], Collection[str] | None] = field(default=lambda: None)
