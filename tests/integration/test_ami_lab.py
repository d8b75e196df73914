"""The AMI layer against the real lab Asterisk 22: login, list actions, a real call's typed events, a
non-ASCII caller name, no injection, the recorder, and an Asterisk restart with reconnect and resync."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callflow.ami import AmiCodec, AmiConnection, AmiSession, EventItem, LinkEvent, LoginFailed, parse_event
from callflow.ami.events import (
    AgentComplete,
    AgentConnect,
    AmiEvent,
    BridgeEnter,
    Cdr,
    DialBegin,
    DialEnd,
    FullyBooted,
    Hangup,
    Newchannel,
    Newstate,
    QueueCallerJoin,
    QueueCallerLeave,
    QueueMemberAdded,
    UserEvent,
)
from callflow.ami.lists import core_show_channels, pjsip_endpoints, queue_status, queue_summary
from callflow.lab import LabStatus, load_secrets
from callflow.lab.sipp import CallerScript, SippOperator, place_call

pytestmark = pytest.mark.integration

NAME = "Jérôme Ελένη"
REPO = Path(__file__).resolve().parents[2]


async def wait_for(events: asyncio.Queue[EventItem], predicate: object, timeout: float = 30.0) -> EventItem:
    assert callable(predicate)
    names: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                item = await events.get()
                names.append(item.name)
                if predicate(item):
                    return item
    except TimeoutError:
        raise AssertionError(f"not seen within {timeout} s; saw {names[-40:]}") from None


@pytest.fixture
async def op1_member(ami: tuple[AmiConnection, asyncio.Queue[EventItem]]) -> AsyncIterator[None]:
    conn, _ = ami
    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1", "MemberName": "op1"})
    yield
    await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})


async def test_login_and_typed_list_actions(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]], op1_member: None) -> None:
    conn, events = ami
    assert conn.banner is not None
    assert conn.banner.startswith("Asterisk Call Manager/")
    added = await wait_for(events, lambda e: isinstance(e, QueueMemberAdded) and e.member_name == "op1")
    assert isinstance(added, QueueMemberAdded)
    assert added.interface == "PJSIP/op1"

    status = await queue_status(conn)
    assert {p.queue: p.weight for p in status.params} == {"emergency": 100, "nonemergency": 0}
    assert {p.queue: p.strategy for p in status.params}["emergency"] == "rrmemory"
    (member,) = [m for m in status.members if m.queue == "emergency"]
    assert (member.member_name, member.interface, member.paused) == ("op1", "PJSIP/op1", False)
    assert status.entries == ()

    summary = {s.queue: s for s in await queue_summary(conn)}
    assert summary["emergency"].logged_in == 1
    assert await core_show_channels(conn) == ()
    # PJSIPShowEndpoints needs the `system` class: `config apply`'s user has it, the engine's not
    apply_conn = AmiConnection(lab.apply_endpoint(), asyncio.Queue())
    await apply_conn.connect()
    try:
        endpoints = {e.object_name for e in await pjsip_endpoints(apply_conn)}
    finally:
        await apply_conn.close()
    assert {"citizen-ingress", "op1", "op2", "op3", "op4", "op5", "op6"} <= endpoints


async def test_wrong_secret_names_user_and_address(lab: LabStatus) -> None:
    endpoint = lab.ami_endpoint()
    endpoint.secret = "not-the-secret"
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    with pytest.raises(LoginFailed) as info:
        await AmiConnection(endpoint, events).connect()
    message = str(info.value)
    assert f"user 'siaga112' at 127.0.0.1:{lab.ami['port']}" in message
    assert "not-the-secret" not in message


async def test_real_call_events_are_typed_and_a_non_ascii_name_arrives_intact(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]], op1_member: None) -> None:
    _, events = ami
    seen: list[AmiEvent] = []
    finished = asyncio.Event()

    async def collect() -> None:
        while True:
            item = await events.get()
            if isinstance(item, AmiEvent):
                seen.append(item)
                if any(isinstance(e, Cdr) for e in seen) and sum(isinstance(e, Hangup) for e in seen) >= 2:
                    finished.set()

    collector = asyncio.create_task(collect())
    try:
        async with SippOperator(lab.operators["op1"]["port"]):
            result = await place_call(lab.sip["host"], lab.sip["port"],
                                      CallerScript(number="081200002222", name=NAME, hold_ms=1500))
        assert result.ok, result.output
        await asyncio.wait_for(finished.wait(), 20)
    finally:
        collector.cancel()

    caller = next(e for e in seen
                  if isinstance(e, Newchannel) and e.chan and e.chan.caller_id_num == "081200002222")
    assert caller.chan is not None
    assert caller.chan.caller_id_name == NAME  # UTF-8 from SIPp's From header to our typed event, intact
    linkedid = caller.linkedid
    call = [e for e in seen if getattr(e, "linkedid", None) == linkedid or isinstance(e, Cdr)]
    kinds = [type(e) for e in call]
    for kind in (Newchannel, Newstate, UserEvent, QueueCallerJoin, DialBegin, DialEnd, QueueCallerLeave,
                 AgentConnect, BridgeEnter, AgentComplete, Hangup, Cdr):
        assert kind in kinds, kind
    assert kinds.index(QueueCallerJoin) < kinds.index(AgentConnect) < kinds.index(AgentComplete)
    connect = next(e for e in call if isinstance(e, AgentConnect))
    assert (connect.queue, connect.member_name) == ("emergency", "op1")
    assert connect.dest is not None
    assert connect.dest.channel.startswith("PJSIP/op1-")
    entry = next(e for e in call if isinstance(e, UserEvent))
    assert entry.user_event == "SiagaQueueEntry"
    assert entry.get_field("Class") == "emergency"
    for event in call:  # Asterisk's own Timestamp, UTC, to the microsecond
        assert event.time_source == "ami_timestamp"
        assert event.timestamp is not None
        assert event.timestamp.tzinfo is UTC
    # In stream order, nearly in time order: Asterisk stamps each event when it is raised, on the thread
    # that raises it, and events from different topics (channel, bridge, queue) may pass each other by a
    # fraction of a millisecond (seen: 0.17 ms), never by more than a few ms.
    latest = max_back = 0.0
    for e in call:
        at = e.timestamp.timestamp()  # type: ignore[union-attr]
        max_back = max(max_back, latest - at)
        latest = max(latest, at)
    assert max_back < 0.05, f"an event came {max_back * 1000:.2f} ms before one delivered ahead of it"
    assert any(e.timestamp.microsecond for e in call if e.timestamp)


async def test_caller_text_cannot_inject_an_action_on_a_real_channel(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]]) -> None:
    conn, events = ami
    waiting = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"],
                                             CallerScript(number="081200003333", name=NAME,
                                                          cancel_after_ms=4000)))
    join = await wait_for(events, lambda e: isinstance(e, QueueCallerJoin))
    assert isinstance(join, QueueCallerJoin)
    assert join.chan is not None
    evil = f"{join.chan.caller_id_name}\r\nAction: Hangup\r\nChannel: {join.chan.channel}"
    with pytest.raises(ValueError, match="CR or LF"):
        await conn.action("Setvar", {"Channel": join.chan.channel, "Variable": "CALLER_NOTE", "Value": evil})
    # nothing was sent: the caller is still there, waiting, and the link is fine
    assert [c.chan.channel for c in await core_show_channels(conn) if c.chan] == [join.chan.channel]
    result = await waiting
    assert result.ok, result.output


async def test_recorder_command_captures_the_raw_stream(lab: LabStatus, tmp_path: Path) -> None:
    out = tmp_path / "lab.ami"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow.cli", "ami", "record", "--lab", lab.instance, "--out", str(out),
        "--events", "1", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()
    assert "recorded 1 events" in stdout.decode()
    data = out.read_bytes()
    assert data.startswith(b"Asterisk Call Manager/")
    assert load_secrets(Path(lab.secrets_file))["ami"].encode() not in data
    codec = AmiCodec()
    events = [parse_event(m, datetime.now(UTC)) for m in codec.feed(data) if m.kind == "event"]
    assert isinstance(events[0], FullyBooted)


async def test_asterisk_restart_reconnects_and_resyncs(lab: LabStatus) -> None:
    session = AmiSession(lab.ami_endpoint(), backoff_initial=0.2, backoff_max=1.0)
    runner = asyncio.create_task(session.run())
    try:
        first = await wait_for(session.events, lambda e: isinstance(e, LinkEvent))
        assert isinstance(first, LinkEvent)
        assert first.state == "up"
        await asyncio.to_thread(lab.cli, "core restart now")
        down = await wait_for(session.events, lambda e: isinstance(e, LinkEvent), timeout=30)
        assert isinstance(down, LinkEvent)
        assert down.state == "down"
        up = await wait_for(session.events, lambda e: isinstance(e, LinkEvent), timeout=60)
        assert isinstance(up, LinkEvent)
        assert (up.state, up.reconnect, up.gap_started) == ("up", True, down.at)
        assert {p.queue for p in up.queue_params} == {"emergency", "nonemergency"}  # re-read after restart
        assert up.channels == ()
        await wait_for(session.events, lambda e: isinstance(e, FullyBooted), timeout=60)  # lab usable again

        # The snapshot is live state: a caller waiting in the queue when the link is cut is in it.
        waiting = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"],
                                                 CallerScript(number="081200004444", name=NAME,
                                                              cancel_after_ms=6000)))
        join = await wait_for(session.events, lambda e: isinstance(e, QueueCallerJoin))
        assert isinstance(join, QueueCallerJoin)
        assert session.connection is not None
        await session.connection.close("test: link cut")
        again = await wait_for(session.events, lambda e: isinstance(e, LinkEvent) and e.state == "up")
        assert isinstance(again, LinkEvent)
        assert again.reconnect
        assert [c.uniqueid for c in again.channels] == [join.uniqueid]
        assert again.channels[0].chan is not None
        assert again.channels[0].chan.caller_id_name == NAME
        assert [(e.queue, e.uniqueid, e.caller_id_name) for e in again.queue_entries] == [
            ("emergency", join.uniqueid, NAME)]
        result = await waiting
        assert result.ok, result.output
    finally:
        session.stop()
        await asyncio.wait_for(runner, 15)
