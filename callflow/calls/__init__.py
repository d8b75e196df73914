"""Calls: the record of one 112 call (keyed by Linkedid), its outcome and instants."""

from callflow.calls.model import (
    CallClass,
    CallRecord,
    CallRecordListener,
    Instant,
    InstantSource,
    Leg,
    Outcome,
)

__all__ = ["CallClass", "CallRecord", "CallRecordListener", "Instant", "InstantSource", "Leg", "Outcome"]
