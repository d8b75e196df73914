"""``siaga112 ami record``: capture the raw AMI byte stream to a file (replay tests, benchmarks)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from callflow.ami import AmiEndpoint, AmiError
from callflow.ami.recorder import RecordSummary, record_stream
from callflow.commands.serve import endpoint_for
from callflow.lab import LabError
from callflow.logs import configure_logging
from callflow.settings import load_settings


def register(sub: Any) -> None:
    p = sub.add_parser("ami", help="tools for the AMI link")
    ami_sub = p.add_subparsers(dest="ami_command", metavar="ACTION", required=True)
    rec = ami_sub.add_parser("record", help="write the raw AMI byte stream to a file until Ctrl-C")
    rec.add_argument("--out", type=Path, required=True, help="file to write (overwritten)")
    rec.add_argument("--lab", nargs="?", const="default", metavar="INSTANCE",
                     help="record a running lab (default instance: default)")
    rec.add_argument("--config", type=Path, help="settings TOML file for the AMI address and secret")
    rec.add_argument("--duration", type=float, help="stop after this many seconds")
    rec.add_argument("--events", type=int, help="stop after this many events")
    rec.set_defaults(handler=_record)


def _record(args: argparse.Namespace) -> int:
    configure_logging("console", "warning", stream=sys.stderr)
    try:
        endpoint = endpoint_for(load_settings(args.config), args.lab)
    except (LabError, ValidationError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"siaga112 ami record: {exc}", file=sys.stderr)
        return 2
    try:
        summary = asyncio.run(_run(endpoint, args))
    except AmiError as exc:
        print(f"siaga112 ami record: {exc} (is Asterisk running there? `siaga112 lab status` for the lab)",
              file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"siaga112 ami record: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
    print(f"recorded {summary.events} events ({summary.bytes_written} bytes) to {summary.path} "
          f"from {summary.started_at.isoformat()} to {summary.ended_at.isoformat()}: {summary.reason}")
    return 0 if not summary.reason.startswith("link lost") else 1


async def _run(endpoint: AmiEndpoint, args: argparse.Namespace) -> RecordSummary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await record_stream(endpoint, args.out, stop=stop, duration=args.duration,
                                   max_events=args.events)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
