"""The operator manager's transitions survive a store that is briefly unreachable (bench/failover.py's
postgresql-stop showed them dropped: `operator.store_failed`, "only in the log")."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callflow.store import Database, IntegrityError, OperationalError, open_database
from queues import OperatorManager, QueuePolicy
from queues.operators import SCHEMA
from queues.states import OperatorView, State, Transition

T0 = datetime(2026, 12, 5, 1, 0, tzinfo=UTC)


class Flaky:
    """The real SQLite store, whose next ``failures`` statements fail the way an unreachable one does."""

    def __init__(self, real: Database, failures: int, error: type[Exception] = OperationalError) -> None:
        self.real = real
        self.failures = failures
        self.error = error

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise self.error("connection to server lost (the server is shutting down)")
        return self.real.execute(sql, params)

    async def commit(self) -> None:
        await self.real.commit()

    async def rollback(self) -> None:
        await self.real.rollback()


def transition(op: str, new: State) -> Transition:
    return Transition(op, T0, State.OFFLINE, new, "", "QueueMemberAdded", OperatorView(op, new, T0))


async def stored(db: Database) -> list[tuple[str, str]]:
    async with db.execute("SELECT operator, new_state FROM operator_transitions ORDER BY id") as cur:
        return [(str(r[0]), str(r[1])) for r in await cur.fetchall()]


async def written(m: OperatorManager, db: Database, *transitions: Transition) -> list[tuple[str, str]]:
    """Hand the transitions to the manager's writer as the engine does; what the store holds once it has
    taken them (or after 3 s)."""
    writer = asyncio.create_task(m._writer())
    for t in transitions:
        m._writes.put_nowait(t)
    try:
        async with asyncio.timeout(3):
            while len(await stored(db)) < len(transitions):  # noqa: ASYNC110 - polling the store itself
                await asyncio.sleep(0.01)
    except TimeoutError:
        pass
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    return await stored(db)


async def test_a_transition_waits_for_the_store_and_is_written_once_in_order(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "db.sqlite", [SCHEMA])
    try:
        m = OperatorManager(database=tmp_path / "db.sqlite", policy=QueuePolicy(operators=("op1", "op2")))
        m._conn = Flaky(db, failures=3)  # type: ignore[assignment]
        assert await written(m, db, transition("op1", State.READY), transition("op2", State.READY)) == [
            ("op1", "ready"), ("op2", "ready")]
    finally:
        await db.close()


async def test_any_other_store_error_is_not_retried(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "db.sqlite", [SCHEMA])
    try:
        m = OperatorManager(database=tmp_path / "db.sqlite", policy=QueuePolicy(operators=("op1",)))
        flaky = Flaky(db, failures=1, error=IntegrityError)
        m._conn = flaky  # type: ignore[assignment]
        # logged as operator.store_failed at once, not retried until the store gives up
        assert await written(m, db, transition("op1", State.READY)) == []
    finally:
        await db.close()
