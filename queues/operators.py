"""The operator manager: the engine's component that owns operator state.

Driven by Asterisk's queue events (QueueMemberAdded/Removed/Pause/Status, AgentCalled/Connect/Complete/
RingNoAnswer, QueueCallerAbandon) through :class:`~queues.states.OperatorTable`; every transition is
stored with Asterisk's event time in the shared database (``operator_transitions``, plus the current
``operator_state``) and logged (``operator.state``). Reconciled with Asterisk's QueueStatus after every
(re)connect (the LinkEvent carries it) and every ``reconcile_interval`` seconds: a drift is logged
(``operator.drift``) and Asterisk's view adopted, since Asterisk is what routes calls.

It also records emergency overflow: the first time a caller of the emergency queue rings an operator of
the wider group (penalty 10: every logged-in operator; 20: supervisors), it sends
``UserEvent(SiagaOverflow, Tier, Operator, WaitS, Linkedid, Uniqueid)`` so the call record carries a note.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import datetime

import structlog

from callflow.ami import EventItem, LinkEvent
from callflow.ami.client import Clock, utc_now
from callflow.ami.errors import AmiError
from callflow.ami.events import (
    AgentCalled,
    AgentComplete,
    AgentConnect,
    AgentDump,
    AgentRingNoAnswer,
    QueueCallerAbandon,
    QueueCallerJoin,
    QueueCallerLeave,
    QueueMember,
    QueueMemberAdded,
    QueueMemberPause,
    QueueMemberRemoved,
    QueueMemberStatus,
)
from callflow.ami.lists import queue_status
from callflow.service import Engine
from callflow.store import (
    Database,
    DatabaseError,
    OperationalError,
    Schema,
    StoreError,
    StoreLocation,
    open_database,
)
from queues.policy import EMERGENCY, OVERFLOW_TIERS, QueuePolicy, operator_of
from queues.states import Membership, MemberSnapshot, OperatorTable, OperatorView, State, Transition

log = structlog.get_logger("queues.operators")

SCHEMA = Schema("operators", (
    """
    CREATE TABLE operator_transitions (
        id INTEGER PRIMARY KEY,
        operator TEXT NOT NULL,
        at TEXT NOT NULL,            -- ISO-8601 UTC with microseconds (Asterisk's event time)
        old_state TEXT NOT NULL,
        new_state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        pause_pending INTEGER NOT NULL DEFAULT 0,
        cause TEXT NOT NULL          -- the AMI event, 'reconcile' or 'wrapup_end'
    );
    CREATE INDEX operator_transitions_by_operator ON operator_transitions (operator, at);
    CREATE TABLE operator_state (
        operator TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        since TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        pause_pending INTEGER NOT NULL DEFAULT 0,
        queues TEXT NOT NULL DEFAULT '[]',
        caller TEXT NOT NULL DEFAULT '',
        wrapup_until TEXT,
        updated_at TEXT NOT NULL
    );
    """,
))


def snapshot(member: QueueMember) -> MemberSnapshot:
    return MemberSnapshot(operator=operator_of(member.interface or member.member_name), queue=member.queue,
                          penalty=member.penalty, paused=member.paused, reason=member.paused_reason,
                          in_call=member.in_call, device_status=member.status)


class OperatorManager:
    name = "operators"

    def __init__(self, *, database: StoreLocation, policy: QueuePolicy, clock: Clock = utc_now,
                 reconcile_interval: float = 60.0, store_retry: tuple[float, float] = (0.2, 300.0)) -> None:
        self.database = database
        # a transition the store could not take because it was unreachable (PostgreSQL restarting, SQLite
        # locked) is written again every first second (doubling up to 5 s) until the second has passed
        self.store_retry = store_retry
        self.policy = policy
        self.clock = clock
        self.reconcile_interval = reconcile_interval
        self.table = OperatorTable(policy.operators, wrapup=policy.wrapup, start=clock())
        self._engine: Engine | None = None
        self._writes: asyncio.Queue[Transition] = asyncio.Queue()
        self._conn: Database | None = None
        self._ready = asyncio.Event()  # database open, last state restored
        self._started = asyncio.Event()  # restored, or running without a database
        self._wake = asyncio.Event()
        self._seq = 0  # events applied so far
        self._last_event: dict[str, int] = {}  # operator -> seq of its latest event
        self._joined: dict[str, datetime] = {}  # emergency caller uniqueid -> queue join time
        self._overflowed: dict[str, set[str]] = {}  # caller uniqueid -> tiers recorded

    def set_policy(self, policy: QueuePolicy) -> None:
        """The site an admin applied, learnt without a restart: new operators are known (logged out until
        they log in), queue lists and wrap-up times are the new ones."""
        self.policy = policy
        added = self.table.learn(policy.operators, policy.wrapup, self.clock())
        log.info("operator.policy_changed", added=added, operators=list(policy.operators))

    # -- component protocol -------------------------------------------------------------------------
    async def run(self, engine: Engine) -> None:
        self._engine = engine
        failure = ""
        try:
            self._conn = await open_database(self.database, [SCHEMA])
        except (StoreError, OSError) as exc:
            failure = str(exc)
        if self._conn is None:
            log.error("operator.store_unavailable", database=str(self.database), error=failure,
                      action="operator transitions are NOT being stored: fix the database and restart")
            self._started.set()
            await self._timers()  # the state table still works; only storage is missing
            return
        try:
            await self._restore()
            self._ready.set()
            self._started.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._writer())
                tg.create_task(self._timers())
        finally:
            with contextlib.suppress(Exception):
                await self._flush()
            await self._conn.close()
            self._conn = None

    async def handle(self, item: EventItem) -> None:
        if not self._started.is_set():  # the stored view first, so the first reconcile corrects it
            await self._started.wait()
        if isinstance(item, LinkEvent):
            if item.state == "up":
                at = item.resynced_at or item.at
                self._apply_reconcile(at, [snapshot(m) for m in item.queue_members], self._seq)
            return
        self._seq += 1
        at = item.time
        out: list[Transition | None] = []
        if isinstance(item, QueueMemberAdded):
            name = self._touch(item.interface or item.member_name)
            out.append(self.table.member_added(name, at, Membership(
                item.queue, item.penalty, item.paused, item.paused_reason if item.paused else "")))
        elif isinstance(item, QueueMemberRemoved):
            out.append(self.table.member_removed(self._touch(item.interface or item.member_name), at,
                                                 item.queue))
        elif isinstance(item, QueueMemberPause):
            out.append(self.table.pause(self._touch(item.interface or item.member_name), at, item.queue,
                                        item.paused, item.paused_reason))
        elif isinstance(item, QueueMemberStatus):
            out.append(self.table.device(self._touch(item.interface or item.member_name), at, item.status,
                                         item.in_call))
        elif isinstance(item, AgentCalled):
            name = self._touch(item.interface or item.member_name)
            caller = item.chan.uniqueid if item.chan else ""
            out.append(self.table.ringing(name, at, caller))
            self._check_overflow(item, name, caller)
        elif isinstance(item, AgentRingNoAnswer | AgentDump):
            caller = item.chan.uniqueid if item.chan else ""
            out.append(self.table.ring_ended(self._touch(item.interface or item.member_name), at, caller,
                                             item.name))
        elif isinstance(item, AgentConnect):
            caller = item.chan.uniqueid if item.chan else ""
            out.append(self.table.connected(self._touch(item.interface or item.member_name), at, caller))
        elif isinstance(item, AgentComplete):
            out.append(self.table.completed(self._touch(item.interface or item.member_name), at, item.queue))
        elif isinstance(item, QueueCallerJoin):
            if item.queue == EMERGENCY and item.chan is not None:
                self._joined[item.chan.uniqueid] = at
        elif isinstance(item, QueueCallerAbandon | QueueCallerLeave) and item.chan is not None:
            self._joined.pop(item.chan.uniqueid, None)
            self._overflowed.pop(item.chan.uniqueid, None)
            if isinstance(item, QueueCallerAbandon):
                out.extend(self.table.caller_gone(at, item.chan.uniqueid, item.name))
        for transition in out:
            if transition is not None:
                self._record(transition)

    # -- reading (console provider, tests) ------------------------------------------------------------
    def views(self) -> list[OperatorView]:
        return self.table.views()

    async def reconcile(self) -> None:
        """Compare with Asterisk's QueueStatus now; drifts are logged and corrected."""
        if self._engine is None:
            return
        seq = self._seq
        at = self.clock()
        try:
            result = await queue_status(self._engine.session)
        except AmiError as exc:
            log.warning("operator.reconcile_failed", error=str(exc),
                        action="retried at the next interval or reconnect")
            return
        self._apply_reconcile(at, [snapshot(m) for m in result.members], seq)

    # -- internals ------------------------------------------------------------------------------------
    def _touch(self, interface: str) -> str:
        name = operator_of(interface)
        self._last_event[name] = self._seq
        return name

    def _apply_reconcile(self, at: datetime, members: list[MemberSnapshot], seq: int) -> None:
        skip = [name for name, last in self._last_event.items() if last > seq]
        drifts, transitions = self.table.reconcile(at, members, skip=skip)
        for drift in drifts:
            log.warning("operator.drift", operator=drift.operator, what=drift.what, engine=drift.engine,
                        asterisk=drift.asterisk, action="adopted Asterisk's state")
        for transition in transitions:
            self._record(transition)
        log.info("operator.reconciled", at=at.isoformat(), members=len(members), drifts=len(drifts))

    def _record(self, t: Transition) -> None:
        log.info("operator.state", operator=t.operator, old=t.old.value, new=t.new.value, reason=t.reason,
                 pause_pending=t.view.pause_pending, at=t.at.isoformat(), cause=t.cause,
                 queues=list(t.view.queues))
        if self._ready.is_set():
            self._writes.put_nowait(t)
        self._wake.set()

    def _check_overflow(self, ev: AgentCalled, name: str, caller: str) -> None:
        if ev.queue != EMERGENCY or not caller:
            return
        penalty = self.table.penalty(name, EMERGENCY)
        tier = OVERFLOW_TIERS.get(penalty or 0)
        if tier is None or tier in self._overflowed.setdefault(caller, set()):
            return
        self._overflowed[caller].add(tier)
        joined = self._joined.get(caller)
        wait = (ev.time - joined).total_seconds() if joined else 0.0
        linkedid = ev.chan.linkedid if ev.chan else caller
        log.warning("queue.overflow", linkedid=linkedid, tier=tier, operator=name, wait_s=round(wait, 1))
        if self._engine is not None:
            asyncio.get_running_loop().create_task(self._send_overflow(tier, name, wait, linkedid, caller))

    async def _send_overflow(self, tier: str, name: str, wait: float, linkedid: str, uniqueid: str) -> None:
        assert self._engine is not None  # noqa: S101 - checked by the caller
        problem = ""
        try:
            await self._engine.session.action("UserEvent", {
                "UserEvent": "SiagaOverflow", "Tier": tier, "Operator": name, "WaitS": f"{wait:.1f}",
                "Linkedid": linkedid, "Uniqueid": uniqueid})
        except AmiError as exc:
            problem = str(exc)
        if problem:
            log.error("queue.overflow_not_recorded", linkedid=linkedid, error=problem,
                      action="the overflow is in this log only, not on the call record")

    async def _restore(self) -> None:
        assert self._conn is not None  # noqa: S101
        async with self._conn.execute(
                "SELECT operator, state, since, reason, pause_pending, queues, caller, wrapup_until "
                "FROM operator_state") as cur:
            rows = list(await cur.fetchall())
        for op, state, since, reason, pending, queues, caller, wrapup_until in rows:
            self.table.restore(OperatorView(
                operator=op, state=State(state), since=datetime.fromisoformat(since), reason=reason,
                pause_pending=bool(pending), queues=tuple(json.loads(queues)), caller=caller,
                wrapup_until=datetime.fromisoformat(wrapup_until) if wrapup_until else None))
        if rows:
            log.info("operator.restored", operators=len(rows))

    async def _writer(self) -> None:
        while True:
            t = await self._writes.get()
            await self._write(t, patient=True)

    async def _flush(self) -> None:
        while not self._writes.empty():
            await self._write(self._writes.get_nowait())

    async def _write(self, t: Transition, *, patient: bool = False) -> None:
        """Store one transition. ``patient``: while the store is unreachable (OperationalError: the
        server restarting, the file locked) the transition waits, in order, and is written when the store is
        back, for up to ``store_retry[1]`` seconds; any other store error is logged at once."""
        pause, give_up_s = self.store_retry
        loop = asyncio.get_running_loop()
        deadline = loop.time() + give_up_s
        warned = False
        while True:
            try:
                await self._store(t)
            except OperationalError as exc:
                if not patient or loop.time() + pause > deadline:
                    problem = str(exc)
                    break
                if not warned:
                    warned = True
                    log.warning("operator.store_waiting", operator=t.operator, error=str(exc),
                                action="transitions wait in order and are stored when the database is back")
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            except DatabaseError as exc:
                problem = str(exc)
                break
            if warned:
                log.warning("operator.store_back", operator=t.operator, waiting=self._writes.qsize())
            return
        log.error("operator.store_failed", operator=t.operator, error=problem,
                  action="this transition is only in the log; check the database")

    async def _store(self, t: Transition) -> None:
        assert self._conn is not None  # noqa: S101
        v = t.view
        try:
            await self._conn.execute(
                "INSERT INTO operator_transitions (operator, at, old_state, new_state, reason, pause_pending,"
                " cause) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (t.operator, t.at.isoformat(), t.old.value, t.new.value, t.reason, int(v.pause_pending),
                 t.cause))
            await self._conn.execute(
                "INSERT INTO operator_state (operator, state, since, reason, pause_pending, queues, caller,"
                " wrapup_until, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (operator) DO "
                "UPDATE SET state = excluded.state, since = excluded.since, reason = excluded.reason, "
                "pause_pending = excluded.pause_pending, queues = excluded.queues, caller = excluded.caller,"
                " wrapup_until = excluded.wrapup_until, updated_at = excluded.updated_at",
                (t.operator, v.state.value, v.since.isoformat(), v.reason, int(v.pause_pending),
                 json.dumps(list(v.queues)), v.caller,
                 v.wrapup_until.isoformat() if v.wrapup_until else None, t.at.isoformat()))
            await self._conn.commit()
        except DatabaseError:
            with contextlib.suppress(DatabaseError):
                await self._conn.rollback()  # half a transition is never left to join the next attempt
            raise

    async def _timers(self) -> None:
        """Wrap-up ends (stamped with their computed end) and the periodic reconcile."""
        loop = asyncio.get_running_loop()
        next_reconcile = loop.time() + self.reconcile_interval
        while True:
            now = self.clock()
            for t in self.table.due_wrapups(now):
                self._record(t)
            wait = next_reconcile - loop.time()
            end = self.table.next_wrapup_end()
            if end is not None:
                wait = min(wait, max(0.05, (end - now).total_seconds()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.05, wait)):
                    await self._wake.wait()
            if loop.time() >= next_reconcile:
                next_reconcile = loop.time() + self.reconcile_interval
                await self.reconcile()
