"""``siaga112 report ...``: figures for supervisors, computed from the call records.

Each report is one entry of REPORTS: a function that adds its options to its parser and a function that
runs it. Adding a report is one ``_name_options``/``_name`` pair and one line in REPORTS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from callflow.calls.metrics import AnswerTimes, answer_time_report
from callflow.calls.records import load_records
from callflow.calls.setup import add_database_options, database_of, parse_when, short_abandon_of
from callflow.calls.tracker import SCHEMAS
from callflow.commands.report_summary import register_summary
from callflow.store import StoreError, open_database


def _answer_times_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--short-abandon-s", type=float,
                   help="threshold the records were derived with, stated in the report (default: settings)")
    p.add_argument("--utc-offset", type=float, default=0.0, metavar="HOURS",
                   help="group by hour of day at this offset (Manado, WITA: 8); default UTC")


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.1f}%" if pct else f"{value:.2f}"


def _table_row(label: str, a: AnswerTimes) -> str:
    p = a.percentiles_s
    w = a.answered_within
    return (f"{label:<16} {a.offered:>7} {a.answered:>8} {_fmt(a.abandon_rate, True):>8} "
            f"{_fmt(p['p50']):>7} {_fmt(p['p90']):>7} {_fmt(p['p95']):>7} {_fmt(p['p99']):>7} "
            f"{_fmt(w['10s'], True):>7} {_fmt(w['15s'], True):>7} {_fmt(w['20s'], True):>7} "
            f"{_fmt(a.ivr_time_p50_s):>8} {a.short_abandons_excluded:>6}")


async def _answer_times(args: argparse.Namespace, conn: Any) -> int:
    records = await load_records(conn, since=args.since, until=args.until)
    report = answer_time_report(records, short_abandon_s=short_abandon_of(args), utc_offset_h=args.utc_offset)
    if args.format == "json":
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    print(f"Answer times: {len(records)} calls. Rule: {report.rule}.")
    print("Percentiles in seconds ('-': not reached, more calls unanswered than the percentile allows).")
    header = (f"{'':<16} {'offered':>7} {'answered':>8} {'abandon':>8} {'p50':>7} {'p90':>7} {'p95':>7} "
              f"{'p99':>7} {'<=10s':>7} {'<=15s':>7} {'<=20s':>7} {'ivr p50':>8} {'short':>6}")
    print(header)
    print(_table_row("all calls", report.overall))
    for name, stats in report.by_class.items():
        print(_table_row(f"class {name}", stats))
    for hour, stats in report.by_hour.items():
        print(_table_row(f"hour {hour}", stats))
    print(f"outcomes: {', '.join(f'{k} {v}' for k, v in report.overall.outcomes.items()) or 'none'}")
    return 0


# name -> (help, add options, run)
REPORTS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                         Callable[[argparse.Namespace, Any], Any]]] = {
    "answer-times": ("answer-time percentiles, service levels, abandon rate, time in IVR",
                     _answer_times_options, _answer_times),
}


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="reports computed from the call records")
    reports = p.add_subparsers(dest="report_name", metavar="REPORT", required=True)
    for name, (help_text, add_options, _) in REPORTS.items():
        rp = reports.add_parser(name, help=help_text)
        rp.add_argument("--since", type=parse_when, help="calls arriving at or after (ISO 8601; default UTC)")
        rp.add_argument("--until", type=parse_when, help="calls arriving before (ISO 8601; default UTC)")
        rp.add_argument("--format", choices=["text", "json"], default="text")
        add_database_options(rp)
        add_options(rp)
        rp.set_defaults(handler=_report)
    register_summary(reports)  # incidents and response times (callflow/commands/report_summary.py)


def _report(args: argparse.Namespace) -> int:
    try:
        path = database_of(args)
    except StoreError as exc:
        print(f"siaga112 report: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        conn = await open_database(path, SCHEMAS)
        try:
            code: int = await REPORTS[args.report_name][2](args, conn)
            return code
        finally:
            await conn.close()

    try:
        return asyncio.run(run())
    except StoreError as exc:
        print(f"siaga112 report: {exc}", file=sys.stderr)
        return 2
