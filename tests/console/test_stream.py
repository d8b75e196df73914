"""The live stream: engine events -> JSON messages -> bounded per-client queues -> server-sent events,
over the real uvicorn the component runs on the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from callflow.ami import AmiCodec, LinkEvent, parse_event, utc_now
from callflow.ami.events import AmiEvent
from callflow.console import CONSOLE_SCHEMA, AccountStore, ConsoleComponent, HttpAddress, Role
from callflow.console.hub import EventHub
from callflow.console.messages import to_message
from callflow.console.routes_stream import _sse
from callflow.store import OperationalError, open_database
from tests.console.conftest import PASSWORD

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def event(raw: str) -> AmiEvent:
    data = raw.replace("\n", "\r\n").encode() + b"\r\n"
    (msg,) = AmiCodec().feed(b"Asterisk Call Manager/11.0.0\r\n" + data)
    return parse_event(msg, NOW)


def join_event(uniqueid: str = "1763791542.1", name: str = "Warga") -> AmiEvent:
    return event(f"Event: QueueCallerJoin\nChannel: PJSIP/citizen-1\nUniqueid: {uniqueid}\n"
                 f"Linkedid: {uniqueid}\n"
                 f"CallerIDNum: 081234567890\nCallerIDName: {name}\nQueue: emergency\nPosition: 1\nCount: 1\n"
                 "Timestamp: 1763791542.250000\n")


def test_queue_and_agent_events_become_small_messages() -> None:
    assert to_message(join_event()) == {
        "type": "queue.join", "at": "2025-11-22T06:05:42.250000+00:00", "linkedid": "1763791542.1",
        "uniqueid": "1763791542.1", "caller": "081234567890", "caller_name": "Warga",
        "queue": "emergency", "position": 1, "count": 1}
    connect = to_message(event(
        "Event: AgentConnect\nChannel: PJSIP/citizen-1\nUniqueid: 9.1\nLinkedid: 9.1\nCallerIDNum: 0812\n"
        "DestChannel: PJSIP/op1-2\nDestUniqueid: 9.2\nQueue: emergency\nMemberName: op1\n"
        "Interface: PJSIP/op1\nHoldTime: 4\nRingTime: 1\n"))
    assert connect is not None
    assert (connect["type"], connect["operator"], connect["hold_time"], connect["caller"]) == \
        ("agent.connect", "op1", 4, "0812")
    member = to_message(event("Event: QueueMemberPause\nQueue: emergency\nMemberName: op2\n"
                              "Interface: PJSIP/op2\nPaused: 1\nPausedReason: break\nStatus: 1\nInCall: 0\n"))
    assert member is not None
    assert (member["type"], member["paused"], member["paused_reason"], member["device"]) == \
        ("member.pause", True, "break", "not_in_use")
    entry = to_message(event("Event: UserEvent\nUserEvent: SiagaQueueEntry\nUniqueid: 9.1\nLinkedid: 9.1\n"
                             "Class: emergency\nQueue: emergency\nRoute: direct\n"))
    assert entry is not None
    assert (entry["type"], entry["class"], entry["route"]) == ("call.queue_entry", "emergency", "direct")
    callback = to_message(event(
        "Event: UserEvent\nUserEvent: SiagaCallback\nChannel: PJSIP/citizen-callback-00000009\n"
        "Uniqueid: siaga-cb-7-1-1795300100000\nLinkedid: siaga-cb-7-1-1795300100000\nCallerIDNum: 112\n"
        "Task: 7\nOriginal: 1795300000.1\nNumber: 081299990000\nArrival: 1795300000.5\nWaited: 42.4\n"
        "Status: answered\n"))
    assert callback is not None
    assert {k: callback[k] for k in ("type", "caller", "original", "original_arrival", "original_waited_s")} \
        == {"type": "call.callback", "caller": "081299990000", "original": "1795300000.1",
            "original_arrival": "2026-11-21T22:26:40.500000+00:00", "original_waited_s": 42.4}
    assert to_message(LinkEvent("down", NOW, "eof")) == {"type": "link", "state": "down",
                                                         "at": NOW.isoformat()}
    assert to_message(event("Event: Newchannel\nChannel: PJSIP/x\nUniqueid: 1.1\n")) is None
    var_set = event("Event: VarSet\nChannel: PJSIP/x\nUniqueid: 1.1\nVariable: A\nValue: b\n")
    assert to_message(var_set) is None


def test_a_silent_caller_and_their_yes_no_keys_reach_the_pop() -> None:
    flagged = to_message(event("Event: UserEvent\nUserEvent: SiagaQueueEntry\nUniqueid: 9.1\nLinkedid: 9.1\n"
                               "Class: emergency\nQueue: emergency\nRoute: ivr\nAbuse: 1\n"))
    assert flagged is not None
    assert flagged["abuse"] == "1"
    silent = to_message(event("Event: UserEvent\nUserEvent: SiagaSilent\nUniqueid: 9.1\nLinkedid: 9.1\n"
                              "Status: silent_caller\nSpeechS: 0.0\nKeys: 55\nNode: root\n"))
    assert silent is not None
    assert (silent["type"], silent["status"], silent["keys"]) == ("call.silent", "silent_caller", "55")
    yes = to_message(event("Event: DTMFEnd\nChannel: PJSIP/citizen-ingress-1\nUniqueid: 9.1\n"
                           "Linkedid: 9.1\nContext: siaga-queue-emergency\nDigit: 1\nDurationMs: 120\n"
                           "Direction: Received\n"))
    assert yes is not None
    assert (yes["type"], yes["digit"], yes["linkedid"]) == ("call.key", "1", "9.1")
    in_ivr = event("Event: DTMFEnd\nChannel: PJSIP/citizen-ingress-1\nUniqueid: 9.1\nLinkedid: 9.1\n"
                   "Context: siaga-ivr\nDigit: 5\nDurationMs: 120\nDirection: Received\n")
    assert to_message(in_ivr) is None  # the IVR's own keys arrive as call.ivr steps


async def test_a_full_client_queue_drops_oldest_and_says_so() -> None:
    hub = EventHub(per_client_limit=16)
    slow, fast = hub.subscribe("slow"), hub.subscribe("fast")
    for i in range(1000):
        hub.publish({"type": "queue.join", "n": i})
        if i % 10 == 0:  # the fast reader keeps up
            while fast.pending:
                await fast.next(timeout=0)
    assert slow.pending == 16
    first = await slow.next(timeout=0)
    assert first == {"type": "gap", "dropped": 984}
    rest = [await slow.next(timeout=0) for _ in range(16)]
    assert [m["n"] for m in rest if m] == list(range(984, 1000))
    assert await slow.next(timeout=0.01) is None  # nothing more: a keepalive tick
    assert fast.dropped_total == 0


@dataclass
class StubEngine:
    """What the component uses of the engine: its stop signal (and a session it does not need here)."""

    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    session: object = None


@dataclass
class Running:
    component: ConsoleComponent
    engine: StubEngine
    task: asyncio.Task[None]
    url: str


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    db_path = tmp_path / "engine.db"
    db = await open_database(db_path, [CONSOLE_SCHEMA])
    await AccountStore(db, utc_now).add_user("sup", Role.SUPERVISOR, PASSWORD)
    await db.close()
    component = ConsoleComponent(HttpAddress("127.0.0.1", 0), db_path, per_client_limit=32)
    component.bind()
    engine = StubEngine()
    task = asyncio.create_task(component.run(engine))  # type: ignore[arg-type]
    async with asyncio.timeout(10):
        await component.started.wait()
    yield Running(component, engine, task, f"http://127.0.0.1:{component.address.port}")
    engine.stopping.set()
    async with asyncio.timeout(10):
        await task


@contextlib.asynccontextmanager
async def _logged_in(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        r = await client.post("/api/auth/login", json={"name": "sup", "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield client


async def _next_event(lines: AsyncIterator[str]) -> tuple[str, dict[str, object]]:
    kind = ""
    async for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            return kind, json.loads(line.removeprefix("data: "))
    raise AssertionError("stream ended")


async def test_sse_delivers_engine_events_to_a_logged_in_browser(running: Running) -> None:
    async with _logged_in(running.url) as client, client.stream("GET", "/api/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        async with asyncio.timeout(5):
            async for line in lines:
                if line == ": connected":
                    break
            await running.component.handle(join_event())
            kind, data = await _next_event(lines)
    assert kind == "queue.join"
    assert data["caller"] == "081234567890"
    assert data["queue"] == "emergency"


async def test_sse_refuses_anonymous_clients(running: Running) -> None:
    async with httpx.AsyncClient(base_url=running.url) as client:
        r = await client.get("/api/events")
    assert r.status_code == 401


async def test_a_browser_that_stops_reading_never_blocks_the_engine(running: Running) -> None:
    """A client that does not read fills its socket, then its bounded queue: the engine's handle() stays
    immediate, and when the client reads again it is told how much it missed."""
    async with _logged_in(running.url) as client, client.stream("GET", "/api/events") as response:
        lines = response.aiter_lines()
        async with asyncio.timeout(5):
            async for line in lines:
                if line == ": connected":
                    break
        big_name = "W" * 4000  # 3000 x ~4 KB: far more than the loopback socket buffers hold
        slowest = 0.0
        for i in range(3000):
            started = time.perf_counter()
            await running.component.handle(join_event(f"1763791542.{i}", big_name))
            slowest = max(slowest, time.perf_counter() - started)
            if i % 200 == 0:
                await asyncio.sleep(0)  # let uvicorn write what the socket takes
        assert slowest < 0.05, f"handle() took {slowest:.3f} s"
        (sub,) = running.component.hub._subscribers.values()
        assert sub.pending <= 32
        seen: list[str] = []
        async with asyncio.timeout(20):
            while True:
                kind, data = await _next_event(lines)
                seen.append(kind)
                if data.get("uniqueid") == "1763791542.2999":
                    break
    assert "gap" in seen
    assert len(seen) < 3000


async def test_engine_stop_ends_open_streams_and_the_server(running: Running) -> None:
    async with _logged_in(running.url) as client, client.stream("GET", "/api/events") as response:
        lines = response.aiter_lines()
        async with asyncio.timeout(5):
            async for line in lines:
                if line == ": connected":
                    break
        assert running.component.hub.clients == 1
        running.engine.stopping.set()
        async with asyncio.timeout(8):
            async for _ in lines:
                pass  # the stream ends instead of hanging
            await running.task
    assert running.component.hub.clients == 0
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=running.url) as again:
            await again.get("/api/auth/me")


async def test_disabling_the_account_from_another_process_ends_its_open_stream(running: Running) -> None:
    """Issue 17: `console user disable` printed "its sessions ended" while the page's event stream went
    on (the session was checked only when the stream opened). The CLI is a process of its own here."""
    async with _logged_in(running.url) as client, client.stream("GET", "/api/events") as response:
        lines = response.aiter_lines()
        async with asyncio.timeout(5):
            async for line in lines:
                if line == ": connected":
                    break
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callflow.cli", "console", "--database", str(running.component.database),
            "user", "disable", "sup", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await cli.communicate()
        assert cli.returncode == 0, err
        assert b"its sessions ended" in out
        disabled_at = time.monotonic()
        async with asyncio.timeout(running.component.settings.session_check_s + 3):
            kind, _ = await _next_event(lines)
            assert kind == "session.ended"
            async for _ in lines:
                pass  # and the stream ends
        ended_after = time.monotonic() - disabled_at
        assert (await client.get("/api/auth/me")).status_code == 401
    assert ended_after < running.component.settings.session_check_s + 1
    assert running.component.hub.clients == 0


async def test_a_stream_ends_when_its_session_is_gone_and_survives_a_store_error() -> None:
    hub = EventHub(8)
    # a busy store, as the store interface raises it
    answers: list[bool | Exception] = [OperationalError("database is locked"), True, False]

    async def still_valid() -> bool:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    chunks = []
    async with asyncio.timeout(5):
        async for chunk in _sse(hub, "sup", keepalive=60, check_every=0.01, still_valid=still_valid):
            chunks.append(chunk)
    assert chunks[-1].startswith(b"event: session.ended")
    assert answers == []  # the error did not end it; the third check did
    assert hub.clients == 0
