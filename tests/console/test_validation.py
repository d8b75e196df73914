"""Bad input: 422 with a message naming the field; the provider behind never sees it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callflow.console.catalog import IncidentStatus
from callflow.console.models import (
    DispatchStepState,
    Incident,
    IncidentDraft,
    OperatorState,
    OperatorStatus,
)
from callflow.console.routes_floor import start_of_day
from tests.console.conftest import Console


class RecordingIncidents:
    """Keeps what reached it: the test checks invalid input never does."""

    def __init__(self) -> None:
        self.created: list[IncidentDraft] = []
        self.changes: list[tuple[str, str]] = []

    async def incidents(self, *, status: IncidentStatus | None, caller_number: str | None,
                        since: datetime | None) -> Sequence[Incident]:
        return []

    def _incident(self, draft: IncidentDraft, by: str) -> Incident:
        return Incident(id="inc-1", category=draft.category, district=draft.district,
                        status=IncidentStatus.WAIT,
                        notes=draft.notes, address=draft.address, linkedid=draft.linkedid,
                        caller_number=draft.caller_number, created_at=datetime(2026, 11, 22, tzinfo=UTC),
                        created_by=by)

    async def create(self, draft: IncidentDraft, by: str) -> Incident:
        self.created.append(draft)
        return self._incident(draft, by)

    async def dispatch(self, incident_id: str, unit: str, by: str) -> Incident:
        self.changes.append((incident_id, unit))
        return self._incident(IncidentDraft(category="fire", district="wenang"), by)  # type: ignore[arg-type]

    async def set_status(self, incident_id: str, status: IncidentStatus, by: str) -> Incident:
        self.changes.append((incident_id, status.value))
        return self._incident(IncidentDraft(category="fire", district="wenang"), by)  # type: ignore[arg-type]

    async def dispatch_step(self, incident_id: str, dispatch_id: str, state: DispatchStepState,
                            by: str) -> Incident:
        self.changes.append((incident_id, f"{dispatch_id}:{state.value}"))
        return self._incident(IncidentDraft(category="fire", district="wenang"), by)  # type: ignore[arg-type]


class RecordingOperators:
    def __init__(self) -> None:
        self.changes: list[tuple[str, OperatorState, str]] = []

    async def operators(self) -> Sequence[OperatorStatus]:
        return []

    async def set_state(self, operator: str, state: OperatorState, reason: str) -> OperatorStatus:
        self.changes.append((operator, state, reason))
        now = datetime(2026, 11, 22, tzinfo=UTC)
        return OperatorStatus(operator=operator, state=state, reason=reason, since=now, seconds_in_state=0)


@pytest.mark.parametrize(("body", "field"), [
    ({"category": "volcano", "district": "wenang"}, "category"),
    ({"category": "fire", "district": "jakarta"}, "district"),
    ({"district": "wenang"}, "category"),
    ({"category": "fire"}, "district"),
    ({"category": "fire", "district": "wenang", "caller_number": "08x1"}, "caller_number"),
    ({"category": "fire", "district": "wenang", "notes": "x" * 2001}, "notes"),
    ({"category": "fire", "district": "wenang", "linkedid": "1; DROP TABLE"}, "linkedid"),
    ({"category": "fire", "district": "wenang", "priority": "high"}, "priority"),
])
async def test_invalid_incident_names_the_field_and_writes_nothing(
        console: Console, body: dict[str, str], field: str) -> None:
    incidents = RecordingIncidents()
    console.ctx.providers.incidents = incidents
    async with console.client() as c:
        await console.login(c, "op1")
        r = await c.post("/api/incidents", json=body)
    assert r.status_code == 422, r.text
    answer = r.json()
    assert field in [f["field"] for f in answer["fields"]]
    assert f"{field}:" in answer["message"]
    assert incidents.created == []


async def test_valid_incident_reaches_the_provider_with_who_created_it(console: Console) -> None:
    incidents = RecordingIncidents()
    console.ctx.providers.incidents = incidents
    async with console.client() as c:
        await console.login(c, "op1")
        r = await c.post("/api/incidents", json={"category": "electricity", "district": "paal_dua",
                                                 "caller_number": "081234567890", "notes": " tiang miring "})
        assert r.status_code == 201, r.text
        assert r.json()["created_by"] == "op1"
        assert r.json()["notes"] == "tiang miring"
        bad = await c.post("/api/incidents/inc-1/status", json={"status": "closed"})
        assert bad.status_code == 422
        assert "status:" in bad.json()["message"]
        bad = await c.post("/api/incidents/inc-1/dispatch", json={"unit": ""})
        assert "unit:" in bad.json()["message"]
        bad = await c.post("/api/incidents/..%2Fetc/dispatch", json={"unit": "Damkar"})
        assert bad.status_code in (404, 422)
        ok = await c.post("/api/incidents/inc-1/dispatch", json={"unit": "Damkar Wenang"})
        assert ok.status_code == 200
        bad = await c.post("/api/incidents/inc-1/dispatches/7/step", json={"state": "arrived"})
        assert (bad.status_code, bad.json()["fields"][0]["field"]) == (422, "state")
        bad = await c.post("/api/incidents/inc-1/dispatches/7%3B1/step", json={"state": "on_scene"})
        assert (bad.status_code, bad.json()["fields"][0]["field"]) == (422, "dispatch_id")
        ok = await c.post("/api/incidents/inc-1/dispatches/7/step", json={"state": "on_scene"})
        assert ok.status_code == 200
    assert len(incidents.created) == 1
    assert incidents.changes == [("inc-1", "Damkar Wenang"), ("inc-1", "7:on_scene")]


async def test_pause_needs_a_reason_and_only_operators_set_their_state(console: Console) -> None:
    operators = RecordingOperators()
    console.ctx.providers.operators = operators
    async with console.client() as c:
        await console.login(c, "op1")
        r = await c.post("/api/operators/me/state", json={"state": "paused"})
        assert r.status_code == 422
        assert r.json()["fields"] == [
            {"field": "reason", "message": "a pause needs a reason (e.g. break, briefing)"}]
        r = await c.post("/api/operators/me/state", json={"state": "on_call"})
        assert r.status_code == 422
        assert "state:" in r.json()["message"]
        r = await c.post("/api/operators/me/state", json={"state": "paused", "reason": "break"})
        assert r.status_code == 200
        assert r.json()["state"] == "paused"
    async with console.client() as c:
        await console.login(c, "sup")
        r = await c.post("/api/operators/me/state", json={"state": "ready"})
        assert r.status_code == 403
    assert operators.changes == [("op1", OperatorState.PAUSED, "break")]


@pytest.mark.parametrize(("path", "field"), [
    ("/api/calls/by-number/08-12", "number"),
    ("/api/calls/recent?limit=0", "limit"),
    ("/api/calls/by-number/081234567890?days=400", "days"),
    ("/api/incidents?status=open", "status"),
    ("/api/reports/summary?start=2026-11-22T00:00:00Z&end=2026-11-21T00:00:00Z", "end"),
    ("/api/reports/summary?start=yesterday&end=2026-11-21T00:00:00Z", "start"),
    ("/api/reports/summary?start=2026-11-20T00:00:00&end=2026-11-21T00:00:00", "start/end"),
])
async def test_invalid_queries_name_the_field(console: Console, path: str, field: str) -> None:
    async with console.client() as c:
        await console.login(c, "sup")
        r = await c.get(path)
    assert r.status_code == 422, r.text
    assert r.json()["message"].removeprefix("invalid input: ").startswith(f"{field}:") or \
        f"{field}:" in r.json()["message"]


async def test_malformed_json_is_a_clear_422(console: Console) -> None:
    async with console.client() as c:
        await console.login(c, "op1")
        r = await c.post("/api/incidents", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert "invalid input" in r.json()["message"]


def test_today_starts_at_midnight_in_manado() -> None:
    wita = ZoneInfo("Asia/Makassar")
    # 17:30 UTC on the 21st is already 01:30 on the 22nd in Manado
    assert start_of_day(datetime(2026, 11, 21, 17, 30, tzinfo=UTC), wita) == datetime(2026, 11, 21, 16, 0,
                                                                                      tzinfo=UTC)
    assert start_of_day(datetime(2026, 11, 22, 8, 0, tzinfo=UTC), wita) == datetime(2026, 11, 21, 16, 0,
                                                                                    tzinfo=UTC)


async def test_the_incident_forms_choices_are_the_centres_categories_districts_and_statuses(
        console: Console) -> None:
    """/api/catalog is what the form offers; the form's ids must be ones the incident store accepts."""
    async with console.client() as c:
        await console.login(c, "op1")
        r = await c.get("/api/catalog")
    assert r.status_code == 200, r.text
    body = r.json()
    emergency = [c["id"] for c in body["categories"] if c["emergency"]]
    other = [c["id"] for c in body["categories"] if not c["emergency"]]
    assert (len(emergency), len(other)) == (9, 7)  # DOMAIN.md: 9 emergency + 7 non-emergency categories
    assert {"fire", "health", "other_complaint"} <= set(emergency)
    assert {"street_lighting", "garbage"} <= set(other)
    fire = next(c for c in body["categories"] if c["id"] == "fire")
    assert (fire["label_id"], fire["label_en"]) == ("kebakaran", "fire")
    districts = {d["id"]: d["name"] for d in body["districts"]}
    assert len(districts) == 11
    assert districts["paal_dua"] == "Paal Dua"
    assert districts["bunaken_kepulauan"] == "Bunaken Kepulauan"
    assert [(s["id"], s["label_id"], s["label_en"]) for s in body["statuses"]] == [
        ("wait", "menunggu", "waiting"), ("handling", "ditangani", "being handled"),
        ("done", "selesai", "done")]
    # every id offered is accepted by the incident form's model (one definition, no drift)
    for cat in emergency + other:
        for district in districts:
            IncidentDraft(category=cat, district=district)  # type: ignore[arg-type]


async def test_the_form_offers_the_categories_of_the_site_the_engine_runs(console: Console,
                                                                          tmp_path: Path) -> None:
    """The catalog follows the running site: a site applied without `garbage` takes it off the form."""
    from callflow.site_watch import SiteCategories  # noqa: PLC0415
    from callflow.siteconfig import load_site, pbx_config_dir  # noqa: PLC0415

    shipped = pbx_config_dir() / "site.toml"
    categories = SiteCategories(load_site(shipped).site)
    console.ctx.providers.categories = categories
    async with console.client() as c:
        await console.login(c, "op1")
        before = {x["id"] for x in (await c.get("/api/catalog")).json()["categories"]}
        assert len(before) == 16
        site = tmp_path / "site.toml"
        site.write_text(shipped.read_text().replace('"clean_water", "garbage"]', '"clean_water"]'))
        categories.learn(load_site(site).site)  # what the engine's site watcher does on an apply
        after = {x["id"] for x in (await c.get("/api/catalog")).json()["categories"]}
    assert before - after == {"garbage"}
