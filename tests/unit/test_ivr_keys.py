"""Keys pressed while no AGI command listened (ivr/keys.py): taken from Asterisk's DTMFEnd events, never
counted twice. The session runs against the fake FastAGI peer of test_ivr_server (what Asterisk drops
between commands cannot be scheduled on a real one); on the real lab: tests/integration/test_ivr.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from callflow.ami.codec import AmiMessage
from callflow.ami.events import DTMFEnd
from ivr.keys import KeyBuffer, KeyLedger, key_line, read_key_line
from ivr.process import KEYS_PIPE_LIMIT, IvrProcess
from ivr.server import IvrServer
from ivr.settings import IvrSettings
from tests.unit.test_ivr_server import CHECKED, GOSUB_OK, REQUEST, STEP, FakeAsterisk, port

TIMEOUT = "200 result= (timeout)\n"


def uniqueid(n: int) -> str:
    return f"1795334978.{n}"


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


Reply = Callable[[str], Awaitable[str]]


async def session(srv: IvrServer, n: int, reply: Reply) -> list[str]:
    """One call: ``reply(command)`` answers each command (it may add keys first); returns the commands."""
    peer = await FakeAsterisk.connect(port(srv))
    await peer.send(REQUEST.format(n=n))
    seen = []
    while cmd := await peer.command():
        seen.append(cmd)
        await peer.send(await reply(cmd))
    return seen


def replies(get_data: list[str], before: Callable[[str, int], None] = lambda _c, _i: None) -> Reply:
    """GET DATA answered from ``get_data`` in turn, GOSUB as Asterisk does; ``before(command, i)`` runs
    first (the caller pressing a key at that moment)."""
    answers = iter(get_data)
    count = 0

    async def reply(cmd: str) -> str:
        nonlocal count
        before(cmd, count)
        count += 1
        return next(answers) if cmd.startswith("GET DATA") else GOSUB_OK
    return reply


async def test_a_key_pressed_before_the_menu_listened_answers_it(server: IvrServer) -> None:
    """The caller pressed 1 while the IVR was still connecting (Asterisk dropped it; AMI reported it):
    the menu is answered with it, at once, without playing the prompt."""
    server.keys.add(uniqueid(1), "1", time.time() - 0.4)
    with capture_logs() as logs:
        seen = await session(server, 1, replies([]))
    assert seen[1:] == [f'{STEP} "decide" "1" "digit,root,1,emergency,emergency,,,"']
    taken = next(e for e in logs if e["event"] == "ivr.missed_key_taken")
    assert taken["digit"] == "1"
    assert taken["late_s"] >= 0.4
    async with asyncio.timeout(3):
        await server.idle.wait()
    assert len(server.keys) == 0  # forgotten with the session


async def test_a_key_pressed_between_two_menus_answers_the_second(server: IvrServer) -> None:
    """2 (heard by GET DATA, its AMI copy arriving with it), then 1 pressed during the step between the
    menus (dropped by Asterisk): the second menu takes the 1."""
    def press(cmd: str, _i: int) -> None:
        if cmd.startswith("GET DATA"):
            server.keys.add(uniqueid(2), "2", time.time())
        elif cmd.startswith(f'{STEP} "step"'):
            server.keys.add(uniqueid(2), "1", time.time())
    seen = await session(server, 2, replies(["200 result=2\n"], press))
    assert sum(c.startswith("GET DATA") for c in seen) == 1
    assert seen[-1] == f'{STEP} "decide" "1" "digit,sub,1,nonemergency,nonemergency,street_lighting,,"'


@pytest.mark.parametrize("copy_arrives", ["with the reply", "during the next menu", "never"])
async def test_a_heard_key_is_never_taken_again(server: IvrServer, copy_arrives: str) -> None:
    """GET DATA heard 2; its AMI copy comes with the reply, later (engine lag), or never: the next menu
    still plays and times out as the caller pressed nothing more."""
    def press(cmd: str, i: int) -> None:
        first = i == 1  # commands: start, GET DATA root, step, GET DATA sub, ...
        if cmd.startswith("GET DATA") and first:
            sent_at[0] = time.time()  # after the session sent it: the key is pressed during the prompt
        if cmd.startswith("GET DATA") and ((first and copy_arrives == "with the reply")
                                           or (not first and copy_arrives == "during the next menu")):
            server.keys.add(uniqueid(3), "2", sent_at[0] + 0.2)
    sent_at = [0.0]
    seen = await session(server, 3, replies(["200 result=2\n", TIMEOUT], press))
    assert sum(c.startswith("GET DATA") for c in seen) == 2
    assert seen[-1].startswith(f'{STEP} "decide" "1" "timeout,sub,')  # sub: no retries, no key


async def test_keys_are_not_taken_when_turned_off() -> None:
    srv = IvrServer(IvrSettings(port=0, header_timeout_s=0.5, command_timeout_s=1.0, missed_keys=False),
                    checked=CHECKED)
    task = asyncio.create_task(srv.serve())
    try:
        async with asyncio.timeout(5):
            await srv.listening.wait()
        srv.keys.add(uniqueid(4), "1", time.time() - 0.4)
        seen = await session(srv, 4, replies(["200 result=1\n"]))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert seen[1].startswith('GET DATA "/srv/lab/sounds/siaga112/t/root"')


def test_ledger_takes_keys_in_order_once() -> None:
    buf = KeyBuffer()
    ledger = KeyLedger(buf, "u")
    assert ledger.missed() is None
    buf.add("u", "2", 10.0)
    buf.add("u", "1", 9.0)  # arrives out of order: Asterisk's timestamps decide
    first, second = ledger.missed(), ledger.missed()
    assert (first and first.digit, second and second.digit) == ("1", "2")
    assert ledger.missed() is None
    ledger.heard("5", sent_at=20.0)
    buf.add("u", "7", 21.0)  # a key after the heard one: its order is unknown until the copy of 5 comes
    assert ledger.missed() is None
    buf.add("u", "5", 20.5)
    key = ledger.missed()
    assert key is not None
    assert key.digit == "7"


def test_buffer_is_bounded_and_refuses_what_is_not_a_key() -> None:
    buf = KeyBuffer(max_channels=3, max_keys=2)
    for n in range(5):
        buf.add(f"u{n}", "1", float(n))
    assert len(buf) == 3  # the oldest calls dropped
    assert buf.keys("u0") == []
    assert buf.keys("u4") != []
    for digit in "234":
        buf.add("u4", digit, 10.0)
    assert [k.digit for k in buf.keys("u4")] == ["1", "2"]  # its first key, then one more: 2 at most
    buf.add("u9", "x", 1.0)
    buf.add("", "1", 1.0)
    assert buf.keys("u9") == []
    assert buf.keys("") == []


def test_pipe_lines_round_trip_and_garbage_is_ignored() -> None:
    buf = KeyBuffer()
    assert read_key_line(key_line("1795334978.7", "#", 1795334979.123456), buf)
    assert buf.keys("1795334978.7")[0].at == pytest.approx(1795334979.123456)
    for bad in (b"", b"\n", b"a b\n", b"u 12 1.0\n", b"u 1 soon\n", b"\xff\xfe 1 1.0 extra\n"):
        assert not read_key_line(bad, buf), bad
    assert len(buf) == 1


def dtmf_end(direction: str, digit: str = "1") -> DTMFEnd:
    msg = AmiMessage((("Event", "DTMFEnd"), ("Channel", "PJSIP/citizen-ingress-00000007"),
                      ("Uniqueid", "1795334978.7"), ("Linkedid", "1795334978.7"), ("Digit", digit),
                      ("DurationMs", "120"), ("Direction", direction), ("Timestamp", "1795334979.500000")))
    return DTMFEnd.from_ami(msg, datetime.now(UTC))


async def test_the_engine_hands_received_keys_to_the_ivr_process_and_never_buffers_without_bound() -> None:
    component = IvrProcess(lab=None, log_format="json")
    component.proc = await asyncio.create_subprocess_exec(
        "head", "-n", "1", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        await component.handle(dtmf_end("Sent", "9"))  # a key Asterisk sent (to an operator): not the IVR's
        await component.handle(dtmf_end("Received"))
        assert component.proc.stdout is not None
        async with asyncio.timeout(5):
            line = await component.proc.stdout.readline()
        assert line == b"1795334978.7 1 1795334979.500000\n"
    finally:
        await component.proc.wait()
    # a child that does not read: what waits for it stays under the limit, the rest is dropped and counted
    component.proc = await asyncio.create_subprocess_exec("sleep", "30", stdin=asyncio.subprocess.PIPE)
    try:
        for _ in range(20_000):
            await component.handle(dtmf_end("Received"))
        assert component.proc.stdin is not None
        assert component.proc.stdin.transport.get_write_buffer_size() <= KEYS_PIPE_LIMIT + 64
        assert component.keys_dropped > 0
    finally:
        component.proc.kill()
        await component.proc.wait()
