"""``siaga112 incidents create|show|list|status|dispatch|en-route|arrive|close|link|units``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from callflow.commands._locate import (
    EXIT_REFUSED,
    EXIT_USAGE,
    LOCAL_TIME_HELP,
    LocateError,
    Location,
    add_location_everywhere,
    parse_local,
)
from callflow.commands.incidents_export import eido_documents, site_handoff_policy
from callflow.incidents import (
    CATEGORIES,
    AgencyType,
    Dispatch,
    Incident,
    IncidentError,
    IncidentService,
    IncidentStatus,
    load_registry,
    parse_category,
    parse_district,
)
from callflow.incidents.export import dispatch_as_dict, incident_as_dict, unit_as_dict
from callflow.logs import configure_logging
from callflow.settings import EngineSettings
from callflow.siteconfig import SiteConfigError
from callflow.store import StoreError, StoreLocation


class UsageError(LocateError):
    """A bad option value; the message says which and what to give (exit 2)."""


def settings_for(args: argparse.Namespace) -> EngineSettings:
    """The settings of the one rule (callflow/commands/_locate.py); LocateError (exit 2) when invalid."""
    return Location.of(args).settings


def database_for(args: argparse.Namespace, settings: EngineSettings) -> StoreLocation:
    """The database of the one rule; it must exist (a read never creates one)."""
    del settings  # the rule reads the same settings
    return Location.of(args).existing_database()


def parse_at(text: str | None, tz: str) -> datetime | None:
    """``--at``: ISO-8601; without an offset it is the centre's local time."""
    if text is None:
        return None
    return parse_local(text, tz, "--at")


def parse_date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a date; give YYYY-MM-DD") from None


def run_guarded(command: str, work: Callable[[], Coroutine[Any, Any, int]]) -> int:
    # the command's output is its result: logs go to stderr, warnings and worse unless asked
    configure_logging("console", os.environ.get("SIAGA112_LOG_LEVEL", "warning"), stream=sys.stderr)
    try:
        return asyncio.run(work())
    except IncidentError as exc:
        print(f"siaga112 {command}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (LocateError, StoreError, SiteConfigError) as exc:
        print(f"siaga112 {command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


def register(sub: Any) -> None:
    p = sub.add_parser("incidents", help="reports (incidents): create, follow up, dispatch units")
    p.add_argument("--agencies", type=Path,
                   help="agency/unit registry TOML to load first (default: settings incidents.agencies_file;"
                        " example: examples/agencies-manado.example.toml)")
    s = p.add_subparsers(dest="incidents_command", metavar="ACTION", required=True)
    _register_reports(s)
    _register_dispatch(s)
    e = s.add_parser("export", help="reports as NENA EIDO JSON (STA-021.1a), as sent to agencies' systems")
    e.add_argument("--format", choices=["eido"], required=True)
    e.add_argument("--id", type=int, help="one report (one document)")
    e.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="reports created from this date "
                   "(a JSON list, oldest first)")
    e.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="... to this date (included)")
    e.set_defaults(handler=_export)
    for action_parser in s.choices.values():
        action_parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_location_everywhere(p, s)


BY_HELP = "who does this (operator name; default $SIAGA112_OPERATOR)"
AT_HELP = f"when ({LOCAL_TIME_HELP}); default now"


def _register_reports(s: Any) -> None:
    by_help, at_help = BY_HELP, AT_HELP

    c = s.add_parser("create", help="a new report for an answered call")
    c.add_argument("--category", required=True, help="id or label, e.g. fire, kebakaran, clean_water")
    c.add_argument("--district", required=True, help="one of Manado's 11 districts, e.g. wenang, 'Paal Dua'")
    c.add_argument("--address", default="")
    c.add_argument("--notes", default="")
    c.add_argument("--call", action="append", default=[], metavar="LINKEDID",
                   help="a call about this event (repeat for several)")
    c.add_argument("--by", default=None, help=by_help)
    c.add_argument("--at", help=at_help)
    c.set_defaults(handler=_create)

    sh = s.add_parser("show", help="one incident with its history and dispatches")
    sh.add_argument("id", type=int)
    sh.set_defaults(handler=_show)

    ls = s.add_parser("list", help="incidents, oldest first")
    ls.add_argument("--status", choices=[x.value for x in IncidentStatus])
    ls.add_argument("--category")
    ls.add_argument("--district")
    ls.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD")
    ls.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD")
    ls.add_argument("--limit", type=int)
    ls.set_defaults(handler=_list)

    st = s.add_parser("status", help="move the status forward: wait -> handling -> done")
    st.add_argument("id", type=int)
    st.add_argument("status", choices=[x.value for x in IncidentStatus])
    st.add_argument("--note", default="")
    st.add_argument("--by", default=None, help=by_help)
    st.add_argument("--at", help=at_help)
    st.set_defaults(handler=_status)



def _register_dispatch(s: Any) -> None:
    by_help, at_help = BY_HELP, AT_HELP
    d = s.add_parser("dispatch", help="send a unit (default: the suggested unit for category and district)")
    d.add_argument("id", type=int)
    d.add_argument("--unit", help="unit id (see `incidents units`)")
    d.add_argument("--by", default=None, help=by_help)
    d.add_argument("--at", help=at_help)
    d.set_defaults(handler=_dispatch)

    for name, help_text, method in (("en-route", "the unit is on its way", "en_route"),
                                    ("arrive", "the unit is on scene", "arrive")):
        a = s.add_parser(name, help=help_text)
        a.add_argument("id", type=int)
        a.add_argument("--dispatch", type=int, help="which dispatch, if the incident has several open")
        a.add_argument("--by", default=None, help=by_help)
        a.add_argument("--at", help=at_help)
        a.set_defaults(handler=_step, step=method)

    cl = s.add_parser("close", help="close the incident (done; open dispatches closed), or one dispatch")
    cl.add_argument("id", type=int)
    cl.add_argument("--dispatch", type=int, help="close only this dispatch (the unit is free again)")
    cl.add_argument("--note", default="")
    cl.add_argument("--by", default=None, help=by_help)
    cl.add_argument("--at", help=at_help)
    cl.set_defaults(handler=_close)

    lk = s.add_parser("link", help="another call about the same event")
    lk.add_argument("id", type=int)
    lk.add_argument("linkedid")
    lk.add_argument("--by", default=None, help=by_help)
    lk.set_defaults(handler=_link)

    u = s.add_parser("units", help="the agency units known (loaded from the registry file)")
    u.add_argument("--district")
    u.add_argument("--type", choices=[x.value for x in AgencyType])
    u.set_defaults(handler=_units)


def _operator(args: argparse.Namespace) -> str:
    by: str = args.by or os.environ.get("SIAGA112_OPERATOR", "")
    if not by.strip():
        raise UsageError("who does this? give --by OPERATOR (or set SIAGA112_OPERATOR)")
    return by


Action = Callable[[IncidentService, str], Awaitable[int]]
READING = {"show", "list", "units"}  # `units --agencies FILE` loads the registry: it writes


def _run(args: argparse.Namespace, action: Action) -> int:
    async def work() -> int:
        where = Location.of(args)
        agencies = args.agencies or where.settings.incidents.agencies_file
        registry = load_registry(agencies) if agencies is not None else None
        if args.incidents_command in READING and not args.agencies:
            database = where.existing_database()
        else:
            database, created = where.database_for_writing()
            if created:
                print(f"siaga112 incidents: new database {where.database}", file=sys.stderr)
        tz = where.timezone
        async with IncidentService.open(database) as service:
            if registry is not None:
                await service.load_registry(registry)
            return await action(service, tz)
    return run_guarded("incidents", work)


def _local(at: datetime, tz: str) -> str:
    return at.astimezone(ZoneInfo(tz)).isoformat(sep=" ", timespec="microseconds")


def _print_dispatch(d: Dispatch, tz: str) -> None:
    mark = "  [EXAMPLE DATA]" if d.example else ""
    print(f"  dispatch {d.id}: {d.unit_id} ({d.unit_name}, {d.agency_type}) {d.state.value}{mark}")
    for step in d.steps:
        print(f"    {step.state.value:<10} {_local(step.at, tz)}  by {step.by} ({step.source.value})")


def _print_incident(i: Incident, tz: str) -> None:
    info = CATEGORIES[i.category]
    print(f"incident #{i.id}: {i.category.value} ({info.label_id} / {info.label_en}), "
          f"{info.category_class.value}")
    print(f"  district {i.district.label}   status {i.status.value} ({i.status.label_id})")
    if i.address:
        print(f"  address  {i.address}")
    if i.notes:
        print(f"  notes    {i.notes}")
    print(f"  created  {_local(i.created_at, tz)} by {i.created_by}")
    print(f"  calls    {', '.join(i.linkedids) or '-'}")
    print("  history")
    for ch in i.history:
        note = f"  ({ch.note})" if ch.note else ""
        print(f"    {ch.from_status.value if ch.from_status else '-':<8} -> {ch.to_status.value:<8} "
              f"{_local(ch.at, tz)}  by {ch.by} ({ch.source.value}){note}")
    for d in i.dispatches:
        _print_dispatch(d, tz)


def _emit_incident(args: argparse.Namespace, i: Incident, tz: str) -> int:
    if args.json:
        print(json.dumps(incident_as_dict(i), indent=2, ensure_ascii=False))
    else:
        _print_incident(i, tz)
    return 0


def _create(args: argparse.Namespace) -> int:
    async def action(service: IncidentService, tz: str) -> int:
        incident = await service.create(category=args.category, district=args.district, by=_operator(args),
                                        address=args.address, notes=args.notes, linkedids=args.call,
                                        at=parse_at(args.at, tz))
        return _emit_incident(args, incident, tz)
    return _run(args, action)


def _show(args: argparse.Namespace) -> int:
    async def action(service: IncidentService, tz: str) -> int:
        return _emit_incident(args, await service.get(args.id), tz)
    return _run(args, action)


def _export(args: argparse.Namespace) -> int:
    async def work() -> int:
        from callflow.reports.summary import Period  # noqa: PLC0415 - reports import incidents, not back

        if (args.id is None) == (args.date_from is None and args.date_to is None):
            raise UsageError("give --id N, or --from/--to for a period (not both)")
        settings = settings_for(args)
        try:
            policy = site_handoff_policy(settings)
        except SiteConfigError as exc:
            raise UsageError(f"the site file cannot be used:\n{exc}") from exc
        since = until = None
        if args.id is None:
            period = Period(parse_date(args.date_from or args.date_to, "--from"),
                            parse_date(args.date_to or args.date_from, "--to"), settings.incidents.timezone)
            since, until = period.since, period.until
        docs = await eido_documents(database_for(args, settings), policy, incident_id=args.id, since=since,
                                    until=until)
        print(json.dumps(docs[0] if args.id is not None else docs, indent=2, ensure_ascii=False))
        return 0

    return run_guarded("incidents export", work)


def _list(args: argparse.Namespace) -> int:
    async def action(service: IncidentService, tz: str) -> int:
        from callflow.reports.summary import Period  # noqa: PLC0415 - reports import incidents, not back

        since = until = None
        if args.date_from or args.date_to:
            first = parse_date(args.date_from or "1970-01-01", "--from")
            last = parse_date(args.date_to or "9998-12-31", "--to")
            period = Period(first, last, tz)
            since, until = period.since, period.until
        found = await service.list(
            status=IncidentStatus(args.status) if args.status else None,
            category=parse_category(args.category) if args.category else None,
            district=parse_district(args.district) if args.district else None,
            since=since, until=until, limit=args.limit)
        if args.json:
            print(json.dumps([incident_as_dict(i) for i in found], indent=2, ensure_ascii=False))
            return 0
        for i in found:
            units = ",".join(d.unit_id for d in i.dispatches) or "-"
            print(f"#{i.id:<6} {_local(i.created_at, tz)[:19]}  {i.status.value:<8} {i.category.value:<17} "
                  f"{i.district.value:<17} {i.created_by:<10} units {units}")
        print(f"{len(found)} incident(s)")
        return 0
    return _run(args, action)


def _status(args: argparse.Namespace) -> int:
    async def action(service: IncidentService, tz: str) -> int:
        incident = await service.set_status(args.id, args.status, by=_operator(args),
                                            at=parse_at(args.at, tz), note=args.note)
        return _emit_incident(args, incident, tz)
    return _run(args, action)


def _emit_dispatch(args: argparse.Namespace, d: Dispatch, tz: str) -> int:
    if args.json:
        print(json.dumps(dispatch_as_dict(d), indent=2, ensure_ascii=False))
    else:
        print(f"incident #{d.incident_id}")
        _print_dispatch(d, tz)
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    async def action(service: IncidentService, tz: str) -> int:
        d = await service.dispatch(args.id, by=_operator(args), unit_id=args.unit, at=parse_at(args.at, tz))
        return _emit_dispatch(args, d, tz)
    return _run(args, action)


def _step(args: argparse.Namespace) -> int:
    async def action(service: IncidentService, tz: str) -> int:
        method = getattr(service, args.step)
        d = await method(args.id, by=_operator(args), dispatch_id=args.dispatch, at=parse_at(args.at, tz))
        return _emit_dispatch(args, d, tz)
    return _run(args, action)


def _close(args: argparse.Namespace) -> int:
    async def action(service: IncidentService, tz: str) -> int:
        at = parse_at(args.at, tz)
        if args.dispatch is not None:
            d = await service.close_dispatch(args.id, by=_operator(args), dispatch_id=args.dispatch, at=at)
            return _emit_dispatch(args, d, tz)
        incident = await service.close(args.id, by=_operator(args), at=at, note=args.note)
        return _emit_incident(args, incident, tz)
    return _run(args, action)


def _link(args: argparse.Namespace) -> int:
    async def action(service: IncidentService, tz: str) -> int:
        incident = await service.link_call(args.id, args.linkedid, by=_operator(args))
        return _emit_incident(args, incident, tz)
    return _run(args, action)


def _units(args: argparse.Namespace) -> int:
    async def action(service: IncidentService, tz: str) -> int:
        del tz
        units = await service.units()
        if args.district:
            district = parse_district(args.district)
            units = [u for u in units if u.district is district]
        if args.type:
            units = [u for u in units if u.agency_type.value == args.type]
        busy = await service.busy_units()
        if args.json:
            print(json.dumps([{**unit_as_dict(u), "busy": u.id in busy} for u in units], indent=2))
            return 0
        if not units:
            print("no units: load an agency registry with --agencies FILE "
                  "(example: examples/agencies-manado.example.toml)")
            return 0
        if any(u.example for u in units):
            print("*** EXAMPLE DATA: these units come from an example registry, not real agencies ***")
        for u in units:
            print(f"{u.id:<28} {u.agency_type.value:<13} {u.district.value:<18} "
                  f"{'busy' if u.id in busy else 'free':<5} {u.name}")
        return 0
    return _run(args, action)
