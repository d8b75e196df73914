"""``siaga112 demo``: the whole path on one machine, start to finish.

Lab up, the engine attached over AMI, two SIPp operators logged into the queues, a few citizens dialling
112, then a summary of what the engine saw, and the lab down again (unless ``--keep-lab``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from callflow.ami import AmiError, EventItem
from callflow.ami.events import AgentConnect, Hangup, Newchannel, QueueCallerJoin
from callflow.lab import LabError, LabPorts, LabStatus, down, free_ports, status, up
from callflow.lab.sipp import CallerScript, SippOperator, place_call
from callflow.logs import configure_logging, mask_number
from callflow.service import Engine

DEMO_CALLERS = [
    ("081340001001", "Ibu Maria", 2000),
    ("082190002002", "Pak Johan", 2500),
    ("085240003003", "Kak Ria", 1500),
    ("081350004004", "Om Dani", 3000),
]


@dataclass
class DemoCall:
    linkedid: str
    number: str = ""
    arrived: datetime | None = None
    queue: str = ""
    joined: datetime | None = None
    answered: datetime | None = None
    operator: str = ""
    ended: datetime | None = None
    events: list[str] = field(default_factory=list)


class DemoCollector:
    """Gathers the instants of each citizen's call from the engine's ordered event stream."""

    name = "demo-collector"

    def __init__(self) -> None:
        self.calls: dict[str, DemoCall] = {}
        self.changed = asyncio.Event()

    async def run(self, engine: Engine) -> None:
        return None

    async def handle(self, item: EventItem) -> None:
        if isinstance(item, Newchannel) and item.chan and item.chan.channel.startswith("PJSIP/citizen"):
            new = self.calls.setdefault(item.linkedid, DemoCall(item.linkedid))
            new.number, new.arrived = item.chan.caller_id_num, item.time
        call = self.calls.get(getattr(item, "linkedid", ""))
        if call is None:
            return
        call.events.append(item.name)
        if isinstance(item, QueueCallerJoin):
            call.queue, call.joined = item.queue, item.time
        elif isinstance(item, AgentConnect):
            call.answered, call.operator = item.time, item.member_name
        elif isinstance(item, Hangup) and item.uniqueid == call.linkedid:
            call.ended = item.time
        self.changed.set()


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="lab up, engine up, calls through 112 answered, a summary, lab down")
    p.add_argument("--keep-lab", action="store_true", help="leave the lab running afterwards")
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    configure_logging("console", "warning")
    started_here = not status("default").running
    try:
        try:
            lab = up("default", LabPorts())
        except LabError as exc:
            if "already in use" not in str(exc):
                raise
            lab = up("default", free_ports())
    except LabError as exc:
        print(f"siaga112 demo: {exc}", file=sys.stderr)
        return 1
    print(f"lab: {lab.asterisk_version} ({lab.mode}) AMI {lab.ami['port']} SIP {lab.sip['port']}")
    try:
        return asyncio.run(_run(lab))
    except (AmiError, LabError, RuntimeError) as exc:
        print(f"siaga112 demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if started_here and not args.keep_lab:
            down("default")
            print("lab: stopped")


async def _run(lab: LabStatus) -> int:
    collector = DemoCollector()
    engine = Engine(lab.ami_endpoint(), [collector])
    engine_task = asyncio.create_task(engine.run())
    async with asyncio.timeout(15):
        await engine.session.connected.wait()
    operators = ["op1", "op2"]
    for op in operators:
        for queue in ("emergency", "nonemergency"):
            await engine.session.action("QueueAdd", {"Queue": queue, "Interface": f"PJSIP/{op}",
                                                     "MemberName": op})
    print(f"operators logged in: {', '.join(operators)}")
    try:
        async with contextlib.AsyncExitStack() as stack:
            for op in operators:
                await stack.enter_async_context(SippOperator(lab.operators[op]["port"]))
            calls = []
            for i, (number, name, hold) in enumerate(DEMO_CALLERS):
                print(f"citizen {mask_number(number)} ({name}) dials 112")
                calls.append(asyncio.create_task(place_call(
                    lab.sip["host"], lab.sip["port"], CallerScript(number=number, name=name, hold_ms=hold))))
                await asyncio.sleep(0.4 * (i + 1))  # staggered arrivals, as on a real shift
            results = await asyncio.gather(*calls)
            failed = [r for r in results if not r.ok]
            async with asyncio.timeout(20):
                while sum(1 for c in collector.calls.values() if c.ended) < len(DEMO_CALLERS):
                    collector.changed.clear()
                    await collector.changed.wait()
    finally:
        for op in operators:
            for queue in ("emergency", "nonemergency"):
                with contextlib.suppress(AmiError):
                    await engine.session.action("QueueRemove", {"Queue": queue, "Interface": f"PJSIP/{op}"})
        engine.stop()
        await engine_task
    _print_summary(collector)
    if failed:
        print(f"{len(failed)} SIPp caller(s) did not complete their script", file=sys.stderr)
        return 1
    return 0


def _print_summary(collector: DemoCollector) -> None:
    print("\nsummary (instants from Asterisk's event Timestamp, UTC):")
    print(f"  {'caller':<14} {'queue':<10} {'operator':<8} {'answer s':>8} {'talk s':>7}")
    answered = 0
    for call in sorted(collector.calls.values(), key=lambda c: c.arrived or datetime.max.replace(tzinfo=UTC)):
        wait = (call.answered - call.arrived).total_seconds() if call.answered and call.arrived else None
        talk = (call.ended - call.answered).total_seconds() if call.ended and call.answered else None
        answered += call.answered is not None
        print(f"  {mask_number(call.number):<14} {call.queue:<10} {call.operator or '-':<8} "
              f"{'-' if wait is None else f'{wait:.3f}':>8} {'-' if talk is None else f'{talk:.1f}':>7}")
    print(f"\n{len(collector.calls)} calls offered, {answered} answered by an operator")
