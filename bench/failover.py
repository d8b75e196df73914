"""Failover under load: two Asterisk nodes behind Kamailio (``siaga112 lab up --nodes 2``), one engine per
node, a steady stream of SIPp citizens calling 112 through Kamailio (all press 1: emergency), SIPp operators
op1..op4 members of both queues on both nodes (each node rings them through Kamailio); one fault mid-run;
then every call a node saw must have exactly one record.

Faults (--fault NAME, or `all`: each in turn, in this order, each on fresh engines, a fresh database
(PostgreSQL) and its own caller numbers; FAULTS below: each is one coroutine that injects it):
  leader-engine-kill  SIGKILL of the engine holding the leader lease (node a's: its engine is started first
                      and leads), its Asterisk taking calls on; the other engine takes the lease and records
                      the killed engine's calls up ``node_lost``; the killed engine is started again
                      --restart-after-s after the take-over (as a service manager would). Timed:
                      leader_kill_takeover_s (kill to the other node holding an unexpired lease, read from the
                      store's lease row every 50 ms)
  leader-engine-stop  SIGSTOP of the leader engine for --freeze-s (20 s), then SIGCONT. Timed:
                      leader_stop_takeover_s; woken_fenced=1 when the woken engine logged cluster.lease_lost
  postgresql-stop     the private PostgreSQL stopped (fast shutdown) for --pg-down-s (10 s), then started on
                      the same port: the engines spill their journals and replay them. Timed:
                      pg_stop_leader_back_s (PostgreSQL started to a leader holding an unexpired lease)
  asterisk-a-kill     SIGKILL of node a's Asterisk (the node new calls go to first), calls up on it; it stays
                      down for the rest of the run (so it comes last in `all`)

Measured:
- new_call_failover_s: probe calls dialled one after another right after the fault (--probes, every
  --probe-every-s); for each, from the moment its SIPp was started to the caller channel a node's
  Asterisk made for it (that node's own AMI Timestamp); the largest. -1 if a probe never reached a node.
- offered: caller channels either node made (the benchmark's own AMI session per node); records: the
  engines' stored records of the run's numbers (the callback calls' own records apart); lost_records:
  offered without a record, of which up_on_killed: calls that were up on the killed node when it died
  and still have no record (the leader records them ``node_lost``, README "Two engines on one store");
  duplicated: extra records for one caller (a call taken by both nodes would show here).
- node_lost_task_s: from the fault to the last ``node_lost`` record of the run (each call's record as
  first logged by an engine); -1 when there is none.
- callbacks, really dialled: each node's callback trunk reaches a SIPp citizen that rings and never
  answers (-trace_msg on); the engines read the lab's site with short callback timers (--cb-first-s 3,
  --cb-retry-s 2, --cb-ring-s 3, --cb-attempts 4), so tasks come due and are retried during the fault.
  Tasks come from citizens who hang up in the IVR before choosing (--abandon-rate over --seconds, starting
  --abandon-lead-s before the load so the first leader has attempts ringing when the fault strikes; each
  hangs up after --abandon-after-ms: "possible emergency") and from the calls a fault leaves ``node_lost``.
  After the load the benchmark waits (--callbacks-settle-s) until every task is done with. callback_tasks,
  callback_attempts (the store's), callback_invites (INVITEs the citizens received, one per Call-ID), of
  which callback_invites_in_fault (from the fault's start to its end, at least 20 s); the INVITEs before
  the fault and each node's trunk's are printed.
- double_dials: from that ground truth (bench/dials.py): INVITEs beyond one per attempt (each INVITE
  belongs to the latest attempt of its number started before it: an attempt dialled twice, or a woken
  leader's stale Originate landing after its successor's attempt) plus INVITEs with no attempt started
  before them; the engines' own ``callback.dialling`` lines per attempt are printed as a cross-check.
  leader-engine-stop adds woken_dials (the woken engine's ``callback.dialling`` lines until it leads again,
  if ever) and woken_claims_refused.

    .venv/bin/python bench/failover.py [--fault asterisk-a-kill|leader-engine-kill|leader-engine-stop|
        postgresql-stop|all] [--lab INSTANCE] [--rate 1] [--seconds 30] [--fault-at 10] [--hold-ms 4000]

Without --lab it starts its own two-node lab (bench-failover-<checkout digest>) on free ports and stops it
afterwards. The engines' store, one for both: --store postgresql (default; a private PostgreSQL with fsync
on) or sqlite (the two-node lab's file; postgresql-stop needs postgresql). One line per fault
(``<fault>: new_call_failover_s=N offered=N records=N lost_records=N duplicated=N node_lost_task_s=N
double_dials=N callback_tasks=N callback_attempts=N callback_invites=N ...``), then the last line: ``RESULT
new_call_failover_s=N lost_records=N duplicated=N node_lost_task_s=N double_dials=N callback_tasks=N
callback_attempts=N callback_invites=N`` (totals over the faults run; the failover and node_lost figures are
asterisk-a-kill's when it ran) and each fault's own keys (leader_kill_takeover_s, leader_kill_node_lost_s,
leader_stop_takeover_s, woken_fenced, woken_dials, pg_stop_lost, pg_stop_duplicated, pg_stop_leader_back_s).
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dials as dialcount
import loadkit as kit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/support/pg.py, the private PostgreSQL

from callflow.ami import AmiSession
from callflow.calls.model import CallRecord
from callflow.calls.records import record_from_dict
from callflow.cluster import store as cluster_store
from callflow.cluster.rules import Lease
from callflow.lab import (
    ClusterStatus,
    LabStatus,
    cluster_status,
    down_cluster,
    lab_database,
    lab_site_file,
    up_cluster,
)
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippCitizen, place_call
from callflow.store import DatabaseError, StoreError, open_database
from queues.callbacks.rules import TaskStatus
from queues.callbacks.store import CALLBACKS_SCHEMA, attempts_of, list_tasks
from tests.support.engine import site_file_with_callbacks
from tests.support.pg import PrivatePostgres, remove_private_postgres, start_private_postgres


@dataclass
class Run:
    """What a fault may touch and what it reports."""

    cluster: ClusterStatus
    nodes: dict[str, LabStatus]
    engines: dict[str, kit.Engine]
    store: str  # the engines' one store (a SQLite path or a PostgreSQL URL)
    server: PrivatePostgres | None  # the private PostgreSQL under it (None: SQLite)
    fault_started: datetime | None = None
    fault_ended: datetime | None = None
    recovered: datetime | None = None  # the fault's own "back to normal" instant (see each fault)
    killed_node: str | None = None
    woken: tuple[kit.Engine, int] | None = None  # the engine woken from SIGSTOP, its log lines from then on
    notes: list[str] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)  # per-fault RESULT keys


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


async def read_lease(location: str) -> Lease | None:
    """The leader lease as the store has it now (None: the store cannot be read)."""
    try:
        conn = await open_database(location, (cluster_store.CLUSTER_SCHEMA,))
    except StoreError:
        return None
    try:
        return await cluster_store.read_lease(conn)
    except DatabaseError:
        return None
    finally:
        await conn.close()


async def leader_of(run: Run, *, other_than: str | None = None, fencing_above: int = -1,
                    timeout: float = 60) -> Lease:
    """Wait until a node (not ``other_than``) holds an unexpired lease with a fencing number above
    ``fencing_above``; polled every 50 ms."""
    async with asyncio.timeout(timeout):
        while True:
            lease = await read_lease(run.store)
            if lease is not None and lease.holder in run.engines and lease.holder != other_than \
                    and lease.fencing > fencing_above and lease.expires_at > datetime.now(UTC):
                return lease
            await asyncio.sleep(0.05)


async def leader_engine_kill(run: Run, args: argparse.Namespace) -> None:
    """SIGKILL of the engine holding the lease (its Asterisk goes on taking calls); the other engine takes
    the lease and records the killed engine's calls ``node_lost``; the killed engine is started again
    ``--restart-after-s`` after the take-over (as its service manager would), recovers its node's calls
    from its journal and Asterisk's CDR, and must leave those already recorded alone."""
    lease = await leader_of(run)
    engine = run.engines[lease.holder]
    run.fault_started = datetime.now(UTC)
    await engine.stop(signal.SIGKILL)
    run.fault_ended = run.fault_started
    taken = await leader_of(run, other_than=lease.holder, fencing_above=lease.fencing)
    run.recovered = datetime.now(UTC)
    took = (run.recovered - run.fault_started).total_seconds()
    run.figures["leader_kill_takeover_s"] = f"{took:.3f}"
    run.notes.append(f"leader engine {lease.holder} (pid {engine.pid}, fencing {lease.fencing}) killed at "
                     f"{run.fault_started.isoformat()}; {taken.holder} leads (fencing {taken.fencing}) "
                     f"{took:.3f} s later")
    await asyncio.sleep(args.restart_after_s)
    await engine.start()
    run.notes.append(f"engine {lease.holder} started again {args.restart_after_s} s after the take-over")


async def leader_engine_stop(run: Run, args: argparse.Namespace) -> None:
    """SIGSTOP of the engine holding the lease for ``--freeze-s`` (20 s), then SIGCONT: the other engine
    takes over; the woken one must find itself fenced out (it dials nothing, records nothing twice)."""
    lease = await leader_of(run)
    engine = run.engines[lease.holder]
    assert engine.proc is not None  # noqa: S101 - started
    run.fault_started = datetime.now(UTC)
    mark = len(engine.lines)
    engine.proc.send_signal(signal.SIGSTOP)
    try:
        taken = await leader_of(run, other_than=lease.holder, fencing_above=lease.fencing,
                                timeout=args.freeze_s + 30)
        run.recovered = datetime.now(UTC)
        took = (run.recovered - run.fault_started).total_seconds()
        run.figures["leader_stop_takeover_s"] = f"{took:.3f}"
        await asyncio.sleep(max(0.0, args.freeze_s - took))
    finally:
        engine.proc.send_signal(signal.SIGCONT)
    run.fault_ended = datetime.now(UTC)
    run.woken = (engine, mark)
    run.notes.append(f"leader engine {lease.holder} (pid {engine.pid}, fencing {lease.fencing}) stopped at "
                     f"{run.fault_started.isoformat()} for {args.freeze_s} s; {taken.holder} leads (fencing "
                     f"{taken.fencing}) {took:.3f} s after the SIGSTOP")
    run.figures["woken_fenced"] = str(int(await woken_fenced(engine, mark)))


async def woken_fenced(engine: kit.Engine, since: int, timeout: float = 15) -> bool:
    """Whether the woken engine logged that it lost the lease (``cluster.lease_lost``) after ``since``."""
    with contextlib.suppress(RuntimeError):
        await engine.wait_for("cluster.lease_lost", since=since, timeout=timeout)
        return True
    return False


async def postgresql_stop(run: Run, args: argparse.Namespace) -> None:
    """The private PostgreSQL stopped (fast shutdown: sessions cut) for ``--pg-down-s`` (10 s), then
    started on the same port: the engines spill their journals and replay them; a leader is back."""
    if run.server is None:
        raise SystemExit("postgresql-stop needs --store postgresql")
    run.fault_started = datetime.now(UTC)
    await asyncio.to_thread(run.server.stop)
    await asyncio.sleep(args.pg_down_s)
    await asyncio.to_thread(run.server.start)
    run.fault_ended = datetime.now(UTC)
    lease = await leader_of(run)
    run.recovered = datetime.now(UTC)
    took = (run.recovered - run.fault_ended).total_seconds()
    run.figures["pg_stop_leader_back_s"] = f"{took:.3f}"
    run.notes.append(f"PostgreSQL stopped at {run.fault_started.isoformat()} for {args.pg_down_s} s; "
                     f"{lease.holder} leads (fencing {lease.fencing}) {took:.3f} s after it started again")


FAULTS: dict[str, Fault] = {
    # `all` runs them in this order: node a's Asterisk, killed, stays down, so it comes last
    "leader-engine-kill": leader_engine_kill,
    "leader-engine-stop": leader_engine_stop,
    "postgresql-stop": postgresql_stop,
    "asterisk-a-kill": asterisk_a_kill,
}


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


@dataclass
class Stores:
    """The engines' one store (both under their node's name), a fresh one per fault where it can be:
    with ``postgresql`` a new database on one private PostgreSQL (tests/support/pg.py: initdb/pg_ctl on a
    free loopback port, fsync on, removed afterwards); with ``sqlite`` the two-node lab's file (the faults'
    numbers keep their calls apart)."""

    kind: str
    cluster: ClusterStatus
    server: PrivatePostgres | None

    def fresh(self, fault: str) -> str:
        if self.server is not None:
            return self.server.create_database(fault.replace("-", "_"))
        return str(lab_database(self.cluster.instance))


@contextlib.contextmanager
def stores_for(cluster: ClusterStatus, kind: str) -> Iterator[Stores]:
    if kind == "sqlite":
        yield Stores(kind, cluster, None)
        return
    server = start_private_postgres(durable=True)
    try:
        yield Stores(kind, cluster, server)
    finally:
        remove_private_postgres(server)


def read_records(database: str, prefix: str) -> list[CallRecord]:
    """The run's records in one store, read with the product's own `calls export` (either store); the
    callback calls' records (the engine's own calls to the citizens) are among them."""
    out = subprocess.run([sys.executable, "-m", "callflow.cli", "calls", "export", "--format", "json",
                          "--database", database], capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        return []  # no database yet (an engine that never stored anything)
    rows = [{k: v for k, v in row.items() if k != "nature"} for row in json.loads(out.stdout)]
    return [r for r in map(record_from_dict, rows) if r.caller_number.startswith(prefix)]


@contextlib.asynccontextmanager
async def engines_for(nodes: dict[str, LabStatus], store: str, site: Path
                      ) -> AsyncIterator[dict[str, kit.Engine]]:
    # callbacks dialled (to the SIPp citizens behind each node's callback trunk) on the site's short timers
    env = {"SIAGA112_CALLBACKS__DIAL": "true", "SIAGA112_SITE_FILE": str(site)}
    running = {name: kit.Engine(st.instance, store, env=env) for name, st in nodes.items()}
    try:
        # node a's engine first, and the leader before node b's starts: the engine faults then hit the
        # leader of the node that takes the calls (Kamailio offers node a first)
        first, *others = running.values()
        mark = len(first.lines)
        await first.start()
        await first.wait_for("cluster.leader", since=mark, timeout=30)
        await asyncio.gather(*(engine.start() for engine in others))
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
    """The run's records of citizens' calls (not the callback calls) in every engine's database, polled
    until each offered number has one."""
    deadline = time.monotonic() + timeout
    while True:
        records = [r for database in sorted(databases)
                   for r in await asyncio.to_thread(read_records, database, prefix) if not r.is_callback]
        if expected <= {r.caller_number for r in records} or time.monotonic() > deadline:
            return records
        await asyncio.sleep(1.0)


async def bench(args: argparse.Namespace, cst: ClusterStatus, stores: Stores) -> int:
    faults = list(FAULTS) if args.fault == "all" else [args.fault]
    results = []
    for index, name in enumerate(faults):
        store = stores.fresh(name)
        print(f"== {name} (store {where(store)})", flush=True)
        run, measured = await one_fault(args, cst, name, f"0815{kit.run_tag()}{index}", store=store,
                                        server=stores.server)
        results.append(report(args, name, run, measured))
    return final(results)


def where(store: str) -> str:
    return store.rsplit("/", 1)[-1] if store.startswith("postgresql") else store


async def one_fault(args: argparse.Namespace, cst: ClusterStatus, fault: str, prefix: str, *, store: str,
                    server: PrivatePostgres | None) -> tuple[Run, Measured]:
    """One fault on fresh engines (and a fresh PostgreSQL database): load, the fault, probes, records."""
    work = kit.workdir("failover")
    nodes = cst.nodes()
    front = (str(cst.front["host"]), int(cst.front["port"]))
    first = next(iter(nodes.values()))
    # the lab's site with short callback timers, so tasks come due (and are retried) during the fault
    site = site_file_with_callbacks(work, lab_site_file(first.instance), first_attempt_s=args.cb_first_s,
                                    retry_s=args.cb_retry_s, ring_timeout_s=args.cb_ring_s,
                                    max_attempts=args.cb_attempts, max_parallel=args.cb_parallel)
    traces = {name: work / f"callback-citizen-{name}.log" for name in nodes}
    async with contextlib.AsyncExitStack() as stack:
        # each node's callback trunk dials a SIPp citizen that rings and never answers (every attempt runs
        # its ring timeout, so a task takes all its attempts); its -trace_msg is the dials' ground truth
        for name, st in nodes.items():
            await stack.enter_async_context(SippCitizen(int(st.callbacks["trunk_port"]), answer=False,
                                                        trace=traces[name]))
        watchers = {name: await stack.enter_async_context(kit.Watcher(st, prefix))
                    for name, st in nodes.items()}
        sessions = await ami_sessions(stack, nodes)
        engines = await stack.enter_async_context(engines_for(nodes, store, site))
        # the SIPp operators answer on node a's block; every node's queues have them
        await stack.enter_async_context(kit.operators(first, sessions[next(iter(nodes))]))
        for session in list(sessions.values())[1:]:
            for queue in kit.QUEUES:
                for op in kit.OPERATORS:
                    await kit.add_member(session, queue, op)
        run = Run(cst, nodes, engines, store, server)
        count = max(1, round(args.rate * args.seconds))
        numbers = [f"{prefix}{i:05d}" for i in range(count)]
        probes = [f"{prefix}9{i:04d}" for i in range(args.probes)]
        # citizens who hang up in the IVR before choosing (after short_abandon_s): a callback task each
        abandoners = [f"{prefix}8{i:04d}" for i in range(round(args.abandon_rate * args.seconds))]
        # they start --abandon-lead-s before the load, so the first leader dials (and has attempts ringing)
        # before the fault
        abandons = asyncio.create_task(kit.rate_callers(first, abandoners, (), rate=args.abandon_rate,
                                                        hold_ms=args.abandon_after_ms, workdir=work,
                                                        front=front))
        await asyncio.sleep(args.abandon_lead_s)
        load = asyncio.create_task(kit.rate_callers(first, numbers, PRESS_EMERGENCY, rate=args.rate,
                                                    hold_ms=args.hold_ms, workdir=work, front=front))
        await asyncio.sleep(args.fault_at)
        before_fault = {name: set(w.hungup) for name, w in watchers.items()}
        await FAULTS[fault](run, args)
        if run.killed_node is not None:  # its AMI is gone for good: no reconnect warnings every second
            watchers[run.killed_node].session.stop()
            sessions[run.killed_node].stop()
        dialled = await probes_after(front, probes, args.probe_every_s, work)
        sipp = await load
        await abandons
        offered: dict[str, list[str]] = {}
        first_seen: dict[str, datetime] = {}
        for watcher in watchers.values():
            for number, lids in watcher.offered.items():
                offered.setdefault(number, []).extend(lids)
            for number, seen in watcher.first_seen.items():
                first_seen[number] = min(seen, first_seen.get(number, seen))
        records = await all_records({store}, prefix, set(offered), args.settle_s)
        open_tasks = await callbacks_settled(store, prefix, args.callbacks_settle_s)
        await asyncio.sleep(args.linger_s)  # anything doubled late (a woken engine) shows now
        records = await all_records({store}, prefix, set(offered), 0)
        woken_dials(run)
    # the citizens have stopped: their traces are complete
    dials = await callback_dials(store, prefix, list(engines.values()), traces, run)
    dials.open_tasks = open_tasks
    return run, Measured(watchers, before_fault, offered, first_seen, dialled, records, sipp, dials)


async def ami_sessions(stack: contextlib.AsyncExitStack, nodes: dict[str, LabStatus]
                       ) -> dict[str, AmiSession]:
    """The benchmark's own AMI session to each node (closed with ``stack``)."""
    sessions = {}
    for name, st in nodes.items():
        session = AmiSession(st.ami_endpoint())
        sessions[name] = session
        reader = asyncio.create_task(session.run())
        stack.callback(reader.cancel)
        stack.callback(session.stop)
        async with asyncio.timeout(20):
            await session.connected.wait()
    return sessions


async def probes_after(front: tuple[str, int], probes: list[str], every_s: float, work: Path
                       ) -> dict[str, datetime]:
    """The probe calls, one every ``every_s``: number -> when it was dialled."""
    tasks = []
    for i, number in enumerate(probes):
        tasks.append(asyncio.create_task(probe(front, number, work)))
        await asyncio.sleep(every_s if i + 1 < len(probes) else 0)
    return {number: await task for number, task in zip(probes, tasks, strict=True)}


SETTLED = frozenset(set(TaskStatus) - {TaskStatus.PENDING, TaskStatus.DIALLING, TaskStatus.CHECKING})


async def callbacks_settled(store: str, prefix: str, timeout: float) -> int:
    """Wait until every callback task of the run's numbers is done with (answered, flagged for a
    supervisor after its attempts...); returns how many were still open at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(StoreError, DatabaseError):
            conn = await open_database(store, (CALLBACKS_SCHEMA,))
            try:
                tasks = [t for t in await list_tasks(conn) if t.number.startswith(prefix)]
            finally:
                await conn.close()
            still = sum(1 for t in tasks if t.status not in SETTLED)
            if not still or time.monotonic() > deadline:
                return still
        if time.monotonic() > deadline:
            return -1
        await asyncio.sleep(1.0)


def woken_dials(run: Run) -> None:
    """The woken leader's dials and refused claims from SIGCONT until it next took the lease (if ever)."""
    if run.woken is None:
        return
    engine, mark = run.woken
    lines = engine.lines[mark:]
    until = next((i for i, line in enumerate(lines) if line.get("event") == "cluster.leader"), len(lines))
    run.figures["woken_dials"] = str(sum(1 for line in lines[:until]
                                         if line.get("event") == "callback.dialling"))
    run.figures["woken_claims_refused"] = str(sum(1 for line in lines[:until]
                                                  if line.get("event") == "callback.claim_refused"))


@dataclass
class Dials:
    """Callback work for the run's numbers: the store's tasks and attempts, the INVITEs that reached the
    SIPp citizens behind the callback trunks (the ground truth, bench/dials.py), and the engines' own
    ``callback.dialling`` lines per attempt (a cross-check)."""

    tasks: int = 0
    tasks_doubled: int = 0
    attempts: int = 0
    invites: int = 0
    invites_by_node: dict[str, int] = field(default_factory=dict)
    in_fault: int = 0  # INVITEs from the fault's start to its end (at least 20 s)
    before_fault: int = 0
    double_dials: int = 0  # INVITEs beyond one per attempt, plus INVITEs with no attempt before them
    unrecorded: int = 0
    not_reached: int = 0  # attempts no INVITE reached (refused by Asterisk, node dead, never sent)
    log_double: int = 0  # attempts the engines logged dialling more than once
    claims_refused: int = 0
    open_tasks: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)


async def callback_dials(store: str, prefix: str, engines: list[kit.Engine], traces: dict[str, Path],
                         run: Run) -> Dials:
    conn = await open_database(store, (CALLBACKS_SCHEMA,))
    try:
        tasks = [t for t in await list_tasks(conn) if t.number.startswith(prefix)]
        attempts = [(t, a) for t in tasks for a in await attempts_of(conn, t.id)]
    finally:
        await conn.close()
    ids = {t.id for t in tasks}
    per_call: dict[str, int] = {}
    for t in tasks:
        per_call[t.linkedid] = per_call.get(t.linkedid, 0) + 1
    dialling: dict[tuple[object, object], int] = {}
    refused = 0
    for engine in engines:
        for line in engine.lines:
            if line.get("event") == "callback.dialling" and line.get("task") in ids:
                key = (line.get("task"), line.get("attempt"))
                dialling[key] = dialling.get(key, 0) + 1
            refused += line.get("event") == "callback.claim_refused"
    invites = [inv for node, path in traces.items() if path.exists()
               for inv in dialcount.invites_in_trace(path.read_text(errors="replace"), node)]
    ours = [inv for inv in invites if inv.number.startswith(prefix)]
    count = dialcount.count_dials([dialcount.Dialled(t.id, t.number, a.n, a.started_at) for t, a in attempts],
                                  ours)
    d = Dials(len(tasks), sum(n - 1 for n in per_call.values()), len(attempts), count.invites,
              double_dials=count.double_dials, unrecorded=len(count.unrecorded),
              not_reached=count.not_reached, log_double=sum(n - 1 for n in dialling.values()),
              claims_refused=refused)
    for inv in ours:
        d.invites_by_node[inv.trunk] = d.invites_by_node.get(inv.trunk, 0) + 1
    if run.fault_started is not None:
        until = max(run.fault_ended or run.fault_started, run.recovered or run.fault_started,
                    run.fault_started + timedelta(seconds=20))
        d.in_fault = sum(1 for inv in ours if run.fault_started <= inv.at <= until)
        d.before_fault = sum(1 for inv in ours if inv.at < run.fault_started)
    for t in tasks:
        d.reasons[t.reason] = d.reasons.get(t.reason, 0) + 1
        d.statuses[str(t.status)] = d.statuses.get(str(t.status), 0) + 1
    return d


@dataclass
class Measured:
    watchers: dict[str, kit.Watcher]
    hung_up_before_fault: dict[str, set[str]]
    offered: dict[str, list[str]]
    first_seen: dict[str, datetime]
    dialled: dict[str, datetime]  # probe number -> when its SIPp was started
    records: list[CallRecord]
    sipp: kit.SippRun
    dials: Dials


@dataclass
class FaultResult:
    fault: str
    failover_s: float
    lost: int
    duplicated: int
    node_lost_s: float
    dials: Dials
    figures: dict[str, str]


def report(args: argparse.Namespace, fault: str, run: Run, m: Measured) -> FaultResult:
    tally = kit.tally(m.offered, m.records)
    waits = [(m.first_seen[n] - at).total_seconds() if n in m.first_seen else -1.0
             for n, at in m.dialled.items()]
    failover = -1.0 if any(w < 0 for w in waits) else max(waits, default=-1.0)
    up_on_killed = []
    if run.killed_node is not None:
        killed, earlier = m.watchers[run.killed_node], m.hung_up_before_fault[run.killed_node]
        up_on_killed = [n for n in tally.lost if n in killed.offered and n not in earlier]
    # when each node_lost record was first logged (a woken engine logs the record it finds again)
    logged = [[e.record_logged[r.linkedid] for e in run.engines.values() if r.linkedid in e.record_logged]
              for r in m.records if str(r.outcome) == "node_lost"]
    node_lost = [min(times) for times in logged if times]
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
    outcomes: dict[str, int] = {}
    for r in m.records:
        outcomes[str(r.outcome)] = outcomes.get(str(r.outcome), 0) + 1
    d = m.dials
    print(f"records by outcome: {outcomes}; callback tasks by reason: {d.reasons}")
    print(f"callbacks: {d.tasks} tasks ({d.tasks_doubled} for a call that had one; by status {d.statuses}; "
          f"{d.open_tasks} still open at the end), {d.attempts} attempts in the store, {d.invites} INVITEs "
          f"reached the citizens (by node's trunk: {d.invites_by_node}; {d.before_fault} before the fault, "
          f"{d.in_fault} during it), "
          f"double dials {d.double_dials} (of which {d.unrecorded} with no attempt recorded), attempts no "
          f"INVITE reached {d.not_reached}; engine logs: {d.log_double} attempts logged dialling twice, "
          f"{d.claims_refused} claims refused")
    if tally.lost:
        print(f"lost numbers: {', '.join(tally.lost[:20])}")
    problems = [p for e in run.engines.values() for p in e.problems]
    if problems:
        kinds: dict[str, int] = {}
        for problem in problems:
            kinds[str(problem.get("event"))] = kinds.get(str(problem.get("event")), 0) + 1
        print(f"engine errors: {', '.join(f'{k} x{n}' for k, n in sorted(kinds.items()))}; first: "
              f"{json.dumps(problems[0])[:300]}")
    extra = "".join(f" {k}={v}" for k, v in run.figures.items())
    print(f"{fault}: new_call_failover_s={failover:.3f} offered={tally.offered} records={tally.records} "
          f"lost_records={len(tally.lost)} duplicated={tally.duplicated} node_lost_task_s={node_lost_s:.3f} "
          f"double_dials={d.double_dials} callback_tasks={d.tasks} callback_attempts={d.attempts} "
          f"callback_invites={d.invites} callback_invites_in_fault={d.in_fault}{extra}", flush=True)
    return FaultResult(fault, failover, len(tally.lost), tally.duplicated + d.tasks_doubled,
                       node_lost_s, d, run.figures)


def final(results: list[FaultResult]) -> int:
    """The last line: the totals over the faults run, the node-a figures from ``asterisk-a-kill`` (else the
    largest seen), then each fault's own keys."""
    by = {r.fault: r for r in results}
    main_run = by.get("asterisk-a-kill")
    failover = main_run.failover_s if main_run else max(r.failover_s for r in results)
    node_lost = main_run.node_lost_s if main_run else max(r.node_lost_s for r in results)
    keys = {"pg_stop_lost": str(by["postgresql-stop"].lost)} if "postgresql-stop" in by else {}
    if "postgresql-stop" in by:
        keys["pg_stop_duplicated"] = str(by["postgresql-stop"].duplicated)
    if "leader-engine-kill" in by:
        keys["leader_kill_node_lost_s"] = f"{by['leader-engine-kill'].node_lost_s:.3f}"
    for r in results:
        keys.update(r.figures)
    print(f"RESULT new_call_failover_s={failover:.3f} lost_records={sum(r.lost for r in results)} "
          f"duplicated={sum(r.duplicated for r in results)} node_lost_task_s={node_lost:.3f} "
          f"double_dials={sum(r.dials.double_dials for r in results)} "
          f"callback_tasks={sum(r.dials.tasks for r in results)} "
          f"callback_attempts={sum(r.dials.attempts for r in results)} "
          f"callback_invites={sum(r.dials.invites for r in results)}"
          + "".join(f" {k}={v}" for k, v in keys.items()))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fault", choices=[*FAULTS, "all"], default="asterisk-a-kill",
                        help="all: each in turn (fresh engines and database, their own numbers)")
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
    parser.add_argument("--linger-s", type=float, default=5.0, help="then look again this much later")
    parser.add_argument("--freeze-s", type=float, default=20.0, help="leader-engine-stop: SIGSTOP this long")
    parser.add_argument("--pg-down-s", type=float, default=10.0, help="postgresql-stop: down this long")
    parser.add_argument("--abandon-rate", type=float, default=0.25,
                        help="calls per second (over --seconds) that hang up in the IVR: a callback each")
    parser.add_argument("--abandon-after-ms", type=int, default=5000,
                        help="they hang up this long after the answer (past [calls] short_abandon_s)")
    parser.add_argument("--abandon-lead-s", type=float, default=8.0,
                        help="they start this long before the steady load (and its --fault-at)")
    parser.add_argument("--cb-first-s", type=float, default=3.0, help="[callbacks] first_attempt_s")
    parser.add_argument("--cb-retry-s", type=float, default=2.0, help="[callbacks] retry_s")
    parser.add_argument("--cb-ring-s", type=float, default=3.0, help="[callbacks] ring_timeout_s")
    parser.add_argument("--cb-attempts", type=int, default=4, help="[callbacks] max_attempts")
    parser.add_argument("--cb-parallel", type=int, default=8, help="[callbacks] max_parallel")
    parser.add_argument("--callbacks-settle-s", type=float, default=120.0,
                        help="wait this long for every callback task to be done with")
    parser.add_argument("--restart-after-s", type=float, default=2.0,
                        help="leader-engine-kill: the killed engine starts again this long after take-over")
    args = parser.parse_args()
    started = time.monotonic()
    with two_node_lab(args.lab) as cst, stores_for(cst, args.store) as stores:
        # the lab is started outside the loop: `lab up` runs its own
        code = asyncio.run(bench(args, cst, stores))
    print(f"(took {time.monotonic() - started:.0f} s)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
