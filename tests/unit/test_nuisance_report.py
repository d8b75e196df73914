"""Honest numbers (issue 19 item 5, the report part): ``report answer-times`` gives the service levels over
all offered calls and over genuine calls (calls tagged prank, silent or accidental left out), the nuisance
share by hour, and the top repeat numbers, masked unless asked."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from callflow.calls.model import CallClass, CallRecord, Outcome
from callflow.calls.nature import Nature, tag_call
from callflow.calls.records import store_records
from callflow.calls.tracker import SCHEMAS
from callflow.cli import main
from callflow.store import StoreLocation, open_database
from tests.conftest import BOTH_STORES

T0 = datetime(2026, 11, 30, 8, 0, 0, 250_000, tzinfo=UTC)


def call(n: int, number: str, answer_s: float | None, minutes: int) -> CallRecord:
    arrival = T0 + timedelta(minutes=minutes)
    answered = arrival + timedelta(seconds=answer_s) if answer_s is not None else None
    return CallRecord(linkedid=f"1796000000.{n}", caller_number=number, caller_name="", dialed="112",
                      call_class=CallClass.EMERGENCY, outcome=Outcome.ANSWERED if answered else
                      Outcome.ABANDONED_IN_QUEUE, arrival=arrival, ended=arrival + timedelta(seconds=60),
                      answered=answered, operator="op1" if answered else "", queue="emergency")


@BOTH_STORES
def test_genuine_service_level_nuisance_share_and_top_numbers(store_location: StoreLocation,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    db = store_location
    records = [call(1, "081200000001", 5.0, 0), call(2, "081299999999", 40.0, 10),
               call(3, "081299999999", 35.0, 20), call(4, "081200000004", 8.0, 70)]

    async def store() -> None:
        conn = await open_database(db, SCHEMAS)
        try:
            await store_records(conn, records)
            for lid in ("1796000000.2", "1796000000.3"):  # slow answers to a prank caller
                await tag_call(conn, linkedid=lid, caller_number="081299999999", nature=Nature.PRANK,
                               by="op1", at=T0 + timedelta(hours=2))
            await tag_call(conn, linkedid="1796000000.1", caller_number="081200000001",
                           nature=Nature.GENUINE_EMERGENCY, by="op1", at=T0 + timedelta(hours=2))
        finally:
            await conn.close()

    asyncio.run(store())
    argv = ["report", "answer-times", "--database", str(db), "--since", T0.isoformat(),
            "--until", (T0 + timedelta(hours=3)).isoformat(), "--format", "json", "--timezone", "UTC"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["overall"]["offered"] == 4
    assert out["overall"]["service_levels"]["10"] == 0.5
    assert out["genuine"]["offered"] == 2
    assert out["genuine"]["service_levels"]["10"] == 1.0
    assert out["nuisance_by_hour"] == {"08": {"nuisance": 2, "calls": 3, "share": 2 / 3},
                                   "09": {"nuisance": 0, "calls": 1, "share": 0.0}}
    [top] = out["top_repeat_numbers"]
    assert top["nuisance_calls"] == 2
    assert top["number"] != "081299999999"  # masked by default
    assert top["number"].endswith("999")
    assert main([*argv, "--show-numbers"]) == 0
    assert json.loads(capsys.readouterr().out)["top_repeat_numbers"][0]["number"] == "081299999999"
