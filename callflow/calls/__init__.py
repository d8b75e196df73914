"""Calls: the record of one 112 call (keyed by Linkedid), its outcome and instants; the journal it is
derived from, the tracker that keeps it, gap recovery and export (the measures over
records: callflow/reports/measures.py)."""

from callflow.calls.derive import DeriveOptions, derive
from callflow.calls.export import export_csv, export_json
from callflow.calls.journal import Journal, JournalEntry
from callflow.calls.model import (
    CallClass,
    CallRecord,
    CallRecordListener,
    Instant,
    InstantSource,
    Leg,
    Outcome,
)
from callflow.calls.recovery import RecoverySources
from callflow.calls.states import CallState
from callflow.calls.tracker import CallTracker

__all__ = [
    "CallClass",
    "CallRecord",
    "CallRecordListener",
    "CallState",
    "CallTracker",
    "DeriveOptions",
    "Instant",
    "InstantSource",
    "Journal",
    "JournalEntry",
    "Leg",
    "Outcome",
    "RecoverySources",
    "derive",
    "export_csv",
    "export_json",
]
