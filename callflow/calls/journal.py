"""The durable journal: every consumed AMI event, every link change, and every piece of recovered
evidence, appended in order to ``calls_journal`` (SQLite WAL, synchronous=FULL) by ONE writer task with
group commits.

``append`` never blocks and never fails: rows wait in a bounded in-memory buffer. When the database is
locked or full, the writer spills the buffer to a fallback file (JSON lines, fsync'd), logs a warning and
retries; once the database takes writes again the spill file is replayed (rows carry their sequence
number, inserts are idempotent) and removed. Nothing is lost.

Two engines (one per Asterisk node) may share one store: each row carries the ``node`` that took it and
that node's own sequence number (``node_seq``, unique per node), and the store numbers the rows (``seq``,
the order every reader uses). Two nodes never overwrite or skip each other's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from callflow.ami import AmiEvent, AmiMessage, LinkEvent, parse_event
from callflow.ami.events import AttendedTransfer, BlindTransfer, ChannelEvent
from callflow.store import Database, DatabaseError, OperationalError, Schema

log = structlog.get_logger("callflow.calls.journal")

# Two nodes, one store (issue 20): the node that took each row and that node's own sequence number; the
# store assigns ``seq`` (rows of earlier versions keep theirs, node '' = a single engine). On PostgreSQL the
# identity behind ``seq`` then starts after the rows written with explicit numbers before.
_TWO_NODES = """
    ALTER TABLE calls_journal ADD COLUMN node TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls_journal ADD COLUMN node_seq INTEGER;
    UPDATE calls_journal SET node_seq = seq;
    CREATE UNIQUE INDEX calls_journal_node_seq ON calls_journal(node, node_seq);
    CREATE INDEX calls_journal_node ON calls_journal(node, linkedid);
    """

_RESTART_SEQ = """
    SELECT setval(pg_get_serial_sequence('calls_journal', 'seq'),
                  COALESCE((SELECT MAX(seq) FROM calls_journal), 0) + 1, false);
    """

JOURNAL_SCHEMA = Schema("calls_journal", (
    """
    CREATE TABLE calls_journal (
        seq INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,          -- ami | link | cdr_file | queue_log | mark
        name TEXT NOT NULL,
        linkedid TEXT NOT NULL,
        uniqueid TEXT NOT NULL,
        ts TEXT NOT NULL,            -- the row's instant (AMI Timestamp when there is one), UTC ISO
        ts_source TEXT NOT NULL,
        received_at TEXT NOT NULL,   -- engine clock when the row was taken
        data TEXT NOT NULL           -- JSON: AMI headers in wire order, or the row's fields
    );
    CREATE INDEX calls_journal_linkedid ON calls_journal(linkedid, seq);
    """,
    _TWO_NODES,
), postgresql={1: "\n".join((_TWO_NODES, _RESTART_SEQ))})

# The columns every reader selects, in JournalEntry's order (never ``SELECT *``: columns were added).
COLUMNS = "seq, kind, name, linkedid, uniqueid, ts, ts_source, received_at, data, node"
_INSERT = ("INSERT INTO calls_journal (node_seq, kind, name, linkedid, uniqueid, ts, ts_source, received_at, "
           "data, node) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (node, node_seq) DO NOTHING")


class Kind:
    AMI = "ami"
    LINK = "link"
    CDR_FILE = "cdr_file"
    QUEUE_LOG = "queue_log"
    MARK = "mark"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One row. ``seq``: the taking node's own number while the row is buffered or spilled; read back from
    the store, the store's order. ``node``: the engine's node name ('' for a single engine)."""

    seq: int
    kind: str
    name: str
    linkedid: str
    uniqueid: str
    ts: datetime
    ts_source: str
    received_at: datetime
    data: Any  # list of [header, value] for AMI rows, a dict otherwise
    node: str = ""

    def row(self) -> tuple[Any, ...]:
        return (self.seq, self.kind, self.name, self.linkedid, self.uniqueid,
                self.ts.isoformat(timespec="microseconds"), self.ts_source,
                self.received_at.isoformat(timespec="microseconds"),
                json.dumps(self.data, ensure_ascii=False, separators=(",", ":")), self.node)

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> JournalEntry:
        """A stored row (:data:`COLUMNS`) or a spill line; spill lines of earlier versions have no node."""
        seq, kind, name, linkedid, uniqueid, ts, ts_source, received_at, data, *rest = row
        return cls(int(seq), kind, name, linkedid, uniqueid, datetime.fromisoformat(ts), ts_source,
                   datetime.fromisoformat(received_at), json.loads(data), str(rest[0]) if rest else "")

    def event(self) -> AmiEvent:
        """The typed AMI event this row was taken from (``kind == ami``)."""
        msg = AmiMessage(tuple((str(k), str(v)) for k, v in self.data))
        return parse_event(msg, self.received_at)


def event_ids(event: AmiEvent) -> tuple[str, str]:
    """(linkedid, uniqueid) an AMI event belongs to; ('', '') for events about no call."""
    if isinstance(event, ChannelEvent) and event.chan is not None:
        return event.chan.linkedid, event.chan.uniqueid
    if isinstance(event, BlindTransfer):
        snap = event.transferee or event.transferer
        return (snap.linkedid, snap.uniqueid) if snap else ("", "")
    if isinstance(event, AttendedTransfer):
        snap = event.orig_transferer or event.second_transferer
        return (snap.linkedid, snap.uniqueid) if snap else ("", "")
    return "", ""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


class Journal:
    """Append-only journal with one writer task (``run``). ``committed`` is the highest durable seq."""

    def __init__(self, conn: Database | None, spill_path: Path, *, max_buffer: int = 10_000,
                 max_batch: int = 2_000, retry_s: float = 0.25, busy_timeout_ms: int = 100,
                 node: str = "") -> None:
        self.conn = conn
        self.node = node
        self.spill_path = spill_path
        self.max_buffer = max_buffer
        self.max_batch = max_batch
        self.retry_s = retry_s
        self.busy_timeout_ms = busy_timeout_ms
        self.committed = 0
        self.degraded = False
        self._next = 1
        self._buffer: deque[JournalEntry] = deque()
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Condition()
        self._started = False
        # one spill write at a time, in sequence order: the writer's (in a thread) and the last-resort
        # one on the loop (the bound on the buffer holds even while the writer's spill is slow)
        self._spill_lock = threading.Lock()
        self._durable_above: set[int] = set()

    # -- appending (never blocks, never fails) ------------------------------------------------------
    def append(self, kind: str, name: str, *, linkedid: str = "", uniqueid: str = "", ts: datetime,
               ts_source: str, received_at: datetime, data: Any) -> JournalEntry:
        entry = JournalEntry(self._next, kind, name, linkedid, uniqueid, ts, ts_source, received_at, data,
                             self.node)
        self._next += 1
        self._buffer.append(entry)
        if len(self._buffer) > self.max_buffer:
            self._spill("buffer full")  # last resort, on the loop: the bound holds even if the writer lags
        self._wakeup.set()
        return entry

    def append_event(self, event: AmiEvent) -> JournalEntry:
        linkedid, uniqueid = event_ids(event)
        return self.append(Kind.AMI, event.name, linkedid=linkedid, uniqueid=uniqueid, ts=event.time,
                           ts_source=event.time_source, received_at=event.received_at,
                           data=[list(h) for h in event.message.headers])

    def append_link(self, link: LinkEvent) -> JournalEntry:
        data = _plain(link)
        return self.append(Kind.LINK, link.name, ts=link.at, ts_source="engine_clock",
                           received_at=link.at, data=data)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    @property
    def last_seq(self) -> int:
        return self._next - 1

    # -- start-up ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Replay a spill file left by a previous run, then find the next sequence number."""
        assert self.conn is not None  # noqa: S101 - the owner sets the connection before start()
        await self.conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        if self._has_spill():
            try:
                await self._replay_spill()
            except (OperationalError, DatabaseError) as exc:
                log.warning("journal.spill_replay_deferred", error=str(exc), spill_file=str(self.spill_path))
        async with self.conn.execute("SELECT COALESCE(MAX(node_seq), 0) FROM calls_journal WHERE node = ?",
                                     (self.node,)) as cur:
            row = await cur.fetchone()
        top = int(row[0]) if row else 0
        spilled = self._read_spill()
        if spilled:
            top = max(top, spilled[-1].seq)
        # Rows of earlier runs count as settled (a torn spill line must not block progress for ever).
        self.committed = top
        self._durable_above.clear()
        # rows appended before start() (events that arrived while the database opened) are renumbered
        pending = list(self._buffer)
        self._buffer.clear()
        self._next = top + 1
        for e in pending:
            self._buffer.append(dataclasses.replace(e, seq=self._next))
            self._next += 1
        self._started = True
        self._wakeup.set()

    # -- the writer --------------------------------------------------------------------------------
    async def run(self) -> None:
        if not self._started:
            await self.start()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._buffer or self._has_spill():
                if not await self._write_once():
                    await asyncio.sleep(self.retry_s)

    async def _write_once(self) -> bool:
        try:
            if self._has_spill():
                await self._replay_spill()
            if self._buffer:
                # taken out of the buffer first: a spill while the insert runs never sees (or loses) them
                batch = [self._buffer.popleft() for _ in range(min(self.max_batch, len(self._buffer)))]
                try:
                    await self._insert(batch)
                except BaseException:
                    self._buffer.extendleft(reversed(batch))
                    raise
                await self._durable(e.seq for e in batch)
        except (OperationalError, DatabaseError) as exc:
            with contextlib.suppress(DatabaseError, ValueError, AttributeError):
                await self.conn.rollback()  # type: ignore[union-attr]
            if not self.degraded:
                log.warning("journal.database_unavailable", error=str(exc), spill_file=str(self.spill_path),
                            held_rows=len(self._buffer),
                            action="rows are kept in the spill file and written when the database is back")
            self.degraded = True
            await self._spill_off_loop(str(exc))
            return False
        if self.degraded:
            log.warning("journal.database_back", committed_seq=self.committed)
            self.degraded = False
        return True

    async def drain(self) -> None:
        """Write what is buffered now (at shutdown); what cannot be written stays in the spill file."""
        while self._buffer or self._has_spill():
            if not await self._write_once():
                return

    async def _insert(self, entries: list[JournalEntry]) -> None:
        assert self.conn is not None  # noqa: S101 - start() needs the connection first
        # the node's own number goes to node_seq (a replayed row is a no-op); the store assigns seq
        await self.conn.executemany(_INSERT, [e.row() for e in entries])
        await self.conn.commit()

    async def _durable(self, seqs: Iterable[int]) -> None:
        """Mark rows as in the database; ``committed`` advances over the contiguous prefix only, so it
        never claims a row that still sits in the spill file."""
        async with self._progress:
            self._durable_above.update(s for s in seqs if s > self.committed)
            while self.committed + 1 in self._durable_above:
                self.committed += 1
                self._durable_above.discard(self.committed)
            self._progress.notify_all()

    async def wait_committed(self, seq: int) -> None:
        async with self._progress:
            await self._progress.wait_for(lambda: self.committed >= seq)

    async def flush(self) -> None:
        """Wait until everything appended so far is durable in the database."""
        self._wakeup.set()
        await self.wait_committed(self.last_seq)

    # -- spill file --------------------------------------------------------------------------------
    def _spill(self, reason: str) -> None:
        rows = list(self._buffer)
        self._buffer.clear()
        if rows and not self._write_spill(rows, reason):
            self._buffer.extendleft(reversed(rows))

    async def _spill_off_loop(self, reason: str) -> None:
        """The writer's spill: the file write and fsync run in a thread; rows appended meanwhile wait."""
        rows = list(self._buffer)
        if not rows:
            return
        self._buffer.clear()
        written = await asyncio.to_thread(self._write_spill, rows, reason)
        if not written:
            self._buffer.extendleft(reversed(rows))

    def _write_spill(self, rows: list[JournalEntry], reason: str) -> bool:
        lines = "".join(json.dumps(e.row(), ensure_ascii=False) + "\n" for e in rows)
        try:
            with self._spill_lock, self.spill_path.open("a", encoding="utf-8") as fh:
                fh.write(lines)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:  # the disk itself is full: keep the rows in memory and say so
            log.exception("journal.spill_failed", error=str(exc), spill_file=str(self.spill_path),
                          held_rows=len(rows), reason=reason)
            return False
        log.warning("journal.spilled", rows=len(rows), spill_file=str(self.spill_path), reason=reason)
        return True

    @property
    def _replaying_path(self) -> Path:
        return self.spill_path.with_name(self.spill_path.name + ".replaying")

    def _has_spill(self) -> bool:
        return self.spill_path.exists() or self._replaying_path.exists()

    def _read_spill(self) -> list[JournalEntry]:
        entries = [e for path in (self._replaying_path, self.spill_path) if path.exists()
                   for e in self._read_spill_file(path)]
        return sorted(entries, key=lambda e: e.seq)

    async def _replay_spill(self) -> None:
        """Rows spilled so far are moved aside first (atomic rename), so rows spilled while they are
        replayed go to a fresh file and are never removed unwritten."""
        replaying = self._replaying_path
        if not replaying.exists():
            os.replace(self.spill_path, replaying)
        elif self.spill_path.exists():  # an interrupted replay: take both, oldest first
            with replaying.open("a", encoding="utf-8") as out:
                out.write(self.spill_path.read_text(encoding="utf-8"))
            self.spill_path.unlink()
        entries = self._read_spill_file(replaying)
        for i in range(0, len(entries), self.max_batch):
            await self._insert(entries[i:i + self.max_batch])
        replaying.unlink()
        if entries:
            log.warning("journal.spill_replayed", rows=len(entries), spill_file=str(self.spill_path))
            await self._durable(e.seq for e in entries)

    def _read_spill_file(self, path: Path) -> list[JournalEntry]:
        entries: list[JournalEntry] = []
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    entries.append(JournalEntry.from_row(json.loads(line)))
                except (ValueError, TypeError) as exc:  # a torn last line after a crash
                    log.warning("journal.spill_line_unreadable", file=str(path), line=number, error=str(exc))
        return sorted(entries, key=lambda e: e.seq)


async def read_entries(conn: Database, linkedid: str | None = None) -> list[JournalEntry]:
    """Journal rows of one call (or all rows), in order."""
    sql = f"SELECT {COLUMNS} FROM calls_journal"  # noqa: S608 - fixed column list
    args: tuple[str, ...] = ()
    if linkedid is not None:
        sql, args = sql + " WHERE linkedid = ?", (linkedid,)
    async with conn.execute(sql + " ORDER BY seq", args) as cur:
        return [JournalEntry.from_row(r) for r in await cur.fetchall()]
