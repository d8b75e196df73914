"""The cluster's tables in the shared store: the leader lease, the nodes' heartbeats, and the calls of lost
nodes the leader closed.

Portable SQL only (``?`` placeholders, ``ON CONFLICT``, no SQLite functions): the same statements run on
SQLite and, through the store adapter, on PostgreSQL. Every change of the lease is a compare-and-set on the
fencing number the engine last read, so two engines racing for it cannot both win.

Once-only work runs inside :func:`fenced`: its first statement touches the lease row *only if it still
carries this engine's fencing number*, in the same transaction as the work. On PostgreSQL that row lock
orders the work against a takeover (the takeover waits for the work's commit, or the work sees the new
number and is refused); SQLite has one writer at a time anyway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from callflow.calls.model import LISTEN_LINKEDID_PREFIX
from callflow.cluster.rules import LEADER, Fence, Heartbeat, Lease
from callflow.store import Database, Schema

CLUSTER_SCHEMA = Schema("cluster", (
    """
    CREATE TABLE cluster_lease (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        fencing INTEGER NOT NULL,
        expires_at TEXT NOT NULL,     -- UTC ISO, the holder's clock
        changed_at TEXT NOT NULL,     -- when the holder last changed
        work_at TEXT                  -- the last fenced work (the fence's own write)
    );
    INSERT INTO cluster_lease (name, holder, fencing, expires_at, changed_at)
        VALUES ('leader', '', 0, '1970-01-01T00:00:00.000000+00:00', '1970-01-01T00:00:00.000000+00:00');
    CREATE TABLE cluster_nodes (
        node TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,     -- this run of the node's engine
        heartbeat_at TEXT NOT NULL,
        asterisk_up INTEGER NOT NULL, -- the engine's AMI link to its own Asterisk is up
        asterisk_down_since TEXT      -- ...or down since then
    );
    CREATE TABLE cluster_lost_calls (
        linkedid TEXT PRIMARY KEY,
        node TEXT NOT NULL,           -- the node that stopped with the call up
        by_node TEXT NOT NULL,        -- the leader that closed it
        fencing INTEGER NOT NULL,     -- under which lease
        at TEXT NOT NULL
    );
    """,
))


class Fenced(Exception):
    """The store refused once-only work: this engine's fencing number is no longer the lease's."""

    def __init__(self, fence: Fence) -> None:
        super().__init__(f"node {fence.holder!r} no longer holds the {fence.lease} lease under fencing "
                         f"number {fence.fencing}: its once-only work is refused (another node took over)")
        self.fence = fence


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


async def read_lease(conn: Database, name: str = LEADER) -> Lease | None:
    async with conn.execute("SELECT holder, fencing, expires_at FROM cluster_lease WHERE name = ?",
                            (name,)) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    return Lease(str(row[0]), int(row[1]), datetime.fromisoformat(str(row[2])))


async def take_lease(conn: Database, me: str, seen: Lease, now: datetime, *,
                     expires_at: datetime, name: str = LEADER) -> Lease | None:
    """Take the lease seen as ``seen`` (free, expired, or our own expired one): only if nobody changed it
    since (same fencing number) and it is still free or expired. Returns the new lease, or None."""
    try:
        cur = await conn.execute(
            "UPDATE cluster_lease SET holder = ?, fencing = fencing + 1, expires_at = ?, changed_at = ? "
            "WHERE name = ? AND fencing = ? AND (holder = '' OR holder = ? OR expires_at <= ?)",
            (me, iso(expires_at), iso(now), name, seen.fencing, me, iso(now)))
        taken = cur.rowcount == 1
        await conn.commit()
    except BaseException:
        await conn.rollback()
        raise
    return Lease(me, seen.fencing + 1, expires_at) if taken else None


async def renew_lease(conn: Database, fence: Fence, expires_at: datetime) -> bool:
    """Push our lease's expiry on; False when the fencing number moved (another node took it)."""
    try:
        cur = await conn.execute(
            "UPDATE cluster_lease SET expires_at = ? WHERE name = ? AND holder = ? AND fencing = ?",
            (iso(expires_at), fence.lease, fence.holder, fence.fencing))
        renewed = cur.rowcount == 1
        await conn.commit()
    except BaseException:
        await conn.rollback()
        raise
    return renewed


async def release_lease(conn: Database, fence: Fence, now: datetime) -> bool:
    """Give the lease up at a clean stop (the other node takes it at its next look, not after the TTL)."""
    try:
        cur = await conn.execute(
            "UPDATE cluster_lease SET expires_at = ? WHERE name = ? AND holder = ? AND fencing = ?",
            (iso(now), fence.lease, fence.holder, fence.fencing))
        released = cur.rowcount == 1
        await conn.commit()
    except BaseException:
        await conn.rollback()
        raise
    return released


async def check_fence(conn: Database, fence: Fence, now: datetime) -> bool:
    """The fence's statement, opening the work's transaction: touches the lease row only under our fencing
    number (the write takes the row's lock on PostgreSQL, SQLite's write lock). Does not commit."""
    cur = await conn.execute(
        "UPDATE cluster_lease SET work_at = ? WHERE name = ? AND holder = ? AND fencing = ?",
        (iso(now), fence.lease, fence.holder, fence.fencing))
    return cur.rowcount == 1


@asynccontextmanager
async def fenced(conn: Database, fence: Fence, now: datetime) -> AsyncIterator[None]:
    """``async with fenced(conn, fence, now): <work statements>``: the work commits with the fence check in
    one transaction, or not at all. Raises :class:`Fenced` (nothing written) when the lease moved on."""
    try:
        if not await check_fence(conn, fence, now):
            raise Fenced(fence)
        yield
        await conn.commit()
    except BaseException:
        await conn.rollback()
        raise


# -- heartbeats ------------------------------------------------------------------------------------------
async def beat(conn: Database, hb: Heartbeat) -> None:
    """Write node ``hb.node``'s heartbeat (the node's row, created at its first beat)."""
    down = hb.asterisk_down_since if not hb.asterisk_up else None
    try:
        await conn.execute(
            "INSERT INTO cluster_nodes (node, started_at, heartbeat_at, asterisk_up, asterisk_down_since) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (node) DO UPDATE SET started_at = excluded.started_at, "
            "heartbeat_at = excluded.heartbeat_at, asterisk_up = excluded.asterisk_up, "
            "asterisk_down_since = excluded.asterisk_down_since",
            (hb.node, iso(hb.started_at), iso(hb.at), int(hb.asterisk_up), iso(down) if down else None))
        await conn.commit()
    except BaseException:
        await conn.rollback()
        raise


async def heartbeats(conn: Database) -> list[Heartbeat]:
    async with conn.execute("SELECT node, heartbeat_at, started_at, asterisk_up, asterisk_down_since "
                            "FROM cluster_nodes ORDER BY node") as cur:
        rows = await cur.fetchall()
    return [Heartbeat(str(r[0]), datetime.fromisoformat(str(r[1])), datetime.fromisoformat(str(r[2])),
                      bool(r[3]), datetime.fromisoformat(str(r[4])) if r[4] else None) for r in rows]


# -- calls of lost nodes -----------------------------------------------------------------------------------
async def calls_up_on(conn: Database, node: str, fencing: int) -> list[str]:
    """Calls journaled by ``node`` that have no record yet (up when it stopped, or finished but not yet
    recorded) and that the leader under ``fencing`` has not closed yet."""
    async with conn.execute(
            "SELECT DISTINCT j.linkedid FROM calls_journal j WHERE j.node = ? AND j.linkedid != '' "
            "AND j.linkedid NOT LIKE ? "
            "AND NOT EXISTS (SELECT 1 FROM calls_records r WHERE r.linkedid = j.linkedid) "
            "AND NOT EXISTS (SELECT 1 FROM cluster_lost_calls c WHERE c.linkedid = j.linkedid "
            "AND c.fencing >= ?) ORDER BY j.linkedid",
            (node, LISTEN_LINKEDID_PREFIX + "%", fencing)) as cur:
        return [str(r[0]) for r in await cur.fetchall()]


async def claim_lost_calls(conn: Database, fence: Fence, node: str, linkedids: Sequence[str],
                           now: datetime) -> list[str]:
    """Claim the closing of ``linkedids`` (calls of lost ``node``) under ``fence``, in one fenced
    transaction: a call is claimed once per lease (a later leader re-claims one whose record never came).
    Raises :class:`Fenced` when this engine is no longer the leader."""
    claimed: list[str] = []
    async with fenced(conn, fence, now):
        for lid in linkedids:
            cur = await conn.execute(
                "INSERT INTO cluster_lost_calls (linkedid, node, by_node, fencing, at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (linkedid) DO UPDATE SET by_node = excluded.by_node, "
                "fencing = excluded.fencing, at = excluded.at "
                "WHERE cluster_lost_calls.fencing < excluded.fencing",
                (lid, node, fence.holder, fence.fencing, iso(now)))
            if cur.rowcount == 1:
                claimed.append(lid)
    return claimed
