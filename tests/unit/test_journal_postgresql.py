"""The journal on PostgreSQL keeps SQLite's guarantees: group commits in order, and while the server is
away (stopped ~10 s with events arriving) rows go to the spill file, then reach the database exactly
once when it is back (the private test cluster is really stopped and started: tests/support/pg.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from callflow.calls.journal import Journal, read_entries
from callflow.calls.tracker import SCHEMAS
from callflow.store import Database, PostgresUrl, open_database
from tests.support.pg import PrivatePostgres
from tests.unit.test_call_journal import add, until, writer

OUTAGE_S = 10.0


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[Database]:
    conn = await open_database(PostgresUrl.parse(postgres_url), SCHEMAS)
    yield conn
    await conn.close()


async def test_group_commit_writes_every_row_in_order(pg: Database, tmp_path: Path) -> None:
    journal = Journal(pg, tmp_path / "journal.spill.jsonl", max_batch=500)
    async with writer(journal):
        add(journal, 3000)
        async with asyncio.timeout(20):
            await journal.flush()
    entries = await read_entries(pg)
    assert [e.seq for e in entries] == list(range(1, 3001))
    assert entries[5].data == [["Event", "Newchannel"], ["N", "5"]]
    assert [e.seq for e in await read_entries(pg, "7.1")] == [8]


async def test_server_stopped_while_events_arrive_nothing_lost_nothing_doubled(
        pg: Database, private_postgres: PrivatePostgres, tmp_path: Path) -> None:
    spill = tmp_path / "journal.spill.jsonl"
    journal = Journal(pg, spill, retry_s=0.2)
    total = 0
    with capture_logs() as logs:
        async with writer(journal):
            add(journal, 100)
            total = 100
            async with asyncio.timeout(20):
                await journal.flush()
            await asyncio.to_thread(private_postgres.stop)
            try:
                ends = time.monotonic() + OUTAGE_S
                while time.monotonic() < ends:  # events keep arriving, 20 every 0.1 s
                    add(journal, 20, start=total)
                    total += 20
                    await asyncio.sleep(0.1)
                async with asyncio.timeout(10):
                    await until(spill.exists)
                assert journal.degraded
                assert journal.committed == 100  # nothing claimed durable while the server is away
            finally:
                await asyncio.to_thread(private_postgres.start)
            add(journal, 50, start=total)
            total += 50
            async with asyncio.timeout(30):
                await journal.flush()
    events = [r["event"] for r in logs]
    assert "journal.database_unavailable" in events
    assert "journal.spilled" in events
    assert "journal.database_back" in events
    entries = await read_entries(pg)
    assert [e.seq for e in entries] == list(range(1, total + 1))  # every row, once, in order
    assert [e.data[1][1] for e in entries] == [str(i) for i in range(total)]  # each event's own row
    assert not spill.exists()
    assert not spill.with_name(spill.name + ".replaying").exists()
