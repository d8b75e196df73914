"""Concurrency: --callers emergency callers waiting in the queue at once, then a few operators answer them
all; nothing may be lost and every record must be right. Engine memory is reported.

1. ramp: SIPp places --callers calls at --rate calls/s; each presses 1 and waits until the operator hangs
   up. No operator is logged in yet, so every caller waits in the emergency queue.
2. peak: once Asterisk reports them all in the queue (QueueCallerJoin minus QueueCallerLeave, from the
   benchmark's own AMI session), the engine's RSS (main process and IVR child) and CPU are read.
3. drain: --operators SIPp operators (op1..op4) join both queues; each answers at once, talks --talk-ms and
   hangs up, until every caller is done.

A record is right when it is the caller's (number), class emergency, queue emergency, outcome answered,
answered by one of the operators, with an ``answered`` instant, hung up by the operator.

    .venv/bin/python bench/concurrency.py [--lab INSTANCE] [--callers 300] [--rate 15] [--operators 4]
        [--talk-ms 200]

Last line: ``RESULT callers=N max_waiting=N lost=N duplicated=N wrong_records=N engine_rss_mb=N``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import loadkit as kit

from callflow.calls.model import CallClass, CallRecord, Outcome
from callflow.lab import LabStatus


def wrong(record: CallRecord, operators: set[str]) -> list[str]:
    problems = []
    if record.call_class is not CallClass.EMERGENCY:
        problems.append(f"class {record.call_class}")
    if record.queue != "emergency":
        problems.append(f"queue {record.queue!r}")
    if record.outcome is not Outcome.ANSWERED:
        problems.append(f"outcome {record.outcome}")
    if record.operator not in operators:
        problems.append(f"operator {record.operator!r}")
    if record.answered is None:
        problems.append("no answered instant")
    if record.hangup_by != "operator":
        problems.append(f"hangup_by {record.hangup_by!r}")
    return problems


async def bench(lab: LabStatus, callers: int, rate: float, n_operators: int, talk_ms: int) -> int:
    work = kit.workdir("concurrency")
    engine = kit.Engine(lab.instance, work / "siaga112.db")
    print(f"concurrency: machine {kit.machine()}", flush=True)
    await engine.start()
    idle_rss = kit.rss_mb(engine.pid)
    ivr_pids = kit.children(engine.pid)
    prefix = f"0899{kit.run_tag()}3"
    numbers = [f"{prefix}{i:06d}" for i in range(callers)]
    names = kit.OPERATORS[:n_operators]
    print(f"engine ready, RSS {idle_rss:.0f} MiB; {callers} callers at {rate:g} calls/s, then {len(names)} "
          f"operators answer ({talk_ms} ms each)", flush=True)
    try:
        async with kit.Watcher(lab, prefix) as watcher:
            began = time.monotonic()
            meter = kit.CpuMeter({"engine": [engine.pid], "ivr": ivr_pids,
                                  "asterisk": [lab.pid or 0, *kit.children(lab.pid or 0)]})
            meter.start()
            sipp = asyncio.create_task(kit.rate_callers(lab, numbers, kit.EMERGENCY_KEYS, rate=rate,
                                                        hold_ms=0, workdir=work, remote_hangup=True))
            deadline = began + callers / rate + 60
            while watcher.waiting < callers and time.monotonic() < deadline and not sipp.done():  # noqa: ASYNC110
                await asyncio.sleep(0.5)  # polls a counter and a deadline: no event to wait on
            ramp_cpu = meter.stop()
            peak_rss = kit.rss_mb(engine.pid)
            ivr_rss = sum(kit.rss_mb(p) for p in ivr_pids)
            print(f"peak: {watcher.waiting} callers waiting in the queue at once (max seen "
                  f"{watcher.max_waiting}) after {time.monotonic() - began:.1f} s; engine RSS {peak_rss:.0f} "
                  f"MiB (idle {idle_rss:.0f}), IVR child {ivr_rss:.0f} MiB", flush=True)
            print(f"  ramp CPU (% of one core): {kit.fmt_cpu(ramp_cpu)}", flush=True)
            drain_began = time.monotonic()
            meter.start()
            async with kit.operators(lab, watcher.session, names, talk_ms=talk_ms):
                run = await sipp
            drain_cpu = meter.stop()
            print(f"drain: {time.monotonic() - drain_began:.1f} s; SIPp created {run.created} successful "
                  f"{run.successful} failed {run.failed}; CPU: {kit.fmt_cpu(drain_cpu)}", flush=True)
            offered = dict(watcher.offered)
            max_waiting = watcher.max_waiting
        records = await kit.wait_records(engine.database, prefix, set(offered), timeout=60)
        peak_rss = max(peak_rss, kit.rss_mb(engine.pid))
    finally:
        await engine.stop()
    t = kit.tally(offered, records)
    bad = {r.caller_number: p for r in records if (p := wrong(r, set(names)))}
    print(f"offered {t.offered} (Asterisk Newchannel), records {t.records}, lost {len(t.lost)}, duplicated "
          f"{t.duplicated}, wrong {len(bad)}")
    for number, problems in list(bad.items())[:10]:
        print(f"  wrong record {number}: {', '.join(problems)}")
    if t.lost:
        print(f"  lost: {', '.join(t.lost[:10])}")
    if engine.problems:
        print(f"engine logged {len(engine.problems)} error(s); first: {engine.problems[0]}", file=sys.stderr)
    print(f"RESULT callers={t.offered} max_waiting={max_waiting} lost={len(t.lost)} "
          f"duplicated={t.duplicated} wrong_records={len(bad)} engine_rss_mb={peak_rss:.0f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lab", metavar="INSTANCE", help="a running lab (default: start a temporary one)")
    parser.add_argument("--callers", type=int, default=300, help="callers waiting at once")
    parser.add_argument("--rate", type=float, default=15.0, help="calls/s while the callers arrive")
    parser.add_argument("--operators", type=int, default=4, choices=range(1, 5), help="operators answering")
    parser.add_argument("--talk-ms", type=int, default=200, help="how long an operator talks, then hangs up")
    args = parser.parse_args()
    with kit.lab_for(args.lab, "bench-concurrency") as lab:
        return asyncio.run(bench(lab, args.callers, args.rate, args.operators, args.talk_ms))


if __name__ == "__main__":
    sys.exit(main())
