"""Where reports read call records (and the callback tasks that follow them up) from.

:class:`CallRecordSource` is the one thing reports need of call tracking: a record by Linkedid, the
records of calls that arrived in a period, and the callback tasks of those calls.
:class:`StoredCentre` reads the engine's store; :class:`InMemoryCallRecords` is a plain implementation
(tests, fixtures, imports)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Protocol, runtime_checkable

from callflow.calls.model import CallRecord
from callflow.calls.nature import natures_of
from callflow.calls.records import StoredCallRecords
from callflow.calls.tracker import SCHEMAS
from callflow.reports.measures import CallbackAttemptFacts, CallbackTaskFacts
from callflow.store import Database, Schema, StoreLocation, open_database

# What reports read and may create: the call tracker's tables. The callback service's tables
# (queues/callbacks/store.py) are read when they exist; importing that package here would be a cycle
# (queues -> console -> reports), so the two queries below name its columns.
REPORT_SCHEMAS: tuple[Schema, ...] = SCHEMAS  # the operators' tags (calls_nature) included


@runtime_checkable
class CallRecordSource(Protocol):
    async def get(self, linkedid: str) -> CallRecord | None:
        """The record of one call, or None if it is unknown (yet)."""
        ...

    async def between(self, since: datetime, until: datetime) -> list[CallRecord]:
        """Records of calls that arrived at the PBX in ``[since, until)``, oldest first."""
        ...

    async def callbacks(self, since: datetime | None, until: datetime | None) -> list[CallbackTaskFacts]:
        """The callback tasks of citizen calls that arrived in ``[since, until)`` (None: unbounded)."""
        ...

    async def natures(self, linkedids: Sequence[str]) -> Mapping[str, str]:
        """The operators' current tag of each call that has one (linkedid -> nature)."""
        ...


class InMemoryCallRecords:
    """Call records held in a dict; also a ``CallRecordListener`` (``on_call_record``)."""

    def __init__(self, records: Iterable[CallRecord] = (), callbacks: Iterable[CallbackTaskFacts] = (),
                 natures: Mapping[str, str] | None = None) -> None:
        self._records: dict[str, CallRecord] = {}
        self._callbacks = list(callbacks)
        self._natures = dict(natures or {})
        for record in records:
            self.add(record)

    def add(self, record: CallRecord) -> None:
        self._records[record.linkedid] = record

    async def on_call_record(self, record: CallRecord) -> None:
        self.add(record)

    async def get(self, linkedid: str) -> CallRecord | None:
        return self._records.get(linkedid)

    async def between(self, since: datetime, until: datetime) -> list[CallRecord]:
        return sorted((r for r in self._records.values() if since <= r.arrival < until),
                      key=lambda r: (r.arrival, r.linkedid))

    async def callbacks(self, since: datetime | None, until: datetime | None) -> list[CallbackTaskFacts]:
        return [t for t in self._callbacks if _within(t.arrival, since, until)]

    async def natures(self, linkedids: Sequence[str]) -> Mapping[str, str]:
        return {lid: self._natures[lid] for lid in linkedids if lid in self._natures}

    def __len__(self) -> int:
        return len(self._records)


def _within(at: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or at >= since) and (until is None or at < until)


async def callback_facts(conn: Database, since: datetime | None, until: datetime | None
                         ) -> list[CallbackTaskFacts]:
    """The callback tasks (the callback service's tables) of calls that arrived in ``[since, until)``,
    each with its attempts and the hang-up of the citizen's call (from that call's record)."""
    if "callbacks_tasks" not in await conn.tables("callbacks_tasks"):
        return []  # the callback service never ran on this database
    calls = StoredCallRecords(conn)
    attempts: dict[int, list[CallbackAttemptFacts]] = {}
    async with conn.execute("SELECT task_id, n, started_at, ended_at, outcome FROM callbacks_attempts "
                            "ORDER BY task_id, n") as cur:
        for task_id, n, started, ended, outcome in await cur.fetchall():
            answered = datetime.fromisoformat(ended) if outcome == "answered" and ended else None
            attempts.setdefault(int(task_id), []).append(CallbackAttemptFacts(
                n=int(n), started_at=datetime.fromisoformat(started), answered_at=answered))
    out: list[CallbackTaskFacts] = []
    async with conn.execute("SELECT id, linkedid, arrival, operator FROM callbacks_tasks ORDER BY id") as cur:
        rows = await cur.fetchall()
    for task_id, linkedid, arrival_text, operator in rows:
        arrival = datetime.fromisoformat(arrival_text)
        if not _within(arrival, since, until):
            continue
        original = await calls.get(linkedid)
        out.append(CallbackTaskFacts(linkedid=linkedid, arrival=arrival,
                                     hung_up=original.ended if original is not None else None,
                                     attempts=tuple(attempts.get(int(task_id), ())), operator=operator))
    return out


class StoredCentre(StoredCallRecords):
    """The engine's store as a :class:`CallRecordSource`: call records and callback tasks."""

    async def callbacks(self, since: datetime | None, until: datetime | None) -> list[CallbackTaskFacts]:
        return await callback_facts(self._conn, since, until)

    async def natures(self, linkedids: Sequence[str]) -> Mapping[str, str]:
        return {lid: str(t.nature) for lid, t in (await natures_of(self._conn, linkedids)).items()}


@asynccontextmanager
async def open_call_source(database: StoreLocation) -> AsyncIterator[CallRecordSource | None]:
    """The call records the CLI reports read, for the engine's store at ``database``.

    This is the one place where the call tracker's store is plugged in: the records the engine stored
    (``calls_records``) in the same database file as the incidents."""
    conn = await open_database(database, REPORT_SCHEMAS)
    try:
        yield StoredCentre(conn)
    finally:
        await conn.close()
