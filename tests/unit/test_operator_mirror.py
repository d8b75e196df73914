"""Two nodes' queues agreeing on operator state: the pure rules, then two operator mirrors (the engine's
real component) on one SQLite store, each with a stub AMI session standing for its own Asterisk (the
two-node lab run is the two-node smoke test's)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callflow.ami import AmiError, AmiMessage, LinkEvent, parse_event
from callflow.ami.events import AmiEvent
from callflow.cluster import store as cluster_store
from callflow.cluster.rules import Heartbeat
from callflow.store import StoreLocation, open_database
from queues.mirror import Busy, OperatorMirror, Roster, combined, roster_actions, state_interface
from queues.mirror import store as mirror_store
from queues.mirror.rules import Member, busy_of, node_is_newer
from tests.conftest import BOTH_STORES
from tests.support.callbacks import StubEngine

pytestmark = BOTH_STORES


# -- rules ---------------------------------------------------------------------------------------------------
def test_in_use_on_any_node_is_in_use_everywhere() -> None:
    assert combined([Busy.IDLE, Busy.IN_USE, Busy.RINGING]) is Busy.IN_USE
    assert combined([Busy.IDLE, Busy.RINGING]) is Busy.RINGING
    assert combined([]) is Busy.IDLE
    assert busy_of("INUSE") is Busy.IN_USE
    assert busy_of("ONHOLD") is Busy.IN_USE
    assert busy_of("UNAVAILABLE") is Busy.IDLE


def test_roster_actions_add_with_the_shared_state_interface_remove_and_pause() -> None:
    roster = Roster("op1", {"emergency": 0, "nonemergency": 0}, paused=True, reason="break", version=3)
    members = {"emergency": Member("emergency", 0, False, "", state_interface("op1")),
               "old": Member("old", 0, False, "", "PJSIP/op1")}
    actions = roster_actions(roster, members, "PJSIP/op1")
    assert [(a.name, dict(a.headers)["Queue"]) for a in actions] == [
        ("QueueRemove", "old"), ("QueuePause", "emergency"), ("QueueAdd", "nonemergency")]
    add = dict(actions[2].headers)
    assert add["StateInterface"] == "Custom:siaga-op1"
    assert (add["Paused"], add["Reason"]) == ("true", "break")
    logged_out = roster_actions(Roster("op1", {}), members, "PJSIP/op1")
    assert [(a.name, dict(a.headers)["Queue"]) for a in logged_out] == [("QueueRemove", "emergency"),
                                                                         ("QueueRemove", "old")]
    agreed = {"emergency": Member("emergency", 0, True, "break", state_interface("op1")),
              "nonemergency": Member("nonemergency", 0, True, "break", state_interface("op1"))}
    assert roster_actions(roster, agreed, "PJSIP/op1") == []


# -- two mirrors, one store --------------------------------------------------------------------------------
def member_event(name: str, queue: str, *, paused: bool = False, reason: str = "") -> AmiEvent:
    now = datetime.now(UTC)
    return parse_event(AmiMessage((("Event", name), ("Queue", queue), ("MemberName", "op1"),
                                   ("Interface", "PJSIP/op1"), ("StateInterface", state_interface("op1")),
                                   ("Penalty", "0"), ("Paused", "1" if paused else "0"),
                                   ("PausedReason", reason))), now)


def device_event(state: str) -> AmiEvent:
    return parse_event(AmiMessage((("Event", "DeviceStateChange"), ("Device", "PJSIP/op1"),
                                   ("State", state))), datetime.now(UTC))


class Side:
    def __init__(self, database: StoreLocation, node: str) -> None:
        self.engine: Any = StubEngine()
        self.mirror = OperatorMirror(database, node, lost_after_s=1.0, interval_s=0.02)
        self.task: asyncio.Task[None] | None = None

    def sent(self, name: str) -> list[dict[str, Any]]:
        return [h for n, h, _ in self.engine.session.sent if n == name]

    async def start(self) -> None:
        self.task = asyncio.create_task(self.mirror.run(self.engine))
        await self.mirror.handle(LinkEvent("up", datetime.now(UTC)))

    async def synced(self, times: int = 3) -> None:
        start = self.mirror.syncs
        async with asyncio.timeout(5):
            while self.mirror.syncs < start + times:  # noqa: ASYNC110 - a counter, polled briefly
                await asyncio.sleep(0.01)


@pytest.fixture
async def sides(store_location: StoreLocation) -> AsyncIterator[tuple[Side, Side, StoreLocation]]:
    database = store_location
    a, b = Side(database, "a"), Side(database, "b")
    await a.start()
    await b.start()
    try:
        yield a, b, database
    finally:
        for side in (a, b):
            assert side.task is not None
            side.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await side.task


async def _beat(database: StoreLocation, node: str, at: datetime) -> None:
    conn = await open_database(database, (cluster_store.CLUSTER_SCHEMA,))
    try:
        await cluster_store.beat(conn, Heartbeat(node, at, at, asterisk_up=True))
    finally:
        await conn.close()


async def test_a_login_on_one_node_reaches_the_other_and_a_busy_phone_is_busy_on_both(
        sides: tuple[Side, Side, StoreLocation]) -> None:
    a, b, database = sides
    now = datetime.now(UTC)
    await _beat(database, "a", now)
    await _beat(database, "b", now)
    # op1 logs in on node a (its own Asterisk tells a): b adds op1 with the shared state interface
    await a.mirror.handle(member_event("QueueMemberAdded", "emergency"))
    await a.synced()
    await b.synced()
    added = b.sent("QueueAdd")
    assert added == [{"Queue": "emergency", "Interface": "PJSIP/op1", "MemberName": "op1", "Penalty": "0",
                      "Paused": "false", "Reason": "", "StateInterface": "Custom:siaga-op1"}]
    await b.mirror.handle(member_event("QueueMemberAdded", "emergency"))  # b's Asterisk confirms
    await b.synced()
    assert a.sent("QueueAdd") == []  # b's own (expected) event is no new version: no ping-pong
    # op1 answers a call through node a: node b's queues see op1 in use
    await a.mirror.handle(device_event("INUSE"))
    await a.synced()
    await b.synced()
    state = {"Variable": "DEVICE_STATE(Custom:siaga-op1)", "Value": "INUSE"}
    assert state in b.sent("Setvar")
    assert state in a.sent("Setvar")
    # op1 pauses on node b: a pauses op1 too
    await b.mirror.handle(member_event("QueueMemberPause", "emergency", paused=True, reason="break"))
    await a.synced()
    assert a.sent("QueuePause") == [{"Queue": "emergency", "Interface": "PJSIP/op1", "Paused": "true",
                                     "Reason": "break"}]
    # node a stops (its heartbeat goes stale): its view of the phone no longer counts on b
    await _beat(database, "a", now - timedelta(seconds=30))
    await b.synced()
    assert b.sent("Setvar")[-1] == {"Variable": "DEVICE_STATE(Custom:siaga-op1)", "Value": "NOT_INUSE"}


async def test_a_pause_on_one_node_pauses_the_operator_on_the_other(
        sides: tuple[Side, Side, StoreLocation]) -> None:
    a, b, database = sides
    await _beat(database, "a", datetime.now(UTC))
    await _beat(database, "b", datetime.now(UTC))
    conn = await open_database(database, (mirror_store.MIRROR_SCHEMA,))
    try:  # op1 logged in earlier, and is a member on both nodes
        await mirror_store.write_roster(conn, Roster("op1", {"emergency": 0}, node="a"), datetime.now(UTC))
    finally:
        await conn.close()
    for side in (a, b):
        member = Member("emergency", 0, False, "", state_interface("op1"))
        side.mirror.members = {"op1": {"emergency": member}}
    await b.mirror.handle(member_event("QueueMemberPause", "emergency", paused=True, reason="break"))
    await b.synced()
    await a.synced()
    assert a.sent("QueuePause") == [{"Queue": "emergency", "Interface": "PJSIP/op1", "Paused": "true",
                                     "Reason": "break"}]
    assert b.sent("QueuePause") == []


def test_at_a_reconnect_a_newer_login_on_the_node_wins_an_older_one_yields() -> None:
    changed = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    roster = Roster("op1", {}, changed_at=changed)  # logged out at 08:00, says the store
    before = {"emergency": Member("emergency", 0, False, "", "PJSIP/op1", changed - timedelta(minutes=5))}
    after = {"emergency": Member("emergency", 0, False, "", "PJSIP/op1", changed + timedelta(minutes=5))}
    assert not node_is_newer(roster, before)  # the store's log-out is newer: the member is removed
    assert node_is_newer(roster, after)  # logged in on this node after that: published, not undone
    assert node_is_newer(None, after)  # nothing in the store yet
    assert not node_is_newer(roster, {})


def queue_member(login: datetime) -> Any:
    return parse_event(AmiMessage((("Event", "QueueMember"), ("Queue", "emergency"), ("Name", "op1"),
                                   ("Location", "PJSIP/op1"), ("StateInterface", "PJSIP/op1"),
                                   ("Penalty", "0"), ("Paused", "0"),
                                   ("LoginTime", str(int(login.timestamp()))), ("LastPause", "0"))), login)


@pytest.mark.parametrize(("login_after", "published"), [(True, True), (False, False)])
async def test_a_node_reconnecting_keeps_a_newer_login_and_drops_an_older_one(
        store_location: StoreLocation, login_after: bool, published: bool) -> None:
    database = store_location
    conn = await open_database(database, (mirror_store.MIRROR_SCHEMA, cluster_store.CLUSTER_SCHEMA))
    logged_out_at = datetime.now(UTC) - timedelta(minutes=10)
    await mirror_store.write_roster(conn, Roster("op1", {}, node="b"), logged_out_at)
    side = Side(database, "a")
    side.task = asyncio.create_task(side.mirror.run(side.engine))
    try:
        login = logged_out_at + timedelta(minutes=5 if login_after else -5)
        await side.mirror.handle(LinkEvent("up", datetime.now(UTC), queue_members=(queue_member(login),)))
        await side.synced(5)
        rosters = await mirror_store.rosters(conn)
    finally:
        side.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await side.task
        await conn.close()
    if published:  # the login on a is newer than b's log-out: it becomes the roster, nothing is removed
        assert (rosters[0].version, dict(rosters[0].queues), rosters[0].node) == (2, {"emergency": 0}, "a")
        assert side.sent("QueueRemove") == []
    else:  # b's log-out is newer: a removes op1
        assert rosters[0].version == 1
        assert side.sent("QueueRemove") == [{"Queue": "emergency", "Interface": "PJSIP/op1"}]


async def test_a_pause_arriving_while_an_older_version_is_read_is_not_undone(
        store_location: StoreLocation, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator pauses on this node while its mirror is reading an older roster version it has not
    applied yet: the mirror must publish the pause, not resume the operator to match the older version."""
    conn = await open_database(store_location, (mirror_store.MIRROR_SCHEMA, cluster_store.CLUSTER_SCHEMA))
    try:
        await mirror_store.write_roster(conn, Roster("op1", {"emergency": 0}, node="b"), datetime.now(UTC))
    finally:
        await conn.close()
    side = Side(store_location, "a")
    read = mirror_store.rosters
    paused = asyncio.Event()

    async def read_then_pause(db: Any) -> list[Roster]:
        found = await read(db)
        if found and not paused.is_set():  # the pause event is handled while this read is in flight
            paused.set()
            event = member_event("QueueMemberPause", "emergency", paused=True, reason="break")
            await side.mirror.handle(event)
        return found

    monkeypatch.setattr(mirror_store, "rosters", read_then_pause)
    member = Member("emergency", 0, False, "", state_interface("op1"))
    side.mirror.members = {"op1": {"emergency": member}}
    side.task = asyncio.create_task(side.mirror.run(side.engine))
    try:
        await side.mirror.handle(LinkEvent("up", datetime.now(UTC),
                                           queue_members=(queue_member(datetime.now(UTC)),)))
        async with asyncio.timeout(5):
            await paused.wait()
        await side.synced(5)
    finally:
        side.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await side.task
    assert side.sent("QueuePause") == []  # not resumed
    conn = await open_database(store_location, (mirror_store.MIRROR_SCHEMA,))
    try:
        latest = (await read(conn))[0]
    finally:
        await conn.close()
    assert (latest.paused, latest.reason, latest.node) == (True, "break", "a")  # published instead


async def test_a_phone_left_in_use_by_an_engine_that_died_is_read_again_at_connect(
        store_location: StoreLocation) -> None:
    """Engine a was killed while op1 was on a call: the store keeps a's view "in use", and Asterisk keeps
    Custom:siaga-op1 INUSE (astdb). The call's end went to nobody, and a phone never rung again never sends
    another DeviceStateChange: the engine coming back must ask Asterisk, or op1 is never rung on either node
    (bench/failover.py leader-engine-kill showed every later call unanswered)."""
    database = store_location
    conn = await open_database(database, (mirror_store.MIRROR_SCHEMA, cluster_store.CLUSTER_SCHEMA))
    now = datetime.now(UTC)
    await mirror_store.set_device(conn, "op1", "a", Busy.IN_USE, now - timedelta(minutes=1))
    await _beat(database, "a", now)
    side = Side(database, "a")  # the stub Asterisk answers Getvar DEVICE_STATE(PJSIP/op1) with no value: idle
    side.task = asyncio.create_task(side.mirror.run(side.engine))
    try:
        await side.mirror.handle(LinkEvent("up", datetime.now(UTC), queue_members=(queue_member(now),)))
        await side.synced(5)
        views = await mirror_store.devices(conn)
    finally:
        side.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await side.task
        await conn.close()
    assert {"Variable": "DEVICE_STATE(PJSIP/op1)"} in side.sent("Getvar")
    assert views["op1"]["a"] is Busy.IDLE
    assert side.sent("Setvar")[-1] == {"Variable": "DEVICE_STATE(Custom:siaga-op1)", "Value": "NOT_INUSE"}


async def test_an_operator_with_no_view_yet_gets_the_custom_state_set_at_connect(
        store_location: StoreLocation) -> None:
    """A fresh store (no phone views, the phone unreadable) and an Asterisk whose custom state says in
    use: it is set, not trusted."""
    side = Side(store_location, "a")
    side.task = asyncio.create_task(side.mirror.run(side.engine))
    side.engine.session.action = _getvar_fails(side.engine.session)
    try:
        await side.mirror.handle(LinkEvent("up", datetime.now(UTC),
                                           queue_members=(queue_member(datetime.now(UTC)),)))
        await side.synced(5)
    finally:
        side.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await side.task
    assert {"Variable": "DEVICE_STATE(Custom:siaga-op1)", "Value": "NOT_INUSE"} in side.sent("Setvar")


def _getvar_fails(session: Any) -> Any:
    """The stub session, whose Getvar fails (the phone's state is not known): the view stays absent."""
    original = session.action

    async def action(name: str, headers: Any = None, **kw: Any) -> Any:
        if name == "Getvar":
            session.sent.append((name, dict(headers or {}), None))
            raise AmiError("no answer")
        return await original(name, headers, **kw)
    return action
