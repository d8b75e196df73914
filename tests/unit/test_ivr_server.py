"""The FastAGI server against a fake Asterisk peer: only for faults a real Asterisk cannot be made to
produce on demand (closing before headers, garbage, HANGUP mid-command, 510/511/520, a stalled peer).
The happy path against the real Asterisk is in tests/integration/test_ivr.py."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from ivr.rules import parse_tree
from ivr.server import IvrServer
from ivr.settings import IvrSettings
from tests.unit.test_ivr_rules import BASE

CHECKED = parse_tree(BASE, "ivr.toml", {"root": 0.5, "sub": 0.5, "bye": 0.5})
REQUEST = ("agi_network: yes\nagi_network_script: ivr\nagi_channel: PJSIP/citizen-ingress-0000000{n}\n"
           "agi_uniqueid: 1795334978.{n}\nagi_arg_1: /srv/lab/sounds\n\n")


class FakeAsterisk:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> FakeAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, text: str) -> None:
        self.writer.write(text.encode())
        await self.writer.drain()

    async def command(self, timeout: float = 3.0) -> str:
        async with asyncio.timeout(timeout):
            line = await self.reader.readline()
        return line.decode().rstrip("\n")

    async def closed_by_server(self, timeout: float = 3.0) -> bool:
        async with asyncio.timeout(timeout):
            return await self.reader.read() == b""

    def close(self) -> None:
        self.writer.close()


async def answer(peer: FakeAsterisk, replies: dict[str, str]) -> list[str]:
    """Answer every command (first matching prefix in ``replies``, else 200 result=0) until the server
    closes; returns the commands seen."""
    seen = []
    while True:
        try:
            cmd = await peer.command()
        except (TimeoutError, ConnectionError):
            break
        if not cmd:
            break
        seen.append(cmd)
        reply = next((r for prefix, r in replies.items() if cmd.startswith(prefix)), "200 result=0\n")
        await peer.send(reply)
    return seen


@pytest.fixture
async def server() -> AsyncIterator[IvrServer]:
    srv = IvrServer(IvrSettings(port=0, header_timeout_s=0.5, command_timeout_s=1.0), checked=CHECKED)
    task = asyncio.create_task(srv.serve())
    async with asyncio.timeout(5):
        await srv.listening.wait()
    yield srv
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def port(srv: IvrServer) -> int:
    assert srv.bound_port is not None
    return srv.bound_port


async def press_one_session(srv: IvrServer, n: int = 1) -> list[str]:
    peer = await FakeAsterisk.connect(port(srv))
    await peer.send(REQUEST.format(n=n))
    return await answer(peer, {"GET DATA": "200 result=1\n"})


async def test_press_one_session_sets_decision_and_reports_steps(server: IvrServer) -> None:
    seen = await press_one_session(server)
    assert seen[0].startswith('SET VARIABLE "TIMEOUT(absolute)"')
    assert seen[1] == 'EXEC "UserEvent" "SiagaIvr,Step: entered,Node: root,Digit: "'
    assert seen[2] == 'GET DATA "/srv/lab/sounds/siaga112/t/root" "2000" "1"'
    assert seen[3] == 'EXEC "UserEvent" "SiagaIvr,Step: digit,Node: root,Digit: 1"'
    assert seen[4] == 'SET VARIABLE "SIAGA_IVR_ACTION" "emergency"'
    assert seen[5] == ('EXEC "UserEvent" "SiagaIvr,Step: decision,Node: root,Digit: ,Action: emergency,'
                       'Queue: emergency,Category: "')
    assert len(seen) == 6


async def test_complaint_sets_category_before_the_action(server: IvrServer) -> None:
    peer = await FakeAsterisk.connect(port(server))
    await peer.send(REQUEST.format(n=2))
    digits = iter(["2", "1"])
    seen = []
    while cmd := await peer.command():
        seen.append(cmd)
        await peer.send(f"200 result={next(digits)}\n" if cmd.startswith("GET DATA") else "200 result=0\n")
    sets = [c for c in seen if c.startswith("SET VARIABLE") and "TIMEOUT" not in c]
    assert sets == ['SET VARIABLE "__SIAGA_CATEGORY" "street_lighting"',
                    'SET VARIABLE "SIAGA_IVR_ACTION" "nonemergency"']


async def test_client_closing_before_headers_does_not_spin(server: IvrServer) -> None:
    with capture_logs() as logs:
        for _ in range(5):
            peer = await FakeAsterisk.connect(port(server))
            peer.close()
        cpu_before = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        await asyncio.sleep(0.5)  # measuring the idle CPU over a window is the point here
        cpu_used = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu_before
    assert cpu_used < 0.2, f"event loop busy after peers closed early: {cpu_used:.2f} s CPU in 0.5 s"
    assert sum(1 for entry in logs if entry["event"] == "ivr.bad_peer") == 5
    assert len(await press_one_session(server)) == 6  # and the server still serves


@pytest.mark.parametrize("garbage", ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x16\x03\x01 binary\n",
                                     "agi_channel PJSIP/x\n\n"])
async def test_garbage_headers_close_the_session(server: IvrServer, garbage: str) -> None:
    peer = await FakeAsterisk.connect(port(server))
    await peer.send(garbage)
    assert await peer.closed_by_server()
    assert len(await press_one_session(server)) == 6


async def test_silent_peer_is_dropped_after_header_timeout(server: IvrServer) -> None:
    peer = await FakeAsterisk.connect(port(server))
    assert await peer.closed_by_server(timeout=2.0)


async def test_hangup_in_the_middle_of_get_data_ends_without_decision(server: IvrServer) -> None:
    peer = await FakeAsterisk.connect(port(server))
    await peer.send(REQUEST.format(n=3))
    seen = await answer(peer, {"GET DATA": "HANGUP\n200 result=-1\n"})
    assert any(c.startswith("GET DATA") for c in seen)
    assert not any("SIAGA_IVR_ACTION" in c for c in seen)
    assert seen[-1].startswith("GET DATA")  # nothing more is sent to a dead channel


async def test_hangup_line_is_not_taken_as_the_reply(server: IvrServer) -> None:
    """HANGUP arrives before the digit's reply: the digit reply is still matched to GET DATA, and the
    session stops (the caller is gone) instead of reading every later reply one step late."""
    peer = await FakeAsterisk.connect(port(server))
    await peer.send(REQUEST.format(n=4))
    seen = await answer(peer, {"GET DATA": "HANGUP\n200 result=1\n"})
    assert seen[-1].startswith("GET DATA")
    assert not any("SIAGA_IVR_ACTION" in c for c in seen)


@pytest.mark.parametrize("reply", ["510 Invalid or unknown command\n",
                                   "511 Command Not Permitted on a dead channel or intercept routine\n",
                                   "520-Invalid command syntax.  Proper usage follows:\nUsage: EXEC\n"
                                   "520 End of proper usage.\n"])
async def test_refused_step_event_does_not_cost_the_route(server: IvrServer, reply: str) -> None:
    peer = await FakeAsterisk.connect(port(server))
    await peer.send(REQUEST.format(n=5))
    with capture_logs() as logs:
        seen = await answer(peer, {"EXEC": reply, "GET DATA": "200 result=1\n"})
    assert 'SET VARIABLE "SIAGA_IVR_ACTION" "emergency"' in seen
    assert any(entry["event"] == "ivr.step_event_failed" for entry in logs)


@pytest.mark.parametrize("reply", ["511 Command Not Permitted on a dead channel or intercept routine\n",
                                   "510 Invalid or unknown command\n"])
async def test_refused_get_data_ends_the_session_without_decision(server: IvrServer, reply: str) -> None:
    peer = await FakeAsterisk.connect(port(server))
    await peer.send(REQUEST.format(n=6))
    seen = await answer(peer, {"GET DATA": reply})
    assert not any("SIAGA_IVR_ACTION" in c for c in seen)


async def test_a_stalled_session_never_blocks_another(server: IvrServer) -> None:
    stalled = await FakeAsterisk.connect(port(server))
    await stalled.send(REQUEST.format(n=7))
    first = await stalled.command()  # the stalled peer never answers this
    assert first.startswith("SET VARIABLE")
    half = await FakeAsterisk.connect(port(server))
    await half.send(REQUEST.format(n=8)[:30])  # half a request, then nothing
    async with asyncio.timeout(2):
        seen = await asyncio.gather(*(press_one_session(server, n) for n in range(10, 15)))
    assert all(len(s) == 6 for s in seen)
    assert await stalled.closed_by_server(timeout=3.0)  # command timeout: the session gives up
    stalled.close()
    half.close()


async def test_peer_vanishing_mid_session_is_logged_and_survived(server: IvrServer) -> None:
    peer = await FakeAsterisk.connect(port(server))
    await peer.send(REQUEST.format(n=9))
    await peer.command()
    with capture_logs() as logs:
        peer.writer.transport.abort()
        assert len(await press_one_session(server)) == 6  # served while the vanished one is cleaned up
    assert any(e["event"] == "ivr.ended" and "connection closed" in e["reason"] for e in logs), logs


async def test_operator_and_message_actions_set_their_variables() -> None:
    text = BASE.replace('"2" = { goto = "sub" }', '"2" = { goto = "sub" }\n"7" = { action = "operator", '
                        'operator = "op2" }\n"8" = { action = "message", message = "bye" }')
    checked = parse_tree(text, "ivr.toml", {"root": 0.5, "sub": 0.5, "bye": 0.5})
    srv = IvrServer(IvrSettings(port=0, header_timeout_s=0.5, command_timeout_s=1.0), checked=checked)
    task = asyncio.create_task(srv.serve())
    try:
        async with asyncio.timeout(5):
            await srv.listening.wait()
        results = {}
        for digit in ("7", "8"):
            peer = await FakeAsterisk.connect(port(srv))
            await peer.send(REQUEST.format(n=int(digit)))
            seen = await answer(peer, {"GET DATA": f"200 result={digit}\n"})
            results[digit] = [c for c in seen if c.startswith("SET VARIABLE") and "TIMEOUT" not in c]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert results["7"] == ['SET VARIABLE "SIAGA_IVR_OPERATOR" "op2"',
                            'SET VARIABLE "SIAGA_IVR_ACTION" "operator"']
    assert results["8"] == ['SET VARIABLE "SIAGA_IVR_MESSAGE" "/srv/lab/sounds/siaga112/t/bye"',
                            'SET VARIABLE "SIAGA_IVR_ACTION" "message"']


async def test_port_taken_keeps_retrying_then_listens() -> None:
    holder = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    taken = holder.sockets[0].getsockname()[1]
    srv = IvrServer(IvrSettings(port=taken), checked=CHECKED)
    with capture_logs() as logs:
        task = asyncio.create_task(srv.serve(retry_s=0.05))
        async with asyncio.timeout(5):
            await srv.listen_failed.wait()
        assert any(e["event"] == "ivr.listen_failed" for e in logs)
        holder.close()
        await holder.wait_closed()
        async with asyncio.timeout(5):
            await srv.listening.wait()
    assert srv.bound_port == taken
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
