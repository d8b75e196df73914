"""Benchmark: the leader lease and node loss with the engine's default timings ([node] lease_s 5,
lease_renew_s 1, lost_after_s 5), on one shared SQLite store.

  freeze  -- two lease holders (the engine's cluster component, tests/support/lease_holder.py) in two
             processes; the leader captures its fence, is SIGSTOPped for --freeze-s, the other takes over
             and claims a callback attempt; after SIGCONT the woken one claims the same attempt with its old
             fence. Counted: takeover time, claims refused, dials (must be one).
  kill    -- node a's cluster component (a process, the leader) and --calls emergency calls journaled as up
             on node a; node b (call tracker, callback service, cluster component, in this process). kill -9
             of a; timed: until every call has its node_lost record and callback task.

Usage: python bench/leader.py [--freeze-s 20] [--calls 5] [--store sqlite|postgresql]
(postgresql: a private PostgreSQL server on loopback for the run, tests/support/pg.py)
Last line: RESULT takeover_s=N woken_claims_refused=N dials=N node_lost_task_s=N lost_records=N
duplicated=N
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from callflow.ami import AmiMessage, parse_event
from callflow.calls.journal import Journal, event_ids
from callflow.calls.model import Outcome
from callflow.calls.records import load_records
from callflow.calls.tracker import SCHEMAS as CALL_SCHEMAS
from callflow.calls.tracker import CallTracker
from callflow.cluster import store as cluster_store
from callflow.cluster.service import ClusterNode
from callflow.policies import callback_policy
from callflow.store import PostgresUrl, StoreLocation, open_database
from queues.callbacks import CallbackService
from queues.callbacks.rules import TaskStatus
from queues.callbacks.store import CALLBACKS_SCHEMA, attempts_of, create_task, list_tasks

ROOT = Path(__file__).resolve().parents[1]
LEASE_S = 5.0


def where(database: StoreLocation) -> str:
    return database.url if isinstance(database, PostgresUrl) else str(database)


@contextlib.contextmanager
def stores(kind: str, directory: Path) -> Iterator[tuple[StoreLocation, StoreLocation]]:
    """Two fresh stores for the two parts: SQLite files, or databases on a private PostgreSQL server."""
    if kind == "sqlite":
        yield directory / "freeze.db", directory / "kill.db"
        return
    # the tests' private PostgreSQL (one definition): the repository root holds the tests package
    sys.path.insert(0, str(ROOT))
    from tests.support.pg import remove_private_postgres, start_private_postgres  # noqa: PLC0415

    server = start_private_postgres()
    try:
        first, second = server.create_database("freeze"), server.create_database("kill")
        yield PostgresUrl.parse(first), PostgresUrl.parse(second)
    finally:
        remove_private_postgres(server)


class Holder:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, database: StoreLocation, dials: Path, node: str) -> Holder:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.lease_holder", where(database), str(dials), node,
            str(LEASE_S), cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        holder = cls(proc)
        await holder.read()
        return holder

    async def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None  # noqa: S101 - piped above
        async with asyncio.timeout(60):
            answer: dict[str, Any] = json.loads(await self.proc.stdout.readline())
        return answer

    async def ask(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None  # noqa: S101 - piped above
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.read()

    async def end(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        await self.proc.wait()


async def held_by(database: StoreLocation, node: str, timeout: float = 60) -> int:
    async with asyncio.timeout(timeout):
        while True:
            conn = await open_database(database, (cluster_store.CLUSTER_SCHEMA,))
            try:
                lease = await cluster_store.read_lease(conn)
            finally:
                await conn.close()
            if lease is not None and lease.holder == node and lease.expires_at > datetime.now(UTC):
                return lease.fencing
            await asyncio.sleep(0.02)


async def freeze(directory: Path, database: StoreLocation, freeze_s: float) -> tuple[float, int, int]:
    conn = await open_database(database, (cluster_store.CLUSTER_SCHEMA, CALLBACKS_SCHEMA))
    now = datetime.now(UTC)
    task = await create_task(conn, linkedid="a-1.1", number="081234567890", reason="bench",
                             call_class="emergency", arrival=now, now=now, status=TaskStatus.PENDING,
                             next_attempt_at=now)
    await conn.close()
    assert task is not None  # noqa: S101
    a = await Holder.start(database, directory / "dials", "a")
    b: Holder | None = None
    try:
        await held_by(database, "a")
        b = await Holder.start(database, directory / "dials", "b")
        await a.ask("fence")
        os.kill(a.proc.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        await held_by(database, "b")
        takeover = time.monotonic() - frozen
        await asyncio.sleep(max(0.0, freeze_s - takeover))
        os.kill(a.proc.pid, signal.SIGCONT)
        refused = int(not (await a.ask(f"claim {task.id}"))["claimed"])
        await b.ask("fence")
        await b.ask(f"claim {task.id}")
        refused += int(not (await a.ask(f"claim {task.id}"))["claimed"])
    finally:
        await a.end()
        if b is not None:
            await b.end()
    dials = (directory / "dials").read_text().splitlines()
    conn = await open_database(database, (CALLBACKS_SCHEMA,))
    attempts = await attempts_of(conn, task.id)
    await conn.close()
    print(f"freeze: takeover {takeover:.2f} s after SIGSTOP; woken leader's claims refused {refused}/2; "
          f"dials {dials}; attempts {[x.channel_id for x in attempts]}")
    return takeover, refused, len(dials)


def call_rows(lid: str, number: str, t0: datetime) -> list[Any]:
    caller = {"Channel": "PJSIP/citizen-ingress-00000001", "Uniqueid": lid, "Linkedid": lid,
              "CallerIDNum": number, "CallerIDName": "", "Exten": "112"}
    steps = [("Newchannel", {}), ("UserEvent", {"UserEvent": "SiagaQueueEntry", "Class": "emergency",
                                                "Queue": "emergency", "Route": "ivr"}),
             ("QueueCallerJoin", {"Queue": "emergency"})]
    out = []
    for i, (name, extra) in enumerate(steps):
        at = t0 + timedelta(seconds=i * 0.1)
        out.append(parse_event(AmiMessage((("Event", name), ("Timestamp", f"{at.timestamp():.6f}"),
                                           *caller.items(), *extra.items())), at))
    return out


async def kill(directory: Path, database: StoreLocation, calls: int) -> tuple[float, int, int]:
    conn = await open_database(database, (*CALL_SCHEMAS, cluster_store.CLUSTER_SCHEMA, CALLBACKS_SCHEMA))
    a = await Holder.start(database, directory / "kill-dials", "a")  # node a's engine: the leader
    tracker = CallTracker(database, node="b", spill_path=directory / "b.spill.jsonl")
    cluster = ClusterNode(database, "b", calls=tracker, require_asterisk=False)
    callbacks = CallbackService(database, callback_policy(), leadership=cluster)
    tracker.listeners.append(callbacks)
    engine: Any = type("Stub", (), {"session": None})()
    runs = [asyncio.create_task(c.run(engine)) for c in (tracker, callbacks, cluster)]
    try:
        await held_by(database, "a")
        journal = Journal(conn, directory / "a.spill", node="a")  # node a's rows, as its tracker wrote them
        await journal.start()
        lids = [f"a-{1796000000 + i}.1" for i in range(calls)]
        for i, lid in enumerate(lids):
            for ev in call_rows(lid, f"0812999900{i:02d}", datetime.now(UTC)):
                linkedid, _ = event_ids(ev)
                journal.append_event(ev)
                assert linkedid == lid  # noqa: S101
        await journal.drain()
        a.proc.kill()  # kill -9 of the leader engine (SIGKILL)
        killed = time.monotonic()
        async with asyncio.timeout(60):
            while True:
                records = [r for r in await load_records(conn) if r.linkedid in lids]
                tasks = [t for t in await list_tasks(conn) if t.linkedid in lids]
                if len(records) == calls and len(tasks) == calls:
                    break
                await asyncio.sleep(0.05)
        took = time.monotonic() - killed
        await asyncio.sleep(3)  # a few more looks: anything doubled would show now
        records = [r for r in await load_records(conn) if r.linkedid in lids]
        tasks = [t for t in await list_tasks(conn) if t.linkedid in lids]
        lost = calls - sum(1 for r in records if r.outcome is Outcome.NODE_LOST)
        lost += sum(1 for t in tasks if t.status is not TaskStatus.PENDING)  # each must be called back
        async with conn.execute("SELECT COUNT(*) FROM calls_journal WHERE name = 'node_lost'") as cur:
            row = await cur.fetchone()
        duplicated = (int(row[0]) if row else 0) - calls + len(tasks) - calls
    finally:
        for run in runs:
            run.cancel()
        for run in runs:
            with contextlib.suppress(asyncio.CancelledError):
                await run
        await a.end()
        await conn.close()
    print(f"kill: {calls} calls up on the killed leader a: node_lost records and tasks {took:.2f} s after "
          f"kill -9 (b's own lease take-over included)")
    return took, lost, duplicated


async def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--freeze-s", type=float, default=20.0)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, stores(args.store, Path(tmp)) as (first, second):
        takeover, refused, dials = await freeze(Path(tmp), first, args.freeze_s)
        took, lost, duplicated = await kill(Path(tmp), second, args.calls)
    print(f"RESULT store={args.store} takeover_s={takeover:.2f} woken_claims_refused={refused} dials={dials} "
          f"node_lost_task_s={took:.2f} lost_records={lost} duplicated={duplicated}")


if __name__ == "__main__":
    asyncio.run(main())
