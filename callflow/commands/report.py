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
from datetime import UTC, datetime, timedelta
from typing import Any

from callflow.calls.metrics import AnswerTimes, answer_time_report
from callflow.calls.records import load_records
from callflow.calls.tracker import SCHEMAS
from callflow.commands._options import add_database_options, database_of, parse_when, short_abandon_of
from callflow.commands.report_summary import register_summary
from callflow.store import StoreError, open_database
from queues.occupancy import OperatorTime, TransitionRow, operator_time_report
from queues.operators import SCHEMA as OPERATORS_SCHEMA
from queues.states import State


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


def _operators_options(p: argparse.ArgumentParser) -> None:
    del p  # the period (--since/--until) is all it needs; default: the last 24 hours


def _hms(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


async def _operators(args: argparse.Namespace, conn: Any) -> int:
    end = args.until or datetime.now(UTC)
    start = args.since or end - timedelta(hours=24)
    if end <= start:
        print(f"siaga112 report operators: --until {end.isoformat()} is not after "
              f"--since {start.isoformat()}", file=sys.stderr)
        return 2
    async with conn.execute("SELECT operator, at, old_state, new_state, reason FROM operator_transitions "
                            "WHERE at < ? ORDER BY operator, at, id", (end.isoformat(),)) as cur:
        rows = [TransitionRow(r[0], datetime.fromisoformat(r[1]), State(r[2]), State(r[3]), r[4])
                for r in await cur.fetchall()]
    report = operator_time_report(rows, start, end)
    if args.format == "json":
        print(json.dumps({"start": start.isoformat(), "end": end.isoformat(),
                          "operators": [o.as_dict() for o in report]}, indent=2))
        return 0
    print(f"Operator time {start.isoformat()} .. {end.isoformat()} (from the engine's stored transitions, "
          "Asterisk's event times). Occupancy = on call / (logged in - paused).")
    if not report:
        print("no operator transitions stored for this period: was the engine running with this database?")
        return 0
    states = [State.READY, State.RINGING, State.ON_CALL, State.WRAPUP, State.PAUSED]
    print(f"{'operator':<10} {'logged in':>10} " + " ".join(f"{s.value:>9}" for s in states)
          + f" {'occupancy':>9}  pauses")
    for o in report:
        print(_operator_row(o, states))
    return 0


def _operator_row(o: OperatorTime, states: list[State]) -> str:
    occupancy = "-" if o.occupancy is None else f"{o.occupancy * 100:.1f}%"
    pauses = ", ".join(f"{k} {_hms(v)}" for k, v in sorted(o.pause_by_reason.items())) or "-"
    cells = " ".join(f"{_hms(o.seconds[s]):>9}" for s in states)
    return f"{o.operator:<10} {_hms(o.logged_in_s):>10} {cells} {occupancy:>9}  {pauses}"


# name -> (help, add options, run)
REPORTS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                         Callable[[argparse.Namespace, Any], Any]]] = {
    "answer-times": ("answer-time percentiles, service levels, abandon rate, time in IVR",
                     _answer_times_options, _answer_times),
    "operators": ("each operator's time logged in, ready, ringing, on call, wrap-up, paused (by reason) "
                  "and occupancy", _operators_options, _operators),
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
        conn = await open_database(path, (*SCHEMAS, OPERATORS_SCHEMA))
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
