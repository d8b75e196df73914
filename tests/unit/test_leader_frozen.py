"""Process level: two lease holders (the engine's real cluster component) in two processes on one shared
SQLite store. The leader captures its fence, is frozen with SIGSTOP for longer than its lease, the other
takes over; after SIGCONT the woken one's callback claim is refused: one attempt in the store, one dial."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from callflow.cluster import store
from callflow.cluster.rules import Lease
from callflow.store import PostgresUrl, StoreLocation, open_database
from queues.callbacks.rules import TaskStatus
from queues.callbacks.store import CALLBACKS_SCHEMA, attempts_of, create_task, get_task
from tests.conftest import BOTH_STORES
from tests.support.callbacks import T0

ROOT = Path(__file__).resolve().parents[2]
pytestmark = BOTH_STORES


class Holder:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def ask(self, line: str, timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        async with asyncio.timeout(timeout):
            answer: dict[str, Any] = json.loads(await self.proc.stdout.readline())
        return answer


async def _start(database: StoreLocation, dials: Path, node: str) -> Holder:
    where = database.url if isinstance(database, PostgresUrl) else str(database)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.lease_holder", where, str(dials), node, cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        assert json.loads(await proc.stdout.readline()) == {"started": node}
    return Holder(proc)


async def _lease(database: StoreLocation) -> Lease | None:
    conn = await open_database(database, (store.CLUSTER_SCHEMA,))
    try:
        return await store.read_lease(conn)
    finally:
        await conn.close()


async def _until_held_by(database: StoreLocation, node: str, timeout: float) -> Lease:
    async with asyncio.timeout(timeout):
        while True:
            lease = await _lease(database)
            if lease is not None and lease.holder == node:
                return lease
            await asyncio.sleep(0.05)


@pytest.fixture
async def holders(store_location: StoreLocation) -> AsyncIterator[tuple[StoreLocation, list[Holder]]]:
    database = store_location  # one SQLite file, or one PostgreSQL database, shared by both processes
    started: list[Holder] = []
    try:
        yield database, started
    finally:
        for holder in started:
            with contextlib.suppress(ProcessLookupError):
                holder.proc.send_signal(signal.SIGCONT)
                holder.proc.kill()
            await holder.proc.wait()


@pytest.mark.timeout(60)
async def test_a_leader_frozen_past_its_lease_cannot_dial_a_callback_twice(
        holders: tuple[StoreLocation, list[Holder]], tmp_path: Path) -> None:
    database, started = holders
    dials = tmp_path / "dials"  # one line per Originate the holders would send
    conn = await open_database(database, (store.CLUSTER_SCHEMA, CALLBACKS_SCHEMA))
    try:
        task = await create_task(conn, linkedid="a-1796000000.1", number="081234567890", reason="test",
                                 call_class="emergency", arrival=T0, now=T0, status=TaskStatus.PENDING,
                                 next_attempt_at=T0)
    finally:
        await conn.close()
    assert task is not None
    a = await _start(database, dials, "a")
    started.append(a)
    first = await _until_held_by(database, "a", timeout=10)
    b = await _start(database, dials, "b")
    started.append(b)
    assert (await b.ask("state"))["fence"] is None  # b follows a's live lease

    assert await a.ask("fence") == {"fence": first.fencing}  # a checked it leads...
    os.kill(a.proc.pid, signal.SIGSTOP)  # ...and froze before its claim, past its 1 s lease
    frozen = time.monotonic()
    second = await _until_held_by(database, "b", timeout=10)
    takeover_s = time.monotonic() - frozen
    assert second.fencing == first.fencing + 1
    await asyncio.sleep(max(0.0, 2.5 - takeover_s))  # frozen for 2.5 s in all
    os.kill(a.proc.pid, signal.SIGCONT)

    refused = await a.ask(f"claim {task.id}")  # the woken leader goes on where it froze
    assert refused == {"claimed": False, "fencing": first.fencing}
    assert await b.ask("fence") == {"fence": second.fencing}
    assert await b.ask(f"claim {task.id}") == {"claimed": True, "fencing": second.fencing}
    assert (await a.ask(f"claim {task.id}"))["claimed"] is False
    assert (await a.ask("state"))["fence"] is None  # its own look found the lease gone

    assert dials.read_text().splitlines() == [f"b {task.id}"]
    conn = await open_database(database, (CALLBACKS_SCHEMA,))
    try:
        attempts = await attempts_of(conn, task.id)
        stored = await get_task(conn, task.id)
    finally:
        await conn.close()
    assert [x.channel_id for x in attempts] == [f"siaga-cb-{task.id}-1-b"]
    assert stored is not None
    assert stored.attempts == 1
    assert takeover_s < 3.0, f"the other node took over {takeover_s:.2f} s after the leader froze"
