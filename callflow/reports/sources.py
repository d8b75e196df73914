"""Where reports read call records from.

:class:`CallRecordSource` is the one thing reports need of call tracking: a record by Linkedid and the
records of calls that arrived in a period. The tracker's store implements it; :class:`InMemoryCallRecords`
is a plain implementation (tests, fixtures, imports)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from callflow.calls.model import CallRecord
from callflow.calls.records import StoredCallRecords
from callflow.calls.tracker import SCHEMAS
from callflow.store import open_database


@runtime_checkable
class CallRecordSource(Protocol):
    async def get(self, linkedid: str) -> CallRecord | None:
        """The record of one call, or None if it is unknown (yet)."""
        ...

    async def between(self, since: datetime, until: datetime) -> list[CallRecord]:
        """Records of calls that arrived at the PBX in ``[since, until)``, oldest first."""
        ...


class InMemoryCallRecords:
    """Call records held in a dict; also a ``CallRecordListener`` (``on_call_record``)."""

    def __init__(self, records: Iterable[CallRecord] = ()) -> None:
        self._records: dict[str, CallRecord] = {}
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

    def __len__(self) -> int:
        return len(self._records)


@asynccontextmanager
async def open_call_source(database: Path) -> AsyncIterator[CallRecordSource | None]:
    """The call records the CLI reports read, for the engine's store at ``database``.

    This is the one place where the call tracker's store is plugged in: the records the engine stored
    (``calls_records``) in the same database file as the incidents."""
    conn = await open_database(database, SCHEMAS)
    try:
        yield StoredCallRecords(conn)
    finally:
        await conn.close()
