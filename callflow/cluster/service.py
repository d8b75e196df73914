"""The engine's part in a cluster: its heartbeat, the leader lease, and (as leader) the calls of lost nodes.

Every ``renew_s`` the node writes its heartbeat (engine alive, its AMI link to its own Asterisk up or down),
then takes, renews or follows the lease (:func:`callflow.cluster.rules.lease_step`). A node whose Asterisk
is unreachable neither takes nor keeps the lease (callbacks are dialled through the leader's Asterisk).

As leader it looks for lost nodes (heartbeat stale, or Asterisk down, for ``lost_after_s``): each call
journaled by a lost node without a record is claimed in one fenced transaction and closed by a journal mark
(:meth:`callflow.calls.tracker.CallTracker.mark_node_lost`), so the record (outcome ``node_lost``) is derived
from the journal like any other and the callback service makes its task. A lost node's engine that comes
back finds those calls recorded and leaves them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import structlog

from callflow.ami import EventItem, LinkEvent
from callflow.ami.client import Clock, utc_now
from callflow.ami.events import Newchannel
from callflow.calls.tracker import SCHEMAS as CALL_SCHEMAS
from callflow.cluster import store
from callflow.cluster.rules import (
    Fence,
    Heartbeat,
    Lease,
    LeaseStep,
    LeaseTiming,
    NodeView,
    expiry,
    lease_step,
    lost_nodes,
    node_views,
    still_leader,
)
from callflow.store import Database, DatabaseError, StoreLocation, open_database

if TYPE_CHECKING:
    from callflow.service import Engine

log = structlog.get_logger("callflow.cluster")


class LostCalls(Protocol):
    """Where the leader closes a lost node's call (the call tracker: a journal mark, then the record)."""

    def mark_node_lost(self, lid: str, *, node: str, last_heartbeat: datetime, detail: str) -> None: ...


class ClusterNode:
    """Component: heartbeat, lease and lost-node handling of engine ``node`` (:class:`Leadership`)."""

    name = "cluster"

    def __init__(self, database: StoreLocation, node: str, *, timing: LeaseTiming | None = None,
                 lost_after_s: float = 5.0, clock: Clock = utc_now, calls: LostCalls | None = None,
                 require_asterisk: bool = True) -> None:
        if not node:
            raise ValueError("a cluster node needs a name: set [node] name in the settings file")
        self.database = database
        self.node = node
        self.timing = timing or LeaseTiming()
        self.lost_after_s = lost_after_s
        self.clock = clock
        self.calls = calls
        self.require_asterisk = require_asterisk
        self.asterisk_up = False
        self.started_at = clock()
        self._asterisk_down_since: datetime | None = self.started_at
        self._lease: Lease | None = None
        self._held: int | None = None  # the fencing number this run took the lease under
        self._settled: dict[str, datetime] = {}  # lost node -> heartbeat whose calls are all closed
        self._watching_since: datetime | None = None  # this engine has reached the store without a break
        self._conn: Database | None = None
        self.looks = 0  # completed looks (tests wait on them)
        self._ids_checked = False
        self.id_problem = ""  # set when this node's Asterisk's uniqueids lack the node's name
        self._looked = asyncio.Condition()

    # -- Leadership ------------------------------------------------------------------------------------
    def fence(self) -> Fence | None:
        """This engine's fence while, by its own clock, it holds the lease with a margin left."""
        held = self._held
        if held is None or not still_leader(self._lease, self.node, held, self.clock(), self.timing):
            return None
        return Fence(self.node, held)

    @property
    def leading(self) -> bool:
        return self.fence() is not None

    # -- component protocol ------------------------------------------------------------------------------
    async def run(self, engine: Engine | None) -> None:
        self._conn = await open_database(self.database, (*CALL_SCHEMAS, store.CLUSTER_SCHEMA))
        try:
            while True:
                try:
                    await self.look()
                except (DatabaseError, ValueError) as exc:
                    self._watching_since = None  # others' silence counts again from the store's return
                    log.warning("cluster.look_failed", node=self.node, error=str(exc),
                                action="retried at the next look; once-only work waits for the lease")
                    with contextlib.suppress(DatabaseError):
                        await self._conn.rollback()
                async with self._looked:
                    self.looks += 1
                    self._looked.notify_all()
                await asyncio.sleep(self.timing.renew_s)
        finally:
            await self._release()
            await self._conn.close()
            self._conn = None

    async def handle(self, item: EventItem) -> None:
        if isinstance(item, Newchannel) and item.chan is not None and not self._ids_checked:
            self._check_ids(item.chan.uniqueid)
        if isinstance(item, LinkEvent):
            self.asterisk_up = item.state == "up"
            if self.asterisk_up:
                self._asterisk_down_since = None
            elif self._asterisk_down_since is None:
                self._asterisk_down_since = item.at

    def _check_ids(self, uniqueid: str) -> None:
        """Two nodes' calls never share an id only if each Asterisk's ``systemname`` (the uniqueid prefix)
        is its node's name: say so at the first channel that shows otherwise."""
        if uniqueid.startswith("siaga-"):  # the engine's own ChannelIds (callbacks, listen-in): unique
            return
        self._ids_checked = True
        if not uniqueid.startswith(f"{self.node}-"):
            self.id_problem = (f"Asterisk's uniqueid {uniqueid!r} does not start with this node's name "
                               f"{self.node!r}-: set systemname = {self.node} in this node's asterisk.conf "
                               "([options]) and restart it, or the two nodes' call ids may collide")
            log.error("cluster.systemname_mismatch", node=self.node, uniqueid=uniqueid,
                      problem=self.id_problem)

    async def settled(self, looks: int = 2) -> None:
        """Wait for ``looks`` more looks (tests)."""
        async with self._looked:
            start = self.looks
            await self._looked.wait_for(lambda: self.looks >= start + looks)

    # -- one look ------------------------------------------------------------------------------------------
    @property
    def _db(self) -> Database:
        assert self._conn is not None  # noqa: S101 - set in run()
        return self._conn

    def _asterisk_ok(self) -> bool:
        return self.asterisk_up or not self.require_asterisk

    async def look(self) -> None:
        now = self.clock()
        await store.beat(self._db, Heartbeat(self.node, now, self.started_at, self._asterisk_ok(),
                                             self._asterisk_down_since if self.require_asterisk else None))
        if self._watching_since is None:
            self._watching_since = now
        await self._lease_look(now)
        if self.leading:
            await self._lost_nodes(now)

    async def _lease_look(self, now: datetime) -> None:
        lease = await store.read_lease(self._db)
        if lease is None:
            raise ValueError("the store has no leader lease row (cluster tables not migrated?)")
        was = self._held
        if not self._asterisk_ok():  # no Asterisk, no once-only work: let a node with one lead
            if was is not None:
                await self._release()
                log.warning("cluster.lease_released", node=self.node, fencing=was,
                            reason="this node's Asterisk is unreachable")
            self._lease = lease
            return
        step = lease_step(lease, self.node, self._held, now)
        if step is LeaseStep.RENEW and self._held is not None:
            until = expiry(now, self.timing)
            if await store.renew_lease(self._db, Fence(self.node, self._held), until):
                self._lease = Lease(self.node, self._held, until)
                return
            step = LeaseStep.FOLLOW
            lease = await store.read_lease(self._db) or lease
        if step is LeaseStep.TAKE:
            until = expiry(now, self.timing)
            taken = await store.take_lease(self._db, self.node, lease, now, expires_at=until)
            if taken is not None:
                self._lease, self._held = taken, taken.fencing
                log.warning("cluster.leader", node=self.node, fencing=taken.fencing,
                            previous=lease.holder or None, previous_fencing=lease.fencing)
                return
            lease = await store.read_lease(self._db) or lease
        self._lease = lease
        if was is not None:
            self._held = None
            log.warning("cluster.lease_lost", node=self.node, fencing=was, holder=lease.holder,
                        holder_fencing=lease.fencing, action="once-only work stopped; the holder does it")

    async def _release(self) -> None:
        held, self._held = self._held, None
        if held is None or self._conn is None:
            return
        with contextlib.suppress(DatabaseError):
            await store.release_lease(self._conn, Fence(self.node, held), self.clock())

    async def _lost_nodes(self, now: datetime) -> None:
        fence = self.fence()
        if fence is None or self.calls is None:
            return
        beats = await store.heartbeats(self._db)
        for beat in lost_nodes(beats, self.node, now, self.lost_after_s, self._watching_since):
            if self._settled.get(beat.node) == beat.at:
                continue  # this loss is handled; looked at again if the node beats and is lost again
            linkedids = await store.calls_up_on(self._db, beat.node, fence.fencing)
            claimed = (await store.claim_lost_calls(self._db, fence, beat.node, linkedids, now)
                       if linkedids else [])
            detail = _why_lost(beat, now, self.lost_after_s)
            for lid in claimed:
                self.calls.mark_node_lost(lid, node=beat.node, last_heartbeat=beat.at, detail=detail)
            if claimed:
                log.warning("cluster.node_lost", node=beat.node, by=self.node, fencing=fence.fencing,
                            calls=len(claimed), reason=detail,
                            since_heartbeat_s=round((now - beat.at).total_seconds(), 3))
            self._settled[beat.node] = beat.at

    # -- the wallboard's view ------------------------------------------------------------------------------
    async def nodes(self) -> Sequence[NodeView]:
        if self._conn is None:  # asked before run() opened the store (the console starts alongside)
            return ()
        return await read_nodes(self._conn, self.clock(), self.lost_after_s, me=self.node)


def _why_lost(beat: Heartbeat, now: datetime, lost_after_s: float) -> str:
    if not beat.asterisk_up and beat.asterisk_down_since is not None \
            and (now - beat.at).total_seconds() <= lost_after_s:
        return f"its Asterisk unreachable since {beat.asterisk_down_since.isoformat()}"
    return f"no heartbeat since {beat.at.isoformat()}"


async def read_nodes(conn: Database, now: datetime, lost_after_s: float, me: str = "") -> list[NodeView]:
    """Each node's state, leader flag and heartbeat, as the store says now (``me``: the node asking)."""
    return node_views(await store.heartbeats(conn), await store.read_lease(conn), now, lost_after_s, me)
