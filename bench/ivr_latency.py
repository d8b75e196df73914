"""What the live FastAGI IVR costs a caller who presses 1 (emergency), against the same menu written as
plain dial plan (``[siaga-ivr-dialplan]`` in pbx-config/extensions.conf: same prompt, same SiagaIvr
events), measured in the same run on the same lab.

Per call, all instants from Asterisk's own event Timestamps: INVITE (Newchannel), the menu listening
(the first ``SiagaIvr`` ``entered``, sent just before GET DATA / Read), the key (DTMFEnd) and
QueueCallerJoin. The figure compared is INVITE -> QueueCallerJoin minus the caller's own time between the
menu starting and the key press: (INVITE -> menu listening) + (key -> QueueCallerJoin), the time the
system, not the caller, spends. The raw INVITE -> join is printed too; under load it mostly measures when
50 SIPp processes get the CPU to send their key. Only calls routed by their key (a ``digit`` step) count;
a key lost before the menu listened shows as a call that did not join via its key.
Rounds alternate the two modes (global SIAGA_IVR_MODE) with ``--callers`` concurrent SIPp callers each,
every caller pressing 1 at the same moment after the answer.

    .venv/bin/python bench/ivr_latency.py [--lab INSTANCE] [--callers 50] [--rounds 2] [--press-ms 800]

Without --lab it starts its own lab instance on free ports and stops it afterwards. The last line is
``RESULT live_p95_ms=N dialplan_p95_ms=N added_p95_ms=N``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime

import loadkit as kit

from callflow.ami import AmiConnection, EventItem
from callflow.ami.events import AmiEvent, ChannelEvent
from callflow.lab import LabStatus
from callflow.lab.sipp import CallerScript, place_call

MODES = ("live", "dialplan")
ENGINE = "--no-engine" not in sys.argv  # experiments: an IVR server started by hand instead


@dataclass
class CallTimes:
    mode: str
    invite: datetime | None = None
    entered: datetime | None = None
    keyed: bool = False
    dtmf: datetime | None = None
    joined: datetime | None = None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class Collector:
    def __init__(self, events: asyncio.Queue[EventItem]) -> None:
        self.events = events
        self.calls: dict[str, CallTimes] = {}
        self.changed = asyncio.Event()

    async def run(self) -> None:
        while True:
            item = await self.events.get()
            if not isinstance(item, ChannelEvent) or item.chan is None:
                continue
            call = self.calls.get(item.chan.caller_id_num)
            if call is None or item.chan.uniqueid != item.chan.linkedid:
                continue
            self._apply(call, item)

    def _apply(self, call: CallTimes, event: AmiEvent) -> None:
        if event.name == "Newchannel" and call.invite is None:
            call.invite = event.time
        elif event.name == "UserEvent" and event.message.get("UserEvent") == "SiagaIvr":
            step = event.message.get("Step")
            if step == "entered" and call.entered is None:
                call.entered = event.time
            elif step == "digit" and event.message.get("Digit") == "1":
                call.keyed = True
        elif event.name == "DTMFEnd" and call.dtmf is None:
            call.dtmf = event.time
        elif event.name == "QueueCallerJoin" and call.joined is None:
            call.joined = event.time
            self.changed.set()

    async def wait_joined(self, numbers: list[str], timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not all(self.calls[n].joined for n in numbers):
                    self.changed.clear()
                    await self.changed.wait()


async def start_engine(instance: str) -> tuple[asyncio.subprocess.Process, asyncio.Task[None]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow.cli", "serve", "--lab", instance, "--log-format", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SIAGA112_CALLBACKS__DIAL": "false"})  # no callbacks dialled during a measurement
    assert proc.stdout is not None  # noqa: S101 - PIPE was asked for
    async with asyncio.timeout(60):
        while True:
            line = await proc.stdout.readline()
            if not line:
                raise RuntimeError("engine exited before its IVR listened")
            with contextlib.suppress(json.JSONDecodeError):
                if json.loads(line).get("event") == "ivr.listening":
                    break
    return proc, asyncio.create_task(_drain(proc))


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None  # noqa: S101
    while await proc.stdout.readline():
        pass


async def stop_engine(engine: asyncio.subprocess.Process, drain: asyncio.Task[None]) -> None:
    engine.send_signal(signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(15):
            await engine.wait()
    if engine.returncode is None:
        engine.kill()
        await engine.wait()
    await drain


async def run_round(lab: LabStatus, conn: AmiConnection, collector: Collector, *, mode: str, round_no: int,
                    callers: int, press_ms: int) -> list[str]:
    await conn.action("Setvar", {"Variable": "SIAGA_IVR_MODE", "Value": mode})
    numbers = [f"08{MODES.index(mode) + 1}{round_no:02d}{i:05d}" for i in range(callers)]
    for number in numbers:
        collector.calls[number] = CallTimes(mode)
    scripts = [CallerScript(number=n, dtmf=[(press_ms, "1")], hold_ms=600) for n in numbers]
    results = await asyncio.gather(*(place_call(lab.sip["host"], lab.sip["port"], s) for s in scripts))
    await collector.wait_joined(numbers, timeout=10)
    failed = sum(1 for r in results if not r.ok)
    if failed:
        print(f"  {mode}: {failed} SIPp caller(s) did not complete their script", file=sys.stderr)
    return numbers


def ms(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else (b - a).total_seconds() * 1000


async def bench(lab: LabStatus, callers: int, rounds: int, press_ms: int) -> int:
    engine, drain = await start_engine(lab.instance) if ENGINE else (None, None)
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    conn = AmiConnection(lab.ami_endpoint(), events)
    await conn.connect()
    collector = Collector(events)
    consumer = asyncio.create_task(collector.run())
    started = time.monotonic()
    try:
        for r in range(rounds):
            order = MODES if r % 2 == 0 else MODES[::-1]  # alternate who goes first
            for mode in order:
                await run_round(lab, conn, collector, mode=mode, round_no=r, callers=callers,
                                press_ms=press_ms)
    finally:
        with contextlib.suppress(Exception):
            await conn.action("Setvar", {"Variable": "SIAGA_IVR_MODE", "Value": "live"})
        consumer.cancel()
        await conn.close()
        if engine is not None and drain is not None:
            await stop_engine(engine, drain)
    p95: dict[str, float] = {}
    print(f"ivr_latency: {callers} concurrent callers x {rounds} rounds per mode, press 1 at {press_ms} ms "
          f"after answer ({time.monotonic() - started:.1f} s)")
    for mode in MODES:
        calls = [c for c in collector.calls.values() if c.mode == mode]
        raw = [v for c in calls if (v := ms(c.invite, c.joined)) is not None]
        system = [a + b for c in calls if c.keyed
                  and (a := ms(c.invite, c.entered)) is not None and (b := ms(c.dtmf, c.joined)) is not None]
        dtmf = [v for c in calls if (v := ms(c.dtmf, c.joined)) is not None]
        if not system:
            print(f"  {mode}: no call reached the queue through its key", file=sys.stderr)
            return 1
        p95[mode] = percentile(system, 95)
        print(f"  {mode:<8} INVITE->QueueCallerJoin less the caller's menu->key time: p50 "
              f"{percentile(system, 50):6.1f} ms  p95 {p95[mode]:6.1f} ms  ({len(system)}/{len(calls)} "
              f"joined via their key)")
        print(f"  {'':<8} DTMF->join p50 {percentile(dtmf, 50):6.1f} ms  p95 {percentile(dtmf, 95):6.1f} ms;"
              f"  raw INVITE->join p50 {percentile(raw, 50):7.1f} ms  p95 {percentile(raw, 95):7.1f} ms")
    added = p95["live"] - p95["dialplan"]
    print(f"  added by the live IVR at p95: {added:.1f} ms (target <= 50 ms)")
    print(f"RESULT live_p95_ms={p95['live']:.1f} dialplan_p95_ms={p95['dialplan']:.1f} "
          f"added_p95_ms={added:.1f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lab", metavar="INSTANCE", help="a running lab (default: start a temporary one)")
    parser.add_argument("--callers", type=int, default=50, help="concurrent callers per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per mode (modes alternate)")
    parser.add_argument("--press-ms", type=int, default=800, help="when each caller presses 1 after answer")
    parser.add_argument("--no-engine", action="store_true",
                        help="do not start `siaga112 serve`: an IVR server is already listening")
    args = parser.parse_args()
    with kit.lab_for(args.lab, "bench-ivr") as lab:
        return asyncio.run(bench(lab, args.callers, args.rounds, args.press_ms))


if __name__ == "__main__":
    sys.exit(main())
