"""Smoke test: bench/journal.py runs end to end on tiny figures and ends with its RESULT line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "journal.py"


def test_journal_benchmark_smoke(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(BENCH), "--rows", "2000", "--single-rows", "50",
                             "--lag-seconds", "0.3", "--dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"RESULT group_rows_per_s=(\d+) single_rows_per_s=(\d+) lag_p50_ms=([\d.]+) "
                     r"lag_p99_ms=([\d.]+)", last)
    assert m, last
    group, single = int(m.group(1)), int(m.group(2))
    assert group > 0
    assert single > 0
    assert float(m.group(3)) <= float(m.group(4))
