"""Repeat abuse without blocking (issue 19 item 3), on the real lab: a supervisor flags a number with
``siaga112 abuse flag``; the engine mirrors the flag into Asterisk's database; the flagged caller is still
answered, but waits behind an emergency caller who arrived after them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.ami.events import AmiEvent, ChannelEvent
from callflow.lab import LabStatus
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippOperator, place_call
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.integration

Ami = tuple[AmiConnection, asyncio.Queue[EventItem]]
FLAGGED, LATER = "081277779001", "081277779002"


async def abuse(lab: LabStatus, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow.cli", "abuse", *args, "--lab", lab.instance,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


@contextlib.asynccontextmanager
async def flagged(lab: LabStatus, number: str) -> AsyncIterator[None]:
    await abuse(lab, "flag", number, "--by", "sup1", "--reason", "lab test: repeated prank calls")
    try:
        yield
    finally:
        await abuse(lab, "lift", number, "--by", "sup1", "--note", "lab test over")


async def joined(events: asyncio.Queue[EventItem], number: str, timeout: float = 20) -> AmiEvent:
    async with asyncio.timeout(timeout):
        while True:
            item = await events.get()
            if (isinstance(item, ChannelEvent) and item.name == "QueueCallerJoin" and item.chan is not None
                    and item.chan.caller_id_num == number):
                return item


async def test_a_flagged_caller_is_answered_after_a_later_emergency_caller(lab: LabStatus, ami: Ami) -> None:
    conn, events = ami
    engine = EngineProcess(lab.instance)
    await engine.start()
    try:
        async with flagged(lab, FLAGGED), SippOperator(lab.operators["op1"]["port"]):
            await engine.wait_for(lambda r: r.get("event") == "abuse.flag_applied", timeout=20)
            first = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"], CallerScript(
                dtmf=PRESS_EMERGENCY, number=FLAGGED, hold_ms=16000)))
            await joined(events, FLAGGED)
            later = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"], CallerScript(
                dtmf=PRESS_EMERGENCY, number=LATER, hold_ms=9000)))
            await joined(events, LATER)
            await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1",
                                           "MemberName": "op1"})
            try:
                connects = []
                async with asyncio.timeout(30):
                    while len(connects) < 2:
                        item = await events.get()
                        if isinstance(item, ChannelEvent) and item.name == "AgentConnect" \
                                and item.chan is not None:
                            connects.append(item.chan.caller_id_num)
                for result in await asyncio.gather(first, later):
                    assert result.ok, result.output
            finally:
                with contextlib.suppress(Exception):
                    await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})
    finally:
        await engine.stop()
    assert connects == [LATER, FLAGGED], "the flagged caller was answered, after the later caller"
    listing = await abuse(lab, "list", "--number", FLAGGED)
    assert "set by sup1" in listing
    assert "lifted by sup1" in listing


async def entry_abuse(events: asyncio.Queue[EventItem], number: str, timeout: float = 20) -> str:
    """The ``Abuse`` header of the caller's SiagaQueueEntry ("1" when the dial plan found a flag)."""
    async with asyncio.timeout(timeout):
        while True:
            item = await events.get()
            if (isinstance(item, ChannelEvent) and item.name == "UserEvent" and item.chan is not None
                    and item.chan.caller_id_num == number
                    and item.message.get("UserEvent") == "SiagaQueueEntry"):
                return item.message.get("Abuse") or ""


async def test_a_flag_expires_by_itself(lab: LabStatus, ami: Ami) -> None:
    _, events = ami
    number = "081277779003"
    engine = EngineProcess(lab.instance)
    await engine.start()
    try:
        [flag] = json.loads(await abuse(lab, "flag", number, "--by", "sup1", "--reason", "lab test: expiry",
                                        "--hours", "0.005", "--json"))
        expires = datetime.fromisoformat(flag["expires_at"])
        await engine.wait_for(lambda r: r.get("event") == "abuse.flag_applied", timeout=20)
        script = CallerScript(dtmf=PRESS_EMERGENCY, number=number, hold_ms=1500)
        during = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"], script))
        assert await entry_abuse(events, number) == "1"
        assert (await during).ok
        # the flag's own time passes (18 s): nothing waits on an event here, the clock is the point
        await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds() + 1))
        after = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"], script))
        assert await entry_abuse(events, number) == ""
        assert (await after).ok
    finally:
        await engine.stop()
    assert "expired" in await abuse(lab, "list", "--number", number)
