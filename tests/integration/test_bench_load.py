"""Smoke tests of the load and fault benchmarks (bench/surge.py, bench/concurrency.py, bench/faults.py):
each runs for a few seconds with a handful of calls on the session's lab, so the benchmarks cannot rot.
They check the benchmark's own accounting end to end: every call Asterisk saw has exactly one record."""

from __future__ import annotations

import asyncio
import os
import re
import sys

import pytest

from callflow.lab import LabStatus, status
from tests.conftest import REPO, _missing

pytestmark = pytest.mark.integration


async def run_bench(script: str, *args: str, timeout: float = 120) -> tuple[str, dict[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "bench" / script), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, cwd=REPO)
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    last = text.strip().splitlines()[-1]
    assert re.fullmatch(r"RESULT( \w+=-?[\d.]+)+", last), text
    return text, dict(pair.split("=") for pair in last.split()[1:])


async def test_surge_smoke(lab: LabStatus) -> None:
    text, result = await run_bench("surge.py", "--lab", lab.instance, "--rates", "2", "--step-seconds", "2",
                                   "--hold-ms", "500")
    assert list(result) == ["max_cps", "lost", "misclassified"], text
    assert result == {"max_cps": "2", "lost": "0", "misclassified": "0"}, text
    assert "offered 4 (Asterisk), records 4, lost 0, duplicated 0, misclassified 0" in text
    assert re.search(r"CPU \(% of one core\): engine=\d+% ivr=\d+% asterisk=\d+%", text), text


async def test_concurrency_smoke(lab: LabStatus) -> None:
    text, result = await run_bench("concurrency.py", "--lab", lab.instance, "--callers", "6", "--rate", "4",
                                   "--operators", "2", "--talk-ms", "100")
    assert result["callers"] == "6", text
    assert result["max_waiting"] == "6", text  # all six waited at once before the operators came
    assert (result["lost"], result["duplicated"], result["wrong_records"]) == ("0", "0", "0"), text
    assert float(result["engine_rss_mb"]) > 10, text


SCENARIOS = ["engine-kill", "asterisk-restart", "engine-freeze", "kill-during-writes", "disk-full"]


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_fault_smoke(lab: LabStatus, scenario: str) -> None:
    if scenario == "disk-full" and os.geteuid() != 0:
        _missing("root for the disk-full scenario", "it mounts a tmpfs over the lab's recordings root")
    text, result = await run_bench("faults.py", "--lab", lab.instance, "--scenario", scenario, "--rate", "2",
                                   "--seconds", "5", "--fault-at", "2", "--fault-s", "1", "--hold-ms", "500")
    assert list(result) == ["lost", "duplicated", "recover_s"], text
    assert (result["lost"], result["duplicated"]) == ("0", "0"), text
    assert 0 <= float(result["recover_s"]) < 60, text
    assert "database integrity_check: ok" in text
    if scenario == "kill-during-writes":
        assert "integrity_check: ok" in text
        assert re.search(r"missing or changed after: 0 \(rows after: \d+\)", text), text
    if scenario == "disk-full":
        assert "recordings root filled: 0 bytes free" in text
    assert status(lab.instance).running  # the lab survives every fault (Asterisk restarts in place)


async def test_fault_smoke_ami_blackhole(lab: LabStatus) -> None:
    """The engine's AMI link through the benchmark's proxy goes silent both ways for 8 s (half-open).
    Bound on detect_s: with the default heartbeat (a Ping 1.5 s after the last reply, 2.5 s to answer:
    AmiSettings.ping_interval_s / ping_timeout_s), the worst case is a reply arriving just before the
    blackhole: the next Ping goes 1.5 s later and times out 2.5 s after that, 4.0 s in all; 6 s leaves 2 s
    for a loaded two-core machine. The blackhole lasts 8 s so a slower detection is still measured (a
    detection after it ends would be the proxy's close, reported as -1)."""
    text, result = await run_bench("faults.py", "--lab", lab.instance, "--scenario", "ami-blackhole",
                                   "--rate", "2", "--seconds", "5", "--fault-at", "2", "--fault-s", "8",
                                   "--hold-ms", "500")
    assert list(result) == ["lost", "duplicated", "recover_s", "detect_s"], text
    assert (result["lost"], result["duplicated"]) == ("0", "0"), text
    assert 0 < float(result["detect_s"]) <= 6, text
    assert 0 <= float(result["recover_s"]) < 60, text
    assert "reason 'no Ping reply within 2.5 s (half-open connection)'" in text
    assert "database integrity_check: ok" in text
