"""Record a real AMI session from a running lab into ``tests/replay/sessions/NAME.jsonl``.

Usage: ``python -m tests.replay.record_session --lab INSTANCE NAME`` with NAME one of SCENARIOS.
Each line is one AMI event as Asterisk sent it (headers in wire order) plus the engine's receive time.
Noise the tracker never reads (RTCP, VarSet other than SIAGA_*) is left out to keep the files readable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from callflow.ami import AmiConnection, AmiEvent, EventItem
from callflow.lab import LabStatus, status
from callflow.lab.sipp import CallerScript, SippOperator, place_call

SESSIONS = Path(__file__).parent / "sessions"


def _keep(event: AmiEvent) -> bool:
    if event.name.startswith("RTCP") or event.name in {"Newexten", "DeviceStateChange", "Registry"}:
        return False
    if event.name == "VarSet":
        return (event.message.get("Variable") or "").startswith("SIAGA_")
    return True


async def _members(conn: AmiConnection, queue: str, names: list[str], add: bool) -> None:
    for name in names:
        if add:
            await conn.action("QueueAdd", {"Queue": queue, "Interface": f"PJSIP/{name}", "MemberName": name})
        else:
            await conn.action("QueueRemove", {"Queue": queue, "Interface": f"PJSIP/{name}"})


async def answered(lab: LabStatus, conn: AmiConnection) -> None:
    await _members(conn, "emergency", ["op1"], add=True)
    try:
        async with SippOperator(lab.operators["op1"]["port"]):
            await place_call(lab.sip["host"], lab.sip["port"], CallerScript(number="081200001111",
                                                                            hold_ms=1500))
    finally:
        await _members(conn, "emergency", ["op1"], add=False)


async def queue_abandon(lab: LabStatus, conn: AmiConnection) -> None:
    await _members(conn, "emergency", ["op1"], add=True)
    try:
        async with SippOperator(lab.operators["op1"]["port"], answer=False):
            await place_call(lab.sip["host"], lab.sip["port"],
                             CallerScript(number="081200002222", cancel_after_ms=5000))
    finally:
        await _members(conn, "emergency", ["op1"], add=False)


async def short_abandon(lab: LabStatus, conn: AmiConnection) -> None:
    del conn
    await place_call(lab.sip["host"], lab.sip["port"], CallerScript(number="081200003333",
                                                                    cancel_after_ms=1200))


async def next_operator(lab: LabStatus, conn: AmiConnection) -> None:
    await _members(conn, "emergency", ["op1", "op2"], add=True)
    try:
        async with SippOperator(lab.operators["op1"]["port"], answer=False), \
                SippOperator(lab.operators["op2"]["port"]):
            await place_call(lab.sip["host"], lab.sip["port"], CallerScript(number="081200004444",
                                                                            hold_ms=1500))
    finally:
        await _members(conn, "emergency", ["op1", "op2"], add=False)


async def blind_transfer(lab: LabStatus, conn: AmiConnection, exten: str = "202") -> None:
    """op1 answers, then blind-transfers the caller (AMI BlindTransfer on op1's leg) to ``exten`` in
    from-operators: op2's extension, or 112 (back into the queue, where op2 is the member left)."""
    await _members(conn, "emergency", ["op1"], add=True)
    if exten == "112":
        await _members(conn, "emergency", ["op2"], add=True)
    try:
        async with SippOperator(lab.operators["op1"]["port"]), SippOperator(lab.operators["op2"]["port"]):
            call = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"],
                                                  CallerScript(number="081200005555", hold_ms=7000)))
            op_channel = ""
            for _ in range(100):
                _, items = await conn.list_action("CoreShowChannels")
                ops = [i.chan.channel for i in items
                       if getattr(i, "chan", None) and i.chan.channel.startswith("PJSIP/op1-")
                       and i.chan.state_desc == "Up"]
                if ops:
                    op_channel = ops[0]
                    break
                await asyncio.sleep(0.1)
            if op_channel:
                await asyncio.sleep(1.0)  # let the operator talk a moment before transferring
                if exten == "112":
                    await _members(conn, "emergency", ["op1"], add=False)
                await conn.action("BlindTransfer", {"Channel": op_channel, "Exten": exten,
                                                    "Context": "from-operators"})
            await call
    finally:
        await _members(conn, "emergency", ["op1"] if exten != "112" else ["op2"], add=False)


async def blind_transfer_requeue(lab: LabStatus, conn: AmiConnection) -> None:
    await blind_transfer(lab, conn, exten="112")


SCENARIOS: dict[str, Callable[[LabStatus, AmiConnection], Awaitable[None]]] = {
    "answered": answered, "queue_abandon": queue_abandon, "short_abandon": short_abandon,
    "next_operator": next_operator, "blind_transfer": blind_transfer,
    "blind_transfer_requeue": blind_transfer_requeue,
}


async def record(lab: LabStatus, name: str) -> Path:
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    conn = AmiConnection(lab.ami_endpoint(), events)
    await conn.connect()
    lines: list[str] = []

    async def tap() -> None:
        while True:
            item = await events.get()
            if isinstance(item, AmiEvent) and _keep(item) and item.message.get("ActionID") is None:
                lines.append(json.dumps({"received_at": item.received_at.isoformat(),
                                         "headers": [list(h) for h in item.message.headers]},
                                        ensure_ascii=False))

    task = asyncio.create_task(tap())
    try:
        await SCENARIOS[name](lab, conn)
        await asyncio.sleep(1.0)  # trailing Hangup/Cdr events of the last leg
    finally:
        task.cancel()
        await conn.close()
    SESSIONS.mkdir(parents=True, exist_ok=True)
    path = SESSIONS / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lab", default="default")
    parser.add_argument("names", nargs="+", choices=sorted(SCENARIOS))
    args = parser.parse_args()
    lab = status(args.lab)
    if not lab.running:
        print(f"lab {args.lab} is not running", file=sys.stderr)
        return 2
    for name in args.names:
        print(asyncio.run(record(lab, name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
