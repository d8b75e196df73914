"""``siaga112 report summary --from D --to D [--format text|json|csv] [--plot DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callflow.commands._locate import EXIT_USAGE, Location
from callflow.commands.incidents import UsageError, parse_date, run_guarded
from callflow.incidents import IncidentService
from callflow.reports.plots import write_plots
from callflow.reports.render import render_csv, render_json, render_text
from callflow.reports.sources import open_call_source
from callflow.reports.summary import Period, SummaryConfig, summarize


def register_summary(report_subparsers: Any) -> None:
    p = report_subparsers.add_parser(
        "summary", help="the centre's summary: reports per class/category/status, completion, answer and "
                        "response times")
    p.add_argument("--from", dest="date_from", required=True, metavar="YYYY-MM-DD",
                   help="first local date (centre's time zone)")
    p.add_argument("--to", dest="date_to", required=True, metavar="YYYY-MM-DD",
                   help="last local date, included")
    p.add_argument("--format", choices=["text", "json", "csv"], default="text")
    p.add_argument("--plot", type=Path, metavar="DIR", help="also write PNG charts into DIR")
    p.add_argument("--response-target-min", type=float,
                   help="dispatch -> on scene target in minutes (default: settings, 30)")
    p.add_argument("--timezone", help="the centre's time zone (default: the site's [centre] timezone, "
                                      "Asia/Makassar)")
    p.add_argument("--show-numbers", action="store_true",
                   help="top repeat numbers unmasked (supervisors only: the numbers are personal data)")
    p.set_defaults(handler=_summary)


def _summary(args: argparse.Namespace) -> int:
    async def work() -> int:
        where = Location.of(args)
        inc = where.settings.incidents
        tz = args.timezone or where.timezone
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise UsageError(f"unknown time zone {tz!r}; give an IANA name such as Asia/Makassar") from None
        period = Period(parse_date(args.date_from, "--from"), parse_date(args.date_to, "--to"), tz)
        config = SummaryConfig(
            timezone=tz,
            response_target_min=args.response_target_min if args.response_target_min is not None
            else inc.response_target_min)
        database = where.existing_database()
        async with IncidentService.open(database) as service, open_call_source(database) as source:
            report = await summarize(service, source, period, config)
        render = {"text": render_text, "json": render_json, "csv": render_csv}[args.format]
        sys.stdout.write(render(report, show_numbers=args.show_numbers))
        if args.plot is not None:
            for path in write_plots(report, args.plot):
                print(f"chart: {path}", file=sys.stderr)
        return 0

    try:
        return run_guarded("report summary", work)
    except ValueError as exc:  # a period ending before it starts
        print(f"siaga112 report summary: {exc}", file=sys.stderr)
        return EXIT_USAGE
