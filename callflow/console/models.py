"""The console API's request and response bodies (pydantic: validated in, documented in OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from callflow.calls.model import CallRecord
from callflow.calls.nature import Nature
from callflow.console.catalog import Category, District, IncidentStatus
from callflow.console.roles import Role

NUMBER_PATTERN = r"^\+?[0-9]{2,20}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# -- access ------------------------------------------------------------------------------------------
class LoginRequest(_In):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class UserView(BaseModel):
    name: str
    role: Role
    operator_id: str | None
    agency_id: str | None = None
    # the centre's IANA zone: the pages show every time in it (an operator's browser may be set otherwise)
    centre_timezone: str = "UTC"


class LoginResponse(BaseModel):
    user: UserView
    csrf_token: str
    expires_at: datetime


class CsrfResponse(BaseModel):
    csrf_token: str


# -- queues (live from Asterisk) ---------------------------------------------------------------------
class QueueCaller(BaseModel):
    position: int
    caller: str
    caller_name: str
    wait_s: int
    uniqueid: str
    linkedid: str


class QueueView(BaseModel):
    queue: str
    call_class: str = Field(description="emergency | nonemergency | the queue name for other queues")
    waiting: int
    longest_wait_s: int
    callers: list[QueueCaller]
    members: int = Field(description="operators logged in to the queue")
    service_level_s: int


class QueueBoard(BaseModel):
    at: datetime
    source: Literal["asterisk"] = "asterisk"
    queues: list[QueueView]


# -- operators ---------------------------------------------------------------------------------------
class OperatorState(StrEnum):
    """The operator states as the API names them: the same values as ``queues.states.State`` (a test
    holds them equal; the console does not import the queues package)."""

    OFFLINE = "offline"
    READY = "ready"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAPUP = "wrapup"
    PAUSED = "paused"


class OperatorStatus(BaseModel):
    operator: str
    state: OperatorState
    reason: str = ""
    since: datetime
    seconds_in_state: float


class StateChange(_In):
    state: Literal[OperatorState.READY, OperatorState.PAUSED, OperatorState.WRAPUP]
    reason: str = Field(default="", max_length=80)

    @model_validator(mode="after")
    def _pause_needs_reason(self) -> StateChange:
        if self.state is OperatorState.PAUSED and not self.reason:
            raise ValueError("reason: a pause needs a reason (e.g. break, briefing)")
        return self


# -- calls -------------------------------------------------------------------------------------------
class CallSummary(BaseModel):
    linkedid: str
    caller_number: str
    call_class: str
    outcome: str
    arrival: datetime
    answered: datetime | None
    answer_seconds: float | None
    operator: str
    queue: str
    category: str
    ivr_path: list[str]
    contact: str = ""  # the IVR's silent-call finding: "", silent, silent_caller
    nature: str = ""  # the operator's tag (callflow/calls/nature.py), "" until tagged

    @classmethod
    def of(cls, record: CallRecord, nature: str = "") -> CallSummary:
        return cls(linkedid=record.linkedid, caller_number=record.caller_number,
                   call_class=record.call_class.value, outcome=record.outcome.value, arrival=record.arrival,
                   answered=record.answered, answer_seconds=record.answer_seconds, operator=record.operator,
                   queue=record.queue, category=record.category, ivr_path=list(record.ivr_path),
                   contact=record.contact, nature=nature)


class NatureChange(_In):
    """An operator's tag of a call's nature; ``caller_number`` only for a call whose record is not stored
    yet (still live on the operator's screen)."""

    nature: Nature
    caller_number: str = Field(default="", max_length=32)


class NatureTagView(BaseModel):
    linkedid: str
    caller_number: str
    nature: str
    tagged_by: str
    tagged_at: datetime


class PrankCountsView(BaseModel):
    """Calls from the number whose operator tag is prank."""

    number: str
    last_24h: int
    last_30d: int


class NuisanceHourView(BaseModel):
    nuisance: int
    calls: int
    share: float | None


class RepeatNumberView(BaseModel):
    number: str = Field(description="masked (last 3 digits) except for supervisors")
    nuisance_calls: int


class AnswerStats(BaseModel):
    """Today's figures on the wallboard: the definitions of callflow/reports/measures.py."""

    since: datetime
    citizen_calls: int = Field(description="calls from citizens (the citizen ingress)")
    short_abandons: int = Field(description="citizen calls left unanswered within the site's "
                                            "short_abandon_s: counted apart, not offered")
    offered: int = Field(description="citizen calls less short abandons")
    answered: int
    within_10s: int = Field(description="offered calls answered within 10 s of arrival at the PBX")
    within_15s: int
    within_20s: int
    abandoned: int = Field(description="offered calls the caller left before an answer (IVR or queue)")
    unanswered: int = Field(description="offered calls no operator answered (abandoned included)")
    p50_s: float | None = Field(description="median answer time over offered calls; null: not reached")
    p90_s: float | None = Field(description="90th percentile over offered calls; null: not reached")
    callback_tasks: int = Field(description="callback tasks of today's calls (not offered calls)")
    callback_attempts: int
    callback_citizens_reached: int
    genuine_offered: int = Field(default=0, description="offered calls less those tagged prank, silent or "
                                                        "accidental (untagged calls count as genuine)")
    genuine_answered: int = 0
    genuine_within_10s: int = Field(default=0,
                                    description="genuine calls answered within 10 s of arrival at the PBX")
    genuine_within_15s: int = 0
    genuine_within_20s: int = 0
    genuine_p50_s: float | None = Field(default=None, description="median answer time over genuine calls; "
                                                                  "null: not reached")
    nuisance_by_hour: dict[str, NuisanceHourView] = Field(
        default={}, description="local hour of arrival -> offered calls tagged prank, silent or accidental, "
                                "offered calls")
    top_repeat_numbers: list[RepeatNumberView] = Field(
        default=[], description="numbers with the most nuisance-tagged calls today, most first")
    numbers_masked: bool = Field(default=True,
                                 description="the top repeat numbers are masked (all but supervisors)")


# -- incidents ---------------------------------------------------------------------------------------
class IncidentDraft(_In):
    category: Category
    district: District
    notes: str = Field(default="", max_length=2000)
    address: str = Field(default="", max_length=200)
    linkedid: str | None = Field(default=None, max_length=64, pattern=r"^[0-9A-Za-z.\-]+$")
    caller_number: str | None = Field(default=None, pattern=NUMBER_PATTERN)


class DispatchView(BaseModel):
    id: int
    unit_id: str
    unit_name: str
    agency_type: str
    state: str = Field(description="dispatched | en_route | on_scene | closed")
    dispatched_at: datetime
    en_route_at: datetime | None = Field(default=None, description="UTC; None until marked en route "
                                                                   "(the step may be skipped)")
    on_scene_at: datetime | None = Field(default=None, description="UTC; None until marked on scene "
                                                                   "(the step may be skipped)")
    closed_at: datetime | None = Field(default=None, description="UTC; None while the dispatch is open")
    example_data: bool = Field(description="the unit comes from an example agency registry")


class UnitView(BaseModel):
    id: str
    name: str
    agency_name: str
    type: str
    district: str
    busy: bool = Field(description="on an open dispatch")
    example_data: bool
    serves: list[Category] = Field(default=[], description="the categories this unit answers (its agency "
                                                           "type and the agency's own narrowing)")


class Incident(BaseModel):
    id: str
    category: Category
    district: District
    status: IncidentStatus
    notes: str
    address: str
    linkedid: str | None
    caller_number: str | None
    created_at: datetime
    created_by: str
    dispatched_to: list[str] = Field(default=[], description="unit ids, in dispatch order")
    dispatches: list[DispatchView] = []
    linkedids: list[str] = Field(default=[], description="the calls about this incident")
    suggested_unit: str | None = Field(default=None, description="a free unit of the category's preferred "
                                                                 "agency type, in the incident's district "
                                                                 "if one is free (None: no free unit)")


class DispatchRequest(_In):
    unit: str = Field(min_length=1, max_length=80, description="a unit id (GET /api/units)")


class StatusChangeRequest(_In):
    status: IncidentStatus


class DispatchStepState(StrEnum):
    """A dispatched unit's later steps, forward only: en_route and on_scene may be skipped."""

    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    CLOSED = "closed"


class DispatchStepRequest(_In):
    """The step is stamped with the engine's clock (UTC) when it is recorded; no client time is taken."""

    state: DispatchStepState = Field(description="en_route | on_scene | closed (the unit is free again; "
                                                 "the incident keeps its status)")


# -- callbacks, reports, recordings ------------------------------------------------------------------
class Callback(BaseModel):
    id: str
    number: str
    reason: str
    created_at: datetime
    status: str
    linkedid: str | None = None


class ReportSummary(BaseModel):
    start: datetime
    end: datetime
    figures: dict[str, float]
    top_repeat_numbers: list[RepeatNumberView] = Field(
        default=[], description="numbers with the most calls tagged prank, silent or accidental in the "
                                "period (unmasked: supervisors only)")
    notes: list[str] = []


class RecordingInfo(BaseModel):
    id: str
    linkedid: str
    started_at: datetime
    duration_s: float | None
    size_bytes: int
    media_type: str
    status: str = Field(default="ok", description="ok | recording | failed | missing | altered | purged "
                                                  "| discarded; only ok/altered files can be downloaded")
    call_class: str = ""


class ErrorBody(BaseModel):
    error: str
    message: str
    fields: list[dict[str, str]] = []
    component: str | None = None
