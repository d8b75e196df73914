"""Two nodes' queues agree on who is on a call, on the real lab Asterisk: this lab is node "b"; node "a" is
the shared store's word (its heartbeat and its view of op1's phone). op1 logs in on b with ``siaga112
operator login`` (the node's settings name it: the member's state interface is the shared custom device
state); b's operator mirror (the engine's real component, attached to the lab over AMI) sets that state
from the store. While a says op1 is in use, b's emergency queue does not ring op1; when a says op1 is
free, it does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.ami.events import AmiEvent, ChannelEvent
from callflow.cluster import store as cluster_store
from callflow.cluster.rules import Heartbeat
from callflow.lab import LabStatus
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippOperator, place_call
from callflow.service import Engine
from callflow.store import open_database
from queues.mirror import Busy, OperatorMirror
from queues.mirror import store as mirror_store
from tests.support.ami_waits import named, next_event

pytestmark = pytest.mark.integration


async def _operator(lab: LabStatus, database: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow.cli", "operator", "--lab", lab.instance, "--database", str(database),
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SIAGA112_NODE__NAME": "b"})
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def _node_a(database: Path, phone: Busy) -> None:
    conn = await open_database(database, (cluster_store.CLUSTER_SCHEMA, mirror_store.MIRROR_SCHEMA))
    try:
        now = datetime.now(UTC)
        await cluster_store.beat(conn, Heartbeat("a", now, now, asterisk_up=True))
        await mirror_store.set_device(conn, "op1", "a", phone, now)
    finally:
        await conn.close()


async def _hang_up_all(conn: AmiConnection) -> None:
    _, items = await conn.list_action("CoreShowChannels")
    for item in items:
        if isinstance(item, ChannelEvent) and item.chan:
            with contextlib.suppress(Exception):
                await conn.action("Hangup", {"Channel": item.chan.channel})


@pytest.mark.timeout(120)
async def test_an_operator_in_use_on_the_other_node_is_not_rung_here(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]], tmp_path: Path) -> None:
    conn, events = ami
    database = tmp_path / "shared.db"
    await _node_a(database, Busy.IN_USE)  # op1 is on a call through node a
    # Asterisk keeps custom device states in its AstDB across restarts: start from "not in use", so the
    # mirror's change shows as an event
    await conn.action("Setvar", {"Variable": "DEVICE_STATE(Custom:siaga-op1)", "Value": "NOT_INUSE"})
    mirror = OperatorMirror(database, "b", interval_s=0.1)
    engine = Engine(lab.ami_endpoint(), [mirror])
    running = asyncio.create_task(engine.run())

    async def node_a_beats() -> None:  # node a stays alive throughout
        while True:
            conn_a = await open_database(database, (cluster_store.CLUSTER_SCHEMA,))
            try:
                now = datetime.now(UTC)
                await cluster_store.beat(conn_a, Heartbeat("a", now, now, asterisk_up=True))
            finally:
                await conn_a.close()
            await asyncio.sleep(0.5)

    beating = asyncio.create_task(node_a_beats())
    call: asyncio.Task[object] | None = None
    try:
        await next_event(events, named("DeviceStateChange", Device="Custom:siaga-op1", State="INUSE"))
        await _operator(lab, database, "login", "op1")
        added = await next_event(events, named("QueueMemberAdded", Queue="emergency", MemberName="op1"))
        assert added.message.get("StateInterface") == "Custom:siaga-op1"
        async with SippOperator(lab.operators["op1"]["port"]):
            call = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"], CallerScript(
                number="081200009001", dtmf=PRESS_EMERGENCY, remote_hangup=True)))
            await next_event(events, named("QueueCallerJoin", Queue="emergency", CallerIDNum="081200009001"))
            rung: list[AmiEvent] = []
            with contextlib.suppress(TimeoutError):  # 4 s of waiting: op1 must not be rung meanwhile
                rung.append(await next_event(events, named("AgentCalled", MemberName="op1"), timeout=4))
            assert rung == [], "op1 was rung although in use on node a"
            await _node_a(database, Busy.IDLE)  # op1's call on node a ends
            await next_event(events, named("DeviceStateChange", Device="Custom:siaga-op1", State="NOT_INUSE"))
            await next_event(events, named("AgentConnect", MemberName="op1"), timeout=20)
            await _hang_up_all(conn)
            await asyncio.wait_for(call, 20)
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
        await _hang_up_all(conn)
        if call is not None and not call.done():
            call.cancel()
            with contextlib.suppress(BaseException):
                await call
        for queue in ("emergency", "nonemergency"):
            with contextlib.suppress(Exception):
                await conn.action("QueueRemove", {"Queue": queue, "Interface": "PJSIP/op1"})
        engine.stop()
        await asyncio.wait_for(running, 20)
