"""Smoke test of bench/surge_priority.py (seconds of one mix, 2 operators) so the benchmark cannot rot.

The bench adds a queue and dial plan to the lab it runs on, so it runs on a lab of its own, not the
session's (other tests assert the session lab has exactly the centre's two queues).
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator

import pytest

from callflow.lab import LabStatus, down
from tests.conftest import REPO, lab_instance_name, start_lab

pytestmark = pytest.mark.integration

ROW = re.compile(r"^\s+(emergency|nonemergency)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)%\s+([\d.]+)%\s+"
                 r"([\d.]+)%", re.MULTILINE)
ARM = re.compile(r"^  (policy|stock)\s+\(1 phase\(s\), \d+ s, SIPp exit (-?\d+)\)$", re.MULTILINE)
SHARE = r"(\d\.\d{3})"


@pytest.fixture(scope="module")
def surge_lab() -> Iterator[LabStatus]:  # its own lab: other tests assert the session lab's two queues
    status = start_lab(lab_instance_name("test-surge"))
    yield status
    down(status.instance)


async def test_surge_priority_bench_runs_and_its_counts_add_up(surge_lab: LabStatus) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "bench" / "surge_priority.py"), "--lab", surge_lab.instance,
        "--operators", "2", "--minutes", "0.2", "--compress", "1", "--talk-s", "2", "--mix", "74",
        "--patience", "30",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=REPO)
    async with asyncio.timeout(150):
        out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text
    match = re.fullmatch(rf"RESULT policy_emergency_sl10={SHARE} stock_emergency_sl10={SHARE} "
                         rf"policy_nonemergency_sl20={SHARE} stock_nonemergency_sl20={SHARE}",
                         text.strip().splitlines()[-1])
    assert match, text
    assert all(0.0 <= float(share) <= 1.0 for share in match.groups())

    offered = re.search(r"mix 74 % emergency: (\d+) calls offered per arm \((\d+) emergency\) in 1 ", text)
    assert offered, text
    total, emergencies = int(offered[1]), int(offered[2])
    assert total > 0
    assert [(arm, int(rc)) for arm, rc in ARM.findall(text)] == [("policy", 0), ("stock", 0)]
    rows = ROW.findall(text)
    assert [r[0] for r in rows] == ["emergency", "nonemergency"] * 2, text
    for arm_rows in (rows[:2], rows[2:]):  # the same schedule in both arms
        assert sum(int(r[1]) for r in arm_rows) == total
        assert int(arm_rows[0][1]) == emergencies
        for _, n_offered, joined, answered, gave_up, *sl in arm_rows:
            assert int(joined) == int(n_offered), text  # every SIPp caller reached the queue
            assert int(answered) + int(gave_up) == int(joined), text
            sl10, sl15, sl20 = (float(s) for s in sl)
            assert 0 <= sl10 <= sl15 <= sl20 <= 100
    # the RESULT line is the tables' figures for the 74 % mix
    policy_e10, stock_e10, policy_n20, stock_n20 = (float(s) for s in match.groups())
    assert policy_e10 == pytest.approx(float(rows[0][5]) / 100, abs=0.001)
    assert policy_n20 == pytest.approx(float(rows[1][7]) / 100, abs=0.001)
    assert stock_e10 == pytest.approx(float(rows[2][5]) / 100, abs=0.001)
    assert stock_n20 == pytest.approx(float(rows[3][7]) / 100, abs=0.001)
