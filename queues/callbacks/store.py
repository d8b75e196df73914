"""The callback tables in the engine's shared SQLite database: one task per abandoned call (keyed by the
call's Linkedid, so re-deriving a record never creates a second task) and one row per attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from callflow.cluster.rules import Fence
from callflow.cluster.store import check_fence
from callflow.store import Database, Row, Schema
from queues.callbacks.rules import AttemptOutcome, ClosureOutcome, TaskStatus

CALLBACKS_SCHEMA = Schema("callbacks", (
    """
    CREATE TABLE callbacks_tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        linkedid TEXT NOT NULL UNIQUE,
        number TEXT NOT NULL,
        reason TEXT NOT NULL,
        call_class TEXT NOT NULL,
        arrival TEXT NOT NULL,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL,
        next_attempt_at TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        flag TEXT NOT NULL DEFAULT '',
        operator TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL
    );
    CREATE INDEX callbacks_tasks_status ON callbacks_tasks(status, next_attempt_at);
    CREATE TABLE callbacks_attempts (
        task_id INTEGER NOT NULL REFERENCES callbacks_tasks(id),
        n INTEGER NOT NULL,
        channel_id TEXT NOT NULL UNIQUE,
        action_id TEXT NOT NULL DEFAULT '',
        started_at TEXT NOT NULL,
        ended_at TEXT,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (task_id, n)
    );
    """,
    # When this database first ran the callback service: calls from before are never called back.
    "CREATE TABLE callbacks_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    # A supervisor's closing of a flagged task: who, when, how, why; the flag they acted on is kept.
    """
    CREATE TABLE callbacks_closures (
        task_id INTEGER PRIMARY KEY REFERENCES callbacks_tasks(id),
        closed_at TEXT NOT NULL,
        closed_by TEXT NOT NULL,
        outcome TEXT NOT NULL,
        note TEXT NOT NULL,
        flag TEXT NOT NULL
    );
    """,
    # The nuisance rules' decision on each task (why it is or is not dialled) and its own attempt limit.
    """
    ALTER TABLE callbacks_tasks ADD COLUMN decision TEXT NOT NULL DEFAULT '';
    ALTER TABLE callbacks_tasks ADD COLUMN max_attempts INTEGER;
    CREATE INDEX callbacks_tasks_number ON callbacks_tasks(number, created_at);
    """,
))


def _t(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="microseconds") if value is not None else None


def iso(value: datetime) -> str:
    """UTC ISO text with microseconds, as every instant is stored (compares correctly as text)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, slots=True)
class Attempt:
    task_id: int
    n: int
    channel_id: str
    started_at: datetime
    ended_at: datetime | None
    outcome: AttemptOutcome
    detail: str = ""
    action_id: str = ""


@dataclass(frozen=True, slots=True)
class CallbackTask:
    id: int
    linkedid: str  # the abandoned call
    number: str
    reason: str
    call_class: str
    arrival: datetime  # the original call's arrival: the callback keeps its place
    created_at: datetime
    status: TaskStatus
    next_attempt_at: datetime | None
    attempts: int
    flag: str
    operator: str
    updated_at: datetime
    decision: str = ""  # the nuisance rules' decision (queues/callbacks/rules.py nuisance_decision)
    max_attempts: int | None = None  # the task's own limit; None: the policy's


@dataclass(frozen=True, slots=True)
class Closure:
    """A supervisor's closing of a flagged task."""

    task_id: int
    closed_at: datetime  # engine clock (UTC) of the machine where the command ran
    closed_by: str
    outcome: ClosureOutcome
    note: str
    flag: str  # the task's flag when it was closed


_TASK_COLUMNS = ("id, linkedid, number, reason, call_class, arrival, created_at, status, next_attempt_at, "
                 "attempts, flag, operator, updated_at, decision, max_attempts")


def _task(row: Row) -> CallbackTask:
    r = tuple(row)
    return CallbackTask(id=int(str(r[0])), linkedid=str(r[1]), number=str(r[2]), reason=str(r[3]),
                        call_class=str(r[4]), arrival=datetime.fromisoformat(str(r[5])),
                        created_at=datetime.fromisoformat(str(r[6])), status=TaskStatus(str(r[7])),
                        next_attempt_at=_dt(r[8] if isinstance(r[8], str) else None),
                        attempts=int(str(r[9])), flag=str(r[10]), operator=str(r[11]),
                        updated_at=datetime.fromisoformat(str(r[12])), decision=str(r[13]),
                        max_attempts=int(str(r[14])) if r[14] is not None else None)


def _attempt(row: Row) -> Attempt:
    r = tuple(row)
    return Attempt(task_id=int(str(r[0])), n=int(str(r[1])), channel_id=str(r[2]),
                   started_at=datetime.fromisoformat(str(r[3])),
                   ended_at=_dt(r[4] if isinstance(r[4], str) else None),
                   outcome=AttemptOutcome(str(r[5])), detail=str(r[6]), action_id=str(r[7]))


async def create_task(conn: Database, *, linkedid: str, number: str, reason: str,
                      call_class: str, arrival: datetime, now: datetime, status: TaskStatus,
                      next_attempt_at: datetime | None, flag: str = "", decision: str = "",
                      max_attempts: int | None = None) -> CallbackTask | None:
    """Insert the task of call ``linkedid``; None if it already has one (exactly one task per call)."""
    cur = await conn.execute(
        "INSERT INTO callbacks_tasks (linkedid, number, reason, call_class, arrival, created_at, status, "
        "next_attempt_at, flag, updated_at, decision, max_attempts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(linkedid) DO NOTHING",
        (linkedid, number, reason, call_class, _t(arrival), _t(now), str(status), _t(next_attempt_at), flag,
         _t(now), decision, max_attempts))
    created = cur.rowcount == 1
    await conn.commit()
    if not created:
        return None
    return await task_of_call(conn, linkedid)


async def task_of_call(conn: Database, linkedid: str) -> CallbackTask | None:
    async with conn.execute(f"SELECT {_TASK_COLUMNS} FROM callbacks_tasks WHERE linkedid = ?",  # noqa: S608
                            (linkedid,)) as cur:
        row = await cur.fetchone()
    return _task(row) if row else None


async def get_task(conn: Database, task_id: int) -> CallbackTask | None:
    async with conn.execute(f"SELECT {_TASK_COLUMNS} FROM callbacks_tasks WHERE id = ?",  # noqa: S608
                            (task_id,)) as cur:
        row = await cur.fetchone()
    return _task(row) if row else None


async def list_tasks(conn: Database, *, statuses: frozenset[TaskStatus] | None = None
                     ) -> list[CallbackTask]:
    async with conn.execute(f"SELECT {_TASK_COLUMNS} FROM callbacks_tasks ORDER BY id") as cur:  # noqa: S608
        rows = await cur.fetchall()
    tasks = [_task(r) for r in rows]
    return [t for t in tasks if statuses is None or t.status in statuses]


async def update_task(conn: Database, task_id: int, *, now: datetime, status: TaskStatus,
                      next_attempt_at: datetime | None = None, flag: str | None = None,
                      operator: str | None = None, attempts: int | None = None) -> None:
    await conn.execute(
        "UPDATE callbacks_tasks SET status = ?, next_attempt_at = ?, flag = COALESCE(?, flag), "
        "operator = COALESCE(?, operator), attempts = COALESCE(?, attempts), updated_at = ? WHERE id = ?",
        (str(status), _t(next_attempt_at), flag, operator, attempts, _t(now), task_id))
    await conn.commit()


async def add_attempt(conn: Database, task_id: int, n: int, channel: str, started_at: datetime,
                      *, fence: Fence | None = None) -> bool:
    """Claim attempt ``n`` of a pending task and record it BEFORE its Originate is sent (a crash after
    sending leaves a row to re-check). One transaction: with ``fence`` (two engines on one store) its first
    statement is the leader lease's fence check (:func:`callflow.cluster.store.check_fence`), then the task
    moves to dialling only if it is still pending at ``n - 1`` attempts. False (nothing written): not the
    leader any more, or another engine claimed this attempt; the caller must not dial."""
    try:
        if fence is not None and not await check_fence(conn, fence, started_at):
            await conn.rollback()
            return False
        cur = await conn.execute(
            "UPDATE callbacks_tasks SET status = ?, attempts = ?, updated_at = ? "
            "WHERE id = ? AND status = ? AND attempts = ?",
            (str(TaskStatus.DIALLING), n, _t(started_at), task_id, str(TaskStatus.PENDING), n - 1))
        if cur.rowcount != 1:
            await conn.rollback()
            return False
        await conn.execute(
            "INSERT INTO callbacks_attempts (task_id, n, channel_id, started_at, outcome) "
            "VALUES (?, ?, ?, ?, ?)", (task_id, n, channel, _t(started_at), str(AttemptOutcome.DIALLING)))
        await conn.commit()
    except BaseException:
        await conn.rollback()
        raise
    return True


async def set_attempt(conn: Database, channel: str, *, outcome: AttemptOutcome,
                      ended_at: datetime | None, detail: str = "", action_id: str | None = None) -> None:
    await conn.execute(
        "UPDATE callbacks_attempts SET outcome = ?, ended_at = ?, detail = ?, "
        "action_id = COALESCE(?, action_id) WHERE channel_id = ?",
        (str(outcome), _t(ended_at), detail, action_id, channel))
    await conn.commit()


async def attempts_of(conn: Database, task_id: int) -> list[Attempt]:
    async with conn.execute(
            "SELECT task_id, n, channel_id, started_at, ended_at, outcome, detail, action_id "
            "FROM callbacks_attempts WHERE task_id = ? ORDER BY n", (task_id,)) as cur:
        return [_attempt(r) for r in await cur.fetchall()]


async def attempt_by_channel(conn: Database, channel: str) -> Attempt | None:
    async with conn.execute(
            "SELECT task_id, n, channel_id, started_at, ended_at, outcome, detail, action_id "
            "FROM callbacks_attempts WHERE channel_id = ?", (channel,)) as cur:
        row = await cur.fetchone()
    return _attempt(row) if row else None


async def attempts_in(conn: Database, outcomes: frozenset[AttemptOutcome]) -> list[Attempt]:
    marks = ", ".join("?" for _ in outcomes)
    async with conn.execute(
            "SELECT task_id, n, channel_id, started_at, ended_at, outcome, detail, action_id "  # noqa: S608
            f"FROM callbacks_attempts WHERE outcome IN ({marks}) ORDER BY task_id, n",
            tuple(str(o) for o in outcomes)) as cur:
        return [_attempt(r) for r in await cur.fetchall()]


async def service_since(conn: Database, now: datetime) -> datetime:
    """When callbacks started on this database (set at the first start, ``now``)."""
    await conn.execute("INSERT OR IGNORE INTO callbacks_meta (key, value) VALUES ('since', ?)", (iso(now),))
    await conn.commit()
    async with conn.execute("SELECT value FROM callbacks_meta WHERE key = 'since'") as cur:
        row = await cur.fetchone()
    return datetime.fromisoformat(str(row[0])) if row else now


async def close_flagged(conn: Database, task_id: int, *, by: str, outcome: ClosureOutcome,
                        note: str, now: datetime) -> Closure | None:
    """Close task ``task_id`` if it is flagged for a supervisor, in one transaction; None if it is not
    (any more): the status test is part of the UPDATE, so a task the engine is handling is never closed."""
    try:  # the UPDATE opens the transaction (a write: it takes the write lock at once)
        cur = await conn.execute(
            "UPDATE callbacks_tasks SET status = ?, next_attempt_at = NULL, updated_at = ? "
            "WHERE id = ? AND status = ?",
            (str(TaskStatus.CLOSED), _t(now), task_id, str(TaskStatus.SUPERVISOR)))
        if cur.rowcount != 1:
            await conn.rollback()
            return None
        await conn.execute(
            "INSERT INTO callbacks_closures (task_id, closed_at, closed_by, outcome, note, flag) "
            "SELECT id, ?, ?, ?, ?, flag FROM callbacks_tasks WHERE id = ?",
            (_t(now), by, str(outcome), note, task_id))
        await conn.commit()
    except BaseException:
        await conn.rollback()
        raise
    return await closure_of(conn, task_id)


async def closure_of(conn: Database, task_id: int) -> Closure | None:
    async with conn.execute("SELECT task_id, closed_at, closed_by, outcome, note, flag "
                            "FROM callbacks_closures WHERE task_id = ?", (task_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    r = tuple(row)
    return Closure(task_id=int(str(r[0])), closed_at=datetime.fromisoformat(str(r[1])), closed_by=str(r[2]),
                   outcome=ClosureOutcome(str(r[3])), note=str(r[4]), flag=str(r[5]))


async def recent_callbacks(conn: Database, number: str, since: datetime) -> tuple[int, ...]:
    """Tasks calling ``number`` back (any status but skipped) created at or after ``since``."""
    async with conn.execute(
            "SELECT id FROM callbacks_tasks WHERE number = ? AND created_at >= ? AND status != ? ORDER BY id",
            (number, _t(since), str(TaskStatus.SKIPPED))) as cur:
        return tuple(int(r[0]) for r in await cur.fetchall())
