"""An operator's tag is stored even while another request on the same connection is reading (the console
shares one connection): SQLite refuses that connection's write at once with "database is locked" when its
open read is older than a write another connection committed (a stale WAL snapshot: the busy timeout does
not apply). Seen under load in bench/nuisance.py: 500s on POST /api/calls/{linkedid}/nature."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from callflow.calls.nature import NATURE_SCHEMA, Nature, natures_of, tag_call
from callflow.store import open_database

AT = datetime(2026, 12, 5, 0, 0, tzinfo=UTC)


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

        async def finish_reading() -> None:
            await asyncio.sleep(0.2)
            await reading.fetchall()
            await reading.close()

        finisher = asyncio.create_task(finish_reading())
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

        async def finish_reading() -> None:
            await asyncio.sleep(0.2)
            await reading.fetchall()
            await reading.close()

        finisher = asyncio.create_task(finish_reading())
        new_id = await console.insert("INSERT INTO audit_like (what) VALUES ('switched to whisper')")
        await console.commit()
        await finisher
        async with other.execute("SELECT what FROM audit_like WHERE id = ?", (new_id,)) as cur:
            assert await cur.fetchone() == ("switched to whisper",)
    finally:
        await console.close()
        await other.close()
