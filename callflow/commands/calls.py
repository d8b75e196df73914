"""``siaga112 calls rebuild | export | list | show``: the engine's call records."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from callflow.calls.derive import DeriveOptions, derive
from callflow.calls.export import export_csv, export_json
from callflow.calls.journal import COLUMNS as JOURNAL_COLUMNS
from callflow.calls.journal import JournalEntry
from callflow.calls.model import CallRecord
from callflow.calls.nature import natures_of
from callflow.calls.records import load_records, record_row, record_rows, store_records
from callflow.calls.tracker import SCHEMAS
from callflow.commands._locate import LOCAL_TIME_HELP, Location, add_location_everywhere, run
from callflow.policies import derive_options
from callflow.store import Database, StoreLocation, open_database


def register(sub: Any) -> None:
    p = sub.add_parser("calls", help="call records: rebuild from the journal, export, list, show")
    actions = p.add_subparsers(dest="calls_action", metavar="ACTION", required=True)

    rebuild = actions.add_parser("rebuild", help="re-derive every record from the journal (short abandons: "
                                                 "the site file's [calls] short_abandon_s)")
    rebuild.add_argument("--check", action="store_true", help="compare only; exit 1 if a row would change")

    export = actions.add_parser("export", help="records as JSON or CSV, one per call")
    export.add_argument("--format", choices=["json", "csv"], default="json")
    export.add_argument("--output", type=Path, help="file to write (default: standard output)")

    listing = actions.add_parser("list", help="one line per call")
    show = actions.add_parser("show", help="one call with its instants and legs")
    show.add_argument("linkedid")
    for parser in (export, listing):
        parser.add_argument("--since", help=f"arrival at or after ({LOCAL_TIME_HELP})")
        parser.add_argument("--until", help=f"arrival before ({LOCAL_TIME_HELP})")
    add_location_everywhere(p, actions)
    p.set_defaults(handler=_calls)


def _calls(args: argparse.Namespace) -> int:
    def work() -> int:
        where = Location.of(args)
        path = where.existing_database()
        if args.calls_action in ("export", "list"):
            args.since = where.when(args.since, "--since")
            args.until = where.when(args.until, "--until")
        # short abandons: the site's [calls] short_abandon_s (the site the one rule chooses)
        args.short_abandon_s = derive_options(where.site.site.calls).short_abandon_s
        return asyncio.run(_run(args, path))
    return run("calls", work)


async def _run(args: argparse.Namespace, path: StoreLocation) -> int:
    conn = await open_database(path, SCHEMAS)
    try:
        if args.calls_action == "rebuild":
            return await _rebuild(conn, args)
        if args.calls_action == "show":
            found = await load_records(conn, linkedid=args.linkedid)
            if not found:
                print(f"siaga112 calls: no record for {args.linkedid} in {path}", file=sys.stderr)
                return 1
            _show(found[0])
            return 0
        records = await load_records(conn, since=args.since, until=args.until)
        if args.calls_action == "export":
            tagged = await natures_of(conn, (r.linkedid for r in records))
            tags = {lid: str(t.nature) for lid, t in tagged.items()}
            text = export_json(records, tags) if args.format == "json" else export_csv(records, tags)
            if args.output:
                args.output.write_text(text, encoding="utf-8")
                print(f"{len(records)} records written to {args.output}", file=sys.stderr)
            else:
                sys.stdout.write(text)
            return 0
        _list(records)
        return 0
    finally:
        await conn.close()


async def _rebuild(conn: Database, args: argparse.Namespace) -> int:
    before = {row[0]: row for row in await record_rows(conn)}
    options = DeriveOptions(short_abandon_s=args.short_abandon_s)
    records: list[CallRecord] = []
    open_calls = 0
    current: list[JournalEntry] = []

    def flush() -> None:
        nonlocal open_calls
        if not current:
            return
        record = derive(current[0].linkedid, current, options)
        if record is None:
            open_calls += 1
        else:
            records.append(record)

    async with conn.execute(f"SELECT {JOURNAL_COLUMNS} FROM calls_journal WHERE linkedid != '' "  # noqa: S608
                            "ORDER BY linkedid, seq") as cur:
        while rows := await cur.fetchmany(1000):
            for row in rows:
                entry = JournalEntry.from_row(row)
                if current and current[0].linkedid != entry.linkedid:
                    flush()
                    current = []
                current.append(entry)
    flush()
    if not args.check:
        await store_records(conn, records)
    after = {row[0]: row for row in await record_rows(conn)} if not args.check else before
    if args.check:
        derived = {r.linkedid: record_row(r) for r in records}
        changed = sorted(k for k, v in derived.items() if before.get(k) != v)
    else:
        changed = sorted(k for k in after if before.get(k) != after[k])
    identical = sum(1 for r in records if r.linkedid in before and r.linkedid not in changed)
    print(f"{len(records)} calls derived from the journal: {identical} identical to the stored rows, "
          f"{len(changed)} {'would change' if args.check else 'changed or added'}; "
          f"{open_calls} still in progress (no record yet)")
    for linkedid in changed[:20]:
        print(f"  changed: {linkedid}")
    return 1 if args.check and changed else 0


def _list(records: list[CallRecord]) -> None:
    print(f"{'arrival (UTC)':<27} {'linkedid':<16} {'outcome':<19} {'class':<12} {'answer_s':>9} "
          f"{'operator':<8} sources")
    for r in records:
        answer = f"{r.answer_seconds:.3f}" if r.answer_seconds is not None else "-"
        print(f"{r.arrival.isoformat(timespec='microseconds')[:26]:<27} {r.linkedid:<16} {r.outcome!s:<19} "
              f"{r.call_class!s:<12} {answer:>9} {r.operator or '-':<8} {','.join(r.sources)}")
    print(f"{len(records)} calls")


def _show(r: CallRecord) -> None:
    answer = f"{r.answer_seconds:.6f} s" if r.answer_seconds is not None else "not answered"
    print(f"call {r.linkedid}: {r.outcome} ({r.call_class}), caller {r.caller_number} {r.caller_name!r}, "
          f"dialled {r.dialed}")
    print(f"  queue {r.queue or '-'}, operator {r.operator or '-'}, answer time {answer}, "
          f"hung up by {r.hangup_by or '-'}")
    if r.ivr_path:
        print(f"  IVR path: {' > '.join(r.ivr_path)}; category {r.category or '-'}")
    print(f"  sources: {', '.join(r.sources)}")
    print("  instants:")
    for i in r.instants:
        print(f"    {i.at.isoformat(timespec='microseconds')}  {i.name:<15} {i.source!s:<14} {i.detail}")
    print("  legs:")
    for g in r.legs:
        print(f"    {g.role:<15} {g.channel:<34} {g.uniqueid:<16} cause {g.hangup_cause}")
    for note in r.notes:
        print(f"  note: {note}")
