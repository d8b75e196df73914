"""``siaga112 recordings list | show | export | verify | purge | hold``: the recordings index."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callflow.calls.model import CallClass
from callflow.commands._locate import (
    EXIT_REFUSED,
    LOCAL_TIME_HELP,
    Location,
    add_location_everywhere,
    parse_local,
    run,
)
from callflow.policies import recording_policy
from callflow.store import StoreLocation, open_database
from recordings import (
    SCHEMA,
    Recording,
    RecordingError,
    RecordingIndex,
    RecordingPolicy,
    RecordingStatus,
    export,
    purge,
    set_hold,
    verify,
)


def register(sub: Any) -> None:
    p = sub.add_parser("recordings", help="call recordings: list, show, export, verify, purge, hold")
    rs = p.add_subparsers(dest="recordings_command", metavar="ACTION", required=True)

    p_list = rs.add_parser("list", help="recordings, newest first")
    p_list.add_argument("--linkedid", help="only this call's recordings")
    p_list.add_argument("--status", choices=[s.value for s in RecordingStatus])
    p_list.add_argument("--limit", type=int, default=50)
    p_list.add_argument("--json", action="store_true", help="machine-readable output")
    p_list.set_defaults(handler=_run(_list))

    p_show = rs.add_parser("show", help="one recording with its call record and audit trail")
    p_show.add_argument("id", type=int)
    p_show.add_argument("--json", action="store_true")
    p_show.set_defaults(handler=_run(_show))

    p_export = rs.add_parser("export", help="copy a recording out; records who, when and why")
    p_export.add_argument("id", type=int)
    p_export.add_argument("--to", type=Path, required=True, help="target directory")
    p_export.add_argument("--by", required=True, help="who exports (recorded)")
    p_export.add_argument("--reason", required=True, help="why (recorded), e.g. a case number")
    p_export.set_defaults(handler=_run(_export))

    p_verify = rs.add_parser("verify", help="recompute hashes; report missing or altered files (exit 1)")
    p_verify.add_argument("id", type=int, nargs="?", help="only this recording")
    p_verify.add_argument("--json", action="store_true")
    p_verify.set_defaults(handler=_run(_verify))

    p_purge = rs.add_parser(
        "purge", help="delete recordings past the site's retention (never a held one)",
        description="Retention and legal hold come from the site file's [recording] section (the site "
                    "the one rule chooses: --site, SIAGA112_SITE_FILE or the settings' site_file, the site "
                    "last applied, else pbx-config/site.toml): a recording is deleted "
                    "once retention_days of its call class have passed since it was made, unless it is on "
                    "hold (`recordings hold`), its call is in legal_hold_calls, or legal_hold is true.")
    p_purge.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    p_purge.add_argument("--as-of", help=f"apply retention as of this instant ({LOCAL_TIME_HELP}); a future "
                         "instant only with --dry-run")
    p_purge.add_argument("--by", default="retention", help="who runs the purge (recorded)")
    p_purge.set_defaults(handler=_run(_purge))

    p_hold = rs.add_parser("hold", help="put a recording on legal hold (or --clear it)")
    p_hold.add_argument("id", type=int)
    p_hold.add_argument("--clear", action="store_true", help="lift the hold")
    p_hold.add_argument("--by", default="", help="who (recorded)")
    p_hold.add_argument("--reason", default="", help="why (recorded), e.g. a court order number")
    p_hold.set_defaults(handler=_run(_hold))
    add_location_everywhere(p, rs)


def _now() -> datetime:
    return datetime.now(UTC)


Action = Callable[[RecordingIndex, argparse.Namespace, RecordingPolicy], Awaitable[int]]


def _run(action: Action) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        def work() -> int:
            where = Location.of(args)
            database = where.existing_database()
            if getattr(args, "as_of", None) is not None:
                args.as_of = parse_local(args.as_of, where.timezone, "--as-of")
            policy = recording_policy(where.site.site.recording)  # SiteConfigError: exit 2, file:line
            args.site_file_used = where.site_file.path
            try:
                return asyncio.run(_with_index(database, action, args, policy))
            except RecordingError as exc:
                print(f"siaga112 recordings: {exc}", file=sys.stderr)
                return EXIT_REFUSED
        return run("recordings", work)
    return handler


async def _with_index(database: StoreLocation, action: Action, args: argparse.Namespace,
                      policy: RecordingPolicy) -> int:
    conn = await open_database(database, [SCHEMA])
    try:
        return await action(RecordingIndex(conn), args, policy)
    finally:
        await conn.close()


def _line(r: Recording) -> str:
    duration = f"{r.duration_s:7.2f}s" if r.duration_s is not None else "      -"
    flags = " HOLD" if r.hold else ""
    problem = f"  ({r.problem})" if r.problem else ""
    return (f"{r.id:>5}  {r.made_at:%Y-%m-%d %H:%M:%S}  {r.linkedid:<20} {r.call_class:<12} {duration}  "
            f"{r.status:<9}{flags}  {r.path}{problem}")


async def _list(index: RecordingIndex, args: argparse.Namespace, policy: RecordingPolicy) -> int:
    del policy
    status = RecordingStatus(args.status) if args.status else None
    items = await index.find(linkedid=args.linkedid, status=status, limit=args.limit)
    if args.json:
        print(json.dumps([r.as_dict() for r in items], indent=2))
        return 0
    if not items:
        print("no recordings")
        return 0
    print(f"{'id':>5}  {'made (UTC)':<19}  {'linkedid':<20} {'class':<12} {'duration':>8}  status")
    for r in items:
        print(_line(r))
    return 0


async def _show(index: RecordingIndex, args: argparse.Namespace, policy: RecordingPolicy) -> int:
    del policy
    rec = await index.get(args.id)
    if rec is None:
        raise RecordingError(f"no recording with id {args.id}: see `siaga112 recordings list`")
    call = await index.call_record(rec.linkedid)
    trail = await index.audit_trail(rec.id)
    audit = [{"at": a.at.isoformat(), "action": a.action, "by": a.by_whom, "reason": a.reason,
              "detail": a.detail} for a in trail]
    if args.json:
        print(json.dumps({"recording": rec.as_dict(), "call": call[1] if call else None,
                          "audit": audit}, indent=2, default=str))
        return 0
    for key, value in rec.as_dict().items():
        print(f"{key:>13}: {value}")
    if call is None:
        print("         call: (no call record in this database for this linkedid)")
    else:
        table, row = call
        print(f"         call: ({table})")
        for key, value in row.items():
            print(f"{'':>15}{key}: {value}")
    for a in audit:
        print(f"        audit: {a['at']} {a['action']} by {a['by']!r}: {a['reason']} {a['detail']}")
    return 0


async def _export(index: RecordingIndex, args: argparse.Namespace, policy: RecordingPolicy) -> int:
    del policy
    target = await export(index, args.id, args.to, by_whom=args.by, reason=args.reason, now=_now())
    print(f"exported recording {args.id} to {target} (recorded: by {args.by!r}, reason {args.reason!r})")
    return 0


async def _verify(index: RecordingIndex, args: argparse.Namespace, policy: RecordingPolicy) -> int:
    del policy
    results = await verify(index, _now(), recording_id=args.id)
    bad = [r for r in results if not r.ok]
    if args.json:
        print(json.dumps([{"id": r.recording.id, "status": str(r.status), "detail": r.detail,
                           "path": str(r.recording.path)} for r in results], indent=2))
    else:
        for r in bad:
            print(f"{r.status.upper():<8} recording {r.recording.id} (call {r.recording.linkedid}): "
                  f"{r.detail}")
        print(f"verified {len(results)} recordings: {len(results) - len(bad)} intact, "
              f"{sum(r.status == RecordingStatus.MISSING for r in bad)} missing, "
              f"{sum(r.status == RecordingStatus.ALTERED for r in bad)} altered")
    return 1 if bad else 0


async def _purge(index: RecordingIndex, args: argparse.Namespace, policy: RecordingPolicy) -> int:
    now = _now()
    as_of = args.as_of or now
    if as_of > now and not args.dry_run:
        raise RecordingError("--as-of in the future deletes recordings before their retention ends; "
                             "use it with --dry-run only")
    days = policy.retention_days
    print(f"retention from site file {args.site_file_used}: emergency {days[CallClass.EMERGENCY]} days, "
          f"non-emergency {days[CallClass.NONEMERGENCY]} days; legal hold: "
          f"{'site-wide' if policy.legal_hold else f'{len(policy.held_calls)} call(s) listed'}")
    results = await purge(index, as_of, policy, dry_run=args.dry_run, by_whom=args.by)
    for r in results:
        word = "PURGED" if r.purged else ("WOULD" if args.dry_run and "would" in r.reason else "KEPT")
        print(f"{word:<7} recording {r.recording.id} (call {r.recording.linkedid}): {r.reason}")
    done = sum(r.purged for r in results)
    print(f"{'dry run: ' if args.dry_run else ''}{len(results)} past retention as of {as_of.isoformat()}, "
          f"{done} purged, {sum(not r.purged and 'hold' in r.reason for r in results)} kept on hold")
    return 0


async def _hold(index: RecordingIndex, args: argparse.Namespace, policy: RecordingPolicy) -> int:
    del policy
    rec = await set_hold(index, args.id, not args.clear, by_whom=args.by, reason=args.reason, now=_now())
    print(f"recording {rec.id}: legal hold {'set' if rec.hold else 'cleared'}")
    return 0
