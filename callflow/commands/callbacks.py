"""``siaga112 callbacks list [--open] | show ID | close ID``: callbacks to abandoned emergency calls."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from callflow.commands._locate import EXIT_USAGE, Location, add_location_everywhere, run
from callflow.store import Database, StoreLocation, open_database
from queues.callbacks import CALLBACKS_SCHEMA, Attempt, CallbackTask
from queues.callbacks.rules import OPEN_STATUSES, ClosureOutcome, TaskStatus
from queues.callbacks.store import Closure, attempts_of, close_flagged, closure_of, get_task, list_tasks


def register(sub: Any) -> None:
    p = sub.add_parser("callbacks", help="callbacks to emergency callers who hung up before an answer")
    actions = p.add_subparsers(dest="callbacks_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="one line per callback task")
    listing.add_argument("--open", action="store_true",
                         help="only tasks still to do (pending, dialling, checking, flagged for supervisor)")
    show = actions.add_parser("show", help="one task with every attempt")
    show.add_argument("id", help="the task id (first column of `callbacks list`)")
    close = actions.add_parser(
        "close", help="close a task flagged for a supervisor, saying who, how and why",
        description="Close a callback task that the engine flagged for a supervisor (withheld number, no "
                    "answer after every attempt, ...). Only flagged tasks can be closed: the engine is still "
                    "working on the others. Who, when (UTC), how and the note are kept with the task.")
    close.add_argument("id", help="the task id (first column of `callbacks list --open`)")
    close.add_argument("--by", required=True, metavar="NAME", help="the supervisor closing it")
    close.add_argument("--outcome", required=True, choices=[str(o) for o in ClosureOutcome],
                       help="reached: the citizen was reached another way; unreachable: tried, cannot be "
                            "reached; not_needed: no emergency after all; other: the note says")
    close.add_argument("--note", required=True, help="what was done (kept for the audit)")
    for parser in (listing, show, close):
        parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_location_everywhere(p, actions)
    p.set_defaults(handler=_callbacks)


def _callbacks(args: argparse.Namespace) -> int:
    return run("callbacks", lambda: asyncio.run(_run(args, Location.of(args).existing_database())))


async def _run(args: argparse.Namespace, path: StoreLocation) -> int:
    conn = await open_database(path, (CALLBACKS_SCHEMA,))
    try:
        if args.callbacks_action in ("show", "close"):
            if not args.id.isdigit():
                print(f"siaga112 callbacks: {args.id!r} is not a task id (a number, as `siaga112 callbacks "
                      "list` shows)", file=sys.stderr)
                return EXIT_USAGE
            task = await get_task(conn, int(args.id))
            if task is None:
                print(f"siaga112 callbacks: no callback task {args.id} in {path} (see `siaga112 callbacks "
                      "list`)", file=sys.stderr)
                return 1
            if args.callbacks_action == "close":
                return await _close(conn, task, args)
            attempts = await attempts_of(conn, task.id)
            closure = await closure_of(conn, task.id)
            if args.json:
                print(json.dumps(task_dict(task, attempts, closure), indent=2))
            else:
                _show(task, attempts, closure)
            return 0
        tasks = await list_tasks(conn, statuses=OPEN_STATUSES if args.open else None)
        if args.json:
            print(json.dumps([task_dict(t) for t in tasks], indent=2))
        else:
            _list(tasks)
        return 0
    finally:
        await conn.close()


async def _close(conn: Database, task: CallbackTask, args: argparse.Namespace) -> int:
    by, note = args.by.strip(), args.note.strip()
    if not by or not note:
        print("siaga112 callbacks close: --by and --note must not be empty (who closed the task, and what "
              "was done, are kept for the audit)", file=sys.stderr)
        return EXIT_USAGE
    if task.status is not TaskStatus.SUPERVISOR:
        closure = await closure_of(conn, task.id)
        if closure is not None:
            when = closure.closed_at.isoformat(timespec="seconds")
            why = f"it was closed by {closure.closed_by} at {when} ({closure.outcome}: {closure.note})"
        elif task.status in OPEN_STATUSES:
            why = (f"it is {task.status}: the engine is still calling the citizen back; only tasks flagged "
                   "for a supervisor can be closed")
        else:
            why = f"it is {task.status} ({task.flag or 'nothing left to do'})"
        print(f"siaga112 callbacks close: task {task.id} not closed: {why}", file=sys.stderr)
        return 1
    closure = await close_flagged(conn, task.id, by=by, outcome=ClosureOutcome(args.outcome), note=note,
                                  now=datetime.now(UTC))
    if closure is None:  # the engine moved it between the read and the update
        print(f"siaga112 callbacks close: task {task.id} changed while closing it; nothing was changed. See "
              f"`siaga112 callbacks show {task.id}` and try again", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(_closure_dict(closure), indent=2))
    else:
        print(f"callback task {task.id} closed by {closure.closed_by} at "
              f"{closure.closed_at.isoformat(timespec='seconds')}: {closure.outcome} ({closure.note})")
    return 0


def _closure_dict(c: Closure) -> dict[str, Any]:
    return {"task_id": c.task_id, "closed_at": c.closed_at.isoformat(), "closed_by": c.closed_by,
            "outcome": str(c.outcome), "note": c.note, "flag": c.flag}


def task_dict(task: CallbackTask, attempts: list[Attempt] | None = None,
              closure: Closure | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": task.id, "linkedid": task.linkedid, "number": task.number, "reason": task.reason,
        "call_class": task.call_class, "arrival": task.arrival.isoformat(),
        "created_at": task.created_at.isoformat(), "status": str(task.status),
        "next_attempt_at": task.next_attempt_at.isoformat() if task.next_attempt_at else None,
        "attempts": task.attempts, "flag": task.flag, "operator": task.operator,
        "updated_at": task.updated_at.isoformat(), "decision": task.decision,
        "max_attempts": task.max_attempts,
    }
    if attempts is not None:
        out["attempt_log"] = [{"n": a.n, "channel_id": a.channel_id, "started_at": a.started_at.isoformat(),
                               "ended_at": a.ended_at.isoformat() if a.ended_at else None,
                               "outcome": str(a.outcome), "detail": a.detail} for a in attempts]
    if closure is not None:
        out["closure"] = _closure_dict(closure)
    return out


def _list(tasks: list[CallbackTask]) -> None:
    print(f"{'id':>4} {'created (UTC)':<26} {'number':<16} {'status':<11} {'tries':>5} {'operator':<8} "
          f"reason / flag")
    for t in tasks:
        note = t.flag or (t.decision if t.status is TaskStatus.SKIPPED else t.reason)
        print(f"{t.id:>4} {t.created_at.isoformat(timespec='seconds'):<26} {t.number or '(withheld)':<16} "
              f"{t.status!s:<11} {t.attempts:>5} {t.operator or '-':<8} {note}")
    print(f"{len(tasks)} callback task(s)")


def _show(t: CallbackTask, attempts: list[Attempt], closure: Closure | None) -> None:
    print(f"callback task {t.id}: {t.status}, number {t.number or '(withheld)'}")
    print(f"  for call {t.linkedid} ({t.reason}), arrived {t.arrival.isoformat(timespec='microseconds')}")
    print(f"  created {t.created_at.isoformat(timespec='microseconds')}, updated "
          f"{t.updated_at.isoformat(timespec='microseconds')}")
    if t.next_attempt_at:
        print(f"  next attempt at {t.next_attempt_at.isoformat(timespec='microseconds')}")
    if t.operator:
        print(f"  taken by operator {t.operator}")
    if t.flag:
        print(f"  flag: {t.flag}")
    if t.decision:
        limit = f" (at most {t.max_attempts} attempt(s))" if t.max_attempts else ""
        print(f"  decision: {t.decision}{limit}")
    for a in attempts:
        ended = a.ended_at.isoformat(timespec="microseconds") if a.ended_at else "-"
        print(f"  attempt {a.n}: {a.outcome} started {a.started_at.isoformat(timespec='microseconds')} "
              f"ended {ended} ({a.channel_id}) {a.detail}")
    if not attempts:
        print("  no attempts yet")
    if closure is not None:
        print(f"  closed by {closure.closed_by} at {closure.closed_at.isoformat(timespec='microseconds')}: "
              f"{closure.outcome} ({closure.note})")
