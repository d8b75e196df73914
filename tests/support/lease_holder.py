"""A lease holder in its own process, for the SIGSTOP test:
``python -m tests.support.lease_holder STORE DIALS NODE [LEASE_S]`` (STORE: a SQLite file or a PostgreSQL
URL; DIALS: a file; LEASE_S: the lease's length, default 1 s, renewed every tenth of it and at most every
second: bench/leader.py runs the engine's defaults).

It runs the engine's real cluster component (:class:`callflow.cluster.service.ClusterNode`: heartbeat and
lease on the shared store) and answers commands on stdin, one JSON line on stdout each:

- ``fence``: capture this engine's fence now (as the callback service does just before a claim);
- ``claim TASK``: claim attempt 1 of callback task TASK with the captured fence (the real
  :func:`queues.callbacks.store.add_attempt`); if the store grants it, "dial" (a line in the file DIALS,
  standing in for the Originate, which the service sends only after a granted claim);
- ``state``: this engine's fence as it sees it now.

A test freezes the process (SIGSTOP) between ``fence`` and ``claim``: exactly the pause a leader can take
between checking its lease and doing the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path

import structlog

from callflow.ami.client import utc_now
from callflow.cluster.rules import Fence, LeaseTiming
from callflow.cluster.service import ClusterNode
from callflow.store import StoreLocation, open_database, parse_location
from queues.callbacks.store import CALLBACKS_SCHEMA, add_attempt


def timing(lease_s: float) -> LeaseTiming:
    return LeaseTiming(ttl_s=lease_s, renew_s=min(1.0, lease_s / 10), margin_s=min(1.0, lease_s / 4))


def say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def main(database: StoreLocation, dials: Path, node_name: str, lease_s: float) -> None:
    node = ClusterNode(database, node_name, timing=timing(lease_s), lost_after_s=lease_s,
                       require_asterisk=False)
    runner = asyncio.create_task(node.run(None))
    conn = await open_database(database, (CALLBACKS_SCHEMA,))
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    captured: Fence | None = None
    say(started=node_name)
    try:
        while line := (await reader.readline()).decode().strip():
            command, _, arg = line.partition(" ")
            if command == "fence":
                captured = node.fence()
                say(fence=captured.fencing if captured else None)
            elif command == "state":
                now = node.fence()
                say(fence=now.fencing if now else None)
            elif command == "claim":
                task = int(arg)
                claimed = await add_attempt(conn, task, 1, f"siaga-cb-{task}-1-{node_name}", utc_now(),
                                            fence=captured)
                if claimed:
                    with dials.open("a") as out:
                        out.write(f"{node_name} {task}\n")
                say(claimed=claimed, fencing=captured.fencing if captured else None)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await conn.close()


if __name__ == "__main__":
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout: the answers
    asyncio.run(main(parse_location(sys.argv[1]), Path(sys.argv[2]), sys.argv[3],
                     float(sys.argv[4]) if len(sys.argv) > 4 else 1.0))
