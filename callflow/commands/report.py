"""``siaga112 report ...``: the centre's reports. Each report is a sub-command registered here."""

from __future__ import annotations

from typing import Any

from callflow.commands.report_summary import register_summary


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="the centre's reports")
    report_sub = p.add_subparsers(dest="report_command", metavar="REPORT", required=True)
    register_summary(report_sub)
