"""The operator mirror: an engine component (two-node centres only) that keeps its own Asterisk's queues in
line with the shared operator state (:mod:`queues.mirror.rules` says what and why).

From its Asterisk it takes: queue member changes it did not cause (an operator's own log-in, log-out,
pause or resume on this node: the roster's next version) and ``DeviceStateChange`` of the operators'
phones (this node's view of each phone). Every ``interval_s`` it publishes those to the store, brings its
Asterisk's members to the newest roster, and sets ``DEVICE_STATE(Custom:siaga-<op>)`` to the busiest view
of the nodes alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from callflow.ami import AmiError, EventItem, LinkEvent
from callflow.ami.client import Clock, utc_now
from callflow.ami.events import AmiEvent, QueueMemberAdded, QueueMemberPause, QueueMemberRemoved
from callflow.cluster.rules import NodeState
from callflow.cluster.service import read_nodes
from callflow.cluster.store import CLUSTER_SCHEMA
from callflow.store import Database, DatabaseError, StoreLocation, open_database
from queues.mirror import store
from queues.mirror.rules import (
    STATE_PREFIX,
    Action,
    Busy,
    Member,
    Roster,
    busy_of,
    combined,
    node_is_newer,
    roster_actions,
)
from queues.policy import interface, operator_of

if TYPE_CHECKING:
    from callflow.service import Engine

log = structlog.get_logger("queues.mirror")

EXPECT_S = 10.0  # how long an event the mirror caused is awaited (then an equal event is an operator's own)


class OperatorMirror:
    name = "operator-mirror"

    def __init__(self, database: StoreLocation, node: str, *, lost_after_s: float = 5.0,
                 clock: Clock = utc_now, interval_s: float = 0.25) -> None:
        self.database = database
        self.node = node
        self.lost_after_s = lost_after_s
        self.clock = clock
        self.interval_s = interval_s
        self.members: dict[str, dict[str, Member]] = {}  # operator -> queue -> member (this Asterisk)
        self._expected: list[tuple[tuple[str, str, str], float]] = []
        self._changed: set[str] = set()  # operators whose change on this node is to be published
        self._applied: dict[str, int] = {}  # operator -> roster version this Asterisk holds
        self._own: dict[str, Busy] = {}  # this node's view of each phone
        self._published: dict[str, Busy] = {}
        self._custom: dict[str, Busy] = {}  # what this Asterisk's custom device states were set to
        self._link_up = False
        self._reconnected = False  # compare this Asterisk's members with the roster once (node_is_newer)
        # at a (re)connect this Asterisk's phones are asked for their state: a call that ended while the
        # engine was away sent its DeviceStateChange to nobody; a stale "in use" would keep the phone unrung
        self._reread_phones = False
        self._engine: Engine | None = None
        self._conn: Database | None = None
        self.syncs = 0

    # -- component protocol ------------------------------------------------------------------------------
    async def run(self, engine: Engine) -> None:
        self._engine = engine
        self._conn = await open_database(self.database, (CLUSTER_SCHEMA, store.MIRROR_SCHEMA))
        try:
            while True:
                try:
                    await self.sync()
                except (DatabaseError, ValueError) as exc:
                    log.warning("mirror.sync_failed", error=str(exc), action="retried")
                    with contextlib.suppress(DatabaseError):
                        await self._conn.rollback()
                self.syncs += 1
                await asyncio.sleep(self.interval_s)
        finally:
            await self._conn.close()

    async def handle(self, item: EventItem) -> None:
        if isinstance(item, LinkEvent):
            self._link_up = item.state == "up"
            if self._link_up:  # Asterisk may have restarted: its members and custom states are re-read
                self.members = {}
                for m in item.queue_members:
                    since = max(m.login_time, m.last_pause)
                    self._member(operator_of(m.interface or m.member_name), m.queue,
                                 Member(m.queue, m.penalty, m.paused, m.paused_reason, m.state_interface,
                                        datetime.fromtimestamp(since, UTC) if since > 0 else None))
                self._applied.clear()
                self._custom.clear()
                self._reconnected = True
                self._reread_phones = True
            return
        if isinstance(item, QueueMemberAdded | QueueMemberPause | QueueMemberRemoved):
            op = operator_of(item.interface or item.member_name)
            if isinstance(item, QueueMemberRemoved):
                self.members.get(op, {}).pop(item.queue, None)
            else:
                self._member(op, item.queue, Member(item.queue, item.penalty, item.paused, item.paused_reason,
                                                    item.state_interface))
            if not self._was_expected((item.name, interface(op), item.queue)):
                self._changed.add(op)  # the operator's own change on this node: the roster's next version
            return
        if isinstance(item, AmiEvent) and item.name == "DeviceStateChange":
            device = item.message.get("Device") or ""
            if device.startswith("PJSIP/"):
                self._own[device.removeprefix("PJSIP/")] = busy_of(item.message.get("State") or "")

    def _member(self, op: str, queue: str, member: Member) -> None:
        self.members.setdefault(op, {})[queue] = member

    def _was_expected(self, key: tuple[str, str, str]) -> bool:
        now = time.monotonic()
        self._expected = [(k, until) for k, until in self._expected if until > now]
        for i, (k, _) in enumerate(self._expected):
            if k == key:
                del self._expected[i]
                return True
        return False

    # -- one sync ------------------------------------------------------------------------------------------
    @property
    def _db(self) -> Database:
        assert self._conn is not None  # noqa: S101 - set in run()
        return self._conn

    async def sync(self) -> None:
        now = self.clock()
        for op in sorted(self._changed):
            mine = self.members.get(op, {})
            paused = [m for m in mine.values() if m.paused]
            roster = Roster(op, {q: m.penalty for q, m in mine.items()}, bool(paused),
                            paused[0].reason if paused else "", node=self.node)
            self._applied[op] = await store.write_roster(self._db, roster, now)
            log.info("mirror.roster_changed", operator=op, node=self.node, version=self._applied[op],
                     queues=sorted(roster.queues), paused=roster.paused)
        self._changed.clear()
        for op, busy in list(self._own.items()):
            if self._published.get(op) != busy:
                await store.set_device(self._db, op, self.node, busy, now)
                self._published[op] = busy
        if not self._link_up or self._engine is None:
            return
        rosters = await store.rosters(self._db)
        views = await store.devices(self._db)
        operators = set(self.members) | {r.operator for r in rosters} | set(views)
        if self._reread_phones:
            self._reread_phones = False
            await self._read_phones(operators)
        if self._reconnected:
            self._reconnected = False
            known = {r.operator: r for r in rosters}
            newer = [op for op, mine in self.members.items()
                     if node_is_newer(known.get(op), mine)
                     and (op not in known or roster_actions(known[op], mine, interface(op)))]
            if newer:
                self._changed.update(newer)
                return  # published at the next sync, before any roster is applied to them
        for roster in rosters:
            if self._applied.get(roster.operator) == roster.version:
                continue
            if roster.operator in self._changed:
                # the operator changed something on this node meanwhile: that is newer than any version
                # read here, and is published at the next sync (applying this one would undo it)
                continue
            op = roster.operator
            actions = roster_actions(roster, self.members.get(op, {}), interface(op))
            if await self._send(actions):
                self._applied[roster.operator] = roster.version
                if actions:
                    log.info("mirror.roster_applied", operator=roster.operator, version=roster.version,
                             from_node=roster.node, actions=[a.name for a in actions])
        alive = {v.node for v in await read_nodes(self._db, now, self.lost_after_s)
                 if v.state is NodeState.ALIVE} | {self.node}
        views = await store.devices(self._db)
        for op in sorted(operators | set(views)):
            # every operator's custom state is set once per connection, views or not: Asterisk keeps custom
            # device states across restarts (astdb), so one left "in use" is corrected, never trusted
            want = combined(b for node, b in views.get(op, {}).items() if node in alive)
            if self._custom.get(op) == want:
                continue
            try:
                await self._engine.session.action("Setvar", {"Variable": f"DEVICE_STATE({STATE_PREFIX}{op})",
                                                             "Value": str(want)})
            except AmiError as exc:
                log.warning("mirror.device_state_failed", operator=op, error=str(exc), action="retried")
                continue
            self._custom[op] = want

    async def _read_phones(self, operators: set[str]) -> None:
        """This Asterisk's view of each operator's phone now (``DEVICE_STATE(PJSIP/<op>)``), published at
        this sync like a DeviceStateChange."""
        assert self._engine is not None  # noqa: S101 - checked by the caller
        for op in sorted(operators):
            try:
                answer = await self._engine.session.action(
                    "Getvar", {"Variable": f"DEVICE_STATE({interface(op)})"})
            except AmiError as exc:
                log.warning("mirror.device_read_failed", operator=op, error=str(exc), action="retried")
                self._reread_phones = True
                continue
            self._own[op] = busy_of(answer.get("Value") or "")
        now = self.clock()
        for op, busy in list(self._own.items()):
            if self._published.get(op) != busy:
                await store.set_device(self._db, op, self.node, busy, now)
                self._published[op] = busy

    async def _send(self, actions: list[Action]) -> bool:
        assert self._engine is not None  # noqa: S101 - checked by the caller
        for action in actions:
            self._expected.append((action.expects(), time.monotonic() + EXPECT_S))
            try:
                await self._engine.session.action(action.name, dict(action.headers))
            except AmiError as exc:
                self._was_expected(action.expects())  # it will not come
                log.warning("mirror.action_failed", action_name=action.name, headers=dict(action.headers),
                            error=str(exc), action="retried at the next sync")
                return False
        return True
