"""Operators tag each call's nature (issue 19 item 2) through the real providers over a real store: the
tag is on the call's summary, in the supervisors' CSV export and in ``calls export``; a live call is tagged
with the number on the screen; the pop's prank counts come from the tags (24 h and 30 days)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from callflow.calls.export import export_csv, export_json
from callflow.calls.model import Outcome
from callflow.console.wiring import StoreWiring
from callflow.store import StoreLocation
from tests.console.conftest import Console
from tests.console.test_providers import NOW, NUMBER, _store, call


async def test_an_operator_tags_a_call_and_the_tag_is_on_the_record_and_in_the_export(
        wired: tuple[Console, StoreWiring, StoreLocation]) -> None:
    console, _, database = wired
    await _store(database, [call("7.1", NOW - timedelta(hours=1), Outcome.ANSWERED, answer_s=5.0),
                            call("7.2", NOW - timedelta(minutes=30), Outcome.ANSWERED, answer_s=4.0)])
    async with console.client() as c:
        await console.login(c, "op1")
        first = await c.post("/api/calls/7.1/nature", json={"nature": "genuine_emergency"})
        fixed = await c.post("/api/calls/7.1/nature", json={"nature": "prank"})  # a correction: latest wins
        bad = await c.post("/api/calls/7.2/nature", json={"nature": "funny"})
        unknown = await c.post("/api/calls/9.9/nature", json={"nature": "test"})
        live = await c.post("/api/calls/9.9/nature", json={"nature": "silent", "caller_number": "0811"})
        recent = (await c.get("/api/calls/recent?limit=5")).json()
    assert first.status_code == 200
    assert fixed.json() | {"linkedid": "7.1", "nature": "prank", "tagged_by": "op1",
                           "caller_number": NUMBER} == fixed.json()
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"] == "nature"
    assert unknown.status_code == 409
    assert "caller_number" in unknown.text
    assert live.status_code == 200
    assert {r["linkedid"]: r["nature"] for r in recent} == {"7.1": "prank", "7.2": ""}
    async with console.client() as c:
        await console.login(c, "sup")
        r = await c.get("/api/reports/export?start=2026-11-22T00:00:00%2B08:00"
                        "&end=2026-11-23T00:00:00%2B08:00")
    rows = {row["linkedid"]: row["nature"] for row in csv.DictReader(io.StringIO(r.text))}
    assert rows == {"7.1": "prank", "7.2": ""}


async def test_prank_counts_per_number_over_24_hours_and_30_days(
        wired: tuple[Console, StoreWiring, StoreLocation]) -> None:
    console, _, database = wired
    await _store(database, [call("8.1", NOW - timedelta(hours=2), Outcome.ANSWERED, answer_s=5.0),
                            call("8.2", NOW - timedelta(hours=1), Outcome.ANSWERED, answer_s=5.0),
                            call("8.3", NOW - timedelta(minutes=5), Outcome.ANSWERED, answer_s=5.0)])
    async with console.client() as c:
        await console.login(c, "op1")
        for lid in ("8.1", "8.2"):
            assert (await c.post(f"/api/calls/{lid}/nature", json={"nature": "prank"})).status_code == 200
    console.clock.advance(hours=25)  # the first two tags are now older than 24 h
    async with console.client() as c:
        await console.login(c, "op1")
        assert (await c.post("/api/calls/8.3/nature", json={"nature": "prank"})).status_code == 200
        counts = (await c.get(f"/api/calls/by-number/{NUMBER}/pranks")).json()
        assert (await c.post("/api/calls/8.3/nature", json={"nature": "accidental"})).status_code == 200
        after = (await c.get(f"/api/calls/by-number/{NUMBER}/pranks")).json()
    assert (counts["last_24h"], counts["last_30d"]) == (1, 3)
    assert (after["last_24h"], after["last_30d"]) == (0, 2)  # a corrected tag is no longer a prank


def test_exports_carry_contact_and_nature() -> None:
    record = call("6.1", NOW, Outcome.ANSWERED, answer_s=3.0)
    [row] = list(csv.DictReader(io.StringIO(export_csv([record], {"6.1": "test"}))))
    assert (row["nature"], row["contact"]) == ("test", "")
    assert json.loads(export_json([record], {"6.1": "test"}))[0]["nature"] == "test"
