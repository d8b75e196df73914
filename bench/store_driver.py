"""Benchmark: which PostgreSQL driver carries the call journal, psycopg 3 or asyncpg (docs/decisions.md).

What matters to the engine is the journal's durable write path: group commits of ~20-header AMI rows
(``INSERT ... ON CONFLICT DO NOTHING`` of up to --batch rows, then COMMIT), one commit per event when
events trickle in, and the time from an event's arrival to the commit that made it durable at a steady
rate. Both drivers run the same ``Journal`` code, in the same run, against one private PostgreSQL
cluster on loopback with fsync ON (tests/support/pg.py; its own temp dir and free port), each on a
fresh database; the order alternates over --rounds and the best round counts. SQLite (WAL, FULL) is
measured beside them as the embedded default's reference.

psycopg runs as the engine runs it (callflow/store/_postgres.py). asyncpg runs through the smallest
adapter that gives the journal the same interface (``$n`` placeholders, an explicit transaction).

Usage: python bench/store_driver.py [--rows 50000] [--single-rows 1000] [--rate 100] [--lag-seconds 5]
Last line: RESULT psycopg_group_rows_per_s=N asyncpg_group_rows_per_s=N psycopg_single_rows_per_s=N
           asyncpg_single_rows_per_s=N psycopg_lag_p50_ms=N psycopg_lag_p99_ms=N asyncpg_lag_p50_ms=N
           asyncpg_lag_p99_ms=N sqlite_group_rows_per_s=N
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.journal import TimedJournal, append, pct
from callflow.calls.journal import Journal
from callflow.calls.tracker import SCHEMAS
from callflow.store import (
    Cursor,
    Database,
    Dialect,
    Params,
    PostgresUrl,
    Row,
    Statement,
    open_database,
)
from tests.support.pg import PrivatePostgres, remove_private_postgres, start_private_postgres


class _AsyncpgCursor:
    def __init__(self, rows: list[Row], rowcount: int = 0) -> None:
        self._rows = rows
        self.rowcount = rowcount

    async def fetchone(self) -> Row | None:
        return self._rows[0] if self._rows else None

    async def fetchall(self) -> list[Row]:
        return self._rows

    async def fetchmany(self, size: int) -> list[Row]:
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    async def close(self) -> None:
        return None


def _dollars(sql: str) -> str:
    count = iter(range(1, 1000))
    sql = re.sub(r"INSERT OR IGNORE INTO (.*)$", r"INSERT INTO \1 ON CONFLICT DO NOTHING", sql)
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


class AsyncpgStore:
    """The journal's view of the store, over asyncpg (bench only)."""

    dialect = Dialect.POSTGRESQL

    def __init__(self, conn: asyncpg.Connection, url: PostgresUrl) -> None:
        self.conn = conn
        self.location = url
        self._tx: Any = None

    @property
    def in_transaction(self) -> bool:
        return self._tx is not None

    async def _begin(self) -> None:
        if self._tx is None:
            self._tx = self.conn.transaction()
            await self._tx.start()

    def execute(self, sql: str, params: Params = ()) -> Statement:
        async def run() -> Cursor:
            if sql.lstrip().upper().startswith("PRAGMA"):
                return _AsyncpgCursor([])
            await self._begin()
            rows = await self.conn.fetch(_dollars(sql), *params)
            return _AsyncpgCursor([tuple(r) for r in rows])
        return Statement(run)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._begin()
        await self.conn.executemany(_dollars(sql), [tuple(r) for r in rows])

    async def insert(self, sql: str, params: Params = ()) -> int:
        raise NotImplementedError

    async def commit(self) -> None:
        if self._tx is not None:
            tx, self._tx = self._tx, None
            await tx.commit()

    async def rollback(self) -> None:
        if self._tx is not None:
            tx, self._tx = self._tx, None
            await tx.rollback()

    async def close(self) -> None:
        await self.conn.close()

    async def tables(self, prefix: str = "") -> list[str]:
        raise NotImplementedError

    async def columns(self, table: str) -> list[str]:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


Opener = Callable[[], Awaitable[Database]]


def openers(server: PrivatePostgres, sqlite_dir: Path) -> dict[str, Callable[[str], Opener]]:
    """driver -> (label -> a function opening a fresh store with the journal's tables)."""
    def psycopg_store(label: str) -> Opener:
        url = PostgresUrl(server.create_database(f"psycopg_{label}"))
        return lambda: open_database(url, SCHEMAS)

    def asyncpg_store(label: str) -> Opener:
        url = PostgresUrl(server.create_database(f"asyncpg_{label}"))

        async def opened() -> Database:
            db = await open_database(url, SCHEMAS)  # the tables made the engine's way
            await db.close()
            return AsyncpgStore(await asyncpg.connect(url.url), url)
        return opened

    def sqlite_store(label: str) -> Opener:
        return lambda: open_database(sqlite_dir / f"{label}.db", SCHEMAS)

    return {"psycopg": psycopg_store, "asyncpg": asyncpg_store, "sqlite": sqlite_store}


async def write_rate(opener: Opener, spill: Path, rows: int, batch: int) -> float:
    db = await opener()
    try:
        journal = Journal(db, spill, max_batch=batch, max_buffer=rows + 1)
        await journal.start()
        for i in range(rows):
            append(journal, i)
        writer = asyncio.create_task(journal.run())
        started = time.perf_counter()
        await journal.flush()
        elapsed = time.perf_counter() - started
        writer.cancel()
        assert not journal.degraded, "the store refused rows: not a measurement"  # noqa: S101
        return rows / elapsed
    finally:
        await db.close()


async def commit_lag(opener: Opener, spill: Path, rate: float, seconds: float, batch: int) -> list[float]:
    db = await opener()
    try:
        journal = TimedJournal(db, spill, max_batch=batch)
        await journal.start()
        writer = asyncio.create_task(journal.run())
        sent: dict[int, float] = {}
        interval = 1.0 / rate
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            seq = append(journal, i)
            sent[seq] = time.time()
        await journal.flush()
        writer.cancel()
        return sorted((journal.commit_times[s] - t) * 1000 for s, t in sent.items())
    finally:
        await db.close()


async def measure(args: argparse.Namespace, server: PrivatePostgres, tmp: Path) -> dict[str, float]:
    make = openers(server, tmp)
    best: dict[str, float] = {}
    lags: dict[str, list[float]] = {}
    drivers: Sequence[str] = ("psycopg", "asyncpg")
    for rnd in range(args.rounds):
        order = [*drivers] if rnd % 2 == 0 else [*reversed(drivers)]
        for driver in [*order, "sqlite"] if rnd == 0 else order:
            spill = tmp / f"{driver}-{rnd}.spill.jsonl"
            group = await write_rate(make[driver](f"g{rnd}"), spill, args.rows, args.batch)
            best[f"{driver}_group_rows_per_s"] = max(best.get(f"{driver}_group_rows_per_s", 0), group)
            if driver == "sqlite":
                print(f"round {rnd + 1} {driver:8s} group {group:>9,.0f} rows/s")
                continue
            single = await write_rate(make[driver](f"s{rnd}"), spill, args.single_rows, 1)
            best[f"{driver}_single_rows_per_s"] = max(best.get(f"{driver}_single_rows_per_s", 0), single)
            lag = await commit_lag(make[driver](f"l{rnd}"), spill, args.rate, args.lag_seconds, args.batch)
            if driver not in lags or pct(lag, 99) < pct(lags[driver], 99):
                lags[driver] = lag
            print(f"round {rnd + 1} {driver:8s} group {group:>9,.0f} rows/s   one per event {single:>7,.0f} "
                  f"rows/s   lag at {args.rate:g}/s p50 {pct(lag, 50):6.2f} ms p99 {pct(lag, 99):6.2f} ms")
    for driver, lag in lags.items():
        best[f"{driver}_lag_p50_ms"] = pct(lag, 50)
        best[f"{driver}_lag_p99_ms"] = pct(lag, 99)
    return best


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000, help="rows for the group-commit run")
    parser.add_argument("--single-rows", type=int, default=1_000, help="rows for one-commit-per-event")
    parser.add_argument("--batch", type=int, default=2_000, help="largest group commit")
    parser.add_argument("--rate", type=float, default=100.0, help="events per second for the lag run")
    parser.add_argument("--lag-seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2, help="rounds, driver order alternating")
    args = parser.parse_args()
    server = start_private_postgres(durable=True)
    try:
        with tempfile.TemporaryDirectory(prefix="siaga112-bench-") as tmp:
            best = await measure(args, server, Path(tmp))
    finally:
        remove_private_postgres(server)
    keys = ("psycopg_group_rows_per_s", "asyncpg_group_rows_per_s", "psycopg_single_rows_per_s",
            "asyncpg_single_rows_per_s", "psycopg_lag_p50_ms", "psycopg_lag_p99_ms", "asyncpg_lag_p50_ms",
            "asyncpg_lag_p99_ms", "sqlite_group_rows_per_s")
    print("RESULT " + " ".join(f"{k}={best[k]:.0f}" if k.endswith("per_s") else f"{k}={best[k]:.2f}"
                               for k in keys))


if __name__ == "__main__":
    asyncio.run(main())
