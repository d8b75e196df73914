"""Gap recovery: what Asterisk itself wrote while the engine was stopped or disconnected.

Two files (see pbx-config/README.md): the CDR file (cdr_custom.conf: uniqueid, linkedid, epoch-with-
microsecond start/answer/end, ...) and queue_log (``epoch|callid|queue|agent|event|data...``, whole
seconds). Rows are grouped by Linkedid (queue_log's callid is the caller leg's uniqueid, which is the
Linkedid of the call) and handed to the tracker, which journals them: derivation reads them like any
other row, so recovered records are rebuilt identically and never duplicated.
"""

from __future__ import annotations

import asyncio
import csv
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from callflow.calls.fold import epoch_time
from callflow.calls.journal import Kind

CDR_COLUMNS = ("uniqueid", "linkedid", "start", "answer", "end", "duration", "billsec", "disposition",
               "src", "dst", "dcontext", "channel", "dstchannel", "lastapp", "lastdata", "userfield")


@dataclass(frozen=True, slots=True)
class RecoverySources:
    cdr_file: Path | None = None
    queue_log_file: Path | None = None


@dataclass(frozen=True, slots=True)
class RecoveredRow:
    kind: str  # Kind.CDR_FILE | Kind.QUEUE_LOG
    name: str
    uniqueid: str
    ts: datetime
    data: dict[str, Any]


@dataclass
class RecoveredCall:
    linkedid: str
    rows: list[RecoveredRow] = field(default_factory=list)

    @property
    def has_caller_end(self) -> bool:
        return any(r.kind == Kind.CDR_FILE and r.uniqueid == self.linkedid and r.data.get("end")
                   for r in self.rows)

    @property
    def last_time(self) -> datetime | None:
        return max((r.ts for r in self.rows), default=None)


def parse_cdr_file(text: str) -> list[RecoveredRow]:
    rows: list[RecoveredRow] = []
    for values in csv.reader(text.splitlines()):
        if len(values) < 5:
            continue  # a torn last line while Asterisk writes
        data = dict(zip(CDR_COLUMNS, values, strict=False))
        end = epoch_time(data.get("end", ""))
        start = epoch_time(data.get("start", ""))
        when = end or start
        if when is None:
            continue
        rows.append(RecoveredRow(Kind.CDR_FILE, "cdr", data["uniqueid"], when, data))
    return rows


def parse_queue_log(text: str) -> list[RecoveredRow]:
    rows: list[RecoveredRow] = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 5:
            continue
        when = epoch_time(parts[0])
        callid = parts[1]
        if when is None or callid in {"NONE", "MANAGER", ""}:
            continue
        data = {"time": parts[0], "callid": callid, "queue": parts[2], "agent": parts[3],
                "event": parts[4], "data": parts[5:]}
        rows.append(RecoveredRow(Kind.QUEUE_LOG, parts[4], callid, when, data))
    return rows


def _read(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    return path.read_text(encoding="utf-8", errors="replace")


def group_calls(cdr_rows: list[RecoveredRow], queue_rows: list[RecoveredRow]) -> dict[str, RecoveredCall]:
    calls: dict[str, RecoveredCall] = {}
    linked_of: dict[str, str] = {}
    for row in cdr_rows:
        linkedid = str(row.data.get("linkedid") or row.uniqueid)
        linked_of[row.uniqueid] = linkedid
        calls.setdefault(linkedid, RecoveredCall(linkedid)).rows.append(row)
    for row in queue_rows:
        linkedid = linked_of.get(row.uniqueid, row.uniqueid)
        calls.setdefault(linkedid, RecoveredCall(linkedid)).rows.append(row)
    for call in calls.values():  # files are in time order already; keep CDR rows before queue_log rows
        call.rows.sort(key=lambda r: (r.kind != Kind.CDR_FILE, r.ts))
    return calls


async def read_recovered(sources: RecoverySources) -> dict[str, RecoveredCall]:
    """Both files, read off the event loop, grouped by Linkedid."""
    cdr_text, queue_text = await asyncio.gather(asyncio.to_thread(_read, sources.cdr_file),
                                                asyncio.to_thread(_read, sources.queue_log_file))
    return group_calls(parse_cdr_file(cdr_text), parse_queue_log(queue_text))


def calls_since(calls: dict[str, RecoveredCall], since: datetime) -> dict[str, RecoveredCall]:
    """Calls with any recovered row at or after ``since`` (queue_log is whole seconds: 1 s slack)."""
    out: dict[str, RecoveredCall] = {}
    for linkedid, call in calls.items():
        last = call.last_time
        if last is not None and last.timestamp() >= since.timestamp() - 1.0:
            out[linkedid] = call
    return out

