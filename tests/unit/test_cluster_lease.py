"""The leader lease: pure rules on a fake clock, then the store's compare-and-set and fence on a real SQLite
file shared by two connections (two engines), and the callback claim refused under an old fencing number."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from callflow.ami import AmiMessage, LinkEvent, parse_event
from callflow.cluster import store
from callflow.cluster.rules import (
    AsteriskState,
    Fence,
    Heartbeat,
    Lease,
    LeaseStep,
    LeaseTiming,
    NodeState,
    expiry,
    lease_step,
    lost_nodes,
    node_state,
    node_views,
    still_leader,
)
from callflow.cluster.service import ClusterNode, read_nodes
from callflow.store import Database, StoreLocation, open_database
from queues.callbacks.rules import TaskStatus
from queues.callbacks.store import CALLBACKS_SCHEMA, add_attempt, attempts_of, create_task, get_task
from tests.conftest import BOTH_STORES

pytestmark = BOTH_STORES  # the store tests run on SQLite and on PostgreSQL (the pure rules once)

T0 = datetime(2026, 12, 5, 0, 0, 0, 250_000, tzinfo=UTC)
TIMING = LeaseTiming(ttl_s=5.0, renew_s=1.0, margin_s=1.0)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


# -- pure rules --------------------------------------------------------------------------------------------
def test_a_free_lease_is_taken_a_live_one_followed_an_expired_one_taken() -> None:
    assert lease_step(None, "a", None, T0) is LeaseStep.TAKE
    assert lease_step(Lease("", 0, at(-100)), "a", None, T0) is LeaseStep.TAKE
    held_by_b = Lease("b", 3, at(5))
    assert lease_step(held_by_b, "a", None, at(4.999)) is LeaseStep.FOLLOW
    assert lease_step(held_by_b, "a", None, at(5)) is LeaseStep.TAKE


def test_our_lease_is_renewed_even_past_expiry_but_an_earlier_run_of_ours_is_fenced_out() -> None:
    ours = Lease("a", 7, at(5))
    assert lease_step(ours, "a", 7, at(1)) is LeaseStep.RENEW
    assert lease_step(ours, "a", 7, at(60)) is LeaseStep.RENEW  # the store renews only on fencing 7
    # this run never took it (the engine restarted after kill -9): take afresh, the number goes up
    assert lease_step(ours, "a", None, at(1)) is LeaseStep.TAKE
    assert lease_step(ours, "a", 6, at(1)) is LeaseStep.TAKE


def test_a_holder_stops_its_work_a_margin_before_its_lease_runs_out() -> None:
    lease = Lease("a", 2, expiry(T0, TIMING))
    assert still_leader(lease, "a", 2, at(3.9), TIMING)
    assert not still_leader(lease, "a", 2, at(4.0), TIMING)  # 1 s margin
    assert not still_leader(lease, "a", 1, at(1), TIMING)  # an old number
    assert not still_leader(lease, "b", 2, at(1), TIMING)
    assert not still_leader(None, "a", 2, at(1), TIMING)


def test_timings_that_cannot_work_are_refused_saying_which_setting() -> None:
    with pytest.raises(ValueError, match=r"lease_renew_s below \[node\] lease_s"):
        LeaseTiming(ttl_s=1.0, renew_s=1.0)
    with pytest.raises(ValueError, match="margin"):
        LeaseTiming(ttl_s=1.0, renew_s=0.2, margin_s=1.0)


def test_a_node_is_lost_when_its_heartbeat_is_stale_or_its_asterisk_down_as_long() -> None:
    beat = Heartbeat("a", T0, T0, asterisk_up=True)
    assert node_state(beat, at(5), 5.0) is NodeState.ALIVE
    assert node_state(beat, at(5.001), 5.0) is NodeState.LOST
    down = Heartbeat("a", at(10), T0, asterisk_up=False, asterisk_down_since=at(4))
    assert node_state(down, at(9), 5.0) is NodeState.ALIVE
    assert node_state(down, at(10), 5.0) is NodeState.LOST
    beats = [Heartbeat("a", T0, T0, True), Heartbeat("b", T0, T0, True), Heartbeat("c", at(9), T0, True)]
    assert [b.node for b in lost_nodes(beats, "b", at(10), 5.0)] == ["a"]  # never itself


def test_a_nodes_silence_counts_only_while_the_looker_reached_the_store() -> None:
    """After a store outage every heartbeat is as old as the outage: a node is lost only if it stays
    silent for ``lost_after_s`` after the looker has the store again."""
    beats = [Heartbeat("a", T0, T0, True), Heartbeat("b", at(20), T0, True)]
    assert [b.node for b in lost_nodes(beats, "b", at(20), 5.0)] == ["a"]  # without the rule: lost at once
    assert lost_nodes(beats, "b", at(20), 5.0, watching_since=at(20)) == []
    assert lost_nodes(beats, "b", at(25), 5.0, watching_since=at(20)) == []
    assert [b.node for b in lost_nodes(beats, "b", at(25.001), 5.0, watching_since=at(20))] == ["a"]
    # watching since before its last beat: its own silence counts, as before
    assert [b.node for b in lost_nodes(beats, "b", at(5.001), 5.0, watching_since=at(-60))] == ["a"]
    # a live node with its Asterisk down as long is lost whatever the looker saw
    down = [Heartbeat("a", at(20), T0, asterisk_up=False, asterisk_down_since=at(10))]
    assert [b.node for b in lost_nodes(down, "b", at(20), 5.0, watching_since=at(20))] == ["a"]


def test_the_wallboard_view_names_the_leader_only_while_its_lease_runs() -> None:
    beats = [Heartbeat("a", at(9), T0, True), Heartbeat("b", at(2), T0, False)]
    views = node_views(beats, Lease("a", 4, at(12)), at(10), 5.0)
    assert [(v.node, v.state, v.leader, v.heartbeat_age_s) for v in views] == [
        ("a", NodeState.ALIVE, True, 1.0), ("b", NodeState.LOST, False, 8.0)]
    assert not node_views(beats, Lease("a", 4, at(10)), at(10), 5.0)[0].leader


def test_the_wallboard_view_never_shows_a_silent_engines_last_word_as_current() -> None:
    """Engine a silent for 8 s: its last heartbeat said its Asterisk was up, which nobody knows now; engine b
    alive, its Asterisk unreachable since 3 s ago (said with the instant); c asks."""
    beats = [Heartbeat("a", at(2), T0, True), Heartbeat("b", at(9), T0, False, asterisk_down_since=at(7)),
             Heartbeat("c", at(10), T0, True)]
    views = {v.node: v for v in node_views(beats, None, at(10), 5.0, me="c")}
    assert (views["a"].engine_up, views["a"].asterisk, views["a"].asterisk_down_since) == (
        False, AsteriskState.UNKNOWN, None)
    assert views["a"].asterisk_up  # the last word, kept for what it is
    assert (views["b"].engine_up, views["b"].asterisk, views["b"].asterisk_down_since) == (
        True, AsteriskState.UNREACHABLE, at(7))
    assert (views["c"].engine_up, views["c"].asterisk, views["c"].asterisk_down_since) == (
        True, AsteriskState.UP, None)
    assert [v.node for v in views.values() if v.here] == ["c"]


@given(st.lists(st.tuples(st.sampled_from("ab"), st.floats(0, 3)), min_size=1, max_size=40))
def test_at_most_one_node_may_work_at_any_instant(looks: list[tuple[str, float]]) -> None:
    """Two nodes look at the lease in any order, at any pace (a long gap is a frozen node): whenever a node
    believes it may work (still_leader), it holds the store's current fencing number."""
    lease: Lease | None = None
    held: dict[str, int | None] = {"a": None, "b": None}
    now = T0
    for node, gap in looks:
        now += timedelta(seconds=gap)
        step = lease_step(lease, node, held[node], now)
        if step is LeaseStep.TAKE:
            fencing = (lease.fencing if lease else 0) + 1
            lease, held[node] = Lease(node, fencing, expiry(now, TIMING)), fencing
        elif step is LeaseStep.RENEW:
            assert lease is not None
            lease = Lease(node, lease.fencing, expiry(now, TIMING))
        for who, number in held.items():
            if number is not None and still_leader(lease, who, number, now, TIMING):
                assert lease is not None
                assert lease.holder == who
                assert lease.fencing == number


# -- the store: two engines, one SQLite file ---------------------------------------------------------------
@pytest.fixture
async def two(store_location: StoreLocation) -> AsyncIterator[tuple[Database, Database]]:
    database = store_location  # two engines' connections to one store (SQLite file or PostgreSQL)
    a = await open_database(database, (store.CLUSTER_SCHEMA, CALLBACKS_SCHEMA))
    b = await open_database(database, (store.CLUSTER_SCHEMA, CALLBACKS_SCHEMA))
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def _pending_task(conn: Database) -> int:
    task = await create_task(conn, linkedid="a-1796000000.1", number="081234567890", reason="test",
                             call_class="emergency", arrival=T0, now=T0, status=TaskStatus.PENDING,
                             next_attempt_at=T0)
    assert task is not None
    return task.id


async def test_two_engines_racing_for_a_free_lease_cannot_both_win(
        two: tuple[Database, Database]) -> None:
    a, b = two
    seen_a, seen_b = await store.read_lease(a), await store.read_lease(b)
    assert seen_a is not None
    assert seen_b is not None
    won_a = await store.take_lease(a, "a", seen_a, T0, expires_at=at(5))
    won_b = await store.take_lease(b, "b", seen_b, T0, expires_at=at(5))  # saw the same free row
    assert won_a == Lease("a", 1, at(5))
    assert won_b is None
    assert await store.read_lease(b) == Lease("a", 1, at(5))


async def test_a_frozen_leader_wakes_fenced_out_and_cannot_claim_a_callback(
        two: tuple[Database, Database]) -> None:
    a, b = two
    task = await _pending_task(a)
    seen = await store.read_lease(a)
    assert seen is not None
    lease_a = await store.take_lease(a, "a", seen, T0, expires_at=at(5))
    assert lease_a is not None
    fence_a = Fence("a", lease_a.fencing)
    # a checked it leads, then froze (SIGSTOP) for 20 s; b finds the lease expired and takes it
    expired = await store.read_lease(b)
    assert expired is not None
    assert lease_step(expired, "b", None, at(20)) is LeaseStep.TAKE
    lease_b = await store.take_lease(b, "b", expired, at(20), expires_at=at(25))
    assert lease_b == Lease("b", 2, at(25))
    # a wakes and goes on where it froze, before b dialled: the task is still pending at 0 attempts, so
    # only the fence stands between a and a second dial; the claim names fencing 1 and is refused
    assert not await add_attempt(a, task, 1, "siaga-cb-1-1-a", at(20.5), fence=fence_a)
    assert await attempts_of(a, task) == []
    assert not await store.renew_lease(a, fence_a, at(25.5))
    assert await add_attempt(b, task, 1, "siaga-cb-1-1-b", at(21), fence=Fence("b", 2))
    attempts = await attempts_of(a, task)
    assert [(x.n, x.channel_id) for x in attempts] == [(1, "siaga-cb-1-1-b")]
    stored = await get_task(a, task)
    assert stored is not None
    assert stored.attempts == 1
    assert stored.status is TaskStatus.DIALLING


async def test_without_a_fence_an_attempt_is_still_claimed_once(
        two: tuple[Database, Database]) -> None:
    """A single engine (no cluster) claims without a fence; the task's own compare-and-set still stops a
    second claim of the same attempt."""
    a, b = two
    task = await _pending_task(a)
    assert await add_attempt(a, task, 1, "siaga-cb-1-1-x", T0)
    assert not await add_attempt(b, task, 1, "siaga-cb-1-1-y", T0)
    assert [x.channel_id for x in await attempts_of(b, task)] == ["siaga-cb-1-1-x"]


async def test_fenced_work_commits_with_its_fence_or_not_at_all(
        two: tuple[Database, Database]) -> None:
    a, b = two
    seen = await store.read_lease(a)
    assert seen is not None
    lease = await store.take_lease(a, "a", seen, T0, expires_at=at(5))
    assert lease is not None
    claimed = await store.claim_lost_calls(a, Fence("a", 1), "c", ["c-1.1", "c-1.2"], T0)
    assert claimed == ["c-1.1", "c-1.2"]
    assert await store.claim_lost_calls(a, Fence("a", 1), "c", ["c-1.1"], T0) == []  # once per lease
    taken = await store.take_lease(b, "b", lease, at(6), expires_at=at(11))
    assert taken is not None
    with pytest.raises(store.Fenced, match="fencing number 1"):
        await store.claim_lost_calls(a, Fence("a", 1), "c", ["c-1.3"], at(7))
    both = ["c-1.1", "c-1.3"]
    assert await store.claim_lost_calls(b, Fence("b", 2), "c", both, at(7)) == both
    async with b.execute("SELECT linkedid, by_node, fencing FROM cluster_lost_calls ORDER BY linkedid") \
            as cur:
        rows = [tuple(r) for r in await cur.fetchall()]
    assert rows == [("c-1.1", "b", 2), ("c-1.2", "a", 1), ("c-1.3", "b", 2)]


async def test_an_asterisk_whose_uniqueids_lack_the_node_name_is_named_at_once(tmp_path: Path) -> None:
    def newchannel(uniqueid: str) -> Any:
        return parse_event(AmiMessage((("Event", "Newchannel"), ("Channel", "PJSIP/citizen-ingress-1"),
                                       ("Uniqueid", uniqueid), ("Linkedid", uniqueid))), T0)

    good = ClusterNode(tmp_path / "x.db", "a")
    await good.handle(newchannel("siaga-cb-3-1-1796000000000"))  # the engine's own: no verdict
    await good.handle(newchannel("a-1796000000.1"))
    assert good.id_problem == ""
    bad = ClusterNode(tmp_path / "x.db", "b")
    with capture_logs() as logs:
        await bad.handle(newchannel("1796000000.1"))
        await bad.handle(newchannel("1796000000.2"))
    assert "systemname = b" in bad.id_problem
    assert [e["event"] for e in logs] == ["cluster.systemname_mismatch"]  # once


async def test_a_node_whose_asterisk_is_unreachable_gives_up_the_lease_and_is_lost(tmp_path: Path) -> None:
    database = tmp_path / "shared.db"
    timing = LeaseTiming(ttl_s=1.0, renew_s=0.05, margin_s=0.2)
    a = ClusterNode(database, "a", timing=timing, lost_after_s=0.5)  # needs its Asterisk to lead
    b = ClusterNode(database, "b", timing=timing, lost_after_s=0.5, require_asterisk=False)
    await a.handle(LinkEvent("up", datetime.now(UTC)))
    runs = [asyncio.create_task(a.run(None))]
    try:
        async with asyncio.timeout(5):
            await a.settled()
        runs.append(asyncio.create_task(b.run(None)))
        async with asyncio.timeout(5):
            await b.settled()
        assert a.leading
        assert not b.leading
        await a.handle(LinkEvent("down", datetime.now(UTC)))  # a's Asterisk is gone; its engine lives on
        async with asyncio.timeout(5):
            while not b.leading:
                await b.settled(1)
        assert not a.leading
        conn = await open_database(database, (store.CLUSTER_SCHEMA,))
        try:
            async with asyncio.timeout(5):  # lost once its Asterisk has been down for lost_after_s (0.5 s)
                while (views := {v.node: v for v in await read_nodes(conn, datetime.now(UTC), 0.5)}
                       )["a"].state is not NodeState.LOST:
                    await a.settled(1)
        finally:
            await conn.close()
        assert views["a"].heartbeat_age_s < 0.5  # alive engine...
        assert (views["a"].state, views["a"].asterisk_up) == (NodeState.LOST, False)  # ...lost node
        assert views["b"].leader
    finally:
        for run in runs:
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
