"""The console's callbacks panel reads the callback service (queues/callbacks) through CallbacksProvider."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callflow.policies import callback_policy
from queues.callbacks import CallbackService
from tests.console.conftest import Console
from tests.support.callbacks import StubEngine, record


async def test_open_callbacks_are_listed_for_the_floor(console: Console, tmp_path: Path) -> None:
    svc = CallbackService(tmp_path / "siaga112.db", callback_policy(), interval_s=0.01)
    runner = asyncio.create_task(svc.run(StubEngine()))  # type: ignore[arg-type]
    try:
        await svc.on_call_record(record(number="081234567890", linkedid="1796000000.1"))
        await svc.on_call_record(record(number="anonymous", linkedid="1796000000.2"))
        console.ctx.providers.callbacks = svc
        async with console.client() as client:
            await console.login(client, "op1")
            r = await client.get("/api/callbacks")
        assert r.status_code == 200, r.text
        rows = {row["linkedid"]: row for row in r.json()}
        assert rows["1796000000.1"]["status"] == "pending"
        assert rows["1796000000.1"]["number"] == "081234567890"
        assert rows["1796000000.2"]["status"].startswith("supervisor (number withheld")
        assert rows["1796000000.1"]["reason"] == "abandoned_in_queue (emergency)"
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
