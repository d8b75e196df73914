"""The FastAGI server against a fake Asterisk peer: only for faults a real Asterisk cannot be made to
produce on demand (closing before headers, garbage, HANGUP mid-command, 510/511/520, a stalled peer).
The happy path against the real Asterisk is in tests/integration/test_ivr.py."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ivr.rules import parse_tree
from ivr.server import IvrServer
from ivr.settings import IvrSettings
from tests.unit.test_ivr_rules import BASE

CHECKED = parse_tree(BASE, "ivr.toml", {"root": 0.5, "sub": 0.5, "bye": 0.5})
REQUEST = ("agi_network: yes\nagi_network_script: ivr\nagi_channel: PJSIP/citizen-ingress-0000000{n}\n"
           "agi_uniqueid: 1795334978.{n}\nagi_arg_1: /srv/lab/sounds\n\n")


GOSUB_OK = "100 result=0 Trying...\n200 result=0 Gosub complete\n"  # as Asterisk 22 answers GOSUB
STEP = 'GOSUB "siaga-ivr-step"'


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
        default = GOSUB_OK if cmd.startswith("GOSUB") else "200 result=0\n"
        reply = next((r for prefix, r in replies.items() if cmd.startswith(prefix)), default)
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
    deadline = f"{CHECKED.max_seconds + 5:.0f}"
    assert seen == [f'{STEP} "start" "1" "{deadline},root"',
                    'GET DATA "/srv/lab/sounds/siaga112/t/root" "2000" "1"',
                    f'{STEP} "decide" "1" "digit,root,1,emergency,emergency,,,"']


async def test_complaint_passes_the_category_to_the_dial_plan(server: IvrServer) -> None:
    peer = await FakeAsterisk.connect(port(server))
    await peer.send(REQUEST.format(n=2))
    digits = iter(["2", "1"])
    seen = []
    while cmd := await peer.command():
        seen.append(cmd)
        await peer.send(f"200 result={next(digits)}\n" if cmd.startswith("GET DATA") else GOSUB_OK)
    assert seen[2] == f'{STEP} "step" "1" "digit,root,2,sub"'  # digit, then "entered" for sub
    assert seen[4] == f'{STEP} "decide" "1" "digit,sub,1,nonemergency,nonemergency,street_lighting,,"'
    assert len(seen) == 5


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
    assert len(await press_one_session(server)) == 3  # and the server still serves


@pytest.mark.parametrize("garbage", ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\x16\x03\x01 binary\n",
                                     "agi_channel PJSIP/x\n\n"])
async def test_garbage_headers_close_the_session(server: IvrServer, garbage: str) -> None:
    peer = await FakeAsterisk.connect(port(server))
    await peer.send(garbage)
    assert await peer.closed_by_server()
    assert len(await press_one_session(server)) == 3


async def test_silent_peer_is_dropped_after_header_timeout(server: IvrServer) -> None:
    peer = await FakeAsterisk.connect(port(server))
    assert await peer.closed_by_server(timeout=2.0)


async def test_hangup_in_the_middle_of_get_data_ends_without_decision(server: IvrServer) -> None:
    peer = await FakeAsterisk.connect(port(server))
    await peer.send(REQUEST.format(n=3))
    seen = await answer(peer, {"GET DATA": "HANGUP\n200 result=-1\n"})
    assert any(c.startswith("GET DATA") for c in seen)
    assert seen[-1].startswith("GET DATA")  # nothing more is sent to a dead channel: no decision


async def test_hangup_line_is_not_taken_as_the_reply(server: IvrServer) -> None:
    """HANGUP arrives before the digit's reply: the digit reply is still matched to GET DATA, and the
    session stops (the caller is gone) instead of reading every later reply one step late."""
    peer = await FakeAsterisk.connect(port(server))
    await peer.send(REQUEST.format(n=4))
    seen = await answer(peer, {"GET DATA": "HANGUP\n200 result=1\n"})
    assert seen[-1].startswith("GET DATA")  # no decision after the caller is gone


@pytest.mark.parametrize("reply", ["510 Invalid or unknown command\n",
                                   "511 Command Not Permitted on a dead channel or intercept routine\n",
                                   "520-Invalid command syntax.  Proper usage follows:\nUsage: GOSUB\n"
                                   "520 End of proper usage.\n",
                                   "100 result=0 Trying...\n200 result=-1 Gosub failed\n"])
async def test_refused_step_event_does_not_cost_the_route(server: IvrServer, reply: str) -> None:
    peer = await FakeAsterisk.connect(port(server))
    await peer.send(REQUEST.format(n=5))
    digits = iter(["2", "1"])
    seen = []
    with capture_logs() as logs:
        while cmd := await peer.command():
            seen.append(cmd)
            if cmd.startswith("GET DATA"):
                await peer.send(f"200 result={next(digits)}\n")
            else:
                await peer.send(reply if cmd.startswith(f'{STEP} "step"') else GOSUB_OK)
    assert seen[-1].startswith(f'{STEP} "decide"')  # the route is still decided
    assert any(entry["event"] == "ivr.step_event_failed" for entry in logs)


@pytest.mark.parametrize("which", ["start", "decide"])
@pytest.mark.parametrize("reply", ["510 Invalid or unknown command\n",
                                   "100 result=0 Trying...\n200 result=-1 Gosub failed\n"])
async def test_failed_start_or_decision_ends_without_decision(server: IvrServer, which: str,
                                                             reply: str) -> None:
    """Start (the IVR's time bound) and decide (the route) must succeed; otherwise the session ends and
    the dial plan fails safe to the emergency queue."""
    peer = await FakeAsterisk.connect(port(server))
    await peer.send(REQUEST.format(n=6))
    with capture_logs() as logs:
        seen = await answer(peer, {f'{STEP} "{which}"': reply, "GET DATA": "200 result=1\n"})
        async with asyncio.timeout(3):
            await server.idle.wait()
    assert seen[-1].startswith(f'{STEP} "{which}"')
    assert any(e["event"] == "ivr.failed" for e in logs)
    assert not any(e["event"] == "ivr.decision" for e in logs)


@pytest.mark.parametrize("reply", ["511 Command Not Permitted on a dead channel or intercept routine\n",
                                   "510 Invalid or unknown command\n"])
async def test_refused_get_data_ends_the_session_without_decision(server: IvrServer, reply: str) -> None:
    peer = await FakeAsterisk.connect(port(server))
    await peer.send(REQUEST.format(n=6))
    seen = await answer(peer, {"GET DATA": reply})
    assert seen[-1].startswith("GET DATA")
    assert not any('"decide"' in c for c in seen)


async def test_a_stalled_session_never_blocks_another(server: IvrServer) -> None:
    stalled = await FakeAsterisk.connect(port(server))
    await stalled.send(REQUEST.format(n=7))
    first = await stalled.command()  # the stalled peer never answers this
    assert first.startswith(f'{STEP} "start"')
    half = await FakeAsterisk.connect(port(server))
    await half.send(REQUEST.format(n=8)[:30])  # half a request, then nothing
    async with asyncio.timeout(2):
        seen = await asyncio.gather(*(press_one_session(server, n) for n in range(10, 15)))
    assert all(len(s) == 3 for s in seen)
    assert await stalled.closed_by_server(timeout=3.0)  # command timeout: the session gives up
    stalled.close()
    half.close()


async def test_peer_vanishing_mid_session_is_logged_and_survived(server: IvrServer) -> None:
    peer = await FakeAsterisk.connect(port(server))
    await peer.send(REQUEST.format(n=9))
    await peer.command()
    with capture_logs() as logs:
        peer.writer.transport.abort()
        assert len(await press_one_session(server)) == 3  # served while the vanished one is cleaned up
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
            results[digit] = seen[-1]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert results["7"] == f'{STEP} "decide" "1" "digit,root,7,operator,,,op2,"'
    assert results["8"] == f'{STEP} "decide" "1" "digit,root,8,message,,,,/srv/lab/sounds/siaga112/t/bye"'


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


async def test_a_tree_applied_while_serving_is_run_by_the_next_caller(tmp_path: Path) -> None:
    """The site's tree is followed: a changed tree (new words) is prepared and swapped in without a
    restart; a tree that breaks a rule is refused and the running one kept."""
    from callflow.site_watch import SiteSource  # noqa: PLC0415
    from callflow.siteconfig import pbx_config_dir  # noqa: PLC0415

    (tmp_path / "site.toml").write_text((pbx_config_dir() / "site.toml").read_text())
    tree = tmp_path / "ivr.toml"
    shipped = (pbx_config_dir() / "ivr.toml").read_text()
    tree.write_text(shipped)
    srv = IvrServer(IvrSettings(port=0), site=SiteSource([tmp_path / "site.toml"]), follow_s=0.05)
    task = asyncio.create_task(srv.run())
    try:
        await asyncio.wait_for(srv.listening.wait(), 10)
        assert srv.checked is not None
        before = srv.checked
        root_words = before.tree.prompts["root"].text
        tree.write_text(shipped.replace(root_words, "Siaga satu satu dua. Darurat, tekan satu."))
        await asyncio.wait_for(srv.tree_reloaded.wait(), 10)
        assert srv.checked is not before
        assert srv.checked.tree.prompts["root"].text == "Siaga satu satu dua. Darurat, tekan satu."
        swapped = srv.checked
        srv.tree_reloaded.clear()
        tree.write_text(shipped.replace('[nodes.root]', '[nodes.root]\nbogus = 1', 1))  # refused
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(srv.tree_reloaded.wait(), 0.5)
        assert srv.checked is swapped
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
