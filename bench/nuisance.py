"""Nuisance calls (issue 19): a compressed day with a Jakarta-like mix of callers, answered by 4 SIPp
operators, once with today's baseline behaviour and once with the nuisance feature, in the same run.

The mix (Jakarta Siaga 112, 2024: most calls are cut off, pranks or silent):

* emergency (1 %):      presses 1 and reports an emergency (the genuine emergencies of the RESULT line);
* nonemergency (17 %):  presses 2 then 1 (a complaint);
* prank (18 %):         presses 1, from 20 repeat numbers; the operators' script tags each answered prank
                        call ``prank`` through the console API (``POST /api/calls/{linkedid}/nature``);
* cutoff (58 %):        cut-off or silent, hangs up after 2-8 s without a key (numbers from a pool: one
                        number for about every 3 such calls, as pocket dials and children repeat);
* silent55 (6 %):       silent, then presses 5 twice when the probe asks (5 at 6.5 s, the second 5 from a
                        copy of sip-tester's DTMF pcap with shifted RTP timestamps, at 7.1 s).

So that the genuine emergencies' service level is a figure and not an anecdote, the schedule holds at
least ``--min-emergencies`` of them, and at least one call of every kind (the printed mix says how many
there were).

Arms, each with its own database and the same seeded schedule (callers' numbers differ per arm):

* baseline (today's behaviour): the tree without its ``[silent]`` probe, no callback cap (the site file's
  ``[callbacks] per_number_per_hour`` at its largest, 20: no number calls that often in a run of
  minutes), no supervisor flags;
* feature: the probe, the cap (the site's default: 1 per number per hour), and a supervisor's script
  that flags a number ``repeat_abuse`` (``siaga112 abuse flag``) once operators tagged ``--flag-after``
  of its calls prank within 24 h (the pop's count, ``GET /api/calls/by-number/{n}/pranks``).

Both arms run the engine (``siaga112 serve`` with its console) on the IVR tree of
tests/integration/ivr_silent_tree.toml (short prompts: a compressed day), callers are SIPp UACs (one SIPp
process per kind, each call waiting for its own arrival offset from the injection file), operators are
SIPp UASes on op1..op4 that answer at once and hang up after ``--talk-s``. Callbacks are on, with the
first attempt an hour after the hang-up, so none is dialled during a run: a callback is a task the rules
decided to dial (not ``skipped``); retries of one task are one callback, as the cap counts them.

Figures come from the engine's own records and the measures of callflow/reports/measures.py: the genuine
emergencies' service level within 10 s is over their offered calls (answer time from arrival at the PBX,
time in the IVR included).

    .venv/bin/python bench/nuisance.py [--lab INSTANCE] [--window-s 180] [--load 1.6] [--talk-s 4]
                                       [--min-emergencies 24] [--flag-after 1] [--seed 112]

``--load`` is the queued calls' offered load on the 4 operators counting talk time only; each answered
call also costs the operator about a second more (ringing, Asterisk's 1 s queue recheck, hang-up), so 0.6
is about 0.8 in fact (0.9 overloads them: queues grow through the whole window). The default, 1.6, is a
busy day's peak: the emergency queue alone (genuine emergencies, pranks that press 1 and the 55 callers,
about 60 % of the queued calls) is offered about 1.2 times what the operators can answer, so the
baseline's genuine emergencies wait behind pranks, while with the feature the callers the flags leave
ahead of them (genuine emergencies, 55 callers, each number's first prank) are about 0.6 of it. Below
about 1.3 emergency-first ordering alone answers every genuine emergency within 10 s in both arms, so the
feature cannot be above the baseline there (docs/benchmarks.md "Nuisance calls" has the sweep).

``--flag-after 1``: in a compressed day each of the 20 prank numbers calls 2-5 times (in Jakarta's real
day, about 16 times), so the supervisor flags a number at its first prank tag, standing in for the pop's
24 h and 30-day counts of the days before.

The last line is ``RESULT genuine_emergency_sl10=P baseline_genuine_emergency_sl10=P callbacks=N
baseline_callbacks=N silent55_answered=N silent55_total=N``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import secrets
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import loadkit as kit

from callflow.ami import AmiSession
from callflow.ami.events import ChannelEvent
from callflow.calls.model import CallClass, CallRecord
from callflow.lab import LabStatus
from callflow.lab.sipp import CallerScript, free_media_port, free_udp_port, sipp_binary
from callflow.reports.measures import answer_times, genuine_calls
from callflow.siteconfig import pbx_config_dir

REPO = Path(__file__).resolve().parents[1]
TREE = REPO / "tests" / "integration" / "ivr_silent_tree.toml"
ARMS = ("baseline", "feature")
# kind -> (share in %, keys after the answer, joins a queue)
KINDS: dict[str, tuple[float, tuple[tuple[int, str], ...], bool]] = {
    "emergency": (1, ((600, "1"),), True),
    "nonemergency": (17, ((600, "2"), (3200, "1")), True),
    "prank": (18, ((600, "1"),), True),
    "cutoff": (58, (), False),
    "silent55": (6, ((6500, "5"), (7100, "5")), True),
}
NATURE = {"emergency": "genuine_emergency", "nonemergency": "non_emergency", "prank": "prank",
          "silent55": "genuine_emergency"}
PRANK_NUMBERS = 20
NO_CAP = 20  # the site file's largest per_number_per_hour: no cap for a run of minutes
HOLD_SENTINEL = 987_654  # replaced by the injection file's hold time
_LAUNCH_RATE = 100  # calls SIPp creates per second; each then waits for its own arrival offset


@dataclass(frozen=True)
class Arrival:
    at_s: float
    kind: str
    slot: int  # which repeat number (prank, cutoff) or the call's own index
    hold_ms: int  # cutoff callers: time on the line before hanging up


@dataclass
class Arm:
    name: str
    prefix: str
    database: Path
    numbers: dict[str, str] = field(default_factory=dict)  # number -> kind
    placed: Counter[str] = field(default_factory=Counter)  # kind -> calls placed
    tagged: Counter[str] = field(default_factory=Counter)  # nature -> tags sent
    tag_failures: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    sipp_rc: dict[str, int] = field(default_factory=dict)
    records: list[CallRecord] = field(default_factory=list)
    natures: dict[str, str] = field(default_factory=dict)
    tasks: list[tuple[str, str, str]] = field(default_factory=list)  # (number, status, created_at)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # the engine's errors


def schedule(rng: random.Random, *, rate: float, window_s: float, min_emergencies: int) -> list[Arrival]:
    """Poisson arrivals at ``rate`` calls/s over ``window_s``, each of a kind drawn from the mix; then
    enough of the other kinds' arrivals turned into genuine emergencies to reach ``min_emergencies``."""
    names = list(KINDS)
    weights = [KINDS[k][0] for k in names]
    times, t = [], rng.expovariate(rate)
    while t < window_s:
        times.append(t)
        t += rng.expovariate(rate)
    kinds = rng.choices(names, weights, k=len(times))
    # at least min_emergencies genuine emergencies and one call of every kind, spread over the window,
    # taken from the biggest group (cut-off calls)
    wanted = {"emergency": min_emergencies} | {k: 1 for k in names if k not in ("emergency", "cutoff")}
    for kind, least in wanted.items():
        short = least - kinds.count(kind)
        cut = [i for i, k in enumerate(kinds) if k == "cutoff"]
        for i in rng.sample(cut, max(0, min(short, len(cut) - 1))):
            kinds[i] = kind
    pool = max(1, kinds.count("cutoff") // 3)
    return [Arrival(at, kind, rng.randrange(PRANK_NUMBERS) if kind == "prank"
                    else rng.randrange(pool) if kind == "cutoff" else i,
                    rng.randint(2000, 8000) if kind == "cutoff" else 0)
            for i, (at, kind) in enumerate(zip(times, kinds, strict=True))]


def number_for(arm: Arm, a: Arrival) -> str:
    """12 digits, in the site's numbering plan (08[1-9]...): prefix (5), kind (1), slot (4)."""
    return f"{arm.prefix}{list(KINDS).index(a.kind)}{a.slot:04d}"


def scenario(kind: str) -> str:
    """One kind's SIPp caller: waits for its arrival ([field1] ms), dials as [field0], presses its keys,
    then hangs up after [field2] ms (cut-off callers) or waits for the operator to hang up."""
    keys, queued = KINDS[kind][1], KINDS[kind][2]
    script = CallerScript(number="[field0]", name="Warga Bench", dtmf=keys, hold_ms=HOLD_SENTINEL,
                          remote_hangup=queued)
    xml = script.scenario_xml()
    hold = ('' if queued else '<assignstr assign_to="h" value="[field2]"/><todouble assign_to="hold" '
                              'variable="h"/>')
    wait = ('<nop><action><assignstr assign_to="d" value="[field1]"/><todouble assign_to="delay" '
            f'variable="d"/>{hold}</action></nop>\n<pause variable="delay"/>')
    xml = xml.replace('<scenario name="siaga112 caller">', f'<scenario name="siaga112 caller">\n{wait}', 1)
    xml = xml.replace(f'<pause milliseconds="{HOLD_SENTINEL}"/>', '<pause variable="hold"/>')
    # a queued caller waits for the operator's BYE however long the queue is
    return xml.replace('<recv request="BYE" timeout="120000"/>', '<recv request="BYE" timeout="900000"/>')


async def run_callers(lab: LabStatus, arm: Arm, arrivals: list[Arrival], workdir: Path) -> None:
    binary = sipp_binary()
    if binary is None:
        raise RuntimeError("sipp not installed: apt-get install sip-tester")
    procs: dict[str, asyncio.subprocess.Process] = {}
    for kind in KINDS:
        mine = [a for a in arrivals if a.kind == kind]
        if not mine:
            continue
        lines = []
        for i, a in enumerate(mine):
            number = number_for(arm, a)
            arm.numbers[number] = kind
            arm.placed[kind] += 1
            offset = max(0, round(a.at_s * 1000 - i * 1000 / _LAUNCH_RATE))
            lines.append(f"{number};{offset};{a.hold_ms}")
        inf = workdir / f"{arm.name}-{kind}.csv"
        inf.write_text("SEQUENTIAL\n" + "\n".join(lines) + "\n", encoding="ascii")
        xml = workdir / f"{arm.name}-{kind}.xml"
        xml.write_text(scenario(kind), encoding="utf-8")
        cmd = [binary, "-sf", str(xml), "-inf", str(inf), "-s", "112", f"{lab.sip['host']}:{lab.sip['port']}",
               "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1",
               "-mp", str(free_media_port()),  # SIPp binds it and the next 3 (RTCP, video)
               "-m", str(len(lines)), "-l", str(len(lines)), "-r", str(_LAUNCH_RATE), "-rp", "1000",
               "-nostdin", "-timeout", "900s", "-timeout_error", "-max_socket", "60000",
               "-trace_err", "-error_file", str(workdir / f"{arm.name}-{kind}-errors.log")]
        procs[kind] = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                           stderr=asyncio.subprocess.DEVNULL, cwd=workdir)
    try:
        for kind, proc in procs.items():
            arm.sipp_rc[kind] = await proc.wait()
    finally:  # interrupted: no caller outlives the bench
        for proc in procs.values():
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


class ConsoleEngine(kit.Engine):
    """The engine with its console on a free loopback port (the operators' and supervisor's scripts use
    its API)."""

    KEEP = kit.Engine.KEEP | {"console.listening", "abuse.flag_applied"}

    async def start(self, timeout: float = 120) -> float:
        began = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callflow.cli", "serve", "--lab", self.instance, "--database",
            str(self.database), "--log-format", "json", "--http", "127.0.0.1:0",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=self.env)
        self._reader = asyncio.create_task(self._read(self.proc))
        await self.wait_for("ivr.listening", timeout=timeout)
        self.url = str((await self.wait_for("console.listening", timeout=30))["url"]).rstrip("/")
        return time.monotonic() - began


def cli(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "callflow.cli", *args], capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"siaga112 {' '.join(args[:3])}: {done.stderr.strip() or done.stdout.strip()}")


def add_user(database: Path, name: str, role: str, password: str) -> None:
    done = subprocess.run([sys.executable, "-m", "callflow.cli", "console", "--database", str(database),
                           "user", "add", name, "--role", role, "--password-stdin"],
                          input=password + "\n", capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"console user add {name}: {done.stderr.strip()}")


class Floor:
    """The operators' and the supervisor's scripts: on every AgentConnect of one of the arm's callers, the
    operator tags the call's nature; in the feature arm, a number with ``flag_after`` prank tags in 24 h
    is flagged ``repeat_abuse`` by the supervisor."""

    def __init__(self, lab: LabStatus, arm: Arm, client: httpx.AsyncClient, *, flags: bool,
                 flag_after: int) -> None:
        self.session = AmiSession(lab.ami_endpoint())
        self.arm, self.client, self.flags, self.flag_after = arm, client, flags, flag_after
        self.callers: dict[str, tuple[str, str]] = {}  # uniqueid -> (number, linkedid)
        self.work: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Floor:
        self._tasks = [asyncio.create_task(self.session.run()), asyncio.create_task(self._consume())]
        async with asyncio.timeout(20):
            await self.session.connected.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.work:
            await asyncio.gather(*self.work, return_exceptions=True)
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
            if item.name == "QueueCallerJoin" and chan.caller_id_num in self.arm.numbers:
                self.callers[chan.uniqueid] = (chan.caller_id_num, chan.linkedid)
            elif item.name == "AgentConnect" and chan.uniqueid in self.callers:
                number, linkedid = self.callers.pop(chan.uniqueid)
                task = asyncio.create_task(self._tag(number, linkedid))
                self.work.add(task)
                task.add_done_callback(self.work.discard)

    async def _tag(self, number: str, linkedid: str) -> None:
        nature = NATURE[self.arm.numbers[number]]
        r = await self.client.post(f"/api/calls/{linkedid}/nature",
                                   json={"nature": nature, "caller_number": number})
        if r.status_code != 200:
            self.arm.tag_failures.append(f"{linkedid}: {r.status_code} {r.text[:120]}")
            return
        self.arm.tagged[nature] += 1
        if nature != "prank" or not self.flags or number in self.arm.flagged:
            return
        counts = (await self.client.get(f"/api/calls/by-number/{number}/pranks")).json()
        if counts["last_24h"] >= self.flag_after and number not in self.arm.flagged:
            self.arm.flagged.append(number)
            await asyncio.to_thread(cli, "abuse", "flag", number, "--by", "sup", "--reason",
                                    f"bench: {counts['last_24h']} prank calls in 24 h", "--database",
                                    str(self.arm.database))


def read_arm(arm: Arm) -> None:
    """The arm's records, tags and callback tasks from its database (read-only)."""
    arm.records = kit.read_records(arm.database, arm.prefix)
    conn = sqlite3.connect(f"file:{arm.database}?mode=ro", uri=True, timeout=30)
    try:
        with contextlib.suppress(sqlite3.OperationalError):
            for linkedid, nature in conn.execute("SELECT linkedid, nature FROM calls_nature ORDER BY id"):
                arm.natures[str(linkedid)] = str(nature)
        with contextlib.suppress(sqlite3.OperationalError):
            rows = conn.execute("SELECT number, status, created_at FROM callbacks_tasks ORDER BY id")
            arm.tasks = [(str(n), str(s), str(c)) for n, s, c in rows if str(n) in arm.numbers]
    finally:
        conn.close()


async def wait_for_records(arm: Arm, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        read_arm(arm)
        if len(arm.records) >= expected or time.monotonic() > deadline:
            return
        await asyncio.sleep(1.0)


def site_file(tree: Path, feature: bool, workdir: Path) -> Path:
    """The centre's site file with callbacks on but the first attempt an hour after the hang-up (no callback
    is dialled during a run: what is counted is the rules' decision), this arm's tree and, for the
    baseline, no callback cap."""
    text = (pbx_config_dir() / "site.toml").read_text(encoding="utf-8")
    cap = 1 if feature else NO_CAP
    for key, value in (("per_number_per_hour", cap), ("first_attempt_s", 3600), ("tree", f'"{tree}"')):
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        if n != 1:
            raise RuntimeError(f"pbx-config/site.toml: expected one `{key} = ` line")
    site = workdir / f"site-{'feature' if feature else 'baseline'}.toml"
    site.write_text(text, encoding="utf-8")
    return site


async def run_arm(lab: LabStatus, arm: Arm, arrivals: list[Arrival], args: argparse.Namespace,
                  workdir: Path) -> None:
    feature = arm.name == "feature"
    tree = TREE
    if not feature:  # today's tree: no [silent] probe
        text = TREE.read_text(encoding="utf-8")
        tree = workdir / "tree-without-probe.toml"
        tree.write_text(re.sub(r"(?ms)^\[silent\]\n.*?\n\n", "", text), encoding="utf-8")
    password = secrets.token_urlsafe(18)
    await asyncio.to_thread(add_user, arm.database, "op1", "operator", password)
    env = {"SIAGA112_IVR__TREE": str(tree), "SIAGA112_SITE_FILE": str(site_file(tree, feature, workdir))}
    engine = ConsoleEngine(lab.instance, arm.database, env)
    await engine.start()
    began = time.monotonic()
    try:
        async with httpx.AsyncClient(base_url=engine.url, timeout=30) as client:
            r = await client.post("/api/auth/login", json={"name": "op1", "password": password})
            r.raise_for_status()
            client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
            async with kit.Watcher(lab, arm.prefix) as watcher:
                async with kit.operators(lab, watcher.session, talk_ms=round(args.talk_s * 1000)), \
                        Floor(lab, arm, client, flags=feature, flag_after=args.flag_after):
                    await run_callers(lab, arm, arrivals, workdir)
                offered = sum(len(v) for v in watcher.offered.values())
        await wait_for_records(arm, offered, timeout=60)
    finally:
        arm.seconds = time.monotonic() - began
        arm.problems = [f"{p.get('event')}: {str(p.get('exception') or p.get('error') or p)[-600:]}"
                        for p in engine.problems]
        arm.problems += [line[-300:] for line in engine.not_json if "Error" in line or "error" in line]
        if engine.problems or engine.not_json:  # whole, for whoever reads the run afterwards
            (workdir / f"{arm.name}-engine-problems.log").write_text(
                "".join(json.dumps(p, default=str) + "\n" for p in engine.problems)
                + "".join(line + "\n" for line in engine.not_json), encoding="utf-8")
        await engine.stop()
        for number in arm.flagged:  # leave the lab as it was: Asterisk's database keeps flags
            with contextlib.suppress(RuntimeError):
                await asyncio.to_thread(cli, "abuse", "lift", number, "--by", "sup", "--note", "bench over",
                                        "--database", str(arm.database))
    read_arm(arm)


@dataclass(frozen=True)
class Figures:
    genuine_emergency_sl10: float
    genuine_emergencies: int
    genuine_class_sl10: float | None  # every call classed emergency, less nuisance tags (measures)
    all_sl10: float | None
    genuine_sl10: float | None
    callbacks: int
    skipped: int
    max_callbacks_per_number: int
    silent55_answered: int
    silent55_marked: int
    silent55_total: int
    prank_answered_s: float | None  # mean answer time of prank calls


def figures(arm: Arm) -> Figures:
    kind = {r.linkedid: arm.numbers.get(r.caller_number, "") for r in arm.records}
    emergencies = [r for r in arm.records if kind[r.linkedid] == "emergency"]
    em = answer_times(emergencies)
    classed = [r for r in genuine_calls(arm.records, arm.natures) if r.call_class is CallClass.EMERGENCY]
    silent = [r for r in arm.records if kind[r.linkedid] == "silent55"]
    pranks = [s for r in arm.records if kind[r.linkedid] == "prank" and (s := r.answer_seconds) is not None]
    dialled = [t for t in arm.tasks if t[1] != "skipped"]
    per_number = Counter(t[0] for t in dialled)
    return Figures(
        genuine_emergency_sl10=em.service_levels[10] or 0.0, genuine_emergencies=em.offered,
        genuine_class_sl10=answer_times(classed).service_levels[10],
        all_sl10=answer_times(arm.records).service_levels[10],
        genuine_sl10=answer_times(genuine_calls(arm.records, arm.natures)).service_levels[10],
        callbacks=len(dialled), skipped=len(arm.tasks) - len(dialled),
        max_callbacks_per_number=max(per_number.values(), default=0),
        silent55_answered=sum(1 for r in silent if r.answered is not None),
        silent55_marked=sum(1 for r in silent if str(r.contact) == "silent_caller"),
        silent55_total=arm.placed["silent55"],
        prank_answered_s=sum(pranks) / len(pranks) if pranks else None)


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def report(arm: Arm, f: Figures) -> None:
    rcs = ",".join(f"{k} {v}" for k, v in arm.sipp_rc.items())
    print(f"  {arm.name}: {sum(arm.placed.values())} calls placed, {len(arm.records)} records, "
          f"{arm.seconds:.0f} s; SIPp exit: {rcs}")
    print(f"    genuine emergencies (pressed 1): {f.genuine_emergencies} offered, within 10 s "
          f"{pct(f.genuine_emergency_sl10)}; every call classed emergency less nuisance tags: "
          f"{pct(f.genuine_class_sl10)}")
    print(f"    service level within 10 s: all offered calls {pct(f.all_sl10)}, genuine calls (less prank, "
          f"silent, accidental tags) {pct(f.genuine_sl10)}")
    prank_wait = "-" if f.prank_answered_s is None else f"{f.prank_answered_s:.1f} s"
    print(f"    prank calls: mean answer time {prank_wait}; numbers flagged repeat_abuse: "
          f"{len(arm.flagged)}; tags sent: {dict(arm.tagged)}" + (f"; tag failures {len(arm.tag_failures)}"
                                              if arm.tag_failures else ""))
    print(f"    callbacks: {f.callbacks} tasks to dial ({f.skipped} skipped by the rules), at most "
          f"{f.max_callbacks_per_number} per number")
    print(f"    silent callers pressing 55: {f.silent55_answered} of {f.silent55_total} answered, "
          f"{f.silent55_marked} marked silent_caller")
    for failure in arm.tag_failures[:3]:
        print(f"    tag failure: {failure}")
    if arm.problems:
        print(f"    engine errors: {len(arm.problems)}; first: {arm.problems[0]}")


async def bench(lab: LabStatus, args: argparse.Namespace) -> int:
    queued_share = sum(share for share, _, queued in KINDS.values() if queued) / 100
    rate = args.load * 4 / args.talk_s / queued_share
    arrivals = schedule(random.Random(args.seed), rate=rate, window_s=args.window_s,
                        min_emergencies=args.min_emergencies)
    mix = Counter(a.kind for a in arrivals)
    print(f"nuisance: 4 SIPp operators, talk {args.talk_s:g} s; {len(arrivals)} calls per arm over "
          f"{args.window_s:g} s (Poisson {rate:.2f}/s, seed {args.seed}: queued calls at {args.load:.0%} of "
          "the operators' capacity); mix " + ", ".join(f"{k} {mix[k]}" for k in KINDS)
          + f"; {PRANK_NUMBERS} prank numbers; flag after {args.flag_after} prank tags")
    print(f"  {kit.machine()}")
    tag = kit.run_tag()
    workdir = kit.workdir("nuisance")
    arms = [Arm(name, f"081{tag}{i}", workdir / f"{name}.db") for i, name in enumerate(ARMS)]
    for arm in arms:  # the baseline first: its lab must not see the feature's flags
        await run_arm(lab, arm, arrivals, args, workdir)
    base, feat = (figures(a) for a in arms)
    for arm, f in zip(arms, (base, feat), strict=True):
        report(arm, f)
    print(f"  workdir {workdir}")
    sl_met = feat.genuine_emergency_sl10 >= 0.95 and feat.genuine_emergency_sl10 > base.genuine_emergency_sl10
    print(f"target: genuine emergencies >= 95 % within 10 s with the feature and above the baseline: "
          f"{'met' if sl_met else 'NOT met'}; at most one callback per number per hour: "
          f"{'met' if feat.max_callbacks_per_number <= 1 else 'NOT met'}; every 55 caller answered: "
          f"{'met' if feat.silent55_answered == feat.silent55_total else 'NOT met'}")
    print(f"RESULT genuine_emergency_sl10={feat.genuine_emergency_sl10:.3f} "
          f"baseline_genuine_emergency_sl10={base.genuine_emergency_sl10:.3f} callbacks={feat.callbacks} "
          f"baseline_callbacks={base.callbacks} silent55_answered={feat.silent55_answered} "
          f"silent55_total={feat.silent55_total}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lab", metavar="INSTANCE", help="a running lab (default: start a temporary one)")
    parser.add_argument("--window-s", type=float, default=180.0, help="the compressed day's length per arm")
    parser.add_argument("--load", type=float, default=1.6,
                        help="queued calls' offered load as a share of the 4 operators' capacity")
    parser.add_argument("--talk-s", type=float, default=4.0, help="operators' talk time per call")
    parser.add_argument("--min-emergencies", type=int, default=24,
                        help="at least this many genuine emergency callers per arm")
    parser.add_argument("--flag-after", type=int, default=1,
                        help="the supervisor flags a number after this many prank tags in 24 h")
    parser.add_argument("--seed", type=int, default=112, help="seed of the schedule")
    args = parser.parse_args()
    with kit.lab_for(args.lab, "bench-nuisance") as lab:
        return asyncio.run(bench(lab, args))


if __name__ == "__main__":
    sys.exit(main())
