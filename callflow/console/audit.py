"""The audit trail: who did what, when, from where (logins, exports, recording downloads...)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from callflow.ami.client import Clock
from callflow.console.schema import iso, parse_iso
from callflow.store import Database


class AuditAction(StrEnum):
    LOGIN = "login"
    LOGOUT = "logout"
    EXPORT = "export"
    RECORDING_DOWNLOAD = "recording.download"
    USER_ADD = "user.add"
    USER_DISABLE = "user.disable"
    THRESHOLD_ACK = "threshold.ack"  # a supervisor acknowledged a wallboard alert
    LISTEN = "listen"  # a supervisor listening in on a call: requested, started, switched, ended
    AGENCY_VIEW = "agency.view"  # an agency account opened a report (denied: not its agency's)
    AGENCY_ACKNOWLEDGE = "agency.acknowledge"
    AGENCY_NOTE = "agency.note"
    AGENCY_STEP = "agency.step"  # en route / on scene
    AGENCY_DONE = "agency.done"


class AuditOutcome(StrEnum):
    OK = "ok"
    FAILED = "failed"  # wrong credentials, disabled account
    THROTTLED = "throttled"  # too many failures
    DENIED = "denied"  # role not allowed
    UNAVAILABLE = "unavailable"  # the component behind it is not wired


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    action: AuditAction
    target: str
    address: str
    outcome: AuditOutcome
    detail: str


class AuditLog:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def record(self, actor: str, action: AuditAction, outcome: AuditOutcome, *, target: str = "",
                     address: str = "", detail: str = "") -> None:
        """Write one row and commit it before the caller answers (an audit row is never lost)."""
        await self._db.execute(
            "INSERT INTO console_audit (at, actor, action, target, address, outcome, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (iso(self._clock()), actor, action.value, target, address, outcome.value, detail))
        await self._db.commit()

    async def recent(self, limit: int = 100) -> list[AuditEntry]:
        async with self._db.execute(
                "SELECT at, actor, action, target, address, outcome, detail FROM console_audit "
                "ORDER BY id DESC LIMIT ?", (limit,)) as cur:
            rows = await cur.fetchall()
        return [AuditEntry(parse_iso(r[0]), r[1], AuditAction(r[2]), r[3], r[4], AuditOutcome(r[5]), r[6])
                for r in rows]
