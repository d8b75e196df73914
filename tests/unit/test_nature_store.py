"""An operator's tag is stored even while another request on the same connection is reading (the console
shares one connection): SQLite refuses that connection's write at once with "database is locked" when its
open read is older than a write another connection committed (a stale WAL snapshot: the busy timeout does
not apply). Seen under load in bench/nuisance.py: 500s on POST /api/calls/{linkedid}/nature."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callflow.calls.nature import NATURE_SCHEMA, Nature, natures_of, tag_call
from callflow.store import Cursor, OperationalError, open_database

AT = datetime(2026, 12, 5, 0, 0, tzinfo=UTC)


async def finish_reading(reading: Cursor) -> None:
    """The other request's read ends 0.2 s later (the writer must wait it out meanwhile)."""
    await asyncio.sleep(0.2)
    await reading.fetchall()
    await reading.close()


async def test_a_tag_waits_out_a_stale_read_on_its_own_connection(tmp_path: Path) -> None:
    db = tmp_path / "siaga112.db"
    console = await open_database(db, (NATURE_SCHEMA,))
    tracker = await open_database(db, (NATURE_SCHEMA,))
    try:
        for n in range(3):
            await tag_call(console, linkedid=f"1.{n}", caller_number="0812", nature=Nature.PRANK, by="op1",
                           at=AT)
        reading = await console.execute("SELECT linkedid FROM calls_nature ORDER BY id")  # a read in flight
        await tracker.execute("INSERT INTO calls_nature (linkedid, caller_number, nature, tagged_by, "
                              "tagged_at) VALUES ('2.0', '0813', 'test', 'op2', '2026-12-05T00:00:00+00:00')")
        await tracker.commit()  # the console's open read is now a stale snapshot

        finisher = asyncio.create_task(finish_reading(reading))
        tag = await tag_call(console, linkedid="1.9", caller_number="0812", nature=Nature.SILENT, by="op1",
                             at=AT)
        await finisher
        assert tag.nature is Nature.SILENT
        assert (await natures_of(tracker, ["1.9"]))["1.9"].nature is Nature.SILENT
    finally:
        await console.close()
        await tracker.close()


async def test_any_first_write_on_a_shared_connection_waits_out_a_stale_read(tmp_path: Path) -> None:
    """The same refusal met the console's other writes (an audit row after a listen-in mode switch answered
    500 in a CI run): the store itself waits it out for a statement that opens a transaction."""
    db = tmp_path / "siaga112.db"
    console = await open_database(db, (NATURE_SCHEMA,))
    other = await open_database(db, (NATURE_SCHEMA,))
    try:
        await console.execute("CREATE TABLE IF NOT EXISTS audit_like (id INTEGER PRIMARY KEY, what TEXT)")
        await console.execute("INSERT INTO audit_like (what) VALUES ('a'), ('b'), ('c')")
        await console.commit()
        reading = await console.execute("SELECT what FROM audit_like ORDER BY id")  # a read in flight
        await reading.fetchone()
        await other.execute("INSERT INTO audit_like (what) VALUES ('elsewhere')")
        await other.commit()  # the console's open read is now a stale snapshot

        finisher = asyncio.create_task(finish_reading(reading))
        new_id = await console.insert("INSERT INTO audit_like (what) VALUES ('switched to whisper')")
        await console.commit()
        await finisher
        async with other.execute("SELECT what FROM audit_like WHERE id = ?", (new_id,)) as cur:
            assert await cur.fetchone() == ("switched to whisper",)
    finally:
        await console.close()
        await other.close()


async def test_a_write_joining_another_parts_refused_empty_transaction_waits_too(tmp_path: Path) -> None:
    """Under load two requests write at once: the first's write is refused (stale read), which leaves the
    transaction it opened empty and open until that request comes back to retry. The second request's
    write, coming in between, used to be refused for good ("inside a transaction the refusal is the
    caller's"): 1 prank tag of 142 lost to a 500 in a bench/nuisance.py run. An empty transaction is
    nobody's work: it waits out the read as well."""
    db = tmp_path / "siaga112.db"
    console = await open_database(db, (NATURE_SCHEMA,))
    tracker = await open_database(db, (NATURE_SCHEMA,))
    try:
        for n in range(3):
            await tag_call(console, linkedid=f"1.{n}", caller_number="0812", nature=Nature.PRANK, by="op1",
                           at=AT)
        reading = await console.execute("SELECT linkedid FROM calls_nature ORDER BY id")  # a read in flight
        await reading.fetchone()
        await tracker.execute("INSERT INTO calls_nature (linkedid, caller_number, nature, tagged_by, "
                              "tagged_at) VALUES ('2.0', '0813', 'test', 'op2', '2026-12-05T00:00:00+00:00')")
        await tracker.commit()  # the console's open read is now a stale snapshot
        raw = console.raw  # type: ignore[attr-defined]  # the SQLite connection under the store
        with pytest.raises(sqlite3.OperationalError, match="locked"):  # the first request's refused write
            await raw.execute("INSERT INTO calls_nature (linkedid, caller_number, nature, tagged_by, "
                              "tagged_at) VALUES ('1.8', '0812', 'prank', 'op3', "
                              "'2026-12-05T00:00:00+00:00')")
        assert console.in_transaction  # ... left the transaction it opened, empty

        finisher = asyncio.create_task(finish_reading(reading))
        tag = await tag_call(console, linkedid="1.9", caller_number="0812", nature=Nature.SILENT, by="op1",
                             at=AT)
        await finisher
        assert tag.nature is Nature.SILENT
        assert (await natures_of(tracker, ["1.9"]))["1.9"].nature is Nature.SILENT
        assert "1.8" not in await natures_of(tracker, ["1.8"])  # the refused write wrote nothing
    finally:
        await console.close()
        await tracker.close()


async def test_a_transaction_with_work_in_it_is_not_ended_by_another_write(tmp_path: Path) -> None:
    """The wait never commits another part's half-done work: a write refused inside a transaction that
    already holds a statement is the caller's error, and that work stays uncommitted."""
    db = tmp_path / "siaga112.db"
    console = await open_database(db, (NATURE_SCHEMA,))
    tracker = await open_database(db, (NATURE_SCHEMA,))
    try:
        await tag_call(console, linkedid="1.0", caller_number="0812", nature=Nature.PRANK, by="op1", at=AT)
        await tracker.execute("BEGIN")
        async with tracker.execute("SELECT count(*) FROM calls_nature") as cur:  # its snapshot
            assert await cur.fetchone() == (1,)
        await console.execute("INSERT INTO calls_nature (linkedid, caller_number, nature, tagged_by, "
                              "tagged_at) VALUES ('1.1', '0812', 'test', 'op1', '2026-12-05T00:00:00+00:00')")
        await console.commit()  # the tracker's snapshot is now stale
        with pytest.raises(OperationalError, match="locked"):
            await tracker.execute("INSERT INTO calls_nature (linkedid, caller_number, nature, tagged_by, "
                                  "tagged_at) VALUES ('2.0', '0813', 'test', 'op2', "
                                  "'2026-12-05T00:00:00+00:00')")
        assert tracker.in_transaction  # still the caller's: not committed by the store
        await tracker.rollback()
    finally:
        await console.close()
        await tracker.close()
