"""Callback dials counted from ground truth (bench/failover.py): the INVITEs that reached the SIPp citizens
behind the nodes' callback trunks, matched to the callback attempts in the store. Pure functions, no I/O.

A callback attempt is claimed in the store (task, attempt number, start instant) before its Originate is
sent, so every INVITE a citizen receives belongs to the latest attempt of its number that started before
it arrived. ``double_dials`` = INVITEs beyond the first for one attempt (an attempt dialled twice, by
either engine, e.g. a woken leader's stale Originate landing after its successor's attempt) plus INVITEs
with no attempt started before them (a dial nobody recorded). Retransmissions of one INVITE share its
Call-ID and count once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

# SIPp's -trace_msg: each message after a line of dashes and the local time (the bench runs SIPp in UTC)
_BLOCK = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\s*$", re.MULTILINE)
_REQUEST_USER = re.compile(r"^INVITE sips?:([^@;>\s]+)@", re.MULTILINE)
_CALL_ID = re.compile(r"^(?:Call-ID|i)\s*:\s*(\S+)", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Invite:
    """One INVITE a citizen's phone received (first copy: retransmissions dropped)."""

    number: str  # the Request-URI's user: the number dialled
    call_id: str
    at: datetime
    trunk: str = ""  # whose callback trunk (node name)


@dataclass(frozen=True, slots=True)
class Dialled:
    """One callback attempt as the store has it."""

    task: int
    number: str
    n: int
    started_at: datetime


@dataclass
class DialCount:
    attempts: int = 0
    invites: int = 0
    per_attempt: dict[tuple[int, int], int] = field(default_factory=dict)  # (task, n) -> INVITEs
    unrecorded: list[Invite] = field(default_factory=list)  # INVITEs with no attempt before them
    not_reached: int = 0  # attempts no INVITE reached (refused, on a node that died, never sent)

    @property
    def double_dials(self) -> int:
        return sum(k - 1 for k in self.per_attempt.values() if k > 1) + len(self.unrecorded)


def invites_in_trace(text: str, trunk: str = "") -> list[Invite]:
    """The INVITEs received in a SIPp ``-trace_msg`` file, one per Call-ID (the first copy)."""
    marks = list(_BLOCK.finditer(text))
    seen: dict[str, Invite] = {}
    for i, mark in enumerate(marks):
        body = text[mark.end():marks[i + 1].start() if i + 1 < len(marks) else len(text)]
        head, _, message = body.lstrip("\n").partition("\n")
        if "received" not in head:
            continue
        user, call_id = _REQUEST_USER.search(message), _CALL_ID.search(message)
        if user is None or call_id is None or not message.lstrip().startswith("INVITE "):
            continue
        at = datetime.fromisoformat(mark.group(1)).replace(tzinfo=UTC)
        seen.setdefault(call_id.group(1), Invite(user.group(1), call_id.group(1), at, trunk))
    return sorted(seen.values(), key=lambda inv: inv.at)


def count_dials(attempts: Iterable[Dialled], invites: Sequence[Invite]) -> DialCount:
    """Each INVITE (one per Call-ID) to the latest attempt of its number that started at or before it."""
    by_number: dict[str, list[Dialled]] = {}
    for attempt in attempts:
        by_number.setdefault(attempt.number, []).append(attempt)
    count = DialCount(attempts=sum(len(v) for v in by_number.values()))
    count.per_attempt = {(a.task, a.n): 0 for v in by_number.values() for a in v}
    unique: dict[str, Invite] = {}
    for inv in sorted(invites, key=lambda inv: inv.at):
        unique.setdefault(inv.call_id, inv)
    count.invites = len(unique)
    for invite in unique.values():
        before = [a for a in by_number.get(invite.number, []) if a.started_at <= invite.at]
        if not before:
            count.unrecorded.append(invite)
            continue
        latest = max(before, key=lambda a: (a.started_at, a.n))
        count.per_attempt[(latest.task, latest.n)] += 1
    count.not_reached = sum(1 for k in count.per_attempt.values() if k == 0)
    return count
