"""Surge: who is answered within 10/15/20 s under siaga112's queue policy and under a stock Asterisk queue,
with the same callers, the same operators and the same lab, in the same run.

Traffic: Poisson arrivals (a seeded schedule) offered at ``--load`` (default 0.9) of the operators'
capacity (operators / talk time) for one compressed surge per phase. Two mixes: 74 % emergency (the
centre's figures) and complaints three times the emergencies (25 % emergency). Each mix runs twice on the
identical schedule: once with the policy (the centre's ``emergency`` and ``nonemergency`` queues from
pbx-config, reached through their own dial plan contexts, every operator a member of both), once with a
stock queue (``bench-stock``: one FIFO queue, Asterisk's defaults). The arm that goes first alternates
between mixes.

Callers are SIPp UACs, one SIPp process per phase (``-inf`` gives each call its number, its class's
extension and its arrival offset; ``-m`` the count). They dial bench-only extensions that go straight to
the queue (no IVR: the policy arm enters ``siaga-queue-emergency`` / ``siaga-queue-nonemergency`` exactly
as the IVR's route does). The queue does not answer a caller before an operator connects (``Queue(..,r)``
rings), so each caller hangs up ``talk`` seconds after its 200 OK: a fixed talk time from the operator's
answer. Operators are SIPp UASes on op1..opN (``SippOperator``) that answer at once.

Answer time: Asterisk's ``QueueCallerJoin`` -> ``AgentConnect`` event Timestamps (from joining the queue;
with no IVR, arrival and join are the same instant within milliseconds). A caller still unanswered after
``--patience`` seconds gives up and counts as not answered.

The bench-only queue and dial plan are added to the lab instance's rendered configuration (never to
pbx-config/: a production Asterisk must not carry them) and reloaded; see BENCH_QUEUES / BENCH_DIALPLAN.

    .venv/bin/python bench/surge_priority.py [--lab INSTANCE] [--operators 4] [--minutes 5] [--compress 4]
                                            [--talk-s 40] [--load 0.9] [--repeat 1] [--seed 112]
                                            [--mix 74,25]

``--minutes`` is the surge's length and ``--talk-s`` the talk time before compression; ``--compress K``
divides both (arrival rates scale up by K), not the answer-time thresholds or Asterisk's own timers.
Without --lab it starts its own lab instance on free ports and stops it afterwards. The last line is
``RESULT policy_emergency_sl10=P stock_emergency_sl10=P policy_nonemergency_sl20=P
stock_nonemergency_sl20=P`` for the 74 % mix.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import loadkit as kit

from callflow.ami import AmiConnection, EventItem
from callflow.ami.events import ChannelEvent
from callflow.lab import LabStatus
from callflow.lab.sipp import (
    SippOperator,
    caller_ack,
    caller_ack_487,
    caller_bye,
    caller_cancel,
    free_udp_port,
    sdp_pcmu,
    sipp_binary,
)

ARMS = ("policy", "stock")
CLASSES = ("emergency", "nonemergency")
THRESHOLDS = (10, 15, 20)
STOCK_QUEUE = "bench-stock"
MARKER = "siaga112 bench/surge_priority.py"

# Appended to the lab's rendered queues.conf. Asterisk's defaults written out, so [general] cannot change
# them: strategy ringall, timeout 15, retry 5, weight 0, wrapuptime 0, autofill no ([general]'s default).
# One deviation: ringinuse = no (Asterisk's default is yes), else a SIPp operator already on a call would
# take a second one; the policy's queues have ringinuse = no too.
BENCH_QUEUES = f"""
; --- {MARKER}: benchmark only, added to the bench's lab instance, never to pbx-config ---
[{STOCK_QUEUE}]
strategy = ringall
timeout = 15
retry = 5
weight = 0
wrapuptime = 0
autofill = no
ringinuse = no
joinempty = yes
leavewhenempty = no
"""

# Appended to the lab's rendered extensions.conf (contexts with the same name merge). The bench's callers
# arrive on citizen-ingress (from-citizens); these names are not digits, so no entry number pattern takes
# them. The policy arm enters the centre's own queue contexts with what siaga-entry would have set.
BENCH_DIALPLAN = f"""
; --- {MARKER}: benchmark only, added to the bench's lab instance, never to pbx-config ---
[from-citizens]
exten => bench-surge-policy-emergency,1,Goto(siaga-bench-surge,policy-emergency,1)
exten => bench-surge-policy-nonemergency,1,Goto(siaga-bench-surge,policy-nonemergency,1)
exten => bench-surge-stock-emergency,1,Goto(siaga-bench-surge,stock-emergency,1)
exten => bench-surge-stock-nonemergency,1,Goto(siaga-bench-surge,stock-nonemergency,1)

[siaga-bench-surge]
exten => policy-emergency,1,Set(__SIAGA_ARRIVAL=${{EPOCH}})
 same => n,Set(__SIAGA_ROUTE=direct)
 same => n,Goto(siaga-queue-emergency,s,1)
exten => policy-nonemergency,1,Set(__SIAGA_ARRIVAL=${{EPOCH}})
 same => n,Set(__SIAGA_ROUTE=direct)
 same => n,Set(__SIAGA_CATEGORY=street_lighting)
 same => n,Goto(siaga-queue-nonemergency,s,1)
exten => stock-emergency,1,Set(__SIAGA_CLASS=emergency)
 same => n,Queue({STOCK_QUEUE},r)
 same => n,Hangup()
exten => stock-nonemergency,1,Set(__SIAGA_CLASS=nonemergency)
 same => n,Queue({STOCK_QUEUE},r)
 same => n,Hangup()
"""

# One SIPp UAC process per phase. From the injection file: field0 = caller number, field1 = extension,
# field2 = milliseconds to wait before dialling (the arrival). Patience: give up (CANCEL) if unanswered.
_UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="siaga112 surge caller">
<nop><action>
  <assignstr assign_to="d" value="[field2]"/><todouble assign_to="delay" variable="d"/>
</action></nop>
<pause variable="delay"/>
<send retrans="500" start_txn="invite"><![CDATA[
      INVITE sip:[field1]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Surge" <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field1]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:[field0]@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

""" + sdp_pcmu("citizen") + """\
]]></send>
<recv response="100" optional="true" response_txn="invite"/>
<recv response="180" optional="true" response_txn="invite"/>
<recv response="183" optional="true" response_txn="invite"/>
<recv response="200" response_txn="invite" timeout="{patience_ms}" ontimeout="giveup"/>
<send ack_txn="invite"><![CDATA[
""" + caller_ack("[field0]", "[field1]") + """]]></send>
<pause milliseconds="{talk_ms}"/>
<send retrans="500"><![CDATA[
""" + caller_bye("[field0]", "[field1]") + """]]></send>
<recv response="200" crlf="true" next="done"/>
<label id="giveup"/>
<send><![CDATA[
""" + caller_cancel("[field1]") + """]]></send>
<recv response="200"/>
<recv response="487" response_txn="invite"/>
<send ack_txn="invite"><![CDATA[
""" + caller_ack_487("[field1]") + """]]></send>
<label id="done"/>
</scenario>
"""
_LAUNCH_RATE = 100  # calls SIPp creates per second; each then waits for its own arrival offset


@dataclass(frozen=True)
class Arrival:
    at_s: float
    cls: str


@dataclass
class Call:
    number: str
    cls: str
    arm: str
    mix: int
    arrived: datetime | None = None
    joined: datetime | None = None
    queue: str = ""
    connected: datetime | None = None
    operator: str = ""
    abandoned: datetime | None = None

    @property
    def wait_s(self) -> float | None:
        if self.joined is None or self.connected is None:
            return None
        return (self.connected - self.joined).total_seconds()


@dataclass
class Phase:
    mix: int
    arm: str
    calls: list[Call] = field(default_factory=list)
    sipp_rc: int | None = None
    seconds: float = 0.0


def schedule(rng: random.Random, *, rate: float, window_s: float, emergency_share: float) -> list[Arrival]:
    """A Poisson process of ``rate`` calls/s over ``window_s``; each call emergency with the given share."""
    arrivals, t = [], rng.expovariate(rate)
    while t < window_s:
        cls = "emergency" if rng.random() < emergency_share else "nonemergency"
        arrivals.append(Arrival(t, cls))
        t += rng.expovariate(rate)
    return arrivals


class Collector:
    """Queue events of the bench's callers (by caller number), in Asterisk's own Timestamps."""

    def __init__(self, events: asyncio.Queue[EventItem]) -> None:
        self.events = events
        self.calls: dict[str, Call] = {}
        self.by_uniqueid: dict[str, Call] = {}
        self.changed = asyncio.Event()

    async def run(self) -> None:
        while True:
            item = await self.events.get()
            if isinstance(item, ChannelEvent) and item.chan is not None:
                self._apply(item)
                self.changed.set()

    def _apply(self, event: ChannelEvent) -> None:
        chan = event.chan
        assert chan is not None  # noqa: S101 - checked by run()
        if event.name == "Newchannel":
            call = self.calls.get(chan.caller_id_num)
            if call is not None and call.arrived is None:
                call.arrived = event.time
            return
        if event.name == "QueueCallerJoin":
            call = self.calls.get(chan.caller_id_num)
            if call is not None and call.joined is None:
                call.joined = event.time
                call.queue = event.message.get("Queue") or ""
                self.by_uniqueid[chan.uniqueid] = call
            return
        call = self.by_uniqueid.get(chan.uniqueid)
        if call is None:
            return
        if event.name == "AgentConnect" and call.connected is None:
            call.connected = event.time
            call.operator = event.message.get("MemberName") or ""
        elif event.name == "QueueCallerAbandon" and call.abandoned is None:
            call.abandoned = event.time

    def settled(self, calls: list[Call]) -> bool:
        return all(c.connected is not None or c.abandoned is not None for c in calls if c.joined is not None)

    async def wait_settled(self, calls: list[Call], timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self.settled(calls):
                    self.changed.clear()
                    await self.changed.wait()


def install_bench_config(lab: LabStatus) -> None:
    """Add the bench-only queue and dial plan to the lab's rendered configuration (once) and reload."""
    etc = Path(lab.config_dir)
    for name, text in (("queues.conf", BENCH_QUEUES), ("extensions.conf", BENCH_DIALPLAN)):
        path = etc / name
        current = path.read_text(encoding="utf-8")
        if MARKER not in current:
            path.write_text(current.rstrip("\n") + "\n" + text, encoding="utf-8")
    lab.cli("module reload app_queue.so")
    lab.cli("dialplan reload")
    if STOCK_QUEUE not in lab.cli(f"queue show {STOCK_QUEUE}"):
        raise RuntimeError(f"queue {STOCK_QUEUE} did not load in lab {lab.instance}: see {etc}/queues.conf")


@contextlib.asynccontextmanager
async def members(conn: AmiConnection, operators: list[str], queues: tuple[str, ...]
                  ) -> AsyncIterator[None]:
    for queue in queues:
        for name in operators:
            await conn.action("QueueAdd", {"Queue": queue, "Interface": f"PJSIP/{name}", "MemberName": name})
    try:
        yield
    finally:
        for queue in queues:
            for name in operators:
                with contextlib.suppress(Exception):
                    await conn.action("QueueRemove", {"Queue": queue, "Interface": f"PJSIP/{name}"})


async def run_phase(lab: LabStatus, conn: AmiConnection, collector: Collector, *, mix: int, rep: int,
                    arm: str, arrivals: list[Arrival], operators: list[str], talk_s: float, patience_s: float,
                    workdir: Path) -> Phase:
    phase = Phase(mix, arm)  # one schedule (rep) of a mix in one arm
    lines = []
    for i, arrival in enumerate(arrivals):
        number = f"0877{mix:03d}{rep:02d}{ARMS.index(arm)}{i:05d}"
        call = Call(number, arrival.cls, arm, mix)
        collector.calls[number] = call
        phase.calls.append(call)
        # SIPp creates call i at i / _LAUNCH_RATE s: the offset is what is left until its arrival
        offset_ms = max(0, round(arrival.at_s * 1000 - i * 1000 / _LAUNCH_RATE))
        lines.append(f"{number};bench-surge-{arm}-{arrival.cls};{offset_ms}")
    if not lines:
        return phase
    inf = workdir / f"callers-{mix}-{rep}-{arm}.csv"
    inf.write_text("SEQUENTIAL\n" + "\n".join(lines) + "\n", encoding="ascii")
    scenario = workdir / "surge-caller.xml"
    scenario.write_text(_UAC.format(patience_ms=round(patience_s * 1000), talk_ms=round(talk_s * 1000)),
                        encoding="ascii")
    binary = sipp_binary()
    if binary is None:
        raise RuntimeError("sipp not installed: apt-get install sip-tester")
    queues = ("emergency", "nonemergency") if arm == "policy" else (STOCK_QUEUE,)
    run_for = arrivals[-1].at_s + patience_s + talk_s + 30
    cmd = [binary, "-sf", str(scenario), "-inf", str(inf), f"{lab.sip['host']}:{lab.sip['port']}",
           "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_udp_port()),
           "-m", str(len(lines)), "-l", str(len(lines)), "-r", str(_LAUNCH_RATE), "-rp", "1000",
           "-nostdin", "-timeout", f"{int(run_for)}s", "-timeout_error",
           "-trace_err", "-error_file", str(workdir / f"sipp-errors-{mix}-{rep}-{arm}.log")]
    started = time.monotonic()
    async with members(conn, operators, queues):
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL, cwd=workdir)
        try:
            async with asyncio.timeout(run_for + 15):
                phase.sipp_rc = await proc.wait()
        except TimeoutError:
            proc.kill()
            phase.sipp_rc = await proc.wait()
        # the last events (AgentConnect / QueueCallerAbandon) may trail SIPp's exit by a moment
        await collector.wait_settled(phase.calls, timeout=10)
    phase.seconds = time.monotonic() - started
    return phase


def shares(calls: list[Call]) -> dict[int, float]:
    """Share of the calls that joined the queue answered within each threshold (0 with no calls)."""
    joined = [c for c in calls if c.joined is not None]
    if not joined:
        return dict.fromkeys(THRESHOLDS, 0.0)
    return {t: sum(1 for c in joined if (w := c.wait_s) is not None and w <= t) / len(joined)
            for t in THRESHOLDS}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def report(arm: str, phases: list[Phase]) -> dict[str, dict[int, float]]:
    """One table for an arm of a mix, its repeats pooled."""
    rcs = ",".join(str(p.sipp_rc) for p in phases)
    print(f"  {arm:<6} ({len(phases)} phase(s), {sum(p.seconds for p in phases):.0f} s, SIPp exit {rcs})")
    print(f"    {'class':<13} {'offered':>7} {'joined':>6} {'answered':>8} {'gave up':>7} "
          f"{'<=10 s':>7} {'<=15 s':>7} {'<=20 s':>7} {'wait mean':>9} {'p50':>5} {'p95':>5} {'max':>5}")
    result: dict[str, dict[int, float]] = {}
    for cls in CLASSES:
        calls = [c for p in phases for c in p.calls if c.cls == cls]
        joined = [c for c in calls if c.joined is not None]
        answered = [c for c in joined if c.connected is not None]
        gave_up = [c for c in joined if c.connected is None]
        waits = [w for c in answered if (w := c.wait_s) is not None]
        sl = shares(calls)
        result[cls] = sl
        mean = sum(waits) / len(waits) if waits else None
        print(f"    {cls:<13} {len(calls):>7} {len(joined):>6} {len(answered):>8} {len(gave_up):>7} "
              f"{sl[10]:>7.1%} {sl[15]:>7.1%} {sl[20]:>7.1%} {fmt(mean):>9} {fmt(percentile(waits, 50)):>5} "
              f"{fmt(percentile(waits, 95)):>5} {fmt(max(waits, default=None)):>5}")
    to_join = [(c.joined - c.arrived).total_seconds() * 1000 for p in phases for c in p.calls
               if c.arrived is not None and c.joined is not None]
    if to_join:
        print(f"    arrival (Newchannel) -> queue join: max {max(to_join):.0f} ms")
    return result


async def bench(lab: LabStatus, args: argparse.Namespace) -> int:
    install_bench_config(lab)
    operators = [f"op{i}" for i in range(1, args.operators + 1)]
    missing = [name for name in operators if name not in lab.operators]
    if missing:
        print(f"lab {lab.instance} has no static operator {', '.join(missing)}: use --operators "
              f"{len(lab.operators)} or fewer", file=sys.stderr)
        return 2
    window_s = args.minutes * 60 / args.compress
    talk_s = args.talk_s / args.compress
    rate = args.load * len(operators) / talk_s
    mixes = [int(m) for m in args.mix.split(",")]
    print(f"surge_priority: {len(operators)} operators, talk {talk_s:.1f} s (fixed), offered {args.load:.0%} "
          f"of capacity = {rate:.3f} calls/s (Poisson, seed {args.seed}) for {window_s:.0f} s per phase "
          f"({args.minutes:g} min / {args.compress:g}), {args.repeat} schedule(s) per mix; "
          f"patience {args.patience:.0f} s; "
          "answer time = QueueCallerJoin -> AgentConnect")
    for queue in ("emergency", "nonemergency", STOCK_QUEUE):  # as Asterisk loaded them
        shown = lab.cli(f"queue show {queue}")
        strategy, weight = re.search(r"'(\w+)' strategy", shown), re.search(r"W:(\d+)", shown)
        print(f"  queue {queue}: strategy {strategy[1] if strategy else '?'}, "
              f"weight {weight[1] if weight else '?'}")
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    conn = AmiConnection(lab.ami_endpoint(), events)
    await conn.connect()
    collector = Collector(events)
    consumer = asyncio.create_task(collector.run())
    results: dict[tuple[int, str], dict[str, dict[int, float]]] = {}
    phases: list[Phase] = []
    started = time.monotonic()
    try:
        async with contextlib.AsyncExitStack() as stack:
            for name in operators:
                await stack.enter_async_context(SippOperator(lab.operators[name]["port"]))
            with tempfile.TemporaryDirectory(prefix="siaga112-surge-") as tmp:
                rng = random.Random(args.seed)
                n = 0
                for mix in mixes:
                    for rep in range(args.repeat):
                        arrivals = schedule(rng, rate=rate, window_s=window_s, emergency_share=mix / 100)
                        for arm in ARMS if n % 2 == 0 else ARMS[::-1]:  # who goes first alternates
                            phases.append(await run_phase(
                                lab, conn, collector, mix=mix, rep=rep, arm=arm, arrivals=arrivals,
                                operators=operators, talk_s=talk_s, patience_s=args.patience,
                                workdir=Path(tmp)))
                        n += 1
    finally:
        consumer.cancel()
        await conn.close()
    print(f"  total {time.monotonic() - started:.0f} s")
    for mix in mixes:
        emergencies = sum(1 for p in phases if p.mix == mix for c in p.calls if c.cls == "emergency") // 2
        total = sum(len(p.calls) for p in phases if p.mix == mix) // 2
        print(f"mix {mix} % emergency: {total} calls offered per arm ({emergencies} emergency) in "
              f"{args.repeat} schedule(s)")
        for arm in ARMS:
            results[(mix, arm)] = report(arm, [p for p in phases if p.mix == mix and p.arm == arm])
    head = mixes[0]
    if (head, "policy") not in results or (head, "stock") not in results:
        print("no results", file=sys.stderr)
        return 1
    pol, stock = results[(head, "policy")], results[(head, "stock")]
    met = "met" if pol["emergency"][10] >= 0.95 else "NOT met"
    print(f"target: emergency >= 95 % within 10 s under the policy ({head} % mix): {met} "
          f"({pol['emergency'][10]:.1%})")
    print(f"RESULT policy_emergency_sl10={pol['emergency'][10]:.3f} "
          f"stock_emergency_sl10={stock['emergency'][10]:.3f} "
          f"policy_nonemergency_sl20={pol['nonemergency'][20]:.3f} "
          f"stock_nonemergency_sl20={stock['nonemergency'][20]:.3f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lab", metavar="INSTANCE", help="a running lab (default: start a temporary one)")
    parser.add_argument("--operators", type=int, default=4, help="SIPp operators op1..opN (lab has 4)")
    parser.add_argument("--minutes", type=float, default=5.0, help="surge length per phase, uncompressed")
    parser.add_argument("--compress", type=float, default=4.0,
                        help="divide the surge length and talk time by this (rates go up by it)")
    parser.add_argument("--talk-s", type=float, default=40.0, help="talk time per call, uncompressed")
    parser.add_argument("--load", type=float, default=0.9, help="offered load as a share of capacity")
    parser.add_argument("--patience", type=float, default=120.0, help="s a caller waits before giving up")
    parser.add_argument("--repeat", type=int, default=1,
                        help="schedules per mix (each run in both arms; figures pooled)")
    parser.add_argument("--seed", type=int, default=112, help="seed of the arrival schedule")
    parser.add_argument("--mix", default="74,25",
                        help="emergency shares in %% (the first gives the RESULT line)")
    args = parser.parse_args()
    with kit.lab_for(args.lab, "bench-surge-priority") as lab:
        return asyncio.run(bench(lab, args))


if __name__ == "__main__":
    sys.exit(main())
