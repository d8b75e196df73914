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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callflow.calls.nature import natures_of
from callflow.calls.records import load_records
from callflow.commands._locate import LOCAL_TIME_HELP, Location, add_location_everywhere, run
from callflow.commands.report_agencies import register_agencies
from callflow.commands.report_summary import register_summary
from callflow.reports.measures import (
    ANSWER_TIME_RULE,
    AnswerTimes,
    answer_times,
    answer_times_by,
    callback_measures,
    nuisance_measures,
)
from callflow.reports.render import nuisance_line, top_numbers_line
from callflow.reports.sources import REPORT_SCHEMAS, callback_facts
from callflow.store import Database, open_database
from queues.occupancy import OperatorTime, TransitionRow, operator_time_report
from queues.operators import SCHEMA as OPERATORS_SCHEMA
from queues.states import State


def _answer_times_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timezone", help="group by the local hour of arrival in this IANA time zone "
                                      "(default: the site's [centre] timezone, Asia/Makassar)")
    p.add_argument("--show-numbers", action="store_true",
                   help="top repeat numbers unmasked (supervisors only: the numbers are personal data)")


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.1f}%" if pct else f"{value:.2f}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _table_row(label: str, a: AnswerTimes) -> str:
    p = a.percentiles_s
    w = a.service_levels
    return (f"{label:<16} {a.offered:>7} {a.answered:>8} {a.abandoned:>9} {_fmt(a.abandon_rate, True):>8} "
            f"{_fmt(p[50]):>7} {_fmt(p[90]):>7} {_fmt(p[95]):>7} {_fmt(p[99]):>7} "
            f"{_fmt(w[10], True):>7} {_fmt(w[15], True):>7} {_fmt(w[20], True):>7} "
            f"{_fmt(a.ivr.median):>8} {a.short_abandons:>6}")


async def _answer_times(args: argparse.Namespace, conn: Database) -> int:
    name = args.timezone or args.centre_timezone
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"siaga112 report answer-times: unknown time zone {name!r}; give an IANA name such as "
              "Asia/Makassar", file=sys.stderr)
        return 2
    records = await load_records(conn, since=args.since, until=args.until)
    overall = answer_times(records)
    by_class = answer_times_by(records, lambda r: str(r.call_class))
    by_hour = answer_times_by(records, lambda r: f"{r.arrival.astimezone(zone).hour:02d}")
    callbacks = callback_measures(await callback_facts(conn, args.since, args.until))
    # honest numbers (issue 19): the same measures over genuine calls, the nuisance share, repeat numbers
    tags = {lid: str(t.nature) for lid, t in (await natures_of(conn, [r.linkedid for r in records])).items()}
    nuisance = nuisance_measures(records, tags, lambda r: f"{r.arrival.astimezone(zone).hour:02d}")
    genuine = nuisance.genuine
    if args.format == "json":
        print(json.dumps({"rule": ANSWER_TIME_RULE, "timezone": name, "overall": overall.as_dict(),
                          "by_class": {k: v.as_dict() for k, v in by_class.items()},
                          "by_hour": {k: v.as_dict() for k, v in by_hour.items()},
                          "callbacks": callbacks.as_dict(),
                          **nuisance.as_dict(show_numbers=args.show_numbers)},
                         indent=2))
        return 0
    print(f"Answer times: {overall.citizen_calls} citizen calls, {overall.short_abandons} short abandons "
          f"(counted apart), {overall.offered} offered. Rule: {ANSWER_TIME_RULE}.")
    print("Percentiles in seconds ('-': not reached, more calls unanswered than the percentile allows).")
    header = (f"{'':<16} {'offered':>7} {'answered':>8} {'abandoned':>9} {'abandon':>8} {'p50':>7} "
              f"{'p90':>7} {'p95':>7} {'p99':>7} {'<=10s':>7} {'<=15s':>7} {'<=20s':>7} {'ivr p50':>8} "
              f"{'short':>6}")
    print(header)
    print(_table_row("all calls", overall))
    print(_table_row("genuine calls", genuine))  # without calls tagged prank, silent or accidental
    for key, stats in by_class.items():
        print(_table_row(f"class {key}", stats))
    for hour, stats in by_hour.items():
        print(_table_row(f"hour {hour}:00", stats))
    print(f"outcomes: {', '.join(f'{k} {v}' for k, v in overall.outcomes.items()) or 'none'}")
    print(f"Callbacks (placed by the centre; not offered calls): tasks {callbacks.tasks}, attempts "
          f"{callbacks.attempts} ({callbacks.unanswered_attempts} unanswered), citizens reached "
          f"{callbacks.citizens_reached} (taken by an operator {callbacks.taken_by_operator}), hang-up -> "
          f"reached median {_secs(callbacks.hangup_to_reached.median)}")
    print(nuisance_line(nuisance))
    print(top_numbers_line(nuisance, show_numbers=args.show_numbers))
    return 0


def _operators_options(p: argparse.ArgumentParser) -> None:
    del p  # the period (--since/--until) is all it needs; default: the last 24 hours


def _hms(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


async def _operators(args: argparse.Namespace, conn: Database) -> int:
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
    "answer-times": ("answer-time percentiles, service levels, abandon rate, time in the IVR, callbacks",
                     _answer_times_options, _answer_times),
    "operators": ("each operator's time logged in, ready, ringing, on call, wrap-up, paused (by reason) "
                  "and occupancy", _operators_options, _operators),
}


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="reports computed from the call records")
    reports = p.add_subparsers(dest="report_name", metavar="REPORT", required=True)
    for name, (help_text, add_options, _) in REPORTS.items():
        rp = reports.add_parser(name, help=help_text)
        rp.add_argument("--since", help=f"calls arriving at or after ({LOCAL_TIME_HELP})")
        rp.add_argument("--until", help=f"calls arriving before ({LOCAL_TIME_HELP})")
        rp.add_argument("--format", choices=["text", "json"], default="text")
        add_options(rp)
        rp.set_defaults(handler=_report)
    register_summary(reports)  # incidents and response times (callflow/commands/report_summary.py)
    register_agencies(reports)  # agencies' completion and backlog (callflow/commands/report_agencies.py)
    add_location_everywhere(p, reports)  # `report --lab X summary` == `report summary --lab X`


def _report(args: argparse.Namespace) -> int:
    def work() -> int:
        where = Location.of(args)
        path = where.existing_database()
        args.since = where.when(args.since, "--since")
        args.until = where.when(args.until, "--until")
        args.centre_timezone = where.timezone
        return asyncio.run(_open_and_run(args, path))
    return run("report", work)


async def _open_and_run(args: argparse.Namespace, path: Any) -> int:
    conn = await open_database(path, (*REPORT_SCHEMAS, OPERATORS_SCHEMA))
    try:
        code: int = await REPORTS[args.report_name][2](args, conn)
        return code
    finally:
        await conn.close()
