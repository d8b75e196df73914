"""Shared machinery of the load and fault benchmarks (bench/surge.py, bench/concurrency.py, bench/faults.py).

Everything runs against the real lab Asterisk: the engine is ``siaga112 serve --lab INSTANCE --database
PATH`` as a child process, callers are SIPp processes driven at a call rate from an injection file (one
unique caller number per call, so every call can be matched to its record), operators are SIPp UAS on the
lab's static operator contacts (op1..op4) added to both queues over AMI.

What is "offered" comes from Asterisk, not from us: a watcher AMI session (its own reconnecting session)
notes every caller channel (``Newchannel`` with Uniqueid == Linkedid) whose number carries the run's
prefix. Records are read from the engine's database (``calls_records``) after the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import json
import math
import os
import resource
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callflow.ami import ActionFailed, AmiSession
from callflow.ami.events import ChannelEvent
from callflow.calls.model import CallRecord
from callflow.calls.records import record_from_dict
from callflow.lab import LabStatus, down, free_ports, status, up
from callflow.lab.sipp import (
    PRESS_EMERGENCY,
    CallerScript,
    SippOperator,
    answer_200,
    free_udp_port,
    sipp_binary,
)
from callflow.logs import configure_logging

# The caller's choice on the IVR (pbx-config/ivr.toml): 1 = emergency on the first menu; 2 = complaint,
# then 4 = fallen tree on the complaint menu (barge-in takes each key at once).
EMERGENCY_KEYS: tuple[tuple[int, str], ...] = PRESS_EMERGENCY
COMPLAINT_KEYS: tuple[tuple[int, str], ...] = ((600, "2"), (1600, "4"))
COMPLAINT_CATEGORY = "fallen_tree"
OPERATORS = ("op1", "op2", "op3", "op4")
QUEUES = ("emergency", "nonemergency")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def utc_now() -> datetime:
    return datetime.now(UTC)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


# -- processes ---------------------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on


def proc_ticks(pid: int) -> int:
    """utime + stime of one process in clock ticks (0 if it is gone)."""
    f = _stat_fields(pid)
    return int(f[11]) + int(f[12]) if f else 0


def children(pid: int) -> list[int]:
    """Direct and indirect children of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            f = _stat_fields(int(entry))
            if f:
                parents.setdefault(int(f[1]), []).append(int(entry))
    found, todo = [], list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(parents.get(child, []))
    return found


def rss_mb(pid: int) -> float:
    """Resident set size of one process in MiB (0 if it is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class CpuMeter:
    """CPU % of one core used between ``start()`` and ``stop()`` by named process groups, by this
    process's reaped children (the SIPp caller processes of a step) and by the benchmark itself."""

    def __init__(self, groups: dict[str, Iterable[int]]) -> None:
        self.groups = {name: list(pids) for name, pids in groups.items()}
        self._start: dict[str, int] = {}
        self._wall = 0.0
        self._children = 0.0
        self._self = 0.0
        self._idle = 0

    @staticmethod
    def _idle_ticks() -> int:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        return int(fields[3]) + int(fields[4])  # idle + iowait, all CPUs

    def start(self) -> None:
        self._start = {name: sum(proc_ticks(p) for p in pids) for name, pids in self.groups.items()}
        self._wall = time.monotonic()
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._children = ru.ru_utime + ru.ru_stime
        me = resource.getrusage(resource.RUSAGE_SELF)
        self._self = me.ru_utime + me.ru_stime
        self._idle = self._idle_ticks()

    def stop(self) -> dict[str, float]:
        wall = max(time.monotonic() - self._wall, 1e-6)
        out = {name: 100 * (sum(proc_ticks(p) for p in pids) - self._start.get(name, 0)) / CLK_TCK / wall
               for name, pids in self.groups.items()}
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        out["sipp_callers"] = 100 * (ru.ru_utime + ru.ru_stime - self._children) / wall
        me = resource.getrusage(resource.RUSAGE_SELF)
        out["bench"] = 100 * (me.ru_utime + me.ru_stime - self._self) / wall
        idle = 100 * (self._idle_ticks() - self._idle) / CLK_TCK / wall  # of all cores
        # what neither this run's processes nor idle account for: other work on a shared machine
        out["other_work"] = max(0.0, 100 * (os.cpu_count() or 1) - idle - sum(out.values()))
        out["machine_idle"] = idle
        return out


def fmt_cpu(cpu: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.0f}%" for k, v in cpu.items())


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    mem = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return (f"nproc={os.cpu_count()} cpu={model!r} ram={mem} MiB load={load} "
            f"date={utc_now():%Y-%m-%d %H:%M} UTC")


# -- the lab --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def lab_for(instance: str | None, default: str) -> Iterator[LabStatus]:
    """A running lab: the one named (left running) or a fresh one on free ports (stopped afterwards),
    named ``default`` plus a digest of this checkout's path, so checkouts side by side never share one."""
    if instance is not None:
        st = status(instance)
        if not st.running:
            raise SystemExit(f"lab {instance!r} is not running: `siaga112 lab up --instance {instance} "
                             "--free-ports`")
        yield st
        return
    repo = Path(__file__).resolve().parents[1]
    name = f"{default}-{hashlib.sha1(str(repo).encode(), usedforsecurity=False).hexdigest()[:6]}"
    down(name)  # one left behind by an interrupted run of this checkout
    st = up(name, free_ports())
    try:
        yield st
    finally:
        down(name)


# -- the engine -----------------------------------------------------------------------------------------
class Engine:
    """``siaga112 serve --lab INSTANCE --database PATH --http off`` as a child process; keeps the log lines
    the benchmarks read (connections, records with their log timestamp, warnings and errors)."""

    KEEP = frozenset({"ami.connected", "ami.link_lost", "ami.connect_failed", "ivr.listening", "call.record",
                      "engine.stopped", "cluster.leader", "cluster.lease_lost", "cluster.node_lost",
                      "callback.dialling", "callback.claim_refused"})

    def __init__(self, instance: str, database: Path | str, env: dict[str, str] | None = None) -> None:
        self.instance = instance
        self.database = database
        self.env = {**os.environ, **(env or {})}
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[dict[str, Any]] = []
        self.problems: list[dict[str, Any]] = []
        self.tail: list[str] = []
        self.not_json: list[str] = []  # lines that are not the engine's JSON log (a traceback), the first 500
        self.record_logged: dict[str, datetime] = {}
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @property
    def pid(self) -> int:
        assert self.proc is not None  # noqa: S101 - started first
        return self.proc.pid

    async def start(self, timeout: float = 120) -> float:
        """Start and wait until the IVR listens; returns the seconds that took."""
        began = time.monotonic()
        mark = len(self.lines)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callflow.cli", "serve", "--lab", self.instance, "--database",
            str(self.database), "--log-format", "json", "--http", "off",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=self.env)
        self._reader = asyncio.create_task(self._read(self.proc))
        await self.wait_for("ivr.listening", since=mark, timeout=timeout)
        return time.monotonic() - began

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None  # noqa: S101
        while line := await proc.stdout.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self.tail = [*self.tail[-40:], text]
            try:
                rec = json.loads(text)
            except json.JSONDecodeError:
                if len(self.not_json) < 500:
                    self.not_json.append(text)
                continue
            if not isinstance(rec, dict):
                continue
            name = rec.get("event")
            if rec.get("level") in {"error", "critical"}:
                self.problems.append(rec)
            if name in self.KEEP:
                rec["_mono"] = time.monotonic()
                self.lines.append(rec)
                if name == "call.record" and "timestamp" in rec:
                    self.record_logged[rec["linkedid"]] = datetime.fromisoformat(rec["timestamp"])
                self._changed.set()
        self._changed.set()

    async def wait_for(self, name: str, *, since: int = 0, timeout: float = 60) -> dict[str, Any]:
        seen = since
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for rec in self.lines[seen:]:
                        if rec.get("event") == name:
                            return rec
                    seen = len(self.lines)
                    if self.proc is not None and self.proc.returncode is not None:
                        raise RuntimeError(f"engine exited ({self.proc.returncode}); log tail:\n"
                                           + "\n".join(self.tail[-15:]))
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise RuntimeError(f"engine never logged {name} within {timeout} s; log tail:\n"
                               + "\n".join(self.tail[-15:])) from None

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                async with asyncio.timeout(20):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


# -- operators ------------------------------------------------------------------------------------------
_OPERATOR_HANGS_UP = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="siaga112 operator who answers, talks and hangs up">
  <recv request="INVITE">
    <action>
      <ereg regexp="sip:[^>;]*" search_in="hdr" header="Contact:" assign_to="contact"/>
    </action>
  </recv>
  <send><![CDATA[
""" + answer_200("operator") + """\
  ]]></send>
  <recv request="ACK">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="local"/>
    </action>
  </recv>
  <pause milliseconds="{talk_ms}"/>
  <send retrans="500"><![CDATA[
      BYE [$contact] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From:[$local]
      To:[$remote]
      [last_Call-ID:]
      CSeq: 2 BYE
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0
  ]]></send>
  <recv response="200"/>
</scenario>
"""


class HangingUpOperator(SippOperator):
    """An operator softphone that answers at once, talks ``talk_ms`` and hangs up (so a queue drains)."""

    def __init__(self, port: int, talk_ms: int) -> None:
        super().__init__(port)
        self.talk_ms = talk_ms

    async def __aenter__(self) -> HangingUpOperator:
        binary = sipp_binary()
        if binary is None:
            raise RuntimeError("sipp not installed: apt-get install sip-tester")
        path = self._dir / "answer-hangup.xml"
        path.write_text(_OPERATOR_HANGS_UP.replace("{talk_ms}", str(self.talk_ms)))
        cmd = [binary, "-sf", str(path), "-i", "127.0.0.1", "-p", str(self.port), "-nostdin",
               "-mi", "127.0.0.1", "-mp", str(free_udp_port())]
        self.proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                         stderr=asyncio.subprocess.DEVNULL, cwd=self._dir)
        return self


async def add_member(session: AmiSession, queue: str, name: str) -> None:
    """QueueAdd, taking "Already there" as done: with two engines on one store, the other node's engine
    mirrors an operator added on one node into its own queues (queues/mirror)."""
    try:
        await session.action("QueueAdd", {"Queue": queue, "Interface": f"PJSIP/{name}", "MemberName": name})
    except ActionFailed as exc:
        if "Already there" not in str(exc):
            raise


@contextlib.asynccontextmanager
async def operators(lab: LabStatus, session: AmiSession, names: Sequence[str] = OPERATORS, *,
                    talk_ms: int | None = None) -> AsyncIterator[list[int]]:
    """SIPp operators on ``names``, members of both queues; yields their PIDs. ``talk_ms``: the operator
    hangs up after that long (default: stays until the caller hangs up)."""
    async with contextlib.AsyncExitStack() as stack:
        pids = []
        for name in names:
            port = lab.operators[name]["port"]
            op = HangingUpOperator(port, talk_ms) if talk_ms is not None else SippOperator(port)
            await stack.enter_async_context(op)
            assert op.proc is not None  # noqa: S101
            pids.append(op.proc.pid)
        for queue in QUEUES:
            for name in names:
                await add_member(session, queue, name)
        try:
            yield pids
        finally:
            for queue in QUEUES:
                for name in names:
                    with contextlib.suppress(Exception):
                        await session.action("QueueRemove", {"Queue": queue, "Interface": f"PJSIP/{name}"})


# -- what Asterisk saw ---------------------------------------------------------------------------------
class Watcher:
    """Its own reconnecting AMI session: every caller channel (Uniqueid == Linkedid) whose number starts
    with ``prefix``: number -> linkedid(s) and when it appeared; plus queue joins and leaves."""

    def __init__(self, lab: LabStatus, prefix: str) -> None:
        self.session = AmiSession(lab.ami_endpoint())
        self.prefix = prefix
        self.offered: dict[str, list[str]] = {}
        self.first_seen: dict[str, datetime] = {}
        self.waiting = 0
        self.max_waiting = 0
        self.hungup: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Watcher:
        configure_logging("console", "warning", sys.stderr)  # the session's own link logs: warnings only
        self._tasks = [asyncio.create_task(self.session.run()), asyncio.create_task(self._consume())]
        async with asyncio.timeout(20):
            await self.session.connected.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.session.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _consume(self) -> None:
        while True:
            item = await self.session.events.get()
            if not isinstance(item, ChannelEvent) or item.chan is None:
                continue
            chan = item.chan
            if chan.uniqueid != chan.linkedid or not chan.caller_id_num.startswith(self.prefix) \
                    or chan.uniqueid.startswith("siaga-"):  # the engine's own calls (callbacks, listen-in)
                continue
            if item.name == "Newchannel":
                self.offered.setdefault(chan.caller_id_num, []).append(chan.linkedid)
                self.first_seen.setdefault(chan.caller_id_num, item.time)
            elif item.name == "QueueCallerJoin":
                self.waiting += 1
                self.max_waiting = max(self.max_waiting, self.waiting)
            elif item.name == "QueueCallerLeave":  # also sent after QueueCallerAbandon
                self.waiting -= 1
            elif item.name == "Hangup":
                self.hungup.add(chan.caller_id_num)


# -- callers --------------------------------------------------------------------------------------------
@dataclass
class SippRun:
    created: int = 0
    successful: int = 0
    failed: int = 0
    seconds: float = 0.0
    returncode: int = 0


async def rate_callers(lab: LabStatus, numbers: Sequence[str], keys: Sequence[tuple[int, str]], *,
                       rate: float, hold_ms: int, workdir: Path, name: str = "Warga Bench",
                       remote_hangup: bool = False, limit: int = 5000, timeout_s: float = 600,
                       front: tuple[str, int] | None = None) -> SippRun:
    """One SIPp process placing ``len(numbers)`` calls at ``rate`` calls/s, one number each (injection
    file), every caller pressing ``keys`` then staying ``hold_ms`` (or until the far end hangs up).
    ``front``: call a two-node lab's SIP front (host, port) instead of the lab's Asterisk, following its
    Record-Route as a trunk does."""
    if not numbers:
        return SippRun()
    binary = sipp_binary()
    if binary is None:
        raise RuntimeError("sipp not installed: apt-get install sip-tester")
    tag = f"{numbers[0]}-{len(numbers)}"
    script = CallerScript(number="[field0]", name=name, dtmf=keys, hold_ms=hold_ms,
                          remote_hangup=remote_hangup, answer_timeout_ms=120_000, route_set=front is not None)
    host, port = front or (lab.sip["host"], lab.sip["port"])
    scenario = workdir / f"callers-{tag}.xml"
    # a caller waiting for the far end may wait in a long queue: longer than CallerScript's 120 s
    xml = script.scenario_xml().replace('<recv request="BYE" timeout="120000"/>',
                                        f'<recv request="BYE" timeout="{int(timeout_s * 1000)}"/>')
    scenario.write_text(xml, encoding="utf-8")
    inject = workdir / f"callers-{tag}.csv"
    inject.write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in numbers))
    stats = workdir / f"callers-{tag}-stat.csv"
    # rate as calls per -rp milliseconds, so fractional rates (0.74 * 2/s) are exact
    cmd = [binary, "-sf", str(scenario), "-inf", str(inject), "-s", "112",
           f"{host}:{port}", "-i", "127.0.0.1", "-p", str(free_udp_port()),
           "-mi", "127.0.0.1", "-mp", str(free_udp_port()), "-r", str(round(rate * 1000)), "-rp", "1000s",
           "-m", str(len(numbers)), "-l", str(limit), "-nostdin", "-trace_stat", "-stf", str(stats),
           "-fd", "1", "-timeout", f"{int(timeout_s)}s", "-timeout_error", "-max_socket", "60000"]
    began = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL, cwd=workdir)
    try:
        async with asyncio.timeout(timeout_s + 30):
            await proc.wait()
    finally:  # timed out, or the benchmark failed or was interrupted: no caller outlives it
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    run = SippRun(seconds=time.monotonic() - began, returncode=proc.returncode or 0)
    with contextlib.suppress(OSError, StopIteration, KeyError, ValueError):
        rows = list(csv.DictReader(stats.open(), delimiter=";"))
        last = rows[-1]
        run.created = int(last["TotalCallCreated"])
        run.successful = int(last["SuccessfulCall(C)"])
        run.failed = int(last["FailedCall(C)"])
    return run


# -- records --------------------------------------------------------------------------------------------
def read_records(database: Path, prefix: str) -> list[CallRecord]:
    """Every stored call record whose caller number starts with ``prefix`` (read-only connection)."""
    if not database.exists():
        return []
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT record FROM calls_records").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
    records = [record_from_dict(json.loads(r[0])) for r in rows]
    return [r for r in records if r.caller_number.startswith(prefix)]


def ami_lags_ms(database: Path, since: datetime, until: datetime) -> list[float]:
    """Per journaled AMI event with its Timestamp in [since, until): engine receipt minus Timestamp."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT ts, received_at FROM calls_journal WHERE kind = 'ami' AND ts >= ? "
                            "AND ts < ?", (since.isoformat(), until.isoformat())).fetchall()
    finally:
        conn.close()
    return [(datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() * 1000 for a, b in rows]


@dataclass
class Tally:
    offered: int = 0
    records: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: int = 0
    stray: int = 0  # records of our callers whose number Asterisk's Newchannel never showed the watcher


def tally(offered: dict[str, list[str]], records: Sequence[CallRecord]) -> Tally:
    by_number: dict[str, list[CallRecord]] = {}
    for r in records:
        by_number.setdefault(r.caller_number, []).append(r)
    t = Tally(offered=len(offered), records=len(records))
    t.lost = sorted(n for n in offered if n not in by_number)
    t.duplicated = sum(len(rs) - 1 for rs in by_number.values())
    t.stray = sum(1 for n in by_number if n not in offered)
    return t


async def wait_records(database: Path, prefix: str, expected: set[str], timeout: float) -> list[CallRecord]:
    """Poll until every expected number has a record (or ``timeout``); returns the records."""
    deadline = time.monotonic() + timeout
    while True:
        records = await asyncio.to_thread(read_records, database, prefix)
        have = {r.caller_number for r in records}
        if expected <= have or time.monotonic() > deadline:
            return records
        await asyncio.sleep(1.0)


def run_tag() -> str:
    """Two digits that differ between consecutive runs, for caller numbers no earlier run used (Asterisk's
    CDR file, which the engine reads to recover calls, outlives a run)."""
    return f"{int(time.time() / 10) % 100:02d}"


def workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"siaga112-{prefix}-"))
