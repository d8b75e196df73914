"""Two engines, one store: the leader lease and node liveness as pure rules (no I/O, no clock).

Work that must happen once (dialling callbacks, purges, reconciliation, closing the calls of a lost node)
is done by the engine holding the **leader lease**. The lease is one row in the shared store: who holds
it, until when, and its **fencing number**, raised by one at every change of holder. A holder proves it
still holds the lease by naming its fencing number in the same transaction as the work
(:mod:`callflow.cluster.store`): a leader frozen (SIGSTOP, a long GC pause, a stalled VM) past its
lease wakes with an old number, and the store refuses its work.

A node is **alive** while its engine's heartbeat is fresh, **lost** once the heartbeat is older than
``lost_after_s``. Instants come from each engine's UTC clock (NTP-synchronised hosts: the skew must stay
well under the lease).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

LEADER = "leader"  # the one lease every engine competes for


class LeaseStep(StrEnum):
    """What an engine does about the lease at one look."""

    TAKE = "take"  # free or expired: take it (the fencing number goes up by one)
    RENEW = "renew"  # ours: push its expiry on (same fencing number)
    FOLLOW = "follow"  # another node holds it and it has not expired: do no once-only work


class NodeState(StrEnum):
    ALIVE = "alive"
    LOST = "lost"


class AsteriskState(StrEnum):
    """A node's Asterisk as the wallboard can know it: through its engine's heartbeat."""

    UP = "up"
    UNREACHABLE = "unreachable"  # its engine's AMI link to it is down
    UNKNOWN = "unknown"  # its engine is silent: the last word about its Asterisk is stale


@dataclass(frozen=True, slots=True)
class Lease:
    """The lease row as read from the store."""

    holder: str  # node name; "" never held
    fencing: int  # raised by one at every change of holder
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Fence:
    """The proof of leadership the store checks in the same transaction as once-only work."""

    holder: str
    fencing: int
    lease: str = LEADER


class Leadership(Protocol):
    """What once-only work asks before it starts: this engine's fence while it believes it leads, else
    None. The store checks the fence again in the work's own transaction."""

    def fence(self) -> Fence | None: ...


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """``ttl_s``: how long a lease lasts unrenewed; ``renew_s``: how often the holder renews (and others
    look). A holder that missed renewals for ``ttl_s - margin_s`` stops its once-only work on its own,
    before anyone may take over; the store's fence catches the rest (a pause in the middle of the work)."""

    ttl_s: float = 5.0
    renew_s: float = 1.0
    margin_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.renew_s < self.ttl_s:
            raise ValueError(f"lease renewal every {self.renew_s} s must be shorter than the lease "
                             f"({self.ttl_s} s): set [node] lease_renew_s below [node] lease_s")
        if not 0 <= self.margin_s < self.ttl_s:
            raise ValueError(f"lease margin {self.margin_s} s must be shorter than the lease "
                             f"({self.ttl_s} s)")


def lease_step(lease: Lease | None, me: str, held: int | None, now: datetime) -> LeaseStep:
    """Take a free or expired lease, renew our own (``held``: the fencing number this run took it under),
    follow another node's live one. Renewing an expired lease of ours is safe: the store renews only on an
    unchanged fencing number, so nobody took it meanwhile. A lease in our node's name that this run did not
    take (an earlier run of this engine, killed) is taken afresh: the new number fences the old run out."""
    if lease is None or not lease.holder:
        return LeaseStep.TAKE
    if lease.holder == me:
        return LeaseStep.RENEW if held == lease.fencing else LeaseStep.TAKE
    return LeaseStep.TAKE if lease.expires_at <= now else LeaseStep.FOLLOW


def expiry(now: datetime, timing: LeaseTiming) -> datetime:
    return now + timedelta(seconds=timing.ttl_s)


def still_leader(lease: Lease | None, me: str, fencing: int, now: datetime, timing: LeaseTiming) -> bool:
    """Whether this engine should go on with once-only work: it holds the lease under ``fencing`` and the
    lease has at least ``margin_s`` left by its own clock. (A frozen engine cannot ask itself this while
    frozen: the store's fence check is what actually refuses its work.)"""
    return (lease is not None and lease.holder == me and lease.fencing == fencing
            and lease.expires_at - timedelta(seconds=timing.margin_s) > now)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A node's last word in the store."""

    node: str
    at: datetime
    started_at: datetime
    asterisk_up: bool
    asterisk_down_since: datetime | None = None  # its engine's AMI link to its Asterisk is down since


def engine_silent(beat: Heartbeat, now: datetime, lost_after_s: float) -> bool:
    """No heartbeat for ``lost_after_s``: the node's engine is dead or frozen, or its host is down."""
    return (now - beat.at).total_seconds() > lost_after_s


def node_state(beat: Heartbeat, now: datetime, lost_after_s: float) -> NodeState:
    """Lost: no heartbeat for ``lost_after_s`` (engine dead or frozen, host down), or the engine alive but
    its Asterisk unreachable for as long (the calls on that Asterisk are gone with it)."""
    if engine_silent(beat, now, lost_after_s):
        return NodeState.LOST
    if not beat.asterisk_up and beat.asterisk_down_since is not None \
            and (now - beat.asterisk_down_since).total_seconds() > lost_after_s:
        return NodeState.LOST
    return NodeState.ALIVE


def lost_nodes(beats: list[Heartbeat], me: str, now: datetime, lost_after_s: float,
               watching_since: datetime | None = None) -> list[Heartbeat]:
    """Other nodes whose heartbeat is stale: their calls up are closed as ``node_lost`` by the leader.

    A node's silence counts only from ``watching_since``: since the looker itself has reached the store
    without a break. While the store was down no node could beat, so after an outage every heartbeat is as
    old as the outage; judged at once, live nodes were lost and their answered calls closed ``node_lost``
    (bench/failover.py, postgresql-stop: 6-7 calls of a live node). After the outage a live node beats
    again within a look, well inside ``lost_after_s``."""
    def stale(b: Heartbeat) -> bool:
        if node_state(b, now, lost_after_s) is not NodeState.LOST:
            return False
        if watching_since is None or watching_since <= b.at or not engine_silent(b, now, lost_after_s):
            return True  # silent while we watched, or alive with its Asterisk down as long
        return engine_silent(replace(b, at=watching_since), now, lost_after_s)

    return [b for b in beats if b.node != me and stale(b)]


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node as the wallboard shows it."""

    node: str
    state: NodeState
    leader: bool
    heartbeat_at: datetime
    heartbeat_age_s: float
    asterisk_up: bool  # its engine's last word (stale once the engine is silent: see ``asterisk``)
    started_at: datetime
    engine_up: bool  # its heartbeat is fresh
    asterisk: AsteriskState
    asterisk_down_since: datetime | None
    here: bool  # the engine answering is this node's


def asterisk_state(beat: Heartbeat, now: datetime, lost_after_s: float) -> AsteriskState:
    """What can be said of the node's Asterisk now: a silent engine's last word is not shown as current."""
    if engine_silent(beat, now, lost_after_s):
        return AsteriskState.UNKNOWN
    return AsteriskState.UP if beat.asterisk_up else AsteriskState.UNREACHABLE


def node_views(beats: list[Heartbeat], lease: Lease | None, now: datetime,
               lost_after_s: float, me: str = "") -> list[NodeView]:
    """Each node's state; the leader is the lease's holder while its lease runs; ``me``: the node asking."""
    return [NodeView(node=b.node, state=node_state(b, now, lost_after_s),
                     leader=lease is not None and lease.holder == b.node and lease.expires_at > now,
                     heartbeat_at=b.at, heartbeat_age_s=round((now - b.at).total_seconds(), 3),
                     asterisk_up=b.asterisk_up, started_at=b.started_at,
                     engine_up=not engine_silent(b, now, lost_after_s),
                     asterisk=asterisk_state(b, now, lost_after_s),
                     asterisk_down_since=None if b.asterisk_up else b.asterisk_down_since,
                     here=b.node == me) for b in beats]
