"""Unit: the journal on a real SQLite file. Group commits; a locked or full database makes the writer
spill to the fallback file with a warning, and every row reaches the database once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from callflow.calls.journal import Journal, read_entries
from callflow.calls.tracker import SCHEMAS, spill_path_for
from callflow.store import Database, open_database

T0 = datetime(2026, 11, 22, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[tuple[Path, Database]]:
    path = tmp_path / "siaga112.db"
    conn = await open_database(path, SCHEMAS)
    yield path, conn
    await conn.close()


def add(journal: Journal, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        at = T0 + timedelta(milliseconds=i)
        journal.append("ami", "Newchannel", linkedid=f"{i}.1", uniqueid=f"{i}.1", ts=at,
                       ts_source="ami_timestamp", received_at=at,
                       data=[["Event", "Newchannel"], ["N", str(i)]])


async def until(predicate: Callable[[], bool]) -> None:
    """Poll a condition the journal exposes no event for (callers bound it with a timeout)."""
    while True:
        if predicate():
            return
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def writer(journal: Journal) -> AsyncIterator[asyncio.Task[None]]:
    await journal.start()
    task = asyncio.create_task(journal.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def count(conn: Database) -> int:
    async with conn.execute("SELECT COUNT(*) FROM calls_journal") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_group_commit_writes_every_row_in_order(db: tuple[Path, Database]) -> None:
    path, conn = db
    journal = Journal(conn, spill_path_for(path), max_batch=500)
    async with writer(journal):
        add(journal, 3000)
        async with asyncio.timeout(10):
            await journal.flush()
    entries = await read_entries(conn)
    assert [e.seq for e in entries] == list(range(1, 3001))
    assert entries[5].data == [["Event", "Newchannel"], ["N", "5"]]


async def test_locked_database_spills_then_writes_everything(db: tuple[Path, Database]) -> None:
    path, conn = db
    spill = spill_path_for(path)
    journal = Journal(conn, spill, retry_s=0.05, busy_timeout_ms=20)
    locker = sqlite3.connect(path, timeout=0.1)
    async with writer(journal):
        locker.execute("BEGIN EXCLUSIVE")
        with capture_logs() as logs:
            add(journal, 200)
            async with asyncio.timeout(10):
                await until(spill.exists)
                add(journal, 100, start=200)  # more rows while the database is still locked
                await until(lambda: any(r["event"] == "journal.spilled" for r in logs)
                            and not journal.pending)
            assert any(r["event"] == "journal.database_unavailable" and r["log_level"] == "warning"
                       for r in logs)
            assert journal.committed == 0
            locker.rollback()  # the database is back
            async with asyncio.timeout(10):
                await journal.flush()
            assert any(r["event"] == "journal.database_back" for r in logs)
    locker.close()
    assert [e.seq for e in await read_entries(conn)] == list(range(1, 301))
    assert not spill.exists()


async def test_full_database_spills_then_writes_everything(db: tuple[Path, Database]) -> None:
    path, conn = db
    journal = Journal(conn, spill_path_for(path), retry_s=0.05)
    async with conn.execute("PRAGMA page_count") as cur:
        row = await cur.fetchone()
    assert row is not None
    await conn.execute(f"PRAGMA max_page_count={int(row[0])}")  # "database or disk is full"
    async with writer(journal):
        with capture_logs() as logs:
            add(journal, 500)
            async with asyncio.timeout(10):
                await until(spill_path_for(path).exists)
            assert any("full" in str(r.get("error", "")) for r in logs if r["event"] ==
                       "journal.database_unavailable")
        await conn.execute("PRAGMA max_page_count=1073741823")
        async with asyncio.timeout(10):
            await journal.flush()
    assert await count(conn) == 500


async def test_spill_file_left_by_a_crash_is_replayed_at_start(db: tuple[Path, Database]) -> None:
    path, conn = db
    spill = spill_path_for(path)
    crashed = Journal(conn, spill)
    await crashed.start()
    add(crashed, 50)
    crashed._spill("test: the database was locked when the engine died")
    with spill.open("a") as fh:
        fh.write('[51, "ami", "Hang')  # torn last line
    journal = Journal(conn, spill)
    await journal.start()
    assert journal.last_seq == 50
    async with writer(journal):
        add(journal, 10, start=50)
        async with asyncio.timeout(10):
            await journal.flush()
    assert [e.seq for e in await read_entries(conn)] == list(range(1, 61))
    assert not spill.exists()


async def test_buffer_is_bounded_while_the_database_is_away(db: tuple[Path, Database]) -> None:
    path, conn = db
    journal = Journal(conn, spill_path_for(path), max_buffer=50, retry_s=0.05, busy_timeout_ms=20)
    locker = sqlite3.connect(path, timeout=0.1)
    locker.execute("BEGIN EXCLUSIVE")
    async with writer(journal):
        peak = 0
        for i in range(10):
            add(journal, 40, start=i * 40)
            peak = max(peak, journal.pending)
            await asyncio.sleep(0)
        assert peak <= 51
        locker.rollback()
        async with asyncio.timeout(10):
            await journal.flush()
    locker.close()
    assert [e.seq for e in await read_entries(conn)] == list(range(1, 401))


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_no_row_is_lost_whatever_the_outages(db: tuple[Path, Database], seed: int) -> None:
    """Appends, outages (an exclusive lock held by another process's connection) and recoveries in a
    random order: every row ends up in the database exactly once, in sequence."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible outage schedule, not a secret
    path, conn = db
    journal = Journal(conn, spill_path_for(path), max_buffer=30, max_batch=25, retry_s=0.01,
                      busy_timeout_ms=5)
    locker = sqlite3.connect(path, timeout=0.05)
    with capture_logs() as logs:
        await _outages(journal, locker, rng)
    locker.close()
    assert [e.seq for e in await read_entries(conn)] == list(range(1, journal.last_seq + 1))
    assert journal.committed == journal.last_seq
    assert sum(r["event"] == "journal.spilled" for r in logs) >= 1  # there were outages to survive


async def _outages(journal: Journal, locker: sqlite3.Connection, rng: random.Random) -> None:
    locked = False
    total = 0
    async with writer(journal):
        for _ in range(60):
            n = rng.randrange(1, 40)
            add(journal, n, start=total)
            total += n
            if rng.random() < 0.2:
                if locked:
                    locker.rollback()
                    locked = False
                else:
                    with contextlib.suppress(sqlite3.OperationalError):  # the writer holds it right now
                        locker.execute("BEGIN EXCLUSIVE")
                        locked = True
            await asyncio.sleep(rng.choice([0, 0, 0.001, 0.02]))
        if locked:
            locker.rollback()
        async with asyncio.timeout(20):
            await journal.flush()
