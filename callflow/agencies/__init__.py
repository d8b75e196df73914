"""Agencies working the reports handed to them: acknowledge, notes, en route / on scene, done; deadlines
per category and the escalation of overdue hand-offs (rules, store, service)."""

from callflow.agencies.rules import (
    DEFAULT_DEADLINES,
    Deadline,
    Endpoint,
    EventKind,
    Handoff,
    HandoffEvent,
    HandoffPolicy,
    Overdue,
    Refusal,
    Stage,
    caller_number_shown,
    handoffs_of,
    overdue,
    to_escalate,
)
from callflow.agencies.service import AgencyDesk, NotHanded, Notifier
from callflow.agencies.store import SCHEMA, Escalation, HandoffStore

__all__ = [
    "DEFAULT_DEADLINES",
    "SCHEMA",
    "AgencyDesk",
    "Deadline",
    "Endpoint",
    "Escalation",
    "EventKind",
    "Handoff",
    "HandoffEvent",
    "HandoffPolicy",
    "HandoffStore",
    "NotHanded",
    "Notifier",
    "Overdue",
    "Refusal",
    "Stage",
    "caller_number_shown",
    "handoffs_of",
    "overdue",
    "to_escalate",
]
