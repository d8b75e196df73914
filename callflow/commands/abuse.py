"""``siaga112 abuse``: supervisors flag a number for repeat abuse (never a block: the caller is answered and
queued behind callers without a flag), lift a flag, and list flags with who set and lifted them."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, datetime
from typing import Any

from callflow.commands._locate import EXIT_USAGE, Location, add_location_everywhere, run
from callflow.store import StoreLocation, open_database
from queues.abuse import ABUSE_SCHEMA, DEFAULT_FLAG_HOURS, AbuseFlag, flag_expiry
from queues.abuse.store import add_flag, all_flags, flags_of, lift_flags

CALLER_NUMBER = re.compile(r"^\+?[0-9]{2,20}$")  # as the console's pop shows a caller's number


def register(sub: Any) -> None:
    p = sub.add_parser("abuse", help="repeat-abuse flags on callers' numbers (queued last, never blocked)")
    actions = p.add_subparsers(dest="abuse_action", metavar="ACTION", required=True)
    flag = actions.add_parser(
        "flag", help="flag a number repeat_abuse for a while (default 24 h)",
        description="The caller is still answered, but queued behind callers without a flag in the same "
                    "queue, and called back only after a call classed emergency. Expires by itself.")
    flag.add_argument("number", help="the caller's number, as the console shows it")
    flag.add_argument("--by", required=True, metavar="NAME", help="the supervisor setting it")
    flag.add_argument("--reason", required=True, help="why (kept for the audit)")
    flag.add_argument("--hours", type=float, default=None,
                      help=f"how long it lasts (default {DEFAULT_FLAG_HOURS:g}, at most 720)")
    lift = actions.add_parser("lift", help="lift the flags in force on a number")
    lift.add_argument("number")
    lift.add_argument("--by", required=True, metavar="NAME", help="the supervisor lifting it")
    lift.add_argument("--note", required=True, help="why (kept for the audit)")
    listing = actions.add_parser("list", help="every flag: in force, expired and lifted")
    listing.add_argument("--number", help="only this number's")
    for parser in (flag, lift, listing):
        parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_location_everywhere(p, actions)
    p.set_defaults(handler=_abuse)


def _abuse(args: argparse.Namespace) -> int:
    def work() -> int:
        where = Location.of(args)
        path = where.database_for_writing()[0] if args.abuse_action == "flag" else where.existing_database()
        return asyncio.run(_run(args, path))
    return run("abuse", work)


async def _run(args: argparse.Namespace, path: StoreLocation) -> int:
    now = datetime.now(UTC)
    if args.abuse_action in ("flag", "lift") and not CALLER_NUMBER.match(args.number):
        print(f"siaga112 abuse: {args.number!r} is not a caller's number (digits, an optional leading +): "
              "give it as the console shows it", file=sys.stderr)
        return EXIT_USAGE
    if args.abuse_action == "flag":
        try:
            until = flag_expiry(now, args.hours)
        except ValueError as exc:
            print(f"siaga112 abuse: --hours: {exc}", file=sys.stderr)
            return EXIT_USAGE
    conn = await open_database(path, (ABUSE_SCHEMA,))
    try:
        if args.abuse_action == "flag":
            flags = [await add_flag(conn, number=args.number, reason=args.reason, by=args.by, at=now,
                                    expires_at=until)]
        elif args.abuse_action == "lift":
            flags = await lift_flags(conn, args.number, by=args.by, at=now, note=args.note)
            if not flags:
                print(f"siaga112 abuse: no flag in force on {args.number}: nothing lifted", file=sys.stderr)
                return 1
        else:
            flags = await flags_of(conn, args.number) if args.number else await all_flags(conn)
    finally:
        await conn.close()
    if args.json:
        print(json.dumps([_dict(f, now) for f in flags], indent=2))
    else:
        for f in flags:
            print(_line(f, now))
    return 0


def _dict(f: AbuseFlag, now: datetime) -> dict[str, Any]:
    return {"id": f.id, "number": f.number, "reason": f.reason, "flagged_by": f.flagged_by,
            "flagged_at": f.flagged_at.isoformat(), "expires_at": f.expires_at.isoformat(),
            "lifted_by": f.lifted_by, "lifted_at": f.lifted_at.isoformat() if f.lifted_at else None,
            "lift_note": f.lift_note, "in_force": f.in_force(now)}


def _line(f: AbuseFlag, now: datetime) -> str:
    state = "in force" if f.in_force(now) else ("lifted" if f.lifted_at else "expired")
    text = (f"{f.id:>4} {f.number:<16} {state:<8} set by {f.flagged_by} at "
            f"{f.flagged_at.isoformat(timespec='seconds')} until "
            f"{f.expires_at.isoformat(timespec='seconds')}: {f.reason}")
    if f.lifted_at:
        text += f"; lifted by {f.lifted_by} at {f.lifted_at.isoformat(timespec='seconds')}: {f.lift_note}"
    return text
