"""AMI parse benchmark: events/s through our framing + typing vs panoramisk 1.4's own parser.

Both sides read the same bytes, in the same run, in the same 64 KiB chunks a socket read gives: a raw AMI
stream recorded from the lab Asterisk while SIPp citizens called 112 and SIPp operators answered. The
capture is cached under ``~/.cache/siaga112/ami-capture/`` (never in the repository) and reused.

    .venv/bin/python bench/ami_parse.py [--capture FILE] [--min-events 100000] [--calls 3300 --rate 8]

Ours: ``AmiCodec.feed`` (frames on bytes, decodes) + ``parse_event`` (typed, frozen event) per event.
panoramisk: ``AMIProtocol.data_received`` (decodes, frames on text, builds its ``Message``) dispatching
each event to a counting factory. Last line: ``RESULT ours_eps=N panoramisk_eps=N ratio=R``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callflow.ami import ActionFailed, AmiCodec, AmiConnection, EventItem, parse_event
from callflow.ami.recorder import record_stream
from callflow.lab import LabStatus, cache_dir, down, free_ports, status, up
from callflow.lab.sipp import CallerScript, SippOperator, free_udp_port, sipp_binary

CHUNK = 65536
LAB_INSTANCE = "bench-ami"
NAMES = ["Warga Manado", "Jérôme Ελένη", "Ibu Sulastri", "Pak Ronald Sumampouw", "Ñoño Über", "Aldi"]


def default_capture() -> Path:
    return cache_dir() / "ami-capture" / "lab-queue-calls.ami"


# --- the two parsers under test -------------------------------------------------------------------


def run_ours(data: bytes, chunk: int = CHUNK) -> int:
    """Frame + type every event; returns the number of typed events."""
    codec = AmiCodec()
    received_at = datetime.now(UTC)
    events = 0
    for start in range(0, len(data), chunk):
        for msg in codec.feed(data[start:start + chunk]):
            if msg.kind == "event":
                parse_event(msg, received_at)
                events += 1
    return events


class _CountingFactory:
    """Stands in for panoramisk's Manager: its protocol hands every event to ``dispatch``."""

    def __init__(self) -> None:
        self.events = 0

    def dispatch(self, event: Any) -> None:
        self.events += 1


class _NullTransport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def run_panoramisk(data: bytes, chunk: int = CHUNK) -> int:
    """panoramisk's own parsing path (``AMIProtocol.data_received``); returns events dispatched."""
    from panoramisk.ami_protocol import AMIProtocol  # noqa: PLC0415 - optional baseline

    proto = AMIProtocol()
    proto.connection_made(_NullTransport())
    factory = _CountingFactory()
    proto.factory = factory
    proto.encoding = "utf8"  # as panoramisk's Manager sets it by default
    for start in range(0, len(data), chunk):
        proto.data_received(data[start:start + chunk])
    return factory.events


def _timed(fn: Callable[[bytes], int], data: bytes) -> tuple[int, float]:
    gc.collect()
    t0 = time.perf_counter()
    events = fn(data)
    return events, events / (time.perf_counter() - t0)


def measure(data: bytes, repeat: int = 3) -> dict[str, float]:
    """Best events/s of each side over ``repeat`` rounds; the two sides alternate within each round, so
    load from other work on the machine falls on both alike."""
    ours_eps = pano_eps = 0.0
    ours_events = pano_events = 0
    for _ in range(repeat):
        ours_events, eps = _timed(run_ours, data)
        ours_eps = max(ours_eps, eps)
        pano_events, eps = _timed(run_panoramisk, data)
        pano_eps = max(pano_eps, eps)
    return {"ours_events": ours_events, "panoramisk_events": pano_events, "ours_eps": ours_eps,
            "panoramisk_eps": pano_eps, "ratio": ours_eps / pano_eps if pano_eps else 0.0}


def count_events(path: Path) -> int:
    return run_ours(path.read_bytes()) if path.exists() else 0


# --- capturing a real stream from the lab ---------------------------------------------------------


async def _queue_members(st: LabStatus, add: bool) -> None:
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    conn = AmiConnection(st.ami_endpoint(), events)
    await conn.connect()
    try:
        for i in range(1, 5):
            with contextlib.suppress(ActionFailed):  # already a member / already gone
                if add:
                    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": f"PJSIP/op{i}",
                                                   "MemberName": f"op{i}"})
                else:
                    await conn.action("QueueRemove", {"Queue": "emergency", "Interface": f"PJSIP/op{i}"})
    finally:
        await conn.close()


async def _capture(st: LabStatus, out: Path, calls: int, rate: float) -> int:
    binary = sipp_binary()
    if binary is None:
        raise SystemExit("sipp not installed: apt-get install sip-tester")
    work = Path(tempfile.mkdtemp(prefix="siaga112-bench-"))
    inf = work / "callers.csv"
    inf.write_text("SEQUENTIAL\n" + "".join(f"0812{i:08d};{NAMES[i % len(NAMES)]};\n" for i in range(997)),
                   encoding="utf-8")
    scenario = work / "caller.xml"
    # The IVR answers first; with no engine listening the dial plan's fail-safe sends each caller to the
    # emergency queue at once. Held 2.5 s from that answer, every caller reaches an operator, so the stream
    # holds whole answered calls (queue, agent, bridge events), not IVR hang-ups.
    scenario.write_text(CallerScript(number="[field0]", name="[field1]", hold_ms=2500).scenario_xml(),
                        encoding="utf-8")
    stop = asyncio.Event()
    partial = out.with_suffix(".partial")
    recorder = asyncio.create_task(record_stream(st.ami_endpoint(), partial, stop=stop))
    await _queue_members(st, add=True)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for i in range(1, 5):
                await stack.enter_async_context(SippOperator(st.operators[f"op{i}"]["port"]))
            cmd = [binary, "-sf", str(scenario), "-inf", str(inf), "-s", "112",
                   f"{st.sip['host']}:{st.sip['port']}", "-i", "127.0.0.1", "-p", str(free_udp_port()),
                   "-mi", "127.0.0.1", "-mp", str(free_udp_port()), "-m", str(calls), "-r", str(rate),
                   "-l", "40", "-nostdin", "-timeout", f"{int(calls / rate) + 300}s", "-timeout_error"]
            print(f"capturing: {calls} calls at {rate}/s through lab {st.instance!r}", file=sys.stderr)
            proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.DEVNULL, cwd=work)
            code = await proc.wait()
            print(f"sipp exited with {code}", file=sys.stderr)
    finally:
        await _queue_members(st, add=False)
        stop.set()
        summary = await recorder
    shutil.rmtree(work, ignore_errors=True)
    os.replace(partial, out)
    return summary.events


def ensure_capture(path: Path, min_events: int, calls: int, rate: float) -> int:
    have = count_events(path)
    if have >= min_events:
        return have
    st = status(LAB_INSTANCE)
    started = not st.running
    if started:
        st = up(LAB_INSTANCE, free_ports())
    try:
        asyncio.run(_capture(st, path, calls, rate))
    finally:
        if started:
            down(LAB_INSTANCE)
    have = count_events(path)
    if have < min_events:
        raise SystemExit(f"capture {path} holds {have} events, fewer than {min_events}: "
                         f"run again with more --calls")
    return have


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--capture", type=Path, default=default_capture())
    p.add_argument("--min-events", type=int, default=100_000)
    p.add_argument("--calls", type=int, default=3300, help="calls to place if a capture is needed")
    p.add_argument("--rate", type=float, default=8.0, help="calls per second while capturing")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    events = ensure_capture(args.capture, args.min_events, args.calls, args.rate)
    data = args.capture.read_bytes()
    print(f"stream: {args.capture} ({len(data)} bytes, {events} events recorded from the lab)")
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
          f"Python {platform.python_version()}")
    r = measure(data, args.repeat)
    print(f"ours (AmiCodec + parse_event):         {r['ours_eps']:>12,.0f} events/s "
          f"({r['ours_events']} events)")
    print(f"panoramisk 1.4 (AMIProtocol parser):   {r['panoramisk_eps']:>12,.0f} events/s "
          f"({r['panoramisk_events']} events)")
    print(f"ratio: {r['ratio']:.2f}")
    print(f"RESULT ours_eps={r['ours_eps']:.0f} panoramisk_eps={r['panoramisk_eps']:.0f} "
          f"ratio={r['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
