"""``siaga112 operator login | logout | pause | resume | list``: operators in the queues.

login/logout/pause/resume ask Asterisk over AMI (QueueAdd / QueueRemove / QueuePause); the running engine
sees Asterisk's events and records the transitions. ``list`` shows the engine's state table (database).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from callflow.ami import AmiConnection, EventItem
from callflow.ami.errors import AmiError
from callflow.ami.lists import queue_status
from callflow.commands._locate import EXIT_REFUSED, EXIT_USAGE, Location, add_location_everywhere, run
from callflow.commands.serve import endpoint_for
from callflow.policies import queue_policy
from callflow.settings import EngineSettings
from callflow.store import open_database
from queues import SCHEMA, OperatorActionError, QueuePolicy, UnknownOperator, login, logout, set_paused
from queues.mirror import state_interface
from queues.policy import interface


def register(sub: Any) -> None:
    p = sub.add_parser("operator", help="operators: login, logout, pause, resume, list")
    ops = p.add_subparsers(dest="operator_command", metavar="ACTION", required=True)
    p_in = ops.add_parser("login", help="add the operator to the queues the site file lists for them")
    p_in.add_argument("name")
    p_in.set_defaults(handler=_run(_login))
    p_out = ops.add_parser("logout", help="remove the operator from every queue")
    p_out.add_argument("name")
    p_out.set_defaults(handler=_run(_logout))
    p_pause = ops.add_parser("pause", help="no new calls for the operator (a call in progress goes on)")
    p_pause.add_argument("name")
    p_pause.add_argument("--reason", required=True, help="why (shown and stored), e.g. break, briefing")
    p_pause.set_defaults(handler=_run(_pause))
    p_resume = ops.add_parser("resume", help="end the operator's pause")
    p_resume.add_argument("name")
    p_resume.set_defaults(handler=_run(_resume))
    p_list = ops.add_parser("list", help="each operator's state, since when, pause reason, queues")
    p_list.add_argument("--json", action="store_true", help="machine-readable output")
    p_list.set_defaults(handler=_run(_list))
    add_location_everywhere(p, ops)


def _run(action: Any) -> Any:
    def handler(args: argparse.Namespace) -> int:
        def work() -> int:
            where = Location.of(args)
            settings = where.settings
            policy = queue_policy(where.site.site)
            try:
                code: int = asyncio.run(action(args, settings, policy, where))
            except UnknownOperator as exc:
                print(f"siaga112 operator: {exc} (site file read: {where.site_file})", file=sys.stderr)
                return EXIT_REFUSED
            except OperatorActionError as exc:
                print(f"siaga112 operator {args.operator_command}: {exc}", file=sys.stderr)
                return EXIT_USAGE
            return code
        return run(f"operator {args.operator_command}", work)
    return handler


async def _connect(args: argparse.Namespace, settings: EngineSettings) -> AmiConnection:
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    try:
        endpoint = endpoint_for(settings, args.lab)
    except ValueError as exc:  # no AMI secret configured
        raise OperatorActionError(str(exc)) from None
    conn = AmiConnection(endpoint, events)
    try:
        await conn.connect()
    except (AmiError, OSError) as exc:
        raise OperatorActionError(f"cannot reach Asterisk's AMI at {endpoint.where()}: {exc}; is Asterisk "
                                  "running (siaga112 lab status) and the address right?") from exc
    return conn


async def _login(args: argparse.Namespace, settings: EngineSettings, policy: QueuePolicy,
                 where: Location) -> int:
    policy.memberships(args.name)
    conn = await _connect(args, settings)
    try:
        # two nodes: the queues ask the shared device state the operator mirror keeps (queues/mirror)
        shared = state_interface(args.name) if settings.node.name else None
        result = await login(conn, policy, args.name, state_interface=shared)
    finally:
        await conn.close()
    print(f"{args.name}: logged in to {', '.join(result.done) or 'no new queue'}"
          + (f" ({'; '.join(result.notes)})" if result.notes else "") + f"; site file {where.site_file}")
    return 0


async def _logout(args: argparse.Namespace, settings: EngineSettings, policy: QueuePolicy,
                  where: Location) -> int:
    policy.memberships(args.name)
    conn = await _connect(args, settings)
    try:
        result = await logout(conn, policy, args.name)
    finally:
        await conn.close()
    del where
    print(f"{args.name}: logged out of {', '.join(result.done)}")
    return 0


async def _pause(args: argparse.Namespace, settings: EngineSettings, policy: QueuePolicy,
                 where: Location) -> int:
    del where
    return await _set_paused(args, settings, policy, True, args.reason)


async def _resume(args: argparse.Namespace, settings: EngineSettings, policy: QueuePolicy,
                  where: Location) -> int:
    del where
    return await _set_paused(args, settings, policy, False, "")


async def _set_paused(args: argparse.Namespace, settings: EngineSettings, policy: QueuePolicy, paused: bool,
                      reason: str) -> int:
    policy.memberships(args.name)
    conn = await _connect(args, settings)
    try:
        await set_paused(conn, policy, args.name, paused, reason)
        status = await queue_status(conn)
    except AmiError as exc:
        raise OperatorActionError(f"could not read the queues after the change: {exc}") from exc
    finally:
        await conn.close()
    in_call = any(m.in_call for m in status.members if m.interface == interface(args.name))
    if paused and in_call:
        print(f"{args.name}: pause pending ({reason}): no new calls; the pause shows when the current call "
              "ends")
    else:
        print(f"{args.name}: {'paused (' + reason + ')' if paused else 'resumed'}")
    return 0


async def _list(args: argparse.Namespace, settings: EngineSettings, policy: QueuePolicy,
                where: Location) -> int:
    del settings
    path = where.existing_database()
    conn = await open_database(path, [SCHEMA])
    try:
        async with conn.execute("SELECT operator, state, since, reason, pause_pending, queues "
                                "FROM operator_state") as cur:
            rows = {r[0]: r for r in await cur.fetchall()}
    finally:
        await conn.close()
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    for name in sorted(set(policy.operators) | set(rows)):
        row = rows.get(name)
        if row is None:
            out.append({"operator": name, "state": "offline", "since": None, "seconds": None, "reason": "",
                        "pause_pending": False, "queues": []})
            continue
        since = datetime.fromisoformat(row[2])
        out.append({"operator": name, "state": row[1], "since": since.isoformat(),
                    "seconds": round((now - since).total_seconds(), 1), "reason": row[3],
                    "pause_pending": bool(row[4]), "queues": json.loads(row[5])})
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{'OPERATOR':<10} {'STATE':<9} {'SINCE (UTC)':<20} {'FOR':>8}  {'QUEUES':<24} REASON")
    for o in out:
        since_text = o["since"][:19].replace("T", " ") if o["since"] else "-"
        seconds = f"{o['seconds']:.0f} s" if o["seconds"] is not None else "-"
        reason = o["reason"] + (" (pause pending: after this call)" if o["pause_pending"] else "")
        print(f"{o['operator']:<10} {o['state']:<9} {since_text:<20} {seconds:>8}  "
              f"{','.join(o['queues']) or '-':<24} {reason}")
    print(f"(state table of the engine, database {where.database}; site file {where.site_file}; an engine "
          "that is not running shows its last view)")
    return 0
