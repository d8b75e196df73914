"""Failover under load: two Asterisk nodes behind Kamailio (``siaga112 lab up --nodes 2``), one engine per
node, a steady stream of SIPp citizens calling 112 through Kamailio (all press 1: emergency), SIPp operators
op1..op4 members of both queues on both nodes (each node rings them through Kamailio); one fault mid-run;
then every call a node saw must have exactly one record.

Faults (--fault NAME; FAULTS below: each is one coroutine that injects it and says when it ended):
  asterisk-a-kill   SIGKILL of node a's Asterisk (the node new calls go to first), calls up on it; it stays
                    down for the rest of the run

The engine faults of issue 20 (the leader engine killed, the leader SIGSTOPped for 20 s, PostgreSQL
stopped for 10 s) belong beside it once the leader lease and the PostgreSQL store are on main: add an
entry to FAULTS.

Measured:
- new_call_failover_s: probe calls dialled one after another right after the fault (--probes, every
  --probe-every-s); for each, from the moment its SIPp was started to the caller channel a node's
  Asterisk made for it (that node's own AMI Timestamp); the largest. -1 if a probe never reached a node.
- offered: caller channels either node made (the benchmark's own AMI session per node); records: the
  engines' stored records of the run's numbers; lost_records: offered without a record, of which
  up_on_killed: calls that were up on the killed node when it died and still have no record (the
  leader records them ``node_lost``, README "Two engines on one store");
  duplicated: extra records for one caller (a call taken by both nodes would show here).
- node_lost_task_s: from the fault to the last ``node_lost`` record of the run; -1 when there is none.

    .venv/bin/python bench/failover.py [--fault asterisk-a-kill] [--lab INSTANCE] [--rate 1]
        [--seconds 30] [--fault-at 10] [--hold-ms 4000]

Without --lab it starts its own two-node lab (bench-failover-<checkout digest>) on free ports and stops it
afterwards. The engines' store, one for both: --store postgresql (default; a private PostgreSQL with fsync
on) or sqlite (the two-node lab's file). Last line:
``RESULT new_call_failover_s=N lost_records=N duplicated=N node_lost_task_s=N``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import loadkit as kit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/support/pg.py, the private PostgreSQL

from callflow.ami import AmiSession
from callflow.calls.model import CallRecord
from callflow.calls.records import record_from_dict
from callflow.lab import ClusterStatus, LabStatus, cluster_status, down_cluster, lab_database, up_cluster
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, place_call
from tests.support.pg import remove_private_postgres, start_private_postgres


@dataclass
class Run:
    """What a fault may touch and what it reports."""

    cluster: ClusterStatus
    nodes: dict[str, LabStatus]
    engines: dict[str, kit.Engine]
    fault_started: datetime | None = None
    fault_ended: datetime | None = None
    killed_node: str | None = None
    notes: list[str] = field(default_factory=list)


Fault = Callable[[Run, argparse.Namespace], Awaitable[None]]


async def asterisk_a_kill(run: Run, args: argparse.Namespace) -> None:
    """SIGKILL of the first node's Asterisk: no goodbye to Kamailio or its engine."""
    del args
    first = next(iter(run.nodes))
    pid = run.nodes[first].pid
    if pid is None:
        raise SystemExit(f"node {first}'s Asterisk is not running")
    run.fault_started = datetime.now(UTC)
    os.kill(pid, signal.SIGKILL)
    run.fault_ended = run.fault_started
    run.killed_node = first
    run.notes.append(f"node {first}'s Asterisk (pid {pid}) killed at {run.fault_started.isoformat()}")


FAULTS: dict[str, Fault] = {"asterisk-a-kill": asterisk_a_kill}


@contextlib.contextmanager
def two_node_lab(instance: str | None) -> Iterator[ClusterStatus]:
    if instance is not None:
        st = cluster_status(instance)
        if not (st.front_running and all(n.running for n in st.nodes().values())):
            raise SystemExit(f"two-node lab {instance!r} is not fully running: `siaga112 lab up --nodes 2 "
                             f"--instance {instance} --free-ports`")
        yield st
        return
    repo = Path(__file__).resolve().parents[1]
    name = f"bench-failover-{hashlib.sha1(str(repo).encode(), usedforsecurity=False).hexdigest()[:6]}"
    down_cluster(name)
    st = up_cluster(name, free=True)
    try:
        yield st
    finally:
        down_cluster(name)


@contextlib.contextmanager
def stores_for(nodes: dict[str, LabStatus], store: str) -> Iterator[dict[str, str]]:
    """The one store both engines journal into (each under its node's name): with ``postgresql`` a
    database on a private PostgreSQL (tests/support/pg.py: initdb/pg_ctl on a free loopback port, fsync
    on, removed afterwards); with ``sqlite`` the two-node lab's file."""
    if store == "sqlite":
        yield {name: str(lab_database(st.instance)) for name, st in nodes.items()}
        return
    server = start_private_postgres(durable=True)
    try:
        url = server.create_database("failover")
        yield dict.fromkeys(nodes, url)
    finally:
        remove_private_postgres(server)


def read_records(database: str, prefix: str) -> list[CallRecord]:
    """The run's records in one store, read with the product's own `calls export` (either store)."""
    out = subprocess.run([sys.executable, "-m", "callflow.cli", "calls", "export", "--format", "json",
                          "--database", database], capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        return []  # no database yet (an engine that never stored anything)
    rows = [{k: v for k, v in row.items() if k != "nature"} for row in json.loads(out.stdout)]
    return [r for r in map(record_from_dict, rows) if r.caller_number.startswith(prefix)]


@contextlib.asynccontextmanager
async def engines_for(nodes: dict[str, LabStatus], stores: dict[str, str]
                      ) -> AsyncIterator[dict[str, kit.Engine]]:
    # no callbacks dialled: there is no citizen behind the lab's callback trunk in this benchmark
    running = {name: kit.Engine(st.instance, stores[name], env={"SIAGA112_CALLBACKS__DIAL": "false"})
               for name, st in nodes.items()}
    try:
        await asyncio.gather(*(engine.start() for engine in running.values()))
        yield running
    finally:
        await asyncio.gather(*(engine.stop() for engine in running.values()))


async def probe(front: tuple[str, int], number: str, workdir: Path) -> datetime:
    """One probe call through the front; returns when it was dialled."""
    dialled = datetime.now(UTC)
    await place_call(*front, CallerScript(number=number, dtmf=PRESS_EMERGENCY, hold_ms=1500, route_set=True),
                     timeout=60, workdir=workdir)
    return dialled


async def all_records(databases: set[str], prefix: str, expected: set[str], timeout: float
                      ) -> list[CallRecord]:
    """The run's records in every engine's database, polled until each offered number has one."""
    deadline = time.monotonic() + timeout
    while True:
        records = [r for database in sorted(databases)
                   for r in await asyncio.to_thread(read_records, database, prefix)]
        if expected <= {r.caller_number for r in records} or time.monotonic() > deadline:
            return records
        await asyncio.sleep(1.0)


async def bench(args: argparse.Namespace, cst: ClusterStatus, stores: dict[str, str]) -> int:
    prefix = f"0815{kit.run_tag()}"
    work = kit.workdir("failover")
    if True:
        nodes = cst.nodes()
        front = (str(cst.front["host"]), int(cst.front["port"]))
        first = next(iter(nodes.values()))
        async with contextlib.AsyncExitStack() as stack:
            watchers = {name: await stack.enter_async_context(kit.Watcher(st, prefix))
                        for name, st in nodes.items()}
            sessions = {}
            for name, st in nodes.items():
                session = AmiSession(st.ami_endpoint())
                sessions[name] = session
                task = asyncio.create_task(session.run())
                stack.callback(task.cancel)
                stack.callback(session.stop)
                async with asyncio.timeout(20):
                    await session.connected.wait()
            engines = await stack.enter_async_context(engines_for(nodes, stores))
            # the SIPp operators answer on node a's block; every node's queues have them
            await stack.enter_async_context(kit.operators(first, sessions[next(iter(nodes))]))
            for session in list(sessions.values())[1:]:
                for queue in kit.QUEUES:
                    for op in kit.OPERATORS:
                        await kit.add_member(session, queue, op)
            run = Run(cst, nodes, engines)
            count = max(1, round(args.rate * args.seconds))
            numbers = [f"{prefix}{i:06d}" for i in range(count)]
            probes = [f"{prefix}9{i:05d}" for i in range(args.probes)]
            load = asyncio.create_task(kit.rate_callers(first, numbers, PRESS_EMERGENCY, rate=args.rate,
                                                        hold_ms=args.hold_ms, workdir=work, front=front))
            await asyncio.sleep(args.fault_at)
            before_fault = {name: set(w.hungup) for name, w in watchers.items()}
            await FAULTS[args.fault](run, args)
            if run.killed_node is not None:  # its AMI is gone for good: no reconnect warnings every second
                watchers[run.killed_node].session.stop()
                sessions[run.killed_node].stop()
            dialled: dict[str, datetime] = {}
            tasks = []
            for i, number in enumerate(probes):
                tasks.append(asyncio.create_task(probe(front, number, work)))
                await asyncio.sleep(args.probe_every_s if i + 1 < len(probes) else 0)
            for number, task in zip(probes, tasks, strict=True):
                dialled[number] = await task
            sipp = await load
            offered: dict[str, list[str]] = {}
            first_seen: dict[str, datetime] = {}
            for watcher in watchers.values():
                for number, lids in watcher.offered.items():
                    offered.setdefault(number, []).extend(lids)
                for number, seen in watcher.first_seen.items():
                    first_seen[number] = min(seen, first_seen.get(number, seen))
            records = await all_records(set(stores.values()), prefix, set(offered), args.settle_s)
    return report(args, run, Measured(watchers, before_fault, offered, first_seen, dialled, records, sipp))


@dataclass
class Measured:
    watchers: dict[str, kit.Watcher]
    hung_up_before_fault: dict[str, set[str]]
    offered: dict[str, list[str]]
    first_seen: dict[str, datetime]
    dialled: dict[str, datetime]  # probe number -> when its SIPp was started
    records: list[CallRecord]
    sipp: kit.SippRun


def report(args: argparse.Namespace, run: Run, m: Measured) -> int:
    tally = kit.tally(m.offered, m.records)
    waits = [(m.first_seen[n] - at).total_seconds() if n in m.first_seen else -1.0
             for n, at in m.dialled.items()]
    failover = -1.0 if any(w < 0 for w in waits) else max(waits, default=-1.0)
    up_on_killed = []
    if run.killed_node is not None:
        killed, earlier = m.watchers[run.killed_node], m.hung_up_before_fault[run.killed_node]
        up_on_killed = [n for n in tally.lost if n in killed.offered and n not in earlier]
    node_lost = [engine.record_logged[r.linkedid] for r in m.records if str(r.outcome) == "node_lost"
                 for engine in run.engines.values() if r.linkedid in engine.record_logged]
    node_lost_s = (max(node_lost) - run.fault_started).total_seconds() if node_lost and run.fault_started \
        else -1.0
    for note in run.notes:
        print(note)
    print(f"SIPp load: created {m.sipp.created}, successful {m.sipp.successful}, failed {m.sipp.failed} "
          f"({args.rate}/s for {args.seconds} s, hold {args.hold_ms} ms)")
    print(f"probes after the fault: {', '.join(f'{w:.3f}' for w in waits)} s from dial to a node's channel")
    print(f"offered {tally.offered}, records {tally.records} (node_lost: {len(node_lost)}), lost "
          f"{len(tally.lost)} (up on the killed node when it died: {len(up_on_killed)}), duplicated "
          f"{tally.duplicated}, stray {tally.stray}")
    if tally.lost:
        print(f"lost numbers: {', '.join(tally.lost[:20])}")
    print(f"RESULT new_call_failover_s={failover:.3f} lost_records={len(tally.lost)} "
          f"duplicated={tally.duplicated} node_lost_task_s={node_lost_s:.3f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fault", choices=sorted(FAULTS), default="asterisk-a-kill")
    parser.add_argument("--lab", metavar="INSTANCE", help="a running two-node lab (default: start one)")
    parser.add_argument("--store", choices=["postgresql", "sqlite"], default="postgresql",
                        help="the engines' one store (default: a private PostgreSQL)")
    parser.add_argument("--rate", type=float, default=1.0, help="calls per second of the steady load")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the steady load dials")
    parser.add_argument("--fault-at", type=float, default=10.0, help="seconds into the load")
    parser.add_argument("--hold-ms", type=int, default=4000, help="each caller stays this long after 1")
    parser.add_argument("--probes", type=int, default=8, help="probe calls after the fault")
    parser.add_argument("--probe-every-s", type=float, default=0.5)
    parser.add_argument("--settle-s", type=float, default=20.0, help="wait this long for missing records")
    args = parser.parse_args()
    started = time.monotonic()
    with two_node_lab(args.lab) as cst, stores_for(cst.nodes(), args.store) as stores:
        # the lab is started outside the loop: `lab up` runs its own
        code = asyncio.run(bench(args, cst, stores))
    print(f"(took {time.monotonic() - started:.0f} s)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
