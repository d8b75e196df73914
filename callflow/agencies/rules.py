"""Hand-offs to agencies as values, and the rules they run by: no I/O, no clock (``now`` is given).

A report is *handed* to an agency when one of the agency's units is dispatched to it (the first such
dispatch is the hand-off instant). The agency acknowledges it, may add notes, records en route and on
scene (the dispatch's own steps) and marks it done with what was done. Each category has two deadlines
(site file ``[agencies]``): acknowledge within, done within, both counted from the hand-off. A hand-off
past a deadline is escalated once per stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from callflow.incidents import Category, CategoryClass, Dispatch, Incident, IncidentStatus


class EventKind(StrEnum):
    """What an agency records on a hand-off besides its dispatch steps."""

    ACKNOWLEDGED = "acknowledged"
    NOTE = "note"
    DONE = "done"


class Stage(StrEnum):
    """The two deadlines of a hand-off."""

    ACKNOWLEDGE = "acknowledge"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Deadline:
    acknowledge: timedelta
    done: timedelta

    def of(self, stage: Stage) -> timedelta:
        return self.acknowledge if stage is Stage.ACKNOWLEDGE else self.done


# The site model's defaults (callflow/siteconfig) are the same; these serve a desk built without a site.
DEFAULT_DEADLINES: Mapping[CategoryClass, Deadline] = {
    CategoryClass.EMERGENCY: Deadline(timedelta(minutes=15), timedelta(days=1)),
    CategoryClass.NONEMERGENCY: Deadline(timedelta(hours=24), timedelta(days=7)),
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An agency's own system (callflow/agencies/delivery.py says how messages reach it)."""

    url: str
    secret_env: str | None = None  # where the signing secret is: an environment variable...
    secret_file: Path | None = None  # ...or a file (never the secret itself)
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class HandoffPolicy:
    """Deadlines per category class, overridden per category; whether agencies see callers' numbers."""

    by_class: Mapping[CategoryClass, Deadline] = field(default_factory=lambda: dict(DEFAULT_DEADLINES))
    by_category: Mapping[Category, Deadline] = field(default_factory=dict)
    caller_number_visible: bool = False
    sweep_s: float = 30.0  # how often the service looks for overdue hand-offs
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)  # by agency id
    centre_id: str = "manado"  # in EIDO ids

    def deadline(self, category: Category) -> Deadline:
        return self.by_category.get(category) or self.by_class[category.category_class]


@dataclass(frozen=True, slots=True)
class HandoffEvent:
    incident_id: int
    agency_id: str
    kind: EventKind
    at: datetime
    by: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Handoff:
    """One report as one agency works it."""

    incident: Incident
    agency_id: str
    handed_at: datetime
    events: tuple[HandoffEvent, ...] = ()

    def _first(self, kind: EventKind) -> HandoffEvent | None:
        return next((e for e in self.events if e.kind is kind), None)

    @property
    def acknowledged_at(self) -> datetime | None:
        found = self._first(EventKind.ACKNOWLEDGED)
        return found.at if found else None

    @property
    def done_at(self) -> datetime | None:
        found = self._first(EventKind.DONE)
        return found.at if found else None

    @property
    def done_note(self) -> str:
        found = self._first(EventKind.DONE)
        return found.note if found else ""

    @property
    def notes(self) -> tuple[HandoffEvent, ...]:
        return tuple(e for e in self.events if e.kind is EventKind.NOTE)

    @property
    def dispatches(self) -> tuple[Dispatch, ...]:
        return tuple(d for d in self.incident.dispatches if d.agency_id == self.agency_id)

    @property
    def en_route_at(self) -> datetime | None:
        return min((d.en_route_at for d in self.incident.dispatches
                    if d.agency_id == self.agency_id and d.en_route_at), default=None)

    @property
    def on_scene_at(self) -> datetime | None:
        return min((d.on_scene_at for d in self.incident.dispatches
                    if d.agency_id == self.agency_id and d.on_scene_at), default=None)

    @property
    def closed_by_centre_at(self) -> datetime | None:
        """The centre closed the whole report before the agency marked it done."""
        if self.done_at is None and self.incident.status is IncidentStatus.DONE:
            return self.incident.status_at(IncidentStatus.DONE)
        return None

    @property
    def is_open(self) -> bool:
        return self.done_at is None and self.incident.status is not IncidentStatus.DONE

    def due(self, policy: HandoffPolicy, stage: Stage) -> datetime:
        return self.handed_at + policy.deadline(self.incident.category).of(stage)


def handoffs_of(incident: Incident, events: Iterable[HandoffEvent]) -> list[Handoff]:
    """One hand-off per agency with a unit dispatched to ``incident``, in hand-off order."""
    first: dict[str, datetime] = {}
    for d in incident.dispatches:
        if d.agency_id not in first or d.dispatched_at < first[d.agency_id]:
            first[d.agency_id] = d.dispatched_at
    mine = [e for e in events if e.incident_id == incident.id]
    return [Handoff(incident, agency, at, tuple(sorted((e for e in mine if e.agency_id == agency),
                                                       key=lambda e: e.at)))
            for agency, at in sorted(first.items(), key=lambda kv: (kv[1], kv[0]))]


@dataclass(frozen=True, slots=True)
class Overdue:
    """A hand-off past one of its deadlines."""

    incident_id: int
    agency_id: str
    stage: Stage
    due_at: datetime


def overdue(handoff: Handoff, policy: HandoffPolicy, now: datetime) -> list[Overdue]:
    """The stages ``handoff`` is late on at ``now``: not acknowledged in time, or not done in time. An
    acknowledgement after its deadline still ends the acknowledge stage (it was escalated meanwhile)."""
    if not handoff.is_open:
        return []
    late: list[Overdue] = []
    for stage, reached in ((Stage.ACKNOWLEDGE, handoff.acknowledged_at), (Stage.DONE, handoff.done_at)):
        due = handoff.due(policy, stage)
        if reached is None and now >= due:
            late.append(Overdue(handoff.incident.id, handoff.agency_id, stage, due))
    return late


def to_escalate(handoffs: Iterable[Handoff], policy: HandoffPolicy, now: datetime,
                escalated: frozenset[tuple[int, str, Stage]] | set[tuple[int, str, Stage]]) -> list[Overdue]:
    """The overdue stages not escalated yet (each stage of a hand-off is escalated once)."""
    return [o for h in handoffs for o in overdue(h, policy, now)
            if (o.incident_id, o.agency_id, o.stage) not in escalated]


class Refusal(Exception):
    """An agency's action that the hand-off's state does not allow; the message says why."""


def check_action(handoff: Handoff, kind: EventKind | str) -> None:
    """Refuse what makes no sense: anything on a closed hand-off, a second acknowledgement, a note or
    done without text."""
    if not handoff.is_open:
        how = "marked done" if handoff.done_at else "closed by the centre"
        raise Refusal(f"report #{handoff.incident.id} is already {how} for {handoff.agency_id}; nothing "
                      "more can be recorded on it")
    if kind == EventKind.ACKNOWLEDGED and handoff.acknowledged_at is not None:
        raise Refusal(f"report #{handoff.incident.id} was already acknowledged at "
                      f"{handoff.acknowledged_at.isoformat()}")


def caller_number_shown(handoff: Handoff, policy: HandoffPolicy) -> str | None:
    """The caller's number as an agency may see it: only when the site allows it."""
    return (handoff.incident.caller_number or None) if policy.caller_number_visible else None
