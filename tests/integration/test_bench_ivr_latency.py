"""Smoke test of bench/ivr_latency.py (2 callers, 1 round) so the benchmark cannot rot."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest

from callflow.lab import LabStatus
from tests.conftest import REPO

pytestmark = pytest.mark.integration


async def test_ivr_latency_bench_runs_and_reports(lab: LabStatus) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "bench" / "ivr_latency.py"), "--lab", lab.instance, "--callers", "2",
        "--rounds", "1", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=REPO)
    async with asyncio.timeout(90):
        out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text
    last = text.strip().splitlines()[-1]
    number = r"(-?[\d.]+)"
    match = re.fullmatch(rf"RESULT live_p95_ms={number} dialplan_p95_ms={number} added_p95_ms={number}", last)
    assert match, text
    live, dialplan, added = (float(g) for g in match.groups())
    assert live > 0
    assert dialplan > 0
    assert added == pytest.approx(live - dialplan, abs=0.2)
    assert text.count("(2/2 joined via their key)") == 2  # both modes: each caller routed by its key
