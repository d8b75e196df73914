"""Recording policy: what is recorded, from when, how long it is kept, and what is held.

Emergency calls are always recorded (there is no switch to turn that off): from the moment an operator
answers, or from the call's arrival at the centre. Non-emergency calls are recorded only if the site says
so. Retention is in days per call class; a legal hold (site-wide, or on listed calls) blocks deletion.

This package never reads the site file: :mod:`callflow.policies` builds this policy from the site file's
``[recording]`` section, whose model holds the only defaults for what a site configures (so the fields
that come from the site have none here).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from callflow.calls.model import CallClass


class RecordFrom(StrEnum):
    ANSWER = "answer"  # MixMonitor starts when an operator answers (AgentConnect)
    ARRIVAL = "arrival"  # MixMonitor starts when the caller's channel appears at the centre


class RecordingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # from the site file ([recording])
    emergency_from: RecordFrom = Field(description="emergency calls are always recorded, from answer/arrival")
    record_nonemergency: bool = Field(description="also record non-emergency calls")
    retention_days: dict[CallClass, PositiveInt] = Field(
        description="days a recording is kept after it was made, for every call class")
    legal_hold: bool = Field(description="site-wide legal hold: nothing is ever purged")
    held_calls: frozenset[str] = Field(description="linkedids of calls whose recordings are on legal hold")
    # the engine's own (not site settings)
    nonemergency_from: RecordFrom = RecordFrom.ANSWER
    format: str = Field(default="wav", pattern=r"^(wav|WAV|gsm|sln)$",
                        description="file format MixMonitor writes (by extension)")
    min_free_mb: int = Field(default=200, ge=0,
                             description="below this much free space the root counts as full")
    emergency_queues: frozenset[str] = Field(
        default=frozenset({"emergency"}), description="queues whose callers are emergency calls")

    @model_validator(mode="after")
    def _every_class_kept(self) -> RecordingPolicy:
        missing = [str(c) for c in CallClass if c not in self.retention_days]
        if missing:
            raise ValueError(f"retention_days has no entry for {', '.join(missing)}: give one per call class")
        return self

    def records(self, call_class: CallClass) -> bool:
        """Emergency (and not-yet-classified) calls always; non-emergency as configured."""
        return call_class != CallClass.NONEMERGENCY or self.record_nonemergency

    @property
    def starts_at_arrival(self) -> bool:
        """At arrival the class is not known yet: record if any class that may follow starts there."""
        return self.emergency_from == RecordFrom.ARRIVAL or (
            self.record_nonemergency and self.nonemergency_from == RecordFrom.ARRIVAL)

    def retention(self, call_class: CallClass) -> timedelta:
        return timedelta(days=self.retention_days[call_class])

    def deadline(self, made_at: datetime, call_class: CallClass) -> datetime:
        """When a recording made at ``made_at`` may be deleted under this policy."""
        return made_at + self.retention(call_class)

    @property
    def shortest_retention(self) -> timedelta:
        return timedelta(days=min(self.retention_days.values()))

    def hold_reason(self, linkedid: str) -> str | None:
        """Why a recording of call ``linkedid`` must be kept whatever its age, or None."""
        if self.legal_hold:
            return "site-wide legal hold ([recording] legal_hold)"
        if linkedid in self.held_calls:
            return "call on legal hold ([recording] legal_hold_calls)"
        return None
