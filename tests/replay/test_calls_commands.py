"""The ``calls`` and ``report`` commands on a database filled by the tracker from recorded lab sessions."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any, cast

import pytest

from callflow.calls.tracker import CallTracker
from callflow.cli import main
from tests.replay.test_call_records import SESSION_NAMES, _Listener
from tests.support.calls import session_events


async def _fill(path: Path) -> None:
    listener = _Listener()
    tracker = CallTracker(path, listeners=[listener])
    task = asyncio.create_task(tracker.run(cast(Any, None)))
    for name in SESSION_NAMES:
        for ev in session_events(name):
            await tracker.handle(ev)
    async with asyncio.timeout(10):
        while len(listener.records) < len(SESSION_NAMES):
            listener.changed.clear()
            await listener.changed.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "siaga112.db"
    asyncio.run(_fill(path))
    return path


def test_list_show_export_rebuild_and_report(database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--database", str(database)]
    assert main(["calls", "list", *db]) == 0
    out = capsys.readouterr().out
    assert f"{len(SESSION_NAMES)} calls" in out
    assert "abandoned_in_queue" in out

    assert main(["calls", "show", "1795334444.8", *db]) == 0
    out = capsys.readouterr().out
    assert "transferred" in out
    assert "blind 202@from-operators" in out

    assert main(["calls", "export", "--format", "json", *db]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) == len(SESSION_NAMES)
    assert {d["outcome"] for d in data} == {"answered", "abandoned_in_queue", "short_abandon", "transferred"}

    assert main(["calls", "export", "--format", "csv", "--since", "2026-11-22T16:05:00", *db]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["linkedid"] for r in rows} == {"1795334848.24", "1795334991.27"}  # 16:05 WITA = 08:05 UTC

    assert main(["calls", "rebuild", "--check", *db]) == 0
    assert f"{len(SESSION_NAMES)} identical" in capsys.readouterr().out
    assert main(["calls", "rebuild", *db]) == 0
    capsys.readouterr()

    assert main(["report", "answer-times", "--format", "json", *db]) == 0
    report = json.loads(capsys.readouterr().out)
    overall = report["overall"]
    assert overall["citizen_calls"] == len(SESSION_NAMES)
    assert overall["short_abandons"] == 1
    assert overall["offered"] == len(SESSION_NAMES) - 1
    assert overall["answered"] == 4
    assert set(report["by_class"]) == {"emergency"}
    assert report["callbacks"]["tasks"] == 0
    assert main(["report", "answer-times", *db]) == 0
    assert "short abandons (counted apart)" in capsys.readouterr().out


def test_commands_say_when_there_is_no_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calls", "list", "--database", str(tmp_path / "missing.db")]) == 2
    assert "no database at" in capsys.readouterr().err
    assert main(["calls", "show", "x", "--database", str(tmp_path / "missing.db")]) == 2
