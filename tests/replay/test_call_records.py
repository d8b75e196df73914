"""Replay: AMI sessions recorded on the lab Asterisk (tests/replay/sessions/*.jsonl, made with
``python -m tests.replay.record_session``) are derived into call records and compared with the expected
records written as readable tables (*.expected.txt). Then the same sessions go through the real tracker
(journal, records table, listeners) and ``rebuild`` must reproduce its rows exactly."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from callflow.ami import LinkEvent
from callflow.calls.derive import derive
from callflow.calls.journal import JournalEntry, Kind, read_entries
from callflow.calls.model import CallRecord, InstantSource, Outcome
from callflow.calls.records import load_records, record_from_dict, record_json, record_row, record_rows
from callflow.calls.recovery import RecoverySources, group_calls, parse_cdr_file, parse_queue_log
from callflow.calls.tracker import SCHEMAS, CallTracker
from callflow.cli import main
from callflow.store import StoreLocation, open_database
from tests.conftest import BOTH_STORES
from tests.support.calls import SESSIONS, entries_of, record_table, session_events

SESSION_NAMES = ["answered", "queue_abandon", "short_abandon", "next_operator", "blind_transfer",
                 "blind_transfer_requeue"]


def derived(name: str) -> list[CallRecord]:
    records = []
    for linkedid, entries in sorted(entries_of(session_events(name)).items()):
        record = derive(linkedid, entries)
        assert record is not None, f"{name}: call {linkedid} never completed"
        records.append(record)
    return records


@pytest.mark.parametrize("name", SESSION_NAMES)
def test_session_derives_the_expected_records(name: str) -> None:
    expected = (SESSIONS / f"{name}.expected.txt").read_text()
    assert "\n".join(record_table(r) for r in derived(name)) == expected


def test_answered_call_is_answered_by_the_operator_with_microsecond_instants() -> None:
    [r] = derived("answered")
    assert r.outcome is Outcome.ANSWERED
    assert r.operator == "op1"
    assert r.hangup_by == "caller"
    assert r.answered is not None
    assert r.answered.microsecond != 0 or r.arrival.microsecond != 0
    assert all(i.source is InstantSource.AMI_TIMESTAMP for i in r.instants)
    assert [g.role for g in r.legs] == ["caller", "operator"]


def test_caller_who_hangs_up_in_the_queue_is_abandoned_not_answered() -> None:
    [r] = derived("queue_abandon")
    assert r.outcome is Outcome.ABANDONED_IN_QUEUE
    assert r.answered is None
    assert [i.detail for i in r.instants if i.name == "rung"] == ["op1"]


def test_caller_leaving_within_three_seconds_is_a_short_abandon() -> None:
    [r] = derived("short_abandon")
    assert r.outcome is Outcome.SHORT_ABANDON
    assert r.ended is not None
    assert (r.ended - r.arrival).total_seconds() < 3


def test_missed_ring_then_next_operator_answers() -> None:
    [r] = derived("next_operator")
    assert r.outcome is Outcome.ANSWERED
    assert r.operator == "op2"
    assert [i.detail for i in r.instants if i.name == "rung"] == ["op1", "op2"]
    assert [i.detail for i in r.instants if i.name == "ring_no_answer"] == ["op1"]
    assert r.answer_seconds is not None
    assert r.answer_seconds > 8  # op1 rang for the queue's 8 s timeout first


def test_blind_transfer_is_recorded_with_who_transferred_where() -> None:
    [r] = derived("blind_transfer")
    assert r.outcome is Outcome.TRANSFERRED
    assert r.operator == "op1"
    [transfer] = [i for i in r.instants if i.name == "transferred"]
    assert transfer.detail.startswith("blind 202@from-operators by PJSIP/op1-")


def test_recovered_rows_complete_a_call_the_engine_saw_only_in_part() -> None:
    """The engine was killed after the answer: Asterisk's CDR file and queue_log give the end."""
    events = session_events("answered")
    cut = next(i for i, ev in enumerate(events) if ev.name == "AgentConnect") + 1
    [(linkedid, seen)] = entries_of(events[:cut]).items()
    assert derive(linkedid, seen) is None  # in progress
    recovered = group_calls(parse_cdr_file((SESSIONS / "answered.cdr.csv").read_text()),
                            parse_queue_log((SESSIONS / "answered.queue_log").read_text()))[linkedid]
    rows = list(seen)
    seq = rows[-1].seq
    for row in recovered.rows:
        seq += 1
        rows.append(type(rows[0])(seq, row.kind, row.name, linkedid, row.uniqueid, row.ts,
                                  "asterisk_cdr" if row.kind == Kind.CDR_FILE else "queue_log", row.ts,
                                  row.data))
    record = derive(linkedid, rows)
    assert record is not None
    assert record.outcome is Outcome.ANSWERED
    assert record.sources == ("ami", "asterisk_cdr", "queue_log")
    assert record.hangup_by == "caller"  # queue_log COMPLETECALLER
    [hangup] = [i for i in record.instants if i.name == "hangup"]
    assert hangup.source is InstantSource.ASTERISK_CDR
    full = derived("answered")[0]
    assert full.ended is not None
    assert record.ended is not None
    assert abs((record.ended - full.ended).total_seconds()) < 0.01  # CDR end: microseconds too
    assert record.answered == full.answered  # the AMI instant is kept, not the queue_log second


def test_blind_transfer_back_into_the_queue_reaches_the_next_operator() -> None:
    [r] = derived("blind_transfer_requeue")
    assert r.outcome is Outcome.TRANSFERRED
    assert r.operator == "op1"  # who answered the caller first: the answer time is measured to them
    assert [i.detail for i in r.instants if i.name == "answered"] == ["op1", "op2"]
    assert [g.role for g in r.legs] == ["caller", "operator", "transfer_target"]
    assert r.hangup_by == "caller"


class _Listener:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []
        self.changed = asyncio.Event()

    async def on_call_record(self, record: CallRecord) -> None:
        self.records.append(record)
        self.changed.set()


@BOTH_STORES
async def test_tracker_journals_replayed_sessions_and_rebuild_reproduces_the_rows(
        tmp_path: Path, store_location: StoreLocation) -> None:
    listener = _Listener()
    tracker = CallTracker(store_location, spill_path=tmp_path / "journal.spill.jsonl", listeners=[listener])
    task = asyncio.create_task(tracker.run(cast(Any, None)))  # no link events: the engine is not used
    events = [ev for name in SESSION_NAMES for ev in session_events(name)]
    for ev in events:
        await tracker.handle(ev)
    async with asyncio.timeout(10):
        while len(listener.records) < len(SESSION_NAMES):
            listener.changed.clear()
            await listener.changed.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(r.outcome for r in listener.records) == sorted(r.outcome for n in SESSION_NAMES
                                                                  for r in derived(n))
    conn = await open_database(store_location, SCHEMAS)
    try:
        entries = await read_entries(conn)
        assert len(entries) == len(events)  # every consumed event is in the journal
        stored = await record_rows(conn)
        assert len(stored) == len(SESSION_NAMES)
        rebuilt = []
        for record in await load_records(conn):
            again = derive(record.linkedid, await read_entries(conn, record.linkedid))
            assert again is not None
            rebuilt.append(record_row(again))
        assert sorted(rebuilt) == sorted(stored)
    finally:
        await conn.close()
    # and the command says so, on either store (exit 1 if a row would change)
    check = ["calls", "rebuild", "--check", "--database", str(store_location)]
    assert await asyncio.to_thread(main, check) == 0


class _Session:
    """The engine's AMI session as the tracker sees it after a reconnect: the live-channel list is the
    only thing asked. A link loss is a fault the lab Asterisk cannot be made to produce on demand."""

    def __init__(self, live: list[Any]) -> None:
        self.live = live

    async def list_action(self, name: str) -> tuple[None, list[Any]]:
        assert name == "CoreShowChannels"
        return None, self.live


async def test_call_that_ends_during_a_link_gap_is_completed_from_asterisks_files(tmp_path: Path) -> None:
    events = session_events("answered")
    cut = next(i for i, ev in enumerate(events) if ev.name == "AgentConnect") + 1
    cdr = tmp_path / "cdr.csv"
    queue_log = tmp_path / "queue_log"
    cdr.write_text((SESSIONS / "answered.cdr.csv").read_text())
    queue_log.write_text((SESSIONS / "answered.queue_log").read_text())
    listener = _Listener()
    tracker = CallTracker(tmp_path / "calls.db", listeners=[listener],
                          sources=RecoverySources(cdr, queue_log))
    engine = cast(Any, type("E", (), {"session": _Session([])})())
    task = asyncio.create_task(tracker.run(engine))
    for ev in events[:cut]:
        await tracker.handle(ev)
    down_at = events[cut - 1].time + timedelta(milliseconds=1)
    await tracker.handle(LinkEvent("down", down_at, reason="test"))
    await tracker.handle(LinkEvent("up", down_at + timedelta(seconds=5), gap_started=down_at, reconnect=True))
    async with asyncio.timeout(10):
        await listener.changed.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [r] = listener.records
    assert r.outcome is Outcome.ANSWERED
    assert r.sources == ("ami", "asterisk_cdr", "queue_log")
    assert next(i for i in r.instants if i.name == "hangup").source is InstantSource.ASTERISK_CDR
    assert r.hangup_by == "caller"


async def test_call_first_seen_mid_way_takes_its_arrival_from_the_cdr_file(tmp_path: Path) -> None:
    """The engine connected while the call was already in the queue: no Newchannel in the stream."""
    events = session_events("answered")
    start = next(i for i, ev in enumerate(events) if ev.name == "QueueCallerJoin") + 1
    cdr = tmp_path / "cdr.csv"
    cdr.write_text((SESSIONS / "answered.cdr.csv").read_text())
    listener = _Listener()
    tracker = CallTracker(tmp_path / "calls.db", listeners=[listener],
                          sources=RecoverySources(cdr, tmp_path / "no-queue-log"), recovery_wait_s=0.5)
    task = asyncio.create_task(tracker.run(cast(Any, None)))
    for ev in events[start:]:
        await tracker.handle(ev)
    async with asyncio.timeout(10):
        await listener.changed.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [r] = listener.records
    full = derived("answered")[0]
    arrival = next(i for i in r.instants if i.name == "arrival")
    assert arrival.source is InstantSource.ASTERISK_CDR
    assert abs((r.arrival - full.arrival).total_seconds()) < 0.001
    assert r.outcome is Outcome.ANSWERED
    assert r.sources == ("ami", "asterisk_cdr")


def _recovered_only(cdr_text: str, queue_log_text: str) -> CallRecord:
    """The call as recovery derives it when the engine saw nothing of it (killed, then restarted)."""
    [(linkedid, call)] = group_calls(parse_cdr_file(cdr_text), parse_queue_log(queue_log_text)).items()
    rows = [JournalEntry(seq, row.kind, row.name, linkedid, row.uniqueid, row.ts,
                         "asterisk_cdr" if row.kind == Kind.CDR_FILE else "queue_log", row.ts, row.data)
            for seq, row in enumerate(call.rows, start=1)]
    record = derive(linkedid, rows, force=True)
    assert record is not None
    return record


def test_a_fail_safe_call_recovered_from_asterisks_files_stays_failsafe() -> None:
    """The dial plan writes the route into the caller's CDR userfield (pbx-config/extensions.conf); a call
    the fail-safe routed while the engine was down is ``failsafe`` after recovery, not ``answered``."""
    cdr = (SESSIONS / "answered.cdr.csv").read_text()
    queue_log = (SESSIONS / "answered.queue_log").read_text()
    assert cdr.rstrip().endswith(',""')
    plain = _recovered_only(cdr, queue_log)
    assert plain.outcome is Outcome.ANSWERED
    failsafe = _recovered_only(cdr.rstrip()[:-2] + '"siaga_route=failsafe"\n', queue_log)
    assert failsafe.outcome is Outcome.FAILSAFE
    assert failsafe.answered == plain.answered  # the answer is still recorded
    assert "route failsafe taken from Asterisk's CDR file (userfield)" in failsafe.notes
    routed = _recovered_only(cdr.rstrip()[:-2] + '"siaga_route=ivr"\n', queue_log)
    assert routed.outcome is Outcome.ANSWERED


def test_a_queue_log_whole_second_never_sorts_before_the_microsecond_arrival() -> None:
    """queue_log says ENTERQUEUE and CONNECT at 1795334848 (whole second); the CDR's arrival is
    1795334848.558615. The queue_log instants are bounded by it: the answer time is never negative, the
    instants keep the call's order, and each states its source and precision."""
    record = _recovered_only((SESSIONS / "answered.cdr.csv").read_text(),
                             (SESSIONS / "answered.queue_log").read_text())
    names = [i.name for i in record.instants]
    assert names.index("arrival") < names.index("queue_joined") < names.index("answered")
    assert [i.at for i in record.instants] == sorted(i.at for i in record.instants)
    joined = next(i for i in record.instants if i.name == "queue_joined")
    assert joined.at == record.arrival  # 848.000 would be 0.56 s before the arrival
    assert (joined.source, joined.precision_s) == (InstantSource.QUEUE_LOG, 1.0)
    arrival = next(i for i in record.instants if i.name == "arrival")
    assert (arrival.source, arrival.precision_s) == (InstantSource.ASTERISK_CDR, None)
    assert record.answer_seconds == 0.0  # within the same second: at least 0, never -0.56 s
    assert record_from_dict(json.loads(record_json(record))) == record  # precision survives the store
