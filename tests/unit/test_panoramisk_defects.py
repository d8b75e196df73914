"""Each defect of stock panoramisk 1.4 listed in shared/LAB-NOTES.md, shown against panoramisk (the test
asserts the defect is there) and shown absent from our AMI layer, on the same input.

Faults a real Asterisk can't be made to produce run against the fake peer (tests/support/fake_ami.py).
Defects 9 and 10 run panoramisk in a subprocess: 9 mutates a module global, 10 freezes its event loop.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from callflow.ami import (
    AmiCodec,
    AmiConnection,
    AmiMessage,
    AmiSession,
    ConnectionLost,
    EventItem,
    OutcomeUnknown,
    encode_action,
    parse_event,
)
from callflow.ami.events import Newchannel
from callflow.service import Engine
from tests.support.fake_ami import BANNER, SECRET, USERNAME, FakeAmi, FakeSession
from tests.unit.test_engine_handlers import Exploding, Recorder

NAME = "Jérôme Ελένη"
EVIL = "x\r\nAction: Hangup\r\nChannel: PJSIP/op1"


class _Transport:
    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        pass


class _Factory:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.forgetable_actions = ("ping", "login")
        self.awaiting_actions: list[Any] = []

    def dispatch(self, event: Any) -> None:
        self.events.append(event)


def panoramisk_protocol() -> tuple[AMIProtocol, _Factory, _Transport]:
    proto = AMIProtocol()
    transport = _Transport()
    proto.connection_made(transport)
    factory = _Factory()
    proto.factory = factory
    proto.encoding = "utf8"
    return proto, factory, transport


def ours(chunks: list[bytes]) -> list[AmiMessage]:
    codec = AmiCodec()
    return [m for chunk in chunks for m in codec.feed(chunk)]


@pytest.fixture
async def peer() -> AsyncIterator[FakeAmi]:
    async with FakeAmi() as fake:
        yield fake


async def panoramisk_manager(peer: FakeAmi, **config: Any) -> Manager:
    logged_in = len([s for s in peer.sessions if s.logged_in])
    manager = Manager(loop=asyncio.get_running_loop(), host="127.0.0.1", port=peer.port, username=USERNAME,
                      secret=SECRET, **config)
    await manager.connect()
    await peer.wait_sessions(logged_in + 1)
    return manager


# 1 -----------------------------------------------------------------------------------------------------
def test_1_utf8_character_split_across_reads() -> None:
    event = (f"Event: Newchannel\r\nCallerIDName: {NAME}\r\nUniqueid: 1.1\r\n\r\n").encode()
    cut = event.index("λ".encode()) + 1  # inside the two bytes of λ
    chunks = [BANNER + event[:cut], event[cut:]]

    proto, factory, _ = panoramisk_protocol()
    for chunk in chunks:
        proto.data_received(chunk)
    assert factory.events[0]["CallerIDName"] != NAME  # panoramisk decodes each chunk: λ is lost
    assert factory.events[0]["CallerIDName"] == "Jérôme Εένη"

    (msg,) = ours(chunks)
    assert msg["CallerIDName"] == NAME


# 2 -----------------------------------------------------------------------------------------------------
async def test_2_crlf_in_a_value_injects_an_action(peer: FakeAmi) -> None:
    manager = await panoramisk_manager(peer)
    try:
        # the caller name: its line breaks become extra headers of the Setvar...
        manager.send_action({"Action": "Setvar", "Channel": "PJSIP/citizen-1", "Variable": "NAME",
                             "Value": EVIL})
        await peer.wait_actions("Setvar", 1, timeout=5)
        (setvar,) = peer.received("Setvar")
        assert setvar.get_all("Action") == ["Setvar", "Hangup"]
        assert "PJSIP/op1" in setvar.get_all("Channel")
        # ...and with a blank line in it, a whole second action: Asterisk would hang up operator 1
        manager.send_action({"Action": "Setvar", "Channel": "PJSIP/citizen-1", "Variable": "NAME",
                             "Value": "x\r\n\r\nAction: Hangup\r\nChannel: PJSIP/op1"})
        await peer.wait_actions("Hangup", 1, timeout=5)
        (hangup,) = peer.received("Hangup")
        assert hangup["Channel"] == "PJSIP/op1"
    finally:
        manager.close()

    for value in (EVIL, "x\r\n\r\nAction: Hangup\r\nChannel: PJSIP/op1"):
        with pytest.raises(ValueError, match="CR or LF"):
            encode_action("Setvar", {"Channel": "PJSIP/citizen-1", "Variable": "NAME", "Value": value})


# 3 -----------------------------------------------------------------------------------------------------
async def test_3_ping_reply_never_checked(peer: FakeAmi) -> None:
    disconnected: list[Any] = []
    manager = await panoramisk_manager(peer, ping_delay=1, ping_interval=1,
                                       on_disconnect=lambda m, exc: disconnected.append(exc))
    try:
        peer.silent = True  # half-open: nothing answers any more
        await peer.wait_actions("Ping", 3, timeout=10)  # pings go out, unanswered...
        assert disconnected == []  # ...and panoramisk never notices
        assert manager.protocol.closed is False
    finally:
        manager.close()

    peer.silent = False
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    conn = AmiConnection(peer.endpoint(), events, ping_interval=0.5, ping_timeout=0.5)
    await conn.connect()
    peer.silent = True
    async with asyncio.timeout(3):
        reason = await conn.closed
    assert "half-open" in reason
    await conn.close()


# 4 -----------------------------------------------------------------------------------------------------
async def test_4_no_action_timeout_and_lost_forgettable_actions_hang(peer: FakeAmi) -> None:
    manager = await panoramisk_manager(peer)
    try:
        peer.no_reply.add("Status")
        status = manager.send_action({"Action": "Status"})
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(status), 1.5)  # our own limit: panoramisk has none
        assert not status.done()
        peer.silent = True
        ping = manager.send_action({"Action": "Ping"})
        peer.session.drop()
        await asyncio.sleep(0.5)  # the drop has been seen: the future is abandoned, pending forever
        assert not ping.done()
    finally:
        manager.close()

    peer.silent = False
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    conn = AmiConnection(peer.endpoint(), events)
    await conn.connect()
    from callflow.ami import ActionTimeout  # noqa: PLC0415 - kept next to its use

    with pytest.raises(ActionTimeout):
        await conn.action("Status", timeout=0.5)
    peer.silent = True
    pending = asyncio.ensure_future(conn.action("Ping", timeout=30))
    await asyncio.sleep(0.05)
    peer.session.drop()
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(pending, 2)
    await conn.close()


# 5 -----------------------------------------------------------------------------------------------------
async def _drop_on_first_originate(session: FakeSession, action: AmiMessage) -> bool:
    if action.get("Action") == "Originate":
        if len(session.peer.received("Originate")) == 1:
            session.drop()
        return True
    return False


async def test_5_unanswered_originate_is_resent_after_reconnect(peer: FakeAmi) -> None:
    peer.hook = _drop_on_first_originate
    manager = await panoramisk_manager(peer, reconnect_timeout=1)
    try:
        manager.send_action({"Action": "Originate", "Channel": "PJSIP/op1", "Application": "Wait",
                             "Data": "1", "Async": "true"})
        await peer.wait_actions("Originate", 2, timeout=10)  # run twice: a second call to the operator
        assert len(peer.received("Originate")) == 2
    finally:
        manager.close()

    async with FakeAmi(hook=_drop_on_first_originate) as fresh:
        session = AmiSession(fresh.endpoint(), backoff_initial=0.05)
        runner = asyncio.create_task(session.run())
        await asyncio.wait_for(session.connected.wait(), 5)
        with pytest.raises(OutcomeUnknown):
            await session.action("Originate", {"Channel": "PJSIP/op1", "Application": "Wait", "Data": "1",
                                               "Async": "true"}, timeout=5)
        await fresh.wait_sessions(2)
        await asyncio.wait_for(session.connected.wait(), 5)
        await session.action("Ping")
        assert len(fresh.received("Originate")) == 1
        session.stop()
        await asyncio.wait_for(runner, 10)


# 6 -----------------------------------------------------------------------------------------------------
async def test_6_raising_callback_kills_the_connection(peer: FakeAmi) -> None:
    disconnected = asyncio.Event()
    seen: list[str] = []
    manager = await panoramisk_manager(peer, on_disconnect=lambda m, exc: disconnected.set())

    def bad_callback(manager: Manager, event: Any) -> None:
        seen.append(event["Seq"])
        raise RuntimeError("handler bug")

    manager.register_event("UserEvent", bad_callback)
    try:
        for seq in range(3):
            await peer.session.event("UserEvent", ("UserEvent", "SiagaIvr"), ("Seq", str(seq)))
        await asyncio.wait_for(disconnected.wait(), 5)
        assert seen == ["0"]  # the first raise killed the link: later events never arrive
    finally:
        manager.close()

    recorder = Recorder(3)
    engine = Engine(peer.endpoint(), [Exploding(), recorder])
    runner = asyncio.create_task(engine.run())
    await asyncio.wait_for(engine.session.connected.wait(), 5)
    connection = engine.session.connection
    for seq in range(3):
        await peer.session.event("UserEvent", ("UserEvent", "SiagaIvr"), ("Seq", str(seq)))
    await asyncio.wait_for(recorder.done.wait(), 5)
    assert recorder.seen == ["0", "1", "2"]
    assert engine.session.connection is connection
    engine.stop()
    await asyncio.wait_for(runner, 10)


# 7 -----------------------------------------------------------------------------------------------------
async def test_7_originate_without_async_raises_inside_data_received(peer: FakeAmi) -> None:
    proto, _, transport = panoramisk_protocol()
    proto.data_received(BANNER)
    # as_list=None is what Manager.send_action passes by default
    proto.send({"Action": "Originate", "Channel": "PJSIP/op1", "Application": "Wait", "Data": "1"},
               as_list=None)
    action_id = AmiCodec(expect_banner=False).feed(transport.written)[0]["ActionID"]
    reply = (f"Response: Success\r\nActionID: {action_id}\r\n"
             "Message: Originate successfully queued\r\n\r\n").encode()
    with pytest.raises(KeyError):
        proto.data_received(reply)  # inside asyncio this drops the AMI connection

    async def queued(session: FakeSession, action: AmiMessage) -> bool:
        if action.get("Action") == "Originate":
            await session.respond(action, "Success", ("Message", "Originate successfully queued"))
            return True
        return False

    peer.hook = queued
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    conn = AmiConnection(peer.endpoint(), events)
    await conn.connect()
    response = await conn.action("Originate", {"Channel": "PJSIP/op1", "Application": "Wait", "Data": "1"})
    assert response["Message"] == "Originate successfully queued"
    assert not conn.closed.done()
    await conn.close()


# 8 -----------------------------------------------------------------------------------------------------
async def test_8_queueadd_future_never_resolves(peer: FakeAmi) -> None:
    def queue_add(as_list: bool | None) -> asyncio.Future[Any]:
        proto, _, transport = panoramisk_protocol()
        proto.data_received(BANNER)
        future: asyncio.Future[Any] = proto.send(
            {"Action": "QueueAdd", "Queue": "emergency", "Interface": "PJSIP/op1"}, as_list=as_list)
        action_id = AmiCodec(expect_banner=False).feed(transport.written)[0]["ActionID"]
        proto.data_received((f"Response: Success\r\nActionID: {action_id}\r\n"
                             "Message: Added interface to queue\r\n\r\n").encode())
        return future

    assert not queue_add(None).done()  # the default: waits for list items that never come
    assert queue_add(False).done()  # only with as_list=False

    async def added(session: FakeSession, action: AmiMessage) -> bool:
        if action.get("Action") == "QueueAdd":
            await session.respond(action, "Success", ("Message", "Added interface to queue"))
            return True
        return False

    peer.hook = added
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    conn = AmiConnection(peer.endpoint(), events)
    await conn.connect()
    response = await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1"}, timeout=2)
    assert response["Message"] == "Added interface to queue"
    await conn.close()


# 9 -----------------------------------------------------------------------------------------------------
_EOL_SCRIPT = textwrap.dedent("""
    import json
    from datetime import UTC, datetime
    from panoramisk import utils
    from panoramisk.ami_protocol import AMIProtocol
    import panoramisk.testing
    from callflow.ami import AmiCodec, parse_event

    before = utils.EOL
    panoramisk.testing.Manager()  # any use of the testing helpers
    after = utils.EOL

    class Transport:
        def write(self, data): pass
        def close(self): pass

    class Factory:
        events = []
        def dispatch(self, event): self.events.append(event)

    stream = (b"Asterisk Call Manager/9.0.0\\r\\n"
              b"Event: Hangup\\r\\nUniqueid: 1.1\\r\\nCause: 16\\r\\n\\r\\n"
              b"Event: Hangup\\r\\nUniqueid: 1.2\\r\\nCause: 16\\r\\n\\r\\n")
    proto = AMIProtocol()
    proto.connection_made(Transport())
    proto.factory = Factory()
    proto.encoding = "utf8"
    proto.data_received(stream)
    ours = [parse_event(m, datetime.now(UTC)).name for m in AmiCodec().feed(stream)]
    print(json.dumps({"before": before, "after": after,
                      "panoramisk": [dict(e) for e in Factory.events], "ours": ours}))
""")


def test_9_panoramisk_testing_breaks_real_managers_in_the_process() -> None:
    out = subprocess.run([sys.executable, "-c", _EOL_SCRIPT], capture_output=True, text=True, timeout=60,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert (result["before"], result["after"]) == ("\r\n", "\n")
    # a real CRLF stream: panoramisk now frames on LF LF and never sees the second event
    assert len(result["panoramisk"]) < 2
    assert result["ours"] == ["Hangup", "Hangup"]


# 10 ----------------------------------------------------------------------------------------------------
_FASTAGI_SCRIPT = textwrap.dedent("""
    import asyncio, socket, sys, time
    from panoramisk.fast_agi import Application

    async def route(request):
        pass

    async def main():
        app = Application(loop=asyncio.get_running_loop())
        app.add_route("ivr", route)
        server = await asyncio.start_server(app.handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def ticker():
            while True:
                print("tick", flush=True)
                await asyncio.sleep(0.1)

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.35)
        sock = socket.create_connection(("127.0.0.1", port))
        sock.close()  # connect and close before sending any AGI header
        print("client closed", flush=True)
        await asyncio.sleep(2)
        print("loop still alive", flush=True)
        tick.cancel()

    asyncio.run(main())
""")


def test_10_fastagi_client_closing_early_freezes_the_loop() -> None:
    """panoramisk's FastAGI server spins at 100 % CPU on a client that closes before its headers.

    Our IVR's FastAGI server lives in ``ivr/`` (another issue) and must not use panoramisk.fast_agi.
    """
    proc = subprocess.Popen([sys.executable, "-c", _FASTAGI_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate(timeout=6)
        frozen = False
    except subprocess.TimeoutExpired:
        frozen = True
        with open(f"/proc/{proc.pid}/stat") as fh:
            cpu_ticks = sum(int(v) for v in fh.read().split()[13:15])
        proc.kill()
        out, _ = proc.communicate()
    lines = out.splitlines()
    assert frozen, lines
    assert "client closed" in lines
    assert "loop still alive" not in lines
    assert lines[-1] == "client closed"  # not a single tick after the bad client: the loop is frozen
    assert cpu_ticks > 50  # > 0.5 s of CPU (clock ticks of 10 ms) in a run that only sleeps when healthy


def test_our_typed_event_round_trip_for_reference() -> None:
    (msg,) = ours([BANNER, f"Event: Newchannel\r\nCallerIDName: {NAME}\r\nUniqueid: 1.1\r\n\r\n".encode()])
    event = parse_event(msg, datetime.now(UTC))
    assert isinstance(event, Newchannel)
    assert event.chan is not None
    assert event.chan.caller_id_name == NAME
