"""``siaga112 callbacks list [--open] | show ID``: callbacks to abandoned emergency calls."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from callflow.calls.setup import add_database_options, database_of
from callflow.store import StoreError, open_database
from queues.callbacks import CALLBACKS_SCHEMA, Attempt, CallbackTask
from queues.callbacks.rules import OPEN_STATUSES
from queues.callbacks.store import attempts_of, get_task, list_tasks


def register(sub: Any) -> None:
    p = sub.add_parser("callbacks", help="callbacks to emergency callers who hung up before an answer")
    actions = p.add_subparsers(dest="callbacks_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="one line per callback task")
    listing.add_argument("--open", action="store_true",
                         help="only tasks still to do (pending, dialling, checking, flagged for supervisor)")
    show = actions.add_parser("show", help="one task with every attempt")
    show.add_argument("id", help="the task id (first column of `callbacks list`)")
    for parser in (listing, show):
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        add_database_options(parser)
    p.set_defaults(handler=_callbacks)


def _callbacks(args: argparse.Namespace) -> int:
    try:
        path = database_of(args)
        return asyncio.run(_run(args, path))
    except StoreError as exc:
        print(f"siaga112 callbacks: {exc}", file=sys.stderr)
        return 2


async def _run(args: argparse.Namespace, path: Path) -> int:
    conn = await open_database(path, (CALLBACKS_SCHEMA,))
    try:
        if args.callbacks_action == "show":
            if not args.id.isdigit():
                print(f"siaga112 callbacks: {args.id!r} is not a task id (a number, as `siaga112 callbacks "
                      "list` shows)", file=sys.stderr)
                return 2
            task = await get_task(conn, int(args.id))
            if task is None:
                print(f"siaga112 callbacks: no callback task {args.id} in {path} (see `siaga112 callbacks "
                      "list`)", file=sys.stderr)
                return 1
            attempts = await attempts_of(conn, task.id)
            if args.json:
                print(json.dumps(task_dict(task, attempts), indent=2))
            else:
                _show(task, attempts)
            return 0
        tasks = await list_tasks(conn, statuses=OPEN_STATUSES if args.open else None)
        if args.json:
            print(json.dumps([task_dict(t) for t in tasks], indent=2))
        else:
            _list(tasks)
        return 0
    finally:
        await conn.close()


def task_dict(task: CallbackTask, attempts: list[Attempt] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": task.id, "linkedid": task.linkedid, "number": task.number, "reason": task.reason,
        "call_class": task.call_class, "arrival": task.arrival.isoformat(),
        "created_at": task.created_at.isoformat(), "status": str(task.status),
        "next_attempt_at": task.next_attempt_at.isoformat() if task.next_attempt_at else None,
        "attempts": task.attempts, "flag": task.flag, "operator": task.operator,
        "updated_at": task.updated_at.isoformat(),
    }
    if attempts is not None:
        out["attempt_log"] = [{"n": a.n, "channel_id": a.channel_id, "started_at": a.started_at.isoformat(),
                               "ended_at": a.ended_at.isoformat() if a.ended_at else None,
                               "outcome": str(a.outcome), "detail": a.detail} for a in attempts]
    return out


def _list(tasks: list[CallbackTask]) -> None:
    print(f"{'id':>4} {'created (UTC)':<26} {'number':<16} {'status':<11} {'tries':>5} {'operator':<8} "
          f"reason / flag")
    for t in tasks:
        note = t.flag or t.reason
        print(f"{t.id:>4} {t.created_at.isoformat(timespec='seconds'):<26} {t.number or '(withheld)':<16} "
              f"{t.status!s:<11} {t.attempts:>5} {t.operator or '-':<8} {note}")
    print(f"{len(tasks)} callback task(s)")


def _show(t: CallbackTask, attempts: list[Attempt]) -> None:
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
    for a in attempts:
        ended = a.ended_at.isoformat(timespec="microseconds") if a.ended_at else "-"
        print(f"  attempt {a.n}: {a.outcome} started {a.started_at.isoformat(timespec='microseconds')} "
              f"ended {ended} ({a.channel_id}) {a.detail}")
    if not attempts:
        print("  no attempts yet")
