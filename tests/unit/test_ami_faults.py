"""The AMI connection and session against a fault-injecting fake peer: what a real Asterisk can't do."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from callflow.ami import (
    ActionFailed,
    ActionTimeout,
    AmiConnection,
    AmiMessage,
    AmiSession,
    ConnectionLost,
    EventItem,
    LinkEvent,
    OutcomeUnknown,
)
from callflow.ami.client import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, utc_now
from callflow.ami.events import CoreShowChannel, DamagedEvent, Hangup, Newchannel
from callflow.ami.session import next_backoff
from tests.support.fake_ami import SECRET, FakeAmi, FakeSession

NAME = "Jérôme Ελένη"


@pytest.fixture
async def peer() -> AsyncIterator[FakeAmi]:
    async with FakeAmi() as fake:
        yield fake


async def connect(peer: FakeAmi, **options: float) -> tuple[AmiConnection, asyncio.Queue[EventItem]]:
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    conn = AmiConnection(peer.endpoint(), events, **options)  # type: ignore[arg-type]
    await conn.connect()
    return conn, events


async def next_of(events: asyncio.Queue[EventItem], kind: type, timeout: float = 5.0) -> EventItem:
    async with asyncio.timeout(timeout):
        while True:
            item = await events.get()
            if isinstance(item, kind):
                return item


@contextlib.asynccontextmanager
async def running(session: AmiSession) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(session.run())
    try:
        yield task
    finally:
        session.stop()
        async with asyncio.timeout(10):
            await task


def test_default_heartbeat_notices_a_half_open_link_within_5_s() -> None:
    assert DEFAULT_PING_INTERVAL + DEFAULT_PING_TIMEOUT <= 5.0


async def test_half_open_link_is_detected_within_5_s_with_defaults(peer: FakeAmi) -> None:
    conn, _ = await connect(peer)
    peer.silent = True  # TCP stays up, nothing answers: a half-open link
    started = time.monotonic()
    with capture_logs() as logs:
        async with asyncio.timeout(6):
            reason = await conn.closed
    elapsed = time.monotonic() - started
    assert elapsed <= 5.0, elapsed
    assert "half-open" in reason
    assert any(e["event"] == "ami.heartbeat_lost" for e in logs)
    await conn.close()


async def test_the_gap_of_a_half_open_link_starts_when_it_went_silent(peer: FakeAmi) -> None:
    """Not when the heartbeat noticed: calls that began and ended in between must be in the gap."""
    session = AmiSession(peer.endpoint(), backoff_initial=0.05, ping_interval=0.3, ping_timeout=0.6)
    async with running(session):
        up = await next_of(session.events, LinkEvent)
        assert isinstance(up, LinkEvent)
        assert up.state == "up"
        await peer.wait_actions("Ping", 2)  # a Ping answered, then another sent: bytes came after the login
        peer.silent = True
        silent_from = utc_now()
        with capture_logs() as logs:
            down = await next_of(session.events, LinkEvent)
        noticed = utc_now()
        peer.silent = False
        again = await next_of(session.events, LinkEvent)
    assert isinstance(down, LinkEvent)
    assert isinstance(again, LinkEvent)
    assert (down.state, again.state, again.reconnect) == ("down", "up", True)
    assert "half-open" in down.reason
    assert (noticed - silent_from).total_seconds() >= 0.6  # noticed at the Ping's deadline...
    assert again.gap_started is not None
    # ...the gap starts at the last bytes received: the reply to the Ping the peer had just answered may
    # land a moment after it went silent, never the whole heartbeat deadline later
    assert again.gap_started == down.at
    assert (down.at - silent_from).total_seconds() < 0.1
    assert (noticed - down.at).total_seconds() >= 0.5
    lost = next(e for e in logs if e["event"] == "ami.link_lost")
    assert lost["silent_since"] == again.gap_started.isoformat()


async def test_utf8_split_over_tcp_reads_arrives_intact(peer: FakeAmi) -> None:
    conn, events = await connect(peer)
    raw = (f"Event: Newchannel\r\nChannel: PJSIP/citizen-ingress-00000001\r\nCallerIDNum: 081234\r\n"
           f"CallerIDName: {NAME}\r\nUniqueid: 1.1\r\nLinkedid: 1.1\r\n\r\n").encode()
    await peer.session.send(raw, split_every=1)  # every byte its own write, so splits inside characters
    event = await next_of(events, Newchannel)
    assert isinstance(event, Newchannel)
    assert event.chan is not None
    assert event.chan.caller_id_name == NAME
    await conn.close()


async def test_oversized_frame_is_a_protocol_error_logged_and_the_link_reset(peer: FakeAmi) -> None:
    conn, _ = await connect(peer, max_message_bytes=4096)
    with capture_logs() as logs:
        await peer.session.send(b"Event: Huge\r\nData: " + b"x" * 10_000)
        async with asyncio.timeout(5):
            reason = await conn.closed
    assert reason.startswith("protocol error")
    assert "exceeds the limit of 4096 bytes" in reason
    assert any(e["event"] == "ami.protocol_error" for e in logs)
    assert conn._codec.buffered == 0  # memory released
    await conn.close()


async def test_garbage_is_logged_and_later_events_still_arrive(peer: FakeAmi) -> None:
    conn, events = await connect(peer)
    with capture_logs() as logs:
        await peer.session.send(b"\x00\xff\xfe garbage line\r\nmore junk\r\n\r\n")
        await peer.session.event("Hangup", ("Uniqueid", "7.1"), ("Cause", "16"))
        item = await next_of(events, Hangup)
    assert isinstance(item, Hangup)
    assert item.cause == 16
    assert any(e["event"] == "ami.unframed_message" for e in logs)
    assert not conn.closed.done()
    await conn.close()


async def test_every_action_times_out(peer: FakeAmi) -> None:
    conn, _ = await connect(peer)
    peer.no_reply.add("Status")
    started = time.monotonic()
    with pytest.raises(ActionTimeout, match=r"Status got no response within 0\.5 s"):
        await conn.action("Status", timeout=0.5)
    assert time.monotonic() - started < 2
    peer.no_reply.add("CoreShowChannels")
    with pytest.raises(ActionTimeout):
        await conn.list_action("CoreShowChannels", timeout=0.5)
    await conn.close()


async def test_error_response_raises_with_asterisks_message(peer: FakeAmi) -> None:
    async def refuse(session: FakeSession, action: AmiMessage) -> bool:
        if action.get("Action") == "Hangup":
            await session.respond(action, "Error", ("Message", "No such channel"))
            return True
        return False

    peer.hook = refuse
    conn, _ = await connect(peer)
    with pytest.raises(ActionFailed) as info:
        await conn.action("Hangup", {"Channel": "PJSIP/nobody-00000001"})
    assert info.value.message == "No such channel"
    assert "Hangup" in str(info.value)
    await conn.close()


async def test_crlf_in_a_value_never_reaches_the_wire(peer: FakeAmi) -> None:
    conn, _ = await connect(peer)
    with pytest.raises(ValueError, match="CR or LF"):
        await conn.action("Setvar", {"Channel": "PJSIP/citizen-1", "Variable": "NAME",
                                     "Value": "x\r\nAction: Hangup\r\nChannel: PJSIP/op1"})
    await conn.action("Ping")  # a later action: the peer has read everything we sent before it
    assert peer.received("Hangup") == []
    assert peer.received("Setvar") == []
    assert not conn.closed.done()
    await conn.close()


async def test_slow_reader_peer_still_answers_within_timeouts() -> None:
    async with FakeAmi(read_delay=0.3) as peer:
        conn, _ = await connect(peer)
        response = await conn.action("Ping", timeout=3)
        assert response.get("Ping") == "Pong"
        _, items = await conn.list_action("CoreShowChannels", timeout=3)
        assert items == []
        await conn.close()


async def test_state_changing_action_in_flight_is_never_replayed(peer: FakeAmi) -> None:
    async def crash_on_originate(session: FakeSession, action: AmiMessage) -> bool:
        if action.get("Action") in {"Originate", "Status"}:
            if action.get("Action") == "Originate":
                session.drop()  # the link dies with the Originate unanswered
            return True
        return False

    peer.hook = crash_on_originate
    session = AmiSession(peer.endpoint(), backoff_initial=0.05)
    async with running(session):
        await peer.wait_sessions(1)
        await asyncio.wait_for(session.connected.wait(), 5)
        status = asyncio.ensure_future(session.action("Status", timeout=5))
        await asyncio.sleep(0)
        with pytest.raises(OutcomeUnknown, match="not re-sent"):
            await session.action("Originate", {"Channel": "PJSIP/op1", "Application": "Wait",
                                               "Data": "1", "Async": "true"}, timeout=5)
        with pytest.raises(ConnectionLost):
            await status  # a query in flight: lost, the caller may simply ask again
        await peer.wait_sessions(2)  # reconnected
        await asyncio.wait_for(session.connected.wait(), 5)
        await session.action("Ping")
        assert len(peer.received("Originate")) == 1  # never sent again on the new connection


async def test_failed_login_names_user_and_address_retries_and_never_logs_the_secret(peer: FakeAmi) -> None:
    peer.refuse_login = True
    session = AmiSession(peer.endpoint(), backoff_initial=0.05, backoff_max=0.2)
    with capture_logs() as logs:
        async with running(session):
            await peer.wait_actions("Login", 3)
            peer.refuse_login = False
            await asyncio.wait_for(session.connected.wait(), 5)
    failures = [e for e in logs if e["event"] == "ami.connect_failed"]
    assert len(failures) >= 2
    where = f"siaga112@127.0.0.1:{peer.port}"
    assert failures[0]["where"] == where
    assert "login refused for user 'siaga112' at 127.0.0.1" in failures[0]["error"]
    assert [f["attempt"] for f in failures[:2]] == [1, 2]
    assert SECRET not in repr(logs)
    assert SECRET not in repr(session.endpoint)


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    delays = [0.2]
    for _ in range(8):
        delays.append(next_backoff(delays[-1], 5.0))
    assert all(b > a for a, b in itertools.pairwise(delays[:5]))  # grows while far below the cap
    assert max(delays) <= 5.0 * 1.2
    jittered = {round(next_backoff(1.0, 5.0), 6) for _ in range(20)}
    assert len(jittered) > 1
    assert all(1.6 <= d <= 2.4 for d in jittered)


async def test_every_connect_resyncs_before_later_events_and_reports_the_gap(peer: FakeAmi) -> None:
    channel = [("Channel", "PJSIP/citizen-ingress-00000009"), ("Uniqueid", "9.1"), ("Linkedid", "9.1"),
               ("CallerIDName", NAME), ("Application", "Queue"), ("Duration", "00:00:12")]
    peer.list_items["CoreShowChannels"] = [("CoreShowChannel", channel)]
    peer.list_items["QueueStatus"] = [
        ("QueueParams", [("Queue", "emergency"), ("Calls", "1"), ("Weight", "100")]),
        ("QueueMember", [("Queue", "emergency"), ("Name", "op1"), ("Location", "PJSIP/op1"),
                         ("Paused", "0"), ("InCall", "1")]),
        ("QueueEntry", [("Queue", "emergency"), ("Position", "1"),
                        ("Channel", "PJSIP/citizen-ingress-00000009"), ("Uniqueid", "9.1"), ("Wait", "12")]),
    ]

    async def early_event(session: FakeSession, action: AmiMessage) -> bool:
        if action.get("Action") == "CoreShowChannels":  # an event arriving while we resync
            await session.event("Newchannel", ("Channel", "PJSIP/citizen-ingress-0000000a"),
                                ("Uniqueid", "10.1"), ("Linkedid", "10.1"))
        return False

    peer.hook = early_event
    session = AmiSession(peer.endpoint(), backoff_initial=0.05)
    async with running(session):
        up = await next_of(session.events, LinkEvent)
        assert isinstance(up, LinkEvent)
        assert (up.state, up.reconnect, up.gap_started) == ("up", False, None)
        assert [c.chan.channel for c in up.channels if c.chan] == ["PJSIP/citizen-ingress-00000009"]
        assert isinstance(up.channels[0], CoreShowChannel)
        assert up.channels[0].chan is not None
        assert up.channels[0].chan.caller_id_name == NAME
        members = [(m.member_name, m.interface, m.in_call) for m in up.queue_members]
        assert members == [("op1", "PJSIP/op1", True)]
        assert [(e.queue, e.position, e.wait) for e in up.queue_entries] == [("emergency", 1, 12)]
        assert [(p.queue, p.calls, p.weight) for p in up.queue_params] == [("emergency", 1, 100)]
        assert up.resynced_at is not None
        # the event that arrived during the resync comes after the snapshot, not before
        newchannel = await next_of(session.events, Newchannel)
        assert isinstance(newchannel, Newchannel)
        assert newchannel.uniqueid == "10.1"

        peer.session.drop()
        down = await next_of(session.events, LinkEvent)
        assert isinstance(down, LinkEvent)
        assert down.state == "down"
        again = await next_of(session.events, LinkEvent)
        assert isinstance(again, LinkEvent)
        assert (again.state, again.reconnect) == ("up", True)
        assert again.gap_started == down.at
        assert again.gap_started is not None
        assert again.at >= again.gap_started
        assert len(again.channels) == 1


# A Newchannel as the lab's Asterisk 22 writes it for a SIP From user "0812%0D%0A%0D%0A<text>3456": the
# number goes to AMI unescaped, so the caller's text becomes whole AMI messages of its own. Here the text
# forges a Hangup of another call (Uniqueid 1796416400.0) between the event's head and its tail.
_SPLIT_NEWCHANNEL = (
    b"Event: Newchannel\r\nPrivilege: call,all\r\nTimestamp: 1796416446.847066\r\n"
    b"Channel: PJSIP/citizen-ingress-00000001\r\nChannelState: 4\r\nChannelStateDesc: Ring\r\n"
    b"CallerIDNum: 0812\r\n\r\n"
    b"Event: Hangup\r\nUniqueid: 1796416400.0\r\nLinkedid: 1796416400.0\r\nCause: 16\r\n\r\n"
    b"3456\r\nCallerIDName: Warga\r\nConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\n"
    b"Language: id\r\nAccountCode: \r\nContext: from-citizens\r\nExten: 112\r\nPriority: 1\r\n"
    b"Uniqueid: 1796416446.2\r\nLinkedid: 1796416446.2\r\n\r\n")


async def test_an_event_split_by_caller_text_names_its_call_and_forges_nothing(peer: FakeAmi) -> None:
    conn, events = await connect(peer)
    with capture_logs() as logs:
        await peer.session.send(_SPLIT_NEWCHANNEL)
        await peer.session.event("Hangup", ("Uniqueid", "7.1"), ("Linkedid", "7.1"), ("Cause", "16"))
        seen: list[EventItem] = []
        async with asyncio.timeout(5):
            while not (seen and isinstance(seen[-1], Hangup) and seen[-1].uniqueid == "7.1"):
                seen.append(await events.get())
    damaged = [e for e in seen if isinstance(e, DamagedEvent)]
    assert [(e.linkedid, e.uniqueid) for e in damaged] == [("1796416446.2", "1796416446.2")]
    # the forged Hangup of 1796416400.0 never reached the queue
    assert [e.uniqueid for e in seen if isinstance(e, Hangup)] == ["7.1"]
    assert events.empty()
    dropped = [e for e in logs if e["event"] == "ami.injected_event_dropped"]
    assert [e["ami_event"] for e in dropped] == ["Hangup"]
    assert "0812" not in str(logs)
    assert "3456" not in str(logs)
    assert not conn.closed.done()
    await conn.close()
