"""Recording policy: what is recorded, from when, and how long it is kept.

Emergency calls are always recorded (there is no switch to turn that off): from the moment an operator
answers, or from the call's arrival at the centre. Non-emergency calls are recorded only if the site says
so. Retention is in days per call class; a site-wide legal hold blocks every deletion. The site
configuration feeds this model (``RecordingPolicy.model_validate(site["recordings"])``).
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from callflow.calls.model import CallClass

if TYPE_CHECKING:
    from callflow.siteconfig._model import Recording as SiteRecording


class RecordFrom(StrEnum):
    ANSWER = "answer"  # MixMonitor starts when an operator answers (AgentConnect)
    ARRIVAL = "arrival"  # MixMonitor starts when the caller's channel appears at the centre


def _default_retention() -> dict[CallClass, int]:
    return {CallClass.EMERGENCY: 3650, CallClass.NONEMERGENCY: 365, CallClass.UNKNOWN: 3650}


class RecordingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    emergency_from: RecordFrom = Field(
        default=RecordFrom.ANSWER, description="emergency calls are always recorded; from answer or arrival")
    record_nonemergency: bool = Field(default=False, description="also record non-emergency calls")
    nonemergency_from: RecordFrom = RecordFrom.ANSWER
    retention_days: dict[CallClass, PositiveInt] = Field(
        default_factory=_default_retention,
        description="days a recording is kept, per call class; a class left out keeps the default")
    legal_hold: bool = Field(default=False, description="site-wide legal hold: nothing is ever purged")
    format: str = Field(default="wav", pattern=r"^(wav|WAV|gsm|sln)$",
                        description="file format MixMonitor writes (by extension)")
    min_free_mb: int = Field(default=200, ge=0,
                             description="below this much free space the root counts as full")
    emergency_queues: frozenset[str] = Field(
        default=frozenset({"emergency"}), description="queues whose callers are emergency calls")

    @model_validator(mode="after")
    def _complete_retention(self) -> RecordingPolicy:
        merged = {**_default_retention(), **self.retention_days}
        object.__setattr__(self, "retention_days", merged)
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

    @classmethod
    def from_site(cls, recording: SiteRecording) -> RecordingPolicy:
        """The policy an admin set in the site file's ``[recording]`` section (``siaga112 config``)."""
        return cls(
            emergency_from=recording.emergency_from,
            record_nonemergency=recording.nonemergency,
            retention_days={CallClass.EMERGENCY: recording.retention_days.emergency,
                            CallClass.NONEMERGENCY: recording.retention_days.nonemergency,
                            CallClass.UNKNOWN: recording.retention_days.emergency},
        )
