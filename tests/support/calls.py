"""Helpers for call-record tests: recorded AMI sessions as journal rows, records as readable tables."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from callflow.ami import AmiEvent, AmiMessage, parse_event
from callflow.calls.journal import JournalEntry, Kind, event_ids
from callflow.calls.model import CallRecord

SESSIONS = Path(__file__).resolve().parents[1] / "replay" / "sessions"


def session_events(name: str) -> list[AmiEvent]:
    events: list[AmiEvent] = []
    for line in (SESSIONS / f"{name}.jsonl").read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            msg = AmiMessage(tuple((k, v) for k, v in d["headers"]))
            events.append(parse_event(msg, datetime.fromisoformat(d["received_at"])))
    return events


def entries_of(events: list[AmiEvent], first_seq: int = 1) -> dict[str, list[JournalEntry]]:
    """Journal rows (as the tracker would write them) grouped by Linkedid."""
    calls: dict[str, list[JournalEntry]] = defaultdict(list)
    for seq, ev in enumerate(events, first_seq):
        linkedid, uniqueid = event_ids(ev)
        if linkedid:
            calls[linkedid].append(JournalEntry(seq, Kind.AMI, ev.name, linkedid, uniqueid, ev.time,
                                                ev.time_source, ev.received_at,
                                                [list(h) for h in ev.message.headers]))
    return dict(calls)


def record_table(record: CallRecord) -> str:
    """A call record as a small readable table (the format of tests/replay/sessions/*.expected.txt)."""
    def t(value: datetime | None) -> str:
        return value.isoformat(timespec="microseconds") if value else "-"

    fields = [("linkedid", record.linkedid), ("outcome", str(record.outcome)),
              ("call_class", str(record.call_class)), ("caller_number", record.caller_number),
              ("dialed", record.dialed), ("queue", record.queue or "-"), ("operator", record.operator or "-"),
              ("arrival", t(record.arrival)), ("answered", t(record.answered)), ("ended", t(record.ended)),
              ("answer_seconds", "-" if record.answer_seconds is None else f"{record.answer_seconds:.6f}"),
              ("hangup_by", record.hangup_by or "-"), ("ivr_path", " > ".join(record.ivr_path) or "-"),
              ("category", record.category or "-"), ("sources", ",".join(record.sources)),
              ("notes", "; ".join(record.notes) or "-")]
    lines = [f"{k:<16}| {v}" for k, v in fields]
    lines.append("")
    lines.append(f"{'instant':<16}| {'at (UTC)':<32} | {'source':<14} | detail")
    lines += [f"{i.name:<16}| {t(i.at):<32} | {i.source!s:<14} | {i.detail}" for i in record.instants]
    lines.append("")
    lines.append(f"{'leg role':<16}| {'channel':<32} | {'uniqueid':<14} | hangup cause")
    lines += [f"{g.role:<16}| {g.channel:<32} | {g.uniqueid:<14} | {g.hangup_cause}" for g in record.legs]
    return "\n".join(lines) + "\n"
