"""Silent callers on the real lab (issue 19 item 1): Asterisk's TALK_DETECT tells a speaking caller from a
silent one, the IVR offers a silent caller the "press 5 twice" probe, 55 reaches the emergency queue marked
silent_caller, and the record says what was found. SIPp callers: silence, RFC 2833 keys (the second 5 from
a copy with shifted RTP timestamps, callflow.lab.sipp.shifted_rtp_pcap), and sip-tester's speech pcap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.lab import LabStatus
from callflow.lab.sipp import SPEECH_PCAP, CallerScript, place_call
from tests.integration.test_ivr import CallWatch, hangup, is_user_event, joined
from tests.support.engine import EngineProcess, Record

pytestmark = pytest.mark.integration

TREE = Path(__file__).with_name("ivr_silent_tree.toml")


@pytest.fixture
async def silent_engine(lab: LabStatus) -> AsyncIterator[EngineProcess]:
    proc = EngineProcess(lab.instance, env={"SIAGA112_IVR__TREE": str(TREE)})
    await proc.start()
    yield proc
    await proc.stop()


@pytest.fixture
def watch(ami: tuple[AmiConnection, asyncio.Queue[EventItem]]) -> Callable[[str], CallWatch]:
    return lambda number: CallWatch(ami[1], number)


def record_of(linkedid: str) -> Callable[[Record], bool]:
    # by Linkedid: the engine also logs records it recovers at start for earlier tests' calls, and a
    # masked caller number shows only its last digits
    return lambda r: r.get("event") == "call.record" and r.get("linkedid") == linkedid


async def test_silent_caller_hears_the_probe_and_hangs_up(
        lab: LabStatus, silent_engine: EngineProcess, watch: Callable[[str], CallWatch]) -> None:
    number = "081200007001"
    w = watch(number)
    caller = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"],
                                            CallerScript(number=number, hold_ms=8000)))
    probe = await w.wait(lambda e: is_user_event(e, "SiagaSilent"), timeout=20)
    assert probe.message.get("Status") == "silent"
    assert probe.message.get("SpeechS") == "0.0"
    await w.wait(hangup, timeout=20)
    assert (await caller).ok
    record = await silent_engine.wait_for(record_of(probe.message.get("Linkedid") or ""), timeout=20)
    assert record["contact"] == "silent"
    assert record["outcome"] == "abandoned_in_ivr"
    assert "keys none" in str(record["contact_detail"])
    assert not any(e.name == "QueueCallerJoin" for e in w.seen), "hung up in the probe: never queued"


async def test_silent_caller_pressing_55_reaches_the_emergency_queue_marked(
        lab: LabStatus, silent_engine: EngineProcess, watch: Callable[[str], CallWatch]) -> None:
    number = "081200007002"
    w = watch(number)
    # silent through the first menu (prompt + 1.5 s), then 5, 5 during the probe's 6 s wait
    caller = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"], CallerScript(
        number=number, dtmf=[(6500, "5"), (7100, "5")], hold_ms=1500)))
    marked = await w.wait(lambda e: is_user_event(e, "SiagaSilent", Status="silent_caller"), timeout=25)
    assert marked.message.get("Keys") == "55"
    join = await w.wait(joined("emergency"), timeout=10)
    await w.wait(hangup, timeout=20)
    assert (await caller).ok
    steps = [s for s in w.ivr_steps() if s[0] == "digit"]
    assert steps == [("digit", "root", "55")]
    assert join.message.get("Queue") == "emergency"
    record = await silent_engine.wait_for(record_of(marked.message.get("Linkedid") or ""), timeout=20)
    assert record["contact"] == "silent_caller"
    assert record["call_class"] == "emergency"


async def test_a_speaking_caller_is_detected_and_never_probed(
        lab: LabStatus, silent_engine: EngineProcess, watch: Callable[[str], CallWatch]) -> None:
    number = "081200007003"
    w = watch(number)
    caller = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"], CallerScript(
        number=number, audio_pcap=SPEECH_PCAP, hold_ms=9000)))
    talking = await w.wait(lambda e: e.name == "ChannelTalkingStart", timeout=15)
    await silent_engine.wait_for(lambda r: r.get("event") == "ivr.talking", timeout=10)
    # silence after the speech would not make it silent: the caller spoke, so no-input goes to the queue
    await w.wait(joined("emergency"), timeout=20)
    await w.wait(hangup, timeout=20)
    assert (await caller).ok
    assert not any(is_user_event(e, "SiagaSilent") for e in w.seen), w.summary()
    record = await silent_engine.wait_for(record_of(talking.message.get("Linkedid") or ""), timeout=20)
    assert record["contact"] is None
