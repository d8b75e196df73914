"""A silent caller's pop in headless Chromium (issue 19 item 1): the real engine with its console on the lab,
the IVR tree with the silent-caller probe, a SIPp caller who stays silent, presses 5 twice when the probe
asks (the second 5 from a copy of sip-tester's DTMF pcap with shifted RTP timestamps), and, once an
operator answered, answers the operator's yes/no questions with 1 (yes) then 2 (no). The operator's pop
says SILENT CALLER and shows each answer live, as it is pressed. Screenshots go to ``artifacts/``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.lab import LabStatus
from callflow.lab.sipp import CallerScript, SippOperator, place_call
from tests.support.browser import (
    add_user,
    chromium,
    log_in,
    screenshot,
    style,
    text,
    wait_contains,
    wait_text,
)
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.integration

TREE = Path(__file__).with_name("ivr_silent_tree.toml")
NUMBER = "081200007555"


@pytest.fixture
def browser() -> Iterator[object]:
    with chromium() as driver:
        yield driver


@pytest.fixture
async def silent_console(lab: LabStatus, tmp_path: Path) -> AsyncIterator[tuple[EngineProcess, str]]:
    database = tmp_path / "siaga112.db"
    await asyncio.to_thread(add_user, database, "op1", "operator")
    proc = EngineProcess(lab.instance, "--http", "127.0.0.1:0",
                         env={"SIAGA112_DATABASE": str(database), "SIAGA112_IVR__TREE": str(TREE)})
    await proc.start()
    try:
        listening = await proc.wait_for(lambda r: r.get("event") == "console.listening")
        yield proc, str(listening["url"]).rstrip("/")
    finally:
        assert await proc.stop() == 0, proc.tail()


async def test_a_silent_callers_pop_shows_the_mark_and_the_yes_no_answers_live(
        lab: LabStatus, silent_console: tuple[EngineProcess, str], browser: object,
        ami: tuple[AmiConnection, asyncio.Queue[EventItem]]) -> None:
    engine, url = silent_console
    conn, _ = ami
    await asyncio.to_thread(log_in, browser, f"{url}/console", "op1")
    await asyncio.to_thread(wait_text, browser, "#link", "live", 10)
    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1", "MemberName": "op1"})
    try:
        async with SippOperator(lab.operators["op1"]["port"]):
            # silent through the first menu (prompt + 1.5 s), 5, 5 in the probe's 6 s; queued and answered
            # at once (about 8 s in); then yes (1) at 13 s and no (2) at 17 s, on the line with the operator
            call = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"], CallerScript(
                number=NUMBER, dtmf=[(6500, "5"), (7100, "5"), (13000, "1"), (17000, "2")], hold_ms=4000)))
            try:
                connect = await engine.wait_for(lambda r: r.get("ami_event") == "AgentConnect", timeout=30)
                await asyncio.to_thread(wait_text, browser, "#pop-number", NUMBER, 10)
                try:
                    await asyncio.to_thread(wait_contains, browser, "#pop-silent", "SILENT CALLER", 10)
                except AssertionError as exc:
                    await asyncio.to_thread(screenshot, browser, "console-silent-caller-failed.png")
                    seen = [r for r in engine.records if "Silent" in str(r)]
                    raise AssertionError(f"{exc}; the engine saw: {seen[-12:]}") from exc
                assert await asyncio.to_thread(text, browser, "#pop-silent") == (
                    "SILENT CALLER (pressed 5 twice): ask yes/no questions; 1 = yes, 2 = no. "
                    "Answers: none yet")
                # the first answer shows while the caller is still on the line, before the second key
                try:
                    await asyncio.to_thread(wait_contains, browser, "#pop-silent", "Answers: 1 = YES", 10)
                except AssertionError as exc:
                    seen = [r for r in engine.records if r.get("ami_event") == "DTMFEnd"]
                    raise AssertionError(f"{exc}; the engine saw: {seen[-12:]}") from exc
                assert "2 = NO" not in await asyncio.to_thread(text, browser, "#pop-silent")
                await asyncio.to_thread(screenshot, browser, "console-silent-caller-yes.png")
                await asyncio.to_thread(wait_contains, browser, "#pop-silent", "Answers: 1 = YES, 2 = NO", 10)
                assert await asyncio.to_thread(text, browser, "#pop-state") == "connected"
                # the mark stands out from the IVR path above it: red and bold
                assert await asyncio.to_thread(style, browser, "#pop-silent", "color") == "rgb(239, 68, 68)"
                assert await asyncio.to_thread(style, browser, "#pop-silent", "fontWeight") == "700"
                await asyncio.to_thread(screenshot, browser, "console-silent-caller.png")
                result = await call
                assert result.ok, result.output
            finally:
                if not call.done():
                    call.cancel()
    finally:
        await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})
    record = await engine.wait_for(lambda r: r.get("event") == "call.record"
                                   and r.get("linkedid") == connect["linkedid"], timeout=30)
    assert record["contact"] == "silent_caller", record
    assert record["outcome"] == "answered", record
