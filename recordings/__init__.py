"""Recordings: every emergency call on record, linked to its call, verifiable, retained by policy."""

from recordings.index import SCHEMA, AuditEntry, Recording, RecordingIndex, RecordingStatus
from recordings.maintenance import (
    PurgeResult,
    RecordingError,
    VerifyResult,
    export,
    purge,
    set_hold,
    verify,
)
from recordings.policy import RecordFrom, RecordingPolicy
from recordings.recorder import FILE_MODE, Recorder

__all__ = [
    "FILE_MODE",
    "SCHEMA",
    "AuditEntry",
    "PurgeResult",
    "RecordFrom",
    "Recorder",
    "Recording",
    "RecordingError",
    "RecordingIndex",
    "RecordingPolicy",
    "RecordingStatus",
    "VerifyResult",
    "export",
    "purge",
    "set_hold",
    "verify",
]
