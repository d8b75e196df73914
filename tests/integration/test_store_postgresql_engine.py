"""Integration: the engine on a PostgreSQL store (``siaga112 serve --lab ... --database postgresql://...``)
records a real lab call there, and the commands read it back from the same URL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callflow.calls.model import Outcome
from callflow.calls.records import load_records
from callflow.calls.tracker import SCHEMAS
from callflow.cli import main
from callflow.lab import LabStatus
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippOperator
from callflow.store import PostgresUrl, open_database
from tests.integration.test_call_records import Ami, call, is_record_of, members
from tests.support.engine import EngineProcess, Record

pytestmark = pytest.mark.integration


@pytest.fixture
async def on_postgresql(lab: LabStatus, postgres_url: str, tmp_path: Path) -> AsyncIterator[EngineProcess]:
    # the spill file goes to the data directory: a temporary one, not the lab's
    proc = EngineProcess(lab.instance, "--database", postgres_url, env={"SIAGA112_DATA_DIR": str(tmp_path)})
    await proc.start()
    yield proc
    await proc.stop()


async def test_engine_on_postgresql_records_a_call_the_commands_read_back(
        lab: LabStatus, on_postgresql: EngineProcess, ami: Ami, postgres_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    async with members(ami[0], "op1"), SippOperator(lab.operators["op1"]["port"]):
        await call(lab, CallerScript(dtmf=PRESS_EMERGENCY, number="081277770111", hold_ms=1000))
        line: Record = await on_postgresql.wait_for(is_record_of("081277770111"))  # type: ignore[arg-type]
    db = await open_database(PostgresUrl.parse(postgres_url), SCHEMAS)
    try:
        [record] = await load_records(db)
    finally:
        await db.close()
    assert record.linkedid == line["linkedid"]
    assert record.outcome is Outcome.ANSWERED
    assert record.operator == "op1"
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["calls", "list", "--database", postgres_url]) == 0
    assert record.linkedid in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["calls", "rebuild", "--check", "--database", postgres_url]) == 0
    assert "1 identical" in capsys.readouterr().out
