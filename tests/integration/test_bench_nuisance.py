"""Smoke test of bench/nuisance.py (a tiny compressed day, both arms) so the benchmark cannot rot: its
RESULT line is there and holds the issue's invariants that do not depend on the load (the feature never
makes more callbacks than the baseline, at most one per number with the cap, every 55 caller answered).
The service-level targets need the default run's size: docs/benchmarks.md has its figures."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest

from callflow.lab import LabStatus
from tests.conftest import REPO

pytestmark = pytest.mark.integration

RESULT = re.compile(r"RESULT genuine_emergency_sl10=(\d\.\d{3}) baseline_genuine_emergency_sl10=(\d\.\d{3}) "
                    r"callbacks=(\d+) baseline_callbacks=(\d+) silent55_answered=(\d+) silent55_total=(\d+)")
ARM = re.compile(r"^  (baseline|feature): (\d+) calls placed, (\d+) records, \d+ s; SIPp exit: (.*)$",
                 re.MULTILINE)
PER_NUMBER = re.compile(r"callbacks: \d+ tasks to dial \(\d+ skipped by the rules\), "
                        r"at most (\d+) per number")


async def test_nuisance_bench_runs_and_its_result_holds_the_invariants(lab: LabStatus) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "bench" / "nuisance.py"), "--lab", lab.instance, "--window-s", "8",
        "--load", "0.5", "--talk-s", "3", "--min-emergencies", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=REPO)
    async with asyncio.timeout(180):
        out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text
    match = RESULT.fullmatch(text.strip().splitlines()[-1])
    assert match, text
    sl, base_sl = float(match[1]), float(match[2])
    callbacks, base_callbacks, answered, total = (int(match[i]) for i in range(3, 7))
    assert 0.0 <= sl <= 1.0
    assert 0.0 <= base_sl <= 1.0
    arms = ARM.findall(text)
    assert [a[0] for a in arms] == ["baseline", "feature"], text
    for _, placed, records, exits in arms:
        assert int(records) == int(placed), text  # one record per call the callers placed
        assert all(e.endswith(" 0") for e in exits.split(",")), text  # every SIPp caller ended cleanly
    assert callbacks <= base_callbacks, text  # the cap and the flags only ever take callbacks away
    assert [int(n) for n in PER_NUMBER.findall(text)][1] <= 1, text  # the feature: one per number per hour
    assert total >= 1, text  # the schedule holds one call of every kind
    assert answered == total, text  # every caller who pressed 55 was answered
