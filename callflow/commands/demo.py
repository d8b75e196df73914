"""``siaga112 demo``: the whole path on one machine, start to finish.

Lab up; the engine attached over AMI with its real parts (the call tracker with its durable journal, the
FastAGI IVR); two SIPp operators logged into the queues; citizens dialling 112 and choosing in the IVR
(emergencies press 1, a complaint presses 2 then its type); then the call records the engine stored,
with answer times counted from arrival at the PBX; and the lab down again (unless ``--keep-lab``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from dataclasses import dataclass
from typing import Any

from callflow.ami import AmiError
from callflow.app import call_tracker, gated, ivr_server
from callflow.calls.model import CallRecord
from callflow.calls.tracker import CallTracker
from callflow.commands._locate import Location
from callflow.commands.serve import engine_paths
from callflow.lab import LabError, LabPorts, LabStatus, down, free_ports, status, up
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippOperator, place_call
from callflow.logs import configure_logging, mask_number
from callflow.policies import derive_options
from callflow.reports.measures import answer_times
from callflow.service import Engine
from callflow.settings import EngineSettings
from callflow.siteconfig import SiteConfigError
from callflow.store import StoreError, StoreLocation
from ivr import IvrServer
from ivr.gate import IvrGate


@dataclass(frozen=True)
class DemoCaller:
    number: str
    name: str
    dtmf: tuple[tuple[int, str], ...]
    hold_ms: int
    says: str


DEMO_CALLERS = [
    DemoCaller("081340001001", "Ibu Maria", PRESS_EMERGENCY, 3000, "house fire in Wenang (presses 1)"),
    DemoCaller("082190002002", "Pak Johan", PRESS_EMERGENCY, 3500, "road accident in Sario (presses 1)"),
    DemoCaller("085240003003", "Kak Ria", ((600, "2"), (2600, "5")), 9000,
               "fallen power line, a complaint (presses 2, then 5 electricity)"),
    DemoCaller("081350004004", "Om Dani", PRESS_EMERGENCY, 2500, "someone collapsed in Tikala (presses 1)"),
]


class RecordCollector:
    """Told of each finished call record by the tracker (a CallRecordListener)."""

    def __init__(self) -> None:
        self.records: dict[str, CallRecord] = {}
        self.changed = asyncio.Event()

    async def on_call_record(self, record: CallRecord) -> None:
        self.records[record.linkedid] = record
        self.changed.set()


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="lab up, engine up, calls through 112 and its IVR answered, the call "
                                    "records, lab down")
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
        settings = EngineSettings()
        # the one rule: the lab's database unless one is named (SIAGA112_DATABASE)
        paths = engine_paths(settings, lab.instance, Location(lab=lab.instance).database.path)
        # built before the loop starts: the tracker checks (creates, migrates) its database synchronously
        site = Location(lab=lab.instance).site.site  # the lab's site, by the one rule
        tracker = call_tracker(settings, paths, derive_options(site.calls))
        ivr = ivr_server(settings, paths)
        return asyncio.run(_run(lab, tracker, ivr, paths.database))
    except (AmiError, LabError, RuntimeError, TimeoutError, StoreError, SiteConfigError) as exc:
        print(f"siaga112 demo: {exc or 'timed out'}", file=sys.stderr)
        return 1
    finally:
        if started_here and not args.keep_lab:
            down("default")
            print("lab: stopped")


async def _run(lab: LabStatus, tracker: CallTracker, ivr: IvrServer, database: StoreLocation) -> int:
    collector = RecordCollector()
    tracker.listeners.append(collector)
    gate = IvrGate()
    engine = Engine(lab.ami_endpoint(), [tracker, gated(ivr, gate), gate])
    engine_task = asyncio.create_task(engine.run())
    async with asyncio.timeout(60):
        await engine.session.connected.wait()
        await gate.opened.wait()  # prompts installed, FastAGI listening, the dial plan's gate open
    print(f"engine: attached; IVR listening on {lab.fastagi['port']}; records in {database}")
    operators = ["op1", "op2"]
    for op in operators:
        for queue in ("emergency", "nonemergency"):
            await engine.session.action("QueueAdd", {"Queue": queue, "Interface": f"PJSIP/{op}",
                                                     "MemberName": op})
    print(f"operators logged in: {', '.join(operators)} (both queues; emergency first)")
    linkedids_before = set(collector.records)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for op in operators:
                await stack.enter_async_context(SippOperator(lab.operators[op]["port"]))
            calls = []
            for i, caller in enumerate(DEMO_CALLERS):
                print(f"citizen {mask_number(caller.number)} ({caller.name}) dials 112: {caller.says}")
                calls.append(asyncio.create_task(place_call(
                    lab.sip["host"], lab.sip["port"],
                    CallerScript(number=caller.number, name=caller.name, dtmf=caller.dtmf,
                                 hold_ms=caller.hold_ms))))
                await asyncio.sleep(0.5 * (i + 1))  # staggered arrivals, as on a real shift
            results = await asyncio.gather(*calls)
            failed = [r for r in results if not r.ok]
            async with asyncio.timeout(30):
                while len(set(collector.records) - linkedids_before) < len(DEMO_CALLERS):
                    collector.changed.clear()
                    await collector.changed.wait()
    finally:
        for op in operators:
            for queue in ("emergency", "nonemergency"):
                with contextlib.suppress(AmiError):
                    await engine.session.action("QueueRemove", {"Queue": queue, "Interface": f"PJSIP/{op}"})
        engine.stop()
        await engine_task
    _print_summary([r for k, r in collector.records.items() if k not in linkedids_before], database)
    if failed:
        print(f"{len(failed)} SIPp caller(s) did not complete their script", file=sys.stderr)
        return 1
    return 0


def _print_summary(records: list[CallRecord], database: StoreLocation) -> None:
    print("\ncall records (one per call; instants from Asterisk's event Timestamp, UTC; answer time counted "
          "from arrival at the PBX, IVR included):")
    print(f"  {'caller':<14} {'class':<13} {'IVR choice':<24} {'outcome':<10} {'operator':<8} "
          f"{'answer s':>8}")
    for r in sorted(records, key=lambda rec: rec.arrival):
        choice = r.category or (r.ivr_path[-1] if r.ivr_path else "-")
        answer = "-" if r.answer_seconds is None else f"{r.answer_seconds:.3f}"
        print(f"  {mask_number(r.caller_number):<14} {r.call_class.value:<13} {choice[:24]:<24} "
              f"{r.outcome.value:<10} {r.operator or '-':<8} {answer:>8}")
    figures = answer_times(records)  # the centre's definitions (callflow/reports/measures.py)
    print(f"\n{figures.offered} calls offered, {figures.answered} answered by an operator")
    print(f"more: siaga112 calls list --database {database}; "
          f"siaga112 report answer-times --database {database}")
