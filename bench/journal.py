"""Benchmark: the call journal's durable write rate and commit lag (SQLite WAL, synchronous=FULL).

Same run, same rows (a realistic ~20-header AMI event each), same code path (``Journal``):
  group   -- all rows appended at once; the writer commits up to --batch rows per transaction
  single  -- the same writer with batches of ONE row: one commit per event
  lag     -- events appended at --rate per second for --lag-seconds; for each, the time from its
             Timestamp (taken as the event is appended, like Asterisk's) to the commit that made it durable

Usage: python bench/journal.py [--rows 100000] [--single-rows 2000] [--rate 100] [--lag-seconds 5]
Last line: RESULT group_rows_per_s=N single_rows_per_s=N lag_p50_ms=N lag_p99_ms=N
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from callflow.calls.journal import Journal
from callflow.calls.tracker import SCHEMAS, spill_path_for
from callflow.store import open_database


def event_headers(i: int) -> list[list[str]]:
    now = time.time()
    return [["Event", "Newchannel"], ["Privilege", "call,all"], ["Timestamp", f"{now:.6f}"],
            ["Channel", f"PJSIP/citizen-ingress-{i:08x}"], ["ChannelState", "4"],
            ["ChannelStateDesc", "Ring"],
            ["CallerIDNum", "081234567890"], ["CallerIDName", "Warga Manado"],
            ["ConnectedLineNum", "<unknown>"], ["ConnectedLineName", "<unknown>"], ["Language", "id"],
            ["AccountCode", ""], ["Context", "from-citizens"], ["Exten", "112"], ["Priority", "1"],
            ["Uniqueid", f"1795334494.{i}"], ["Linkedid", f"1795334494.{i}"], ["Tenantid", ""]]


class TimedJournal(Journal):
    """Records when each sequence number became durable."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.commit_times: dict[int, float] = {}

    async def _durable(self, seqs: Iterable[int]) -> None:
        now = time.time()
        seqs = list(seqs)
        for s in seqs:
            self.commit_times.setdefault(s, now)
        await super()._durable(seqs)


def append(journal: Journal, i: int) -> int:
    at = datetime.now(UTC)
    entry = journal.append("ami", "Newchannel", linkedid=f"1795334494.{i}", uniqueid=f"1795334494.{i}",
                           ts=at, ts_source="ami_timestamp", received_at=at, data=event_headers(i))
    return entry.seq


async def write_rate(path: Path, rows: int, batch: int) -> float:
    conn = await open_database(path, SCHEMAS)
    try:
        journal = Journal(conn, spill_path_for(path), max_batch=batch, max_buffer=rows + 1)
        await journal.start()
        for i in range(rows):
            append(journal, i)
        writer = asyncio.create_task(journal.run())
        started = time.perf_counter()
        await journal.flush()
        elapsed = time.perf_counter() - started
        writer.cancel()
        return rows / elapsed
    finally:
        await conn.close()


async def commit_lag(path: Path, rate: float, seconds: float, batch: int) -> list[float]:
    conn = await open_database(path, SCHEMAS)
    try:
        journal = TimedJournal(conn, spill_path_for(path), max_batch=batch)
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
        await conn.close()


def pct(values: list[float], p: float) -> float:
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="rows for the group-commit run")
    parser.add_argument("--single-rows", type=int, default=2_000, help="rows for one-commit-per-event")
    parser.add_argument("--batch", type=int, default=2_000, help="largest group commit")
    parser.add_argument("--rate", type=float, default=100.0, help="events per second for the lag run")
    parser.add_argument("--lag-seconds", type=float, default=5.0)
    parser.add_argument("--dir", type=Path, help="where to put the databases (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="siaga112-bench-", dir=args.dir) as tmp:
        d = Path(tmp)
        group = await write_rate(d / "group.db", args.rows, args.batch)
        print(f"group commit   : {args.rows} rows, {group:,.0f} rows/s (batches up to {args.batch})")
        single = await write_rate(d / "single.db", args.single_rows, 1)
        print(f"one per event  : {args.single_rows} rows, {single:,.0f} rows/s")
        lags = await commit_lag(d / "lag.db", args.rate, args.lag_seconds, args.batch)
        print(f"commit lag     : {len(lags)} events at {args.rate:g}/s: p50 {pct(lags, 50):.2f} ms, "
              f"p99 {pct(lags, 99):.2f} ms, max {lags[-1]:.2f} ms")
    print(f"RESULT group_rows_per_s={group:.0f} single_rows_per_s={single:.0f} "
          f"lag_p50_ms={pct(lags, 50):.2f} lag_p99_ms={pct(lags, 99):.2f}")


if __name__ == "__main__":
    asyncio.run(main())
