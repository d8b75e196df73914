"""The callback service in a two-node centre: only the leader dials, and its claim carries its fence."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from callflow.ami import LinkEvent
from callflow.cluster import store as cluster_store
from callflow.cluster.rules import Fence
from callflow.policies import callback_policy
from callflow.siteconfig import Callbacks
from callflow.store import StoreLocation, open_database
from queues.callbacks import CallbackService
from queues.callbacks.store import CALLBACKS_SCHEMA, attempts_of, list_tasks
from tests.conftest import BOTH_STORES
from tests.support.callbacks import StubEngine, record

pytestmark = BOTH_STORES


class Switch:
    """A leadership whose fence the test sets."""

    def __init__(self) -> None:
        self.current: Fence | None = None

    def fence(self) -> Fence | None:
        return self.current


async def test_a_follower_dials_nothing_the_leader_dials_under_its_fence(
        store_location: StoreLocation) -> None:
    database = store_location
    conn = await open_database(database, (cluster_store.CLUSTER_SCHEMA, CALLBACKS_SCHEMA))
    lease = await cluster_store.read_lease(conn)
    assert lease is not None
    taken = await cluster_store.take_lease(conn, "b", lease, datetime.now(UTC), expires_at=datetime.now(UTC))
    assert taken is not None  # b holds fencing 1 in the store (its expiry does not matter to the fence)
    switch = Switch()
    policy = callback_policy(Callbacks(first_attempt_s=0, retry_s=5, max_attempts=2, ring_timeout_s=10))
    svc = CallbackService(database, policy, interval_s=0.01, leadership=switch)
    engine: Any = StubEngine()
    runner = asyncio.create_task(svc.run(engine))
    try:
        await svc.on_call_record(record())
        await svc.handle(LinkEvent("up", datetime.now(UTC)))
        async with asyncio.timeout(5):
            await svc.settled(5)
        assert engine.session.sent == []  # following: the task waits for the leader
        switch.current = Fence("a", 7)  # a stale fence (another node holds the lease): refused in the store
        async with asyncio.timeout(5):
            await svc.settled(5)
        assert engine.session.sent == []
        task = (await list_tasks(conn))[0]
        assert await attempts_of(conn, task.id) == []
        switch.current = Fence("b", taken.fencing)  # leading
        async with asyncio.timeout(5):
            while not engine.session.sent:  # noqa: ASYNC110 - the stub records what was sent
                await asyncio.sleep(0.01)
        assert [name for name, _, _ in engine.session.sent] == ["Originate"]
        assert len(await attempts_of(conn, task.id)) == 1
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await conn.close()


async def test_a_leader_paused_between_its_claim_and_the_originate_does_not_dial_when_it_wakes(
        store_location: StoreLocation) -> None:
    """SIGSTOP between the claim and the Originate (here: while it reads the original call's record): the
    store took the claim, the lease moved on meanwhile. The woken engine must not send the Originate: the
    new leader settles the claimed attempt (unknown) and dials the next one, so sending it would ring the
    citizen twice (bench/failover.py counts that as a double dial)."""
    conn = await open_database(store_location, (cluster_store.CLUSTER_SCHEMA, CALLBACKS_SCHEMA))
    lease = await cluster_store.read_lease(conn)
    assert lease is not None
    now = datetime.now(UTC)
    taken = await cluster_store.take_lease(conn, "a", lease, now, expires_at=now)
    assert taken is not None
    switch = Switch()
    switch.current = Fence("a", taken.fencing)  # leading
    policy = callback_policy(Callbacks(first_attempt_s=0, retry_s=5, max_attempts=2, ring_timeout_s=10))
    svc = CallbackService(store_location, policy, interval_s=0.01, leadership=switch)
    read_record = svc._record_of
    paused = asyncio.Event()

    async def pause_then_read(linkedid: str) -> Any:
        switch.current = None  # woken: by its own clock the lease ran out while it was stopped
        paused.set()
        return await read_record(linkedid)

    svc._record_of = pause_then_read  # type: ignore[method-assign]
    engine: Any = StubEngine()
    runner = asyncio.create_task(svc.run(engine))
    try:
        await svc.on_call_record(record())
        await svc.handle(LinkEvent("up", datetime.now(UTC)))
        async with asyncio.timeout(5):
            await paused.wait()
            await svc.settled(5)
        assert engine.session.sent == []
        task = (await list_tasks(conn))[0]
        [attempt] = await attempts_of(conn, task.id)  # claimed: the leader's watchdog settles it
        assert attempt.n == 1
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await conn.close()
