"""Smoke test of bench/ami_parse.py on a small real capture, so the benchmark cannot rot (seconds)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from callflow.ami import AmiCodec

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "replay" / "data" / "lab-queue-calls-sample.ami"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ami_parse_bench", REPO / "bench" / "ami_parse.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_both_parsers_count_the_same_events_on_a_real_capture() -> None:
    bench = load_bench()
    data = SAMPLE.read_bytes()
    expected = sum(1 for m in AmiCodec().feed(data) if m.kind == "event")
    assert expected > 200
    assert bench.run_ours(data, 4096) == expected
    assert bench.run_panoramisk(data, 4096) == expected
    figures = bench.measure(data, repeat=1)
    assert figures["ours_events"] == figures["panoramisk_events"] == expected
    assert figures["ours_eps"] > 0
    assert figures["panoramisk_eps"] > 0


def test_main_reuses_a_capture_and_ends_with_the_result_line(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench()
    assert bench.main(["--capture", str(SAMPLE), "--min-events", "100", "--repeat", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("RESULT ours_eps=")
    keys = [part.split("=")[0] for part in last.split()[1:]]
    assert keys == ["ours_eps", "panoramisk_eps", "ratio"]
