"""``siaga112 report agencies --from D --to D [--format text|json]``: the agencies' completion against the
60 % goal per agency and category, time to acknowledge and to done, the open backlog by age band, and
the trend by month (callflow/reports/agencies.py defines every figure)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callflow.agencies import SCHEMA as AGENCIES_SCHEMA
from callflow.agencies import AgencyDesk
from callflow.commands.incidents import (
    UsageError,
    database_for,
    parse_date,
    run_guarded,
    settings_for,
)
from callflow.commands.incidents_export import site_handoff_policy
from callflow.incidents import SCHEMA as INCIDENTS_SCHEMA
from callflow.incidents import IncidentService
from callflow.incidents.service import utc_now
from callflow.reports.agencies import AGE_BANDS, AgencyReport, agency_report, report_as_dict
from callflow.reports.summary import Period
from callflow.siteconfig import SiteConfigError
from callflow.store import open_database


def register_agencies(report_subparsers: Any) -> None:
    p = report_subparsers.add_parser(
        "agencies", help="agencies: completion vs the 60 % goal, time to acknowledge and to done, backlog by "
                         "age, trend by month")
    p.add_argument("--from", dest="date_from", required=True, metavar="YYYY-MM-DD",
                   help="first local date of the reports handed off (centre's time zone)")
    p.add_argument("--to", dest="date_to", required=True, metavar="YYYY-MM-DD",
                   help="last local date, included")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--timezone", help="the centre's time zone (default: settings, Asia/Makassar)")
    p.set_defaults(handler=_agencies)


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _min(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def render_text(r: AgencyReport) -> str:
    lines = ["Agencies: completion (goal above 60 %)",
             f"{'agency':<28} {'handed':>6} {'done':>5} {'rate':>7}"]
    for agency, c in r.agencies.items():
        lines.append(f"{agency:<28} {c.handed:>6} {c.completed:>5} {_pct(c.rate):>7}"
                     f"{'' if c.meets_goal else '  below goal'}")
    lines += ["", "Per agency and category: completion, median time to acknowledge / to done "
              "(within deadline)"]
    for row in r.rows:
        a, d = row.to_acknowledge, row.to_done
        lines.append(f"{row.agency_id:<22} {row.category:<18} {row.completion.completed}/"
                     f"{row.completion.handed} {_pct(row.completion.rate):>7}  ack {_min(a.median)} "
                     f"({a.within_target}/{a.count})  done {_min(d.median)} ({d.within_target}/{d.count})")
    lines += ["", f"Open backlog at {r.at.isoformat(timespec='seconds')} by age",
              f"{'agency':<28} " + " ".join(f"{name:>9}" for name, _ in AGE_BANDS)]
    for agency, bands in r.backlog.items():
        lines.append(f"{agency:<28} " + " ".join(f"{n:>9}" for n in bands.values()))
    lines += ["", "Trend by month of hand-off"]
    for month, c in r.months.items():
        lines.append(f"{month}  handed {c.handed:>5}  completed {c.completed:>5}  {_pct(c.rate):>7}")
    return "\n".join(lines) + "\n"


def _agencies(args: argparse.Namespace) -> int:
    async def work() -> int:
        settings = settings_for(args)
        tz = args.timezone or settings.incidents.timezone
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise UsageError(f"unknown time zone {tz!r}; give an IANA name such as Asia/Makassar") from None
        period = Period(parse_date(args.date_from, "--from"), parse_date(args.date_to, "--to"), tz)
        try:
            policy = site_handoff_policy(settings)
        except SiteConfigError as exc:
            raise UsageError(f"the site file cannot be used:\n{exc}") from exc
        conn = await open_database(database_for(args, settings), [INCIDENTS_SCHEMA, AGENCIES_SCHEMA])
        try:
            desk = AgencyDesk(conn, IncidentService(conn), policy, clock=utc_now)
            handoffs = await desk.handoffs(open_only=False, since=period.since, until=period.until)
        finally:
            await conn.close()
        report = agency_report(handoffs, policy, utc_now(), zone)
        sys.stdout.write(json.dumps(report_as_dict(report), indent=2) + "\n" if args.format == "json"
                         else render_text(report))
        return 0

    try:
        return run_guarded("report agencies", work)
    except ValueError as exc:
        print(f"siaga112 report agencies: {exc}", file=sys.stderr)
        return 1
