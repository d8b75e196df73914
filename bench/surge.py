"""Surge: SIPp callers at rising call rates on the real lab Asterisk, with the engine tracking every call.

Per step (a rate in calls/s, held for --step-seconds): 74 % of callers press 1 (emergency), the rest 2 then
4 (complaint: fallen tree); every caller stays --hold-ms after its last key; four SIPp operators (op1..op4,
members of both queues) answer whoever the queues offer them. Reported per step, all measured in the same
run:
  offered        caller channels Asterisk created (Newchannel seen by the benchmark's own AMI session)
  records        call records the engine stored for those callers (must equal offered)
  misclassified  records whose class (and complaint category) differs from the caller's key (must be 0)
  SIPp           calls created / successful / failed as SIPp counted them, and the rate it achieved
  AMI lag        engine receipt minus the event's Asterisk Timestamp, p50/p99 (journal rows of the step)
  record lag     hangup (Asterisk Timestamp) -> the engine's ``call.record`` log line, p99
  CPU            % of one core for the engine (main process), its IVR child, Asterisk, the step's SIPp
                 callers, the SIPp operators and this benchmark; and the machine's idle share

A step is kept up with when nothing is lost, nothing misclassified, SIPp reached >= 90 % of the rate and
failed < 2 % of its calls, and the AMI lag p99 stays under 1 s. The highest such rate is ``max_cps``; at
the first step that fails the benchmark names the process that limits it, from the CPU figures.

    .venv/bin/python bench/surge.py [--lab INSTANCE] [--rates 2,5,10,20,30,45,60,80] [--step-seconds 8]
        [--hold-ms 2000] [--press-ms 600] [--keep-going]

--press-ms: when each caller presses its first key after the answer (600 ms, as PRESS_EMERGENCY in the
tests: about 100 ms after the menu starts listening on an idle machine); the complaint's second key
follows 1 s later.

Without --lab it starts its own lab on free ports and stops it afterwards. Last line:
``RESULT max_cps=N lost=N misclassified=N`` (lost and misclassified summed over all steps run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import loadkit as kit

from callflow.calls.model import CallClass, CallRecord
from callflow.lab import LabStatus

EMERGENCY_SHARE = 0.74
Keys = tuple[tuple[tuple[int, str], ...], tuple[tuple[int, str], ...]]  # emergency caller's, complaint's


@dataclass
class Step:
    rate: float
    offered: int
    records: int
    lost: int
    duplicated: int
    misclassified: int
    created: int
    failed: int
    achieved: float
    lag_p50: float
    lag_p99: float
    record_p99: float
    cpu: dict[str, float]

    @property
    def kept_up(self) -> bool:
        return (self.lost == 0 and self.misclassified == 0 and self.duplicated == 0
                and self.achieved >= 0.9 * self.rate and self.failed < max(1, 0.02 * self.created)
                and self.lag_p99 < 1000)


def misclassified(record: CallRecord, emergency: set[str]) -> bool:
    if record.caller_number in emergency:
        return record.call_class is not CallClass.EMERGENCY
    return record.call_class is not CallClass.NONEMERGENCY or record.category != kit.COMPLAINT_CATEGORY


def limiter(cpu: dict[str, float]) -> str:
    """What limits the rate, from the failing step's CPU figures: the engine is one event loop (a core at
    85 %+ is saturated); else a machine with no idle CPU left (and who used it); else the biggest user."""
    cores = 100 * (os.cpu_count() or 1)
    ours = {k: v for k, v in cpu.items() if k not in {"machine_idle", "other_work"}}
    top = max(ours, key=lambda k: ours[k])
    if cpu.get("engine", 0) >= 85:
        return f"the engine (its event loop at {cpu['engine']:.0f}% of a core)"
    if cpu.get("machine_idle", 0) < 15:
        return (f"the machine's CPU: {cpu.get('machine_idle', 0):.0f}% idle of {cores}%; this run's "
                f"processes used {sum(ours.values()):.0f}% (most: {top} {ours[top]:.0f}%), other work on "
                f"the machine {cpu.get('other_work', 0):.0f}%")
    return f"{top} ({ours[top]:.0f}% of a core; machine idle {cpu.get('machine_idle', 0):.0f}% of {cores}%)"


async def run_step(lab: LabStatus, engine: kit.Engine, watcher: kit.Watcher, op_pids: list[int], *,
                   prefix: str, index: int, rate: float, seconds: float, hold_ms: int, keys: Keys,
                   work: Path) -> Step:
    total = max(2, round(rate * seconds))
    emergency_n = round(total * EMERGENCY_SHARE)
    prefixes = (f"{prefix}1{index:02d}", f"{prefix}2{index:02d}")  # per step: emergency, complaint
    emergency = [f"{prefixes[0]}{i:05d}" for i in range(emergency_n)]
    complaint = [f"{prefixes[1]}{i:05d}" for i in range(total - emergency_n)]
    assert engine.proc is not None  # noqa: S101
    meter = kit.CpuMeter({"engine": [engine.pid], "ivr": kit.children(engine.pid),
                          "asterisk": [lab.pid or 0, *kit.children(lab.pid or 0)], "sipp_operators": op_pids})
    began = kit.utc_now()
    meter.start()
    share = len(emergency) / total
    runs = await asyncio.gather(
        kit.rate_callers(lab, emergency, keys[0], rate=rate * share, hold_ms=hold_ms,
                         workdir=work),
        kit.rate_callers(lab, complaint, keys[1], rate=rate * (1 - share), hold_ms=hold_ms,
                         workdir=work))
    cpu = meter.stop()
    ended = kit.utc_now()
    offered = {n: lids for n, lids in watcher.offered.items() if n.startswith(prefixes)}
    records = [r for r in await kit.wait_records(engine.database, prefix, set(offered), timeout=60)
               if r.caller_number.startswith(prefixes)]
    t = kit.tally(offered, records)
    lags = kit.ami_lags_ms(engine.database, began, ended)
    record_lags = [(engine.record_logged[r.linkedid] - r.ended).total_seconds() * 1000 for r in records
                   if r.ended is not None and r.linkedid in engine.record_logged]
    created = sum(r.created for r in runs)
    # achieved rate, from Asterisk's clock: caller channels over the span of their Newchannel Timestamps
    seen = sorted(watcher.first_seen[n] for n in offered)
    span = (seen[-1] - seen[0]).total_seconds() if len(seen) > 1 else 0.0
    achieved = (len(seen) - 1) / span if span > 0 else 0.0
    step = Step(rate=rate, offered=t.offered, records=len(records), lost=len(t.lost), duplicated=t.duplicated,
                misclassified=sum(misclassified(r, set(emergency)) for r in records), created=created,
                failed=sum(r.failed for r in runs), achieved=achieved,
                lag_p50=kit.percentile(lags, 50), lag_p99=kit.percentile(lags, 99),
                record_p99=kit.percentile(record_lags, 99), cpu=cpu)
    print(f"step {rate:g} calls/s for {seconds:g} s: offered {step.offered} (Asterisk), records "
          f"{step.records}, lost {step.lost}, duplicated {step.duplicated}, misclassified "
          f"{step.misclassified}; SIPp created {created} successful {sum(r.successful for r in runs)} "
          f"failed {step.failed} at {step.achieved:.1f} calls/s", flush=True)
    print(f"  AMI lag p50 {step.lag_p50:.1f} ms p99 {step.lag_p99:.1f} ms ({len(lags)} events); record "
          f"lag p99 {step.record_p99:.0f} ms; engine RSS {kit.rss_mb(engine.pid):.0f} MiB", flush=True)
    print(f"  CPU (% of one core): {kit.fmt_cpu(cpu)}  -> {'kept up' if step.kept_up else 'NOT kept up'}",
          flush=True)
    if t.lost:
        print(f"  lost: {', '.join(t.lost[:10])}", flush=True)
    wrong = [r for r in records if misclassified(r, set(emergency))]
    if wrong:
        # where they went wrong: a caller who hung up before the menu had even started (no IVR step) was
        # never asked; one who reached it was asked but its key was not (or not in time) taken
        unasked = sum(1 for r in wrong if not any(i.name == "ivr_entered" for i in r.instants))
        print(f"  misclassified: {unasked} hung up before the menu started (no IVR step), "
              f"{len(wrong) - unasked} reached the menu", flush=True)
    for r in wrong[:10]:
        chose = "emergency" if r.caller_number in emergency else "complaint"
        print(f"  misclassified {r.caller_number}: chose {chose}, record says {r.call_class} "
              f"({r.category or '-'}), outcome {r.outcome}, IVR path {list(r.ivr_path)}", flush=True)
    return step


async def bench(lab: LabStatus, rates: list[float], *, seconds: float, hold_ms: int, press_ms: int,
                keep_going: bool) -> int:
    keys: Keys = (((press_ms, "1"),), tuple((press_ms + at - kit.COMPLAINT_KEYS[0][0], key)
                                             for at, key in kit.COMPLAINT_KEYS))
    work = kit.workdir("surge")
    engine = kit.Engine(lab.instance, work / "siaga112.db")
    print(f"surge: machine {kit.machine()}", flush=True)
    print(f"engine ready in {await engine.start():.1f} s; rates {rates} calls/s, {seconds:g} s each, "
          f"{EMERGENCY_SHARE:.0%} emergency, callers press at {press_ms} ms and stay "
          f"{hold_ms} ms after their last key", flush=True)
    steps: list[Step] = []
    try:
        prefix = f"0899{kit.run_tag()}"
        async with kit.Watcher(lab, prefix) as watcher, kit.operators(lab, watcher.session) as op_pids:
            for index, rate in enumerate(rates):
                step = await run_step(lab, engine, watcher, op_pids, prefix=prefix, index=index,
                                      rate=rate,
                                      seconds=seconds, hold_ms=hold_ms, keys=keys, work=work)
                steps.append(step)
                if not step.kept_up and not keep_going:
                    break
                await asyncio.sleep(2)  # let the queues drain between steps
    finally:
        await engine.stop()
    kept = [s.rate for s in steps if s.kept_up]
    first_bad = next((s for s in steps if not s.kept_up), None)
    max_cps = max(kept) if kept else 0
    lost = sum(s.lost for s in steps)
    wrong = sum(s.misclassified for s in steps)
    if first_bad is not None:
        print(f"highest rate kept up with: {max_cps:g} calls/s; at {first_bad.rate:g} calls/s the limit is "
              f"{limiter(first_bad.cpu)}")
    else:
        print(f"highest rate kept up with: {max_cps:g} calls/s (every step kept up; try higher --rates)")
    if engine.problems:
        print(f"engine logged {len(engine.problems)} error(s); first: {engine.problems[0]}", file=sys.stderr)
    print(f"RESULT max_cps={max_cps:g} lost={lost} misclassified={wrong}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lab", metavar="INSTANCE", help="a running lab (default: start a temporary one)")
    parser.add_argument("--rates", default="2,5,10,20,30,45,60,80", help="calls/s per step, comma-separated")
    parser.add_argument("--step-seconds", type=float, default=8.0, help="how long each rate is held")
    parser.add_argument("--hold-ms", type=int, default=2000, help="each caller stays this long after its key")
    parser.add_argument("--press-ms", type=int, default=kit.EMERGENCY_KEYS[0][0],
                        help="when each caller presses its first key after the answer")
    parser.add_argument("--keep-going", action="store_true", help="run every rate even after one fails")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    with kit.lab_for(args.lab, "bench-surge") as lab:
        return asyncio.run(bench(lab, rates, seconds=args.step_seconds, hold_ms=args.hold_ms,
                                 press_ms=args.press_ms, keep_going=args.keep_going))


if __name__ == "__main__":
    sys.exit(main())
