"""The call tracker: the engine component that keeps one truthful record per call.

It journals every item the engine consumes, follows open calls by Linkedid through the state table, and
when a call is complete (caller gone, every leg hung up; or closed as incomplete; or closed by gap
recovery) it waits for the journal to be durable, derives the record from the journal, stores it in
``calls_records`` and then tells each :class:`CallRecordListener`.

Gaps: at start the calls left open by the previous run are restored from the journal; on every link-up
the live channels are listed and calls that ended (or happened entirely) while the engine was away are
completed from Asterisk's CDR file and queue_log (:mod:`callflow.calls.recovery`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from callflow.ami import AmiError, EventItem, LinkEvent
from callflow.ami.client import Clock, utc_now
from callflow.ami.events import DamagedEvent
from callflow.calls.derive import CallFold, DeriveOptions, derive
from callflow.calls.fold import NODE_LOST_MARK
from callflow.calls.journal import JOURNAL_SCHEMA, Journal, JournalEntry, Kind, read_entries
from callflow.calls.model import LISTEN_LINKEDID_PREFIX, CallRecord, CallRecordListener
from callflow.calls.nature import NATURE_SCHEMA
from callflow.calls.records import RECORDS_SCHEMA, recorded_linkedids, store_records
from callflow.calls.recovery import RecoveredCall, RecoverySources, calls_since, read_recovered
from callflow.calls.states import CallState
from callflow.logs import mask_number
from callflow.store import Database, DatabaseError, OperationalError, StoreLocation, open_database

if TYPE_CHECKING:
    from callflow.service import Engine

log = structlog.get_logger("callflow.calls")

SCHEMAS = (JOURNAL_SCHEMA, RECORDS_SCHEMA, NATURE_SCHEMA)


def spill_path_for(database: StoreLocation, data_dir: Path | None = None, node: str = "") -> Path:
    """Where the journal keeps rows while the store cannot take them: beside a SQLite file; for a
    PostgreSQL store, in the engine's data directory (default var/), named after the database. Each node
    of a two-node centre has its own (two engines may share one box)."""
    suffix = f".{node}" if node else ""
    if isinstance(database, Path):
        return database.with_name(database.name + suffix + ".spill.jsonl")
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in database.display.split("://", 1)[-1])
    return (data_dir or Path("var")) / f"journal-{name}{suffix}.spill.jsonl"


@dataclass
class _OpenCall:
    fold: CallFold
    gap: bool = False
    damaged: bool = False  # an event of it could not be read (DamagedEvent)
    last_seen: datetime | None = None


class CallTracker:
    name = "call-tracker"

    def __init__(self, database: StoreLocation, *, spill_path: Path | None = None,
                 sources: RecoverySources | None = None,
                 options: DeriveOptions | None = None, listeners: Sequence[CallRecordListener] = (),
                 clock: Clock = utc_now, max_buffer: int = 10_000, settle_s: float = 10.0,
                 recovery_wait_s: float = 3.0, node: str = "") -> None:
        self.database = database
        self.node = node  # this engine's node: its journal rows carry it; it restores only its own calls
        self.sources = sources or RecoverySources()
        self.options = options or DeriveOptions()
        self.listeners = list(listeners)
        self.clock = clock
        self.settle_s = settle_s
        self.recovery_wait_s = recovery_wait_s
        self.journal = Journal(None, spill_path or spill_path_for(database, node=node),
                               max_buffer=max_buffer, node=node)
        self.open: dict[str, _OpenCall] = {}
        self._done: OrderedDict[str, None] = OrderedDict()
        self._finish_q: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._link_q: asyncio.Queue[LinkEvent] = asyncio.Queue()
        self._ready = asyncio.Event()
        self._conn: Database | None = None
        self._engine: Engine | None = None
        self._restart_gap_from: datetime | None = None

    # -- component protocol ------------------------------------------------------------------------
    async def run(self, engine: Engine) -> None:
        self._engine = engine
        self._conn = conn = await open_database(self.database, SCHEMAS)
        try:
            self.journal.conn = conn
            await self.journal.start()
            await self._restore()
            self._ready.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.journal.run(), name="journal-writer")
                tg.create_task(self._finisher(), name="call-finisher")
                tg.create_task(self._recoverer(), name="gap-recovery")
                tg.create_task(self._settler(), name="call-settler")
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self.journal.drain()
            await conn.close()

    async def handle(self, item: EventItem) -> None:
        await self._ready.wait()
        if isinstance(item, LinkEvent):
            self.journal.append_link(item)
            if item.state == "down":
                for call in self.open.values():
                    call.gap = True
            else:
                self._link_q.put_nowait(item)
            return
        entry = self.journal.append_event(item)
        self._take(entry)
        if isinstance(item, DamagedEvent) and entry.linkedid in self.open:
            # An event of this call could not be read (caller text split it): what it said is Asterisk's
            # records' to tell. Completed like a call that crossed an AMI gap (_settler, _recover).
            self.open[entry.linkedid].gap = True
            self.open[entry.linkedid].damaged = True
            log.warning("call.event_damaged", linkedid=entry.linkedid,
                        action="completed from Asterisk's records when the call ends")

    # -- following calls ---------------------------------------------------------------------------
    def _take(self, entry: JournalEntry) -> None:
        lid = entry.linkedid
        if not lid or lid in self._done or lid.startswith(LISTEN_LINKEDID_PREFIX):
            return
        call = self.open.get(lid)
        if call is None:
            call = self.open[lid] = _OpenCall(CallFold(lid))
        call.last_seen = self.clock()
        transition = call.fold.feed(entry)
        if transition is not None and transition.before is not transition.after:
            log.debug("call.transition", linkedid=lid, before=str(transition.before),
                      signal=str(transition.signal), after=str(transition.after), row=entry.name)
        if transition is not None and not transition.legal:
            log.warning("call.illegal_transition", linkedid=lid, state=str(transition.before),
                        signal=str(transition.signal), ami_event=entry.name,
                        action="call closed as incomplete")
        if call.fold.complete:
            self._complete(lid, entry.seq)

    def _complete(self, lid: str, seq: int) -> None:
        self.open.pop(lid, None)
        self._done[lid] = None
        while len(self._done) > 50_000:
            self._done.popitem(last=False)
        self._finish_q.put_nowait((lid, seq))

    def _append_to(self, lid: str, kind: str, name: str, *, uniqueid: str = "", ts: datetime,
                   ts_source: str, data: object) -> None:
        entry = self.journal.append(kind, name, linkedid=lid, uniqueid=uniqueid, ts=ts, ts_source=ts_source,
                                    received_at=self.clock(), data=data)
        self._take(entry)

    def mark_node_lost(self, lid: str, *, node: str, last_heartbeat: datetime, detail: str) -> None:
        """The leader's word on call ``lid`` of lost node ``node``: a journal mark (the record stays a pure
        function of the journal), then the record is derived from every row of the call as usual."""
        self._done.pop(lid, None)  # a call this engine never followed, or followed once before
        self.open.pop(lid, None)
        self._append_to(lid, Kind.MARK, NODE_LOST_MARK, ts=last_heartbeat, ts_source="node_heartbeat",
                        data={"node": node, "detail": detail, "last_heartbeat": last_heartbeat.isoformat()})

    def _close(self, lid: str, reason: str) -> None:
        now = self.clock()
        self._append_to(lid, Kind.MARK, "close", ts=now, ts_source="engine_clock", data={"reason": reason})

    def _add_recovered(self, lid: str, recovered: RecoveredCall) -> None:
        for row in recovered.rows:
            source = "asterisk_cdr" if row.kind == Kind.CDR_FILE else "queue_log"
            self._append_to(lid, row.kind, row.name, uniqueid=row.uniqueid, ts=row.ts, ts_source=source,
                            data=row.data)

    # -- finishing ---------------------------------------------------------------------------------
    async def _finisher(self) -> None:
        while True:
            lid, seq = await self._finish_q.get()
            await self.journal.wait_committed(seq)
            record = await self._retrying(lid)
            if record is not None and not any(i.name == "arrival" for i in record.instants) \
                    and self.sources.cdr_file is not None:
                record = await self._supplement(lid) or record
            if record is None:
                continue
            log.info("call.record", linkedid=lid, outcome=str(record.outcome),
                     call_class=str(record.call_class), caller=mask_number(record.caller_number),
                     operator=record.operator, answer_s=record.answer_seconds, hangup_by=record.hangup_by,
                     sources=list(record.sources), notes=list(record.notes), contact=record.contact or None,
                     contact_detail=record.contact_detail or None)
            for listener in self.listeners:
                try:
                    await listener.on_call_record(record)
                except Exception:  # one listener never stops the others or the tracker
                    log.exception("call.listener_failed", linkedid=lid, listener=type(listener).__name__)

    async def _supplement(self, lid: str) -> CallRecord | None:
        """A call that began while the engine was away (its first rows were not its caller's Newchannel):
        journal what Asterisk's files say about it, then derive again."""
        recovered = (await self._read_until([lid])).get(lid)
        if recovered is None:
            return None
        last = 0
        for row in recovered.rows:
            source = "asterisk_cdr" if row.kind == Kind.CDR_FILE else "queue_log"
            last = self.journal.append(row.kind, row.name, linkedid=lid, uniqueid=row.uniqueid, ts=row.ts,
                                       ts_source=source, received_at=self.clock(), data=row.data).seq
        await self.journal.wait_committed(last)
        return await self._retrying(lid)

    async def _derive_and_store(self, lid: str) -> CallRecord | None:
        assert self._conn is not None  # noqa: S101 - set in run() before any call can finish
        entries = await read_entries(self._conn, lid)
        record = derive(lid, entries, self.options, force=True)
        if record is not None:
            await store_records(self._conn, [record])
        return record

    async def _retrying(self, lid: str) -> CallRecord | None:
        delay = 0.2
        while True:
            try:
                return await self._derive_and_store(lid)
            except (OperationalError, DatabaseError) as exc:
                assert self._conn is not None  # noqa: S101
                with contextlib.suppress(DatabaseError, ValueError):
                    await self._conn.rollback()
                log.warning("call.record_store_failed", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    # -- restart and gap recovery -------------------------------------------------------------------
    async def _restore(self) -> None:
        """Calls the previous run left open: fold their journal rows again; they have a gap."""
        assert self._conn is not None  # noqa: S101
        # only this node's calls: the other node's engine follows its own (two engines, one store)
        async with self._conn.execute("SELECT MAX(ts) FROM calls_journal WHERE kind = 'ami' AND node = ?",
                                      (self.node,)) as cur:
            row = await cur.fetchone()
        if row and row[0]:
            self._restart_gap_from = datetime.fromisoformat(row[0])
        done = await recorded_linkedids(self._conn)
        async with self._conn.execute("SELECT DISTINCT linkedid FROM calls_journal WHERE linkedid != '' "
                                      "AND node = ?", (self.node,)) as cur:
            open_ids = [str(r[0]) for r in await cur.fetchall()
                        if str(r[0]) not in done and not str(r[0]).startswith(LISTEN_LINKEDID_PREFIX)]
        for lid in open_ids:
            call = _OpenCall(CallFold(lid), gap=True)
            for entry in await read_entries(self._conn, lid):
                call.fold.feed(entry)
            if call.fold.complete:  # finished but not stored when the previous run stopped
                self._done[lid] = None
                self._finish_q.put_nowait((lid, 0))
            else:
                self.open[lid] = call
        if self.open:
            log.warning("calls.restored_open_calls", count=len(self.open),
                        action="completed from Asterisk's records if they ended while the engine was down")

    async def _recoverer(self) -> None:
        first = True
        while True:
            link = await self._link_q.get()
            gap_from = link.gap_started or (self._restart_gap_from if first else None)
            first = False
            try:
                await self._recover(gap_from)
            except AmiError as exc:
                log.warning("calls.recovery_failed", error=str(exc), action="retried at the next link-up")

    async def _live_linkedids(self) -> set[str]:
        assert self._engine is not None  # noqa: S101
        _, items = await self._engine.session.list_action("CoreShowChannels")
        return {c.linkedid for i in items if (c := getattr(i, "chan", None)) is not None}

    async def _recover(self, gap_from: datetime | None) -> None:
        live = await self._live_linkedids()
        ended = [lid for lid, call in self.open.items() if lid not in live and call.gap]
        recovered: dict[str, RecoveredCall] = {}
        if ended or gap_from is not None:
            recovered = await self._read_until(ended)
        for lid in ended:
            if lid in self.open and lid in recovered:
                self._add_recovered(lid, recovered[lid])
            if lid in self.open:
                self._close(lid, "ended while the engine was not connected; completed from Asterisk's records"
                            if lid in recovered else "ended while the engine was not connected; "
                            "no record of its end in Asterisk's files")
        if gap_from is None:
            return
        assert self._conn is not None  # noqa: S101
        for lid, call in calls_since(recovered, gap_from).items():
            if lid in self.open or lid in self._done or lid in live or not call.has_caller_end \
                    or lid.startswith(LISTEN_LINKEDID_PREFIX):
                continue
            async with self._conn.execute("SELECT 1 FROM calls_journal WHERE linkedid = ? LIMIT 1",
                                          (lid,)) as cur:
                if await cur.fetchone() is not None:
                    continue
            log.warning("calls.recovered_unseen_call", linkedid=lid)
            self._add_recovered(lid, call)
            if lid in self.open:
                self._close(lid, "happened while the engine was not connected; from Asterisk's records only")

    async def _read_until(self, linkedids: list[str]) -> dict[str, RecoveredCall]:
        """Asterisk writes a CDR when the call's last leg is gone: wait briefly for the rows we need."""
        deadline = asyncio.get_running_loop().time() + self.recovery_wait_s
        while True:
            recovered = await read_recovered(self.sources)
            missing = [lid for lid in linkedids if lid not in recovered or not recovered[lid].has_caller_end]
            if not missing or asyncio.get_running_loop().time() >= deadline \
                    or self.sources.cdr_file is None:
                return recovered
            await asyncio.sleep(0.2)

    async def _settler(self) -> None:
        """A call whose caller is gone but some leg never reported its hang-up (lost in a gap) is
        closed after ``settle_s``, so no call stays open for ever."""
        while True:
            await asyncio.sleep(min(1.0, self.settle_s / 2))
            now = self.clock()
            for lid, call in list(self.open.items()):
                if call.fold.state is CallState.ENDED and call.last_seen is not None \
                        and (now - call.last_seen).total_seconds() >= self.settle_s:
                    self._close(lid, f"legs {', '.join(call.fold.live_legs)} never reported a hang-up")
            damaged = [lid for lid, call in self.open.items() if call.damaged and call.last_seen is not None
                       and (now - call.last_seen).total_seconds() >= self.settle_s]
            if damaged:
                # Its Hangup may be the event that could not be read: once its channels are gone,
                # recovery completes it from Asterisk's files (a live call is left alone).
                try:
                    await self._recover(None)
                except AmiError as exc:
                    log.warning("calls.recovery_failed", error=str(exc), action="retried")
