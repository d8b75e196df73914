"""The live IVR on the real lab Asterisk: SIPp callers press keys (RFC 2833), the engine's FastAGI server
walks the tree, the dial plan routes; and when the engine dies mid-menu the caller still reaches an
operator through the emergency queue."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.ami.events import AmiEvent, ChannelEvent
from callflow.lab import LabStatus
from callflow.lab.sipp import CallerScript, SippOperator, place_call
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.integration

TREE = Path(__file__).with_name("ivr_test_tree.toml")
Predicate = Callable[[AmiEvent], bool]


class CallWatch:
    """The AMI events of one caller (by caller number), waited on with timeouts."""

    def __init__(self, events: asyncio.Queue[EventItem], number: str) -> None:
        self.events, self.number = events, number
        self.seen: list[AmiEvent] = []

    def _mine(self, item: EventItem) -> bool:
        return (isinstance(item, ChannelEvent) and item.chan is not None
                and item.chan.caller_id_num == self.number)

    async def wait(self, predicate: Predicate, timeout: float = 15.0) -> AmiEvent:
        for event in self.seen:
            if predicate(event):
                return event
        try:
            async with asyncio.timeout(timeout):
                while True:
                    item = await self.events.get()
                    if isinstance(item, AmiEvent) and self._mine(item):
                        self.seen.append(item)
                        if predicate(item):
                            return item
        except TimeoutError:
            raise AssertionError(f"no matching event within {timeout} s; seen: {self.summary()}") from None

    def ivr_steps(self) -> list[tuple[str, str, str]]:
        return [(e.message.get("Step") or "", e.message.get("Node") or "", e.message.get("Digit") or "")
                for e in self.seen if is_user_event(e, "SiagaIvr")]

    def summary(self) -> list[str]:
        return [e.name + (f"({e.message.get('UserEvent')}:{e.message.get('Step') or ''})"
                          if e.name == "UserEvent" else "") for e in self.seen]


def is_user_event(event: AmiEvent, name: str, **fields: str) -> bool:
    return (event.name == "UserEvent" and event.message.get("UserEvent") == name
            and all(event.message.get(k) == v for k, v in fields.items()))


def joined(queue: str) -> Predicate:
    return lambda e: e.name == "QueueCallerJoin" and e.message.get("Queue") == queue


def hangup(e: AmiEvent) -> bool:
    return e.name == "Hangup"


async def start_ivr_engine(lab: LabStatus) -> EngineProcess:
    proc = EngineProcess(lab.instance, env={"SIAGA112_IVR__TREE": str(TREE)})
    await proc.start()
    await proc.wait_for(lambda r: r.get("event") == "ivr.listening", timeout=30)
    return proc


@pytest.fixture
async def ivr_engine(lab: LabStatus) -> AsyncIterator[EngineProcess]:
    proc = await start_ivr_engine(lab)
    yield proc
    await proc.stop()


@pytest.fixture
def watch(ami: tuple[AmiConnection, asyncio.Queue[EventItem]]) -> Callable[[str], CallWatch]:
    return lambda number: CallWatch(ami[1], number)


async def call(lab: LabStatus, script: CallerScript) -> asyncio.Task[object]:
    return asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"], script))


async def test_press_1_goes_to_the_emergency_queue(lab: LabStatus, ivr_engine: EngineProcess,
                                                   watch: Callable[[str], CallWatch]) -> None:
    number = "081200005001"
    w = watch(number)
    caller = await call(lab, CallerScript(number=number, dtmf=[(600, "1")], hold_ms=800))
    entry = await w.wait(lambda e: is_user_event(e, "SiagaQueueEntry"))
    join = await w.wait(joined("emergency"))
    await w.wait(hangup)
    assert (await caller).ok  # type: ignore[attr-defined]
    assert w.ivr_steps()[:3] == [("entered", "root", ""), ("digit", "root", "1"), ("decision", "root", "")]
    decision = next(e for e in w.seen if is_user_event(e, "SiagaIvr", Step="decision"))
    assert (decision.message.get("Action"), decision.message.get("Queue")) == ("emergency", "emergency")
    assert entry.message.get("Route") == "ivr"
    assert entry.message.get("Class") == "emergency"
    assert join.time >= decision.time  # Asterisk's own timestamps, in order


async def test_press_2_then_a_type_goes_to_nonemergency_with_category(
        lab: LabStatus, ivr_engine: EngineProcess, watch: Callable[[str], CallWatch]) -> None:
    number = "081200005002"
    w = watch(number)
    caller = await call(lab, CallerScript(number=number, dtmf=[(600, "2"), (1600, "3")], hold_ms=800))
    entry = await w.wait(lambda e: is_user_event(e, "SiagaQueueEntry"))
    await w.wait(joined("nonemergency"))
    await w.wait(hangup)
    assert (await caller).ok  # type: ignore[attr-defined]
    assert entry.message.get("Class") == "nonemergency"
    assert entry.message.get("Category") == "telecom_pole"
    steps = w.ivr_steps()
    assert steps[:5] == [("entered", "root", ""), ("digit", "root", "2"), ("entered", "complaints", ""),
                         ("digit", "complaints", "3"), ("decision", "complaints", "")]
    decision = next(e for e in w.seen if is_user_event(e, "SiagaIvr", Step="decision"))
    assert decision.message.get("Category") == "telecom_pole"


async def test_no_key_goes_to_emergency_after_the_timeouts(lab: LabStatus, ivr_engine: EngineProcess,
                                                           watch: Callable[[str], CallWatch]) -> None:
    number = "081200005003"
    w = watch(number)
    caller = await call(lab, CallerScript(number=number, hold_ms=9000))
    entered = await w.wait(lambda e: is_user_event(e, "SiagaIvr", Step="entered"))
    join = await w.wait(joined("emergency"), timeout=20)
    await w.wait(hangup)
    assert (await caller).ok  # type: ignore[attr-defined]
    assert [s[0] for s in w.ivr_steps()] == ["entered", "timeout", "timeout", "decision"]
    waited = (join.time - entered.time).total_seconds()
    assert waited >= 2 * 1.5  # two attempts, each with the full 1.5 s timeout after the prompt


async def test_invalid_key_twice_goes_to_emergency(lab: LabStatus, ivr_engine: EngineProcess,
                                                   watch: Callable[[str], CallWatch]) -> None:
    number = "081200005004"
    w = watch(number)
    # Two different invalid keys: SIPp replays the same pcap for the same digit, with the same RTP
    # timestamp, and Asterisk rightly takes a repeated event timestamp as a retransmission of the first.
    caller = await call(lab, CallerScript(number=number, dtmf=[(500, "5"), (2600, "8")], hold_ms=1500))
    await w.wait(joined("emergency"))
    await w.wait(hangup)
    assert (await caller).ok  # type: ignore[attr-defined]
    assert w.ivr_steps() == [("entered", "root", ""), ("invalid", "root", "5"), ("invalid", "root", "8"),
                             ("decision", "root", "")]


async def test_caller_hanging_up_in_the_menu_never_joins_a_queue(
        lab: LabStatus, ivr_engine: EngineProcess, watch: Callable[[str], CallWatch]) -> None:
    number = "081200005005"
    w = watch(number)
    caller = await call(lab, CallerScript(number=number, hold_ms=1000))
    await w.wait(lambda e: is_user_event(e, "SiagaIvr", Step="entered"))
    await w.wait(hangup)
    assert (await caller).ok  # type: ignore[attr-defined]
    assert not any(e.name == "QueueCallerJoin" or is_user_event(e, "SiagaQueueEntry") for e in w.seen)
    assert not any(s[0] == "decision" for s in w.ivr_steps())
    await ivr_engine.wait_for(lambda r: r.get("event") == "ivr.ended")


async def test_engine_killed_mid_menu_caller_reaches_an_operator(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]],
        watch: Callable[[str], CallWatch]) -> None:
    conn, _ = ami
    engine = await start_ivr_engine(lab)
    number = "081200005006"
    w = watch(number)
    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1", "MemberName": "op1"})
    try:
        async with SippOperator(lab.operators["op1"]["port"]):
            caller = await call(lab, CallerScript(number=number, hold_ms=9000))
            await w.wait(lambda e: is_user_event(e, "SiagaIvr", Step="entered"))
            await engine.kill()  # SIGKILL while the caller hears the first menu
            entry = await w.wait(lambda e: is_user_event(e, "SiagaQueueEntry"), timeout=10)
            assert entry.message.get("Route") == "failsafe"
            assert entry.message.get("Class") == "emergency"
            await w.wait(joined("emergency"))
            connect = await w.wait(lambda e: e.name == "AgentConnect", timeout=15)
            assert connect.message.get("MemberName") == "op1"
            await w.wait(hangup, timeout=20)
            assert (await caller).ok  # type: ignore[attr-defined]
    finally:
        await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})
    assert not any(s[0] == "decision" for s in w.ivr_steps())


async def test_engine_accepting_but_silent_fails_safe_within_the_connect_timeout(
        lab: LabStatus, ivr_engine: EngineProcess, watch: Callable[[str], CallWatch]) -> None:
    """A hung IVR (its process stopped: the kernel still accepts on the FastAGI port, nothing answers)
    while the engine holds the dial plan's gate: TIMEOUT(absolute) = SIAGA_IVR_CONNECT_TIMEOUT (1 s) ends
    the AGI and the dial plan's T extension sends the caller to the emergency queue. (This test used a
    stranger's socket on the port after an earlier test's SIGKILL: that relied on the gate staying open
    after the engine died, which the gate's lease now ends.)"""
    ivr = ivr_child_pid(ivr_engine)
    number = "081200005007"
    w = watch(number)
    os.kill(ivr, signal.SIGSTOP)
    try:
        caller = await call(lab, CallerScript(number=number, hold_ms=2500))
        arrived = await w.wait(lambda e: e.name == "Newchannel", timeout=10)
        entry = await w.wait(lambda e: is_user_event(e, "SiagaQueueEntry"), timeout=10)
        assert entry.message.get("Route") == "failsafe"
        waited = (entry.time - arrived.time).total_seconds()
        assert 0.8 <= waited <= 1.8, f"fail-safe {waited:.2f} s after arrival, expected about 1 s"
        await w.wait(hangup)
        assert (await caller).ok  # type: ignore[attr-defined]
    finally:
        os.kill(ivr, signal.SIGCONT)


def ivr_child_pid(engine: EngineProcess) -> int:
    """The engine's IVR process (``siaga112 ivr serve``, its child)."""
    assert engine.proc is not None
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == engine.proc.pid and b"ivr\x00serve" in cmdline:
            return int(stat.parent.name)
    raise AssertionError("the engine has no IVR child process")


@pytest.mark.parametrize("missed_keys", [True, False], ids=["taken", "off-asks-again"])
async def test_a_key_pressed_while_the_ivr_was_not_listening(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]],
        watch: Callable[[str], CallWatch], missed_keys: bool) -> None:
    """What a saturated machine does to a caller who presses 1 at once: the IVR is not yet listening
    (here: its process is stopped) and Asterisk drops the key, but reports it on AMI. With missed keys
    on (the default) the engine plays the 1 back into the channel when the menu starts, and the menu
    takes it at once; turned off, the caller is asked again."""
    conn, _ = ami
    proc = EngineProcess(lab.instance, env={"SIAGA112_IVR__TREE": str(TREE),
                                            "SIAGA112_IVR__MISSED_KEYS": str(missed_keys).lower()})
    await proc.start()
    number = "081200005010" if missed_keys else "081200005011"
    w = watch(number)
    ivr_pid = ivr_child_pid(proc)
    # the dial plan's bound on reaching the IVR (1 s) would fail the call safe while the IVR is stopped
    await conn.action("Setvar", {"Variable": "SIAGA_IVR_CONNECT_TIMEOUT", "Value": "4"})
    os.kill(ivr_pid, signal.SIGSTOP)
    try:
        caller = await call(lab, CallerScript(number=number, dtmf=[(300, "1")], hold_ms=6000))
        key = await w.wait(lambda e: e.name == "DTMFEnd")
    finally:
        os.kill(ivr_pid, signal.SIGCONT)
        await conn.action("Setvar", {"Variable": "SIAGA_IVR_CONNECT_TIMEOUT", "Value": "1"})
    try:
        if missed_keys:
            decision = await w.wait(lambda e: is_user_event(e, "SiagaIvr", Step="decision"))
            assert w.ivr_steps()[:3] == [("entered", "root", ""), ("digit", "root", "1"),
                                         ("decision", "root", "")]
            assert (decision.message.get("Action"), decision.message.get("Queue")) == ("emergency",
                                                                                       "emergency")
            assert decision.time - key.time < timedelta(seconds=2)  # at once, not after a prompt
            played = await proc.wait_for(lambda r: r.get("event") == "ivr.missed_key_played")
            assert played["digit"] == "1"
            assert sum(1 for e in w.seen if e.name == "DTMFEnd") == 2  # the dropped key, then played back
        else:  # the IVR plays the menu as if nothing was pressed
            await w.wait(lambda e: is_user_event(e, "SiagaIvr", Step="timeout"), timeout=20)
            assert ("digit", "root", "1") not in w.ivr_steps()
        assert key.message.get("Direction") == "Received"
        await w.wait(hangup, timeout=30)
        assert (await caller).ok  # type: ignore[attr-defined]
    finally:
        await proc.stop()
