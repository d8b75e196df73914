"""A dispatched unit's later steps from the console (POST /api/incidents/{id}/dispatches/{dispatch_id}/step)
over the real IncidentService on a temporary store: en route, on scene and closed are stamped by the
engine's clock, feed the "dispatch -> on scene" measure, and a step out of order changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from callflow.console.wiring import StoreWiring
from callflow.store import StoreLocation, open_database
from tests.console.conftest import Console

UNIT = "fire-wenang-1"
DAY = "start=2026-11-22T00:00:00%2B08:00&end=2026-11-23T00:00:00%2B08:00"


def _at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _dispatched(console: Console, c: httpx.AsyncClient) -> tuple[str, int]:
    """A fire in Wenang with fire-wenang-1 sent to it: (incident id, dispatch id)."""
    r = await c.post("/api/incidents", json={"category": "fire", "district": "wenang"})
    assert r.status_code == 201, r.text
    incident_id = r.json()["id"]
    console.clock.advance(seconds=40)
    r = await c.post(f"/api/incidents/{incident_id}/dispatch", json={"unit": UNIT})
    assert r.status_code == 200, r.text
    return incident_id, r.json()["dispatches"][0]["id"]


async def _step(c: httpx.AsyncClient, incident_id: str, dispatch_id: int | str, body: Any) -> httpx.Response:
    return await c.post(f"/api/incidents/{incident_id}/dispatches/{dispatch_id}/step", json=body)


async def _events(database: StoreLocation) -> list[tuple[str, str, str, str]]:
    async with await open_database(database) as conn, conn.execute(
            "SELECT state, at, by, source FROM dispatch_event ORDER BY id") as cur:
        return [(r[0], r[1], r[2], r[3]) for r in await cur.fetchall()]


async def test_dispatched_en_route_on_scene_closed_stamped_by_the_engine_clock(
        wired: tuple[Console, StoreWiring, StoreLocation]) -> None:
    console, wiring, database = wired
    published: list[dict[str, Any]] = []
    wiring.incidents.notify = published.append
    async with console.client() as c:
        await console.login(c, "op1")
        incident_id, dispatch_id = await _dispatched(console, c)
        dispatched = console.clock()
        console.clock.advance(minutes=2, microseconds=250)
        r = await _step(c, incident_id, dispatch_id, {"state": "en_route"})
        assert r.status_code == 200, r.text
        assert r.json()["dispatches"][0] | {"state": "en_route", "on_scene_at": None, "closed_at": None} \
            == r.json()["dispatches"][0]
        console.clock.advance(minutes=9)
        r = await _step(c, incident_id, dispatch_id, {"state": "on_scene"})
        assert r.status_code == 200, r.text
        console.clock.advance(minutes=25)
        async with console.client() as sup:  # supervisors are floor users too
            await console.login(sup, "sup")
            r = await _step(sup, incident_id, dispatch_id, {"state": "closed"})
            assert r.status_code == 200, r.text
            summary = (await sup.get(f"/api/reports/summary?{DAY}")).json()
        [listed] = (await c.get("/api/incidents")).json()
        units = (await c.get("/api/units")).json()
    [d] = listed["dispatches"]
    times = [_at(d[k]) for k in ("dispatched_at", "en_route_at", "on_scene_at", "closed_at")]
    assert times == [dispatched, dispatched + timedelta(minutes=2, microseconds=250),
                     dispatched + timedelta(minutes=11, microseconds=250),
                     dispatched + timedelta(minutes=36, microseconds=250)]
    assert all(t is not None and t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in times)
    assert times == sorted(times)  # type: ignore[type-var]
    assert d["state"] == "closed"
    assert listed["status"] == "handling"  # closing one unit's dispatch leaves the incident open
    assert not next(u for u in units if u["id"] == UNIT)["busy"]  # the unit is free again
    # the steps feed the centre's "dispatch -> on scene" measure (11 min 0.00025 s)
    f = summary["figures"]
    assert (f["response.count"], f["response.within_target"]) == (1, 1)
    assert f["response.max_s"] == pytest.approx(660.00025)
    events = await _events(database)
    assert [(e[0], e[2], e[3]) for e in events] == [
        ("dispatched", "op1", "engine_clock"), ("en_route", "op1", "engine_clock"),
        ("on_scene", "op1", "engine_clock"), ("closed", "sup", "engine_clock")]
    assert [m["change"] for m in published] == ["created", "dispatched", "dispatch_en_route",
                                                "dispatch_on_scene", "dispatch_closed"]
    assert {m["id"] for m in published} == {incident_id}


async def test_a_step_may_be_skipped_but_never_taken_backwards(
        wired: tuple[Console, StoreWiring, StoreLocation]) -> None:
    console, _, database = wired
    async with console.client() as c:
        await console.login(c, "op1")
        incident_id, dispatch_id = await _dispatched(console, c)
        console.clock.advance(minutes=7)
        r = await _step(c, incident_id, dispatch_id, {"state": "on_scene"})  # en route skipped
        assert r.status_code == 200, r.text
        assert r.json()["dispatches"][0]["en_route_at"] is None
        before = await _events(database)
        console.clock.advance(minutes=1)
        r = await _step(c, incident_id, dispatch_id, {"state": "en_route"})
        assert r.status_code == 409
        body = r.json()
        assert body["error"] == "refused"
        assert body["fields"][0]["field"] == "state"
        assert f"dispatch {dispatch_id} ({UNIT}) is already on scene" in body["message"]
        assert "cannot be marked en route" in body["message"]
        assert "forward only" in body["message"]  # and what to do
        r = await _step(c, incident_id, dispatch_id, {"state": "on_scene"})  # twice: refused too
        assert (r.status_code, r.json()["fields"][0]["field"]) == (409, "state")
        assert await _events(database) == before  # nothing written

        r = await _step(c, incident_id, dispatch_id, {"state": "closed"})
        assert r.status_code == 200, r.text
        r = await _step(c, incident_id, dispatch_id, {"state": "closed"})
        assert (r.status_code, r.json()["fields"][0]["field"]) == (409, "dispatch_id")
        assert "is closed" in r.json()["message"]
        assert "Dispatch the unit again" in r.json()["message"]

        # a done incident's dispatches are closed with it: a step names the incident as the reason
        other, second = await _dispatched(console, c)
        assert (await c.post(f"/api/incidents/{other}/status", json={"status": "done"})).status_code == 200
        r = await _step(c, other, second, {"state": "on_scene"})
        assert (r.status_code, r.json()["fields"][0]["field"]) == (409, "incident_id")
        assert f"incident #{other} is done" in r.json()["message"]
        assert "Create a new incident" in r.json()["message"]
    assert [e[0] for e in await _events(database)] == ["dispatched", "on_scene", "closed", "dispatched",
                                                       "closed"]


async def test_unknown_incident_or_dispatch_is_404_naming_which(
        wired: tuple[Console, StoreWiring, StoreLocation]) -> None:
    console, _, database = wired
    async with console.client() as c:
        await console.login(c, "op1")
        incident_id, dispatch_id = await _dispatched(console, c)
        r = await c.post("/api/incidents", json={"category": "health", "district": "sario"})
        undispatched = r.json()["id"]
        for incident, dispatch, field in ((incident_id, dispatch_id + 1, "dispatch_id"),
                                          (undispatched, dispatch_id, "dispatch_id"),  # not its dispatch
                                          (incident_id, "abc", "dispatch_id"),
                                          ("4242", dispatch_id, "incident_id"),
                                          ("abc", dispatch_id, "incident_id")):
            r = await _step(c, incident, dispatch, {"state": "en_route"})
            assert r.status_code == 404, (incident, dispatch, r.text)
            assert r.json()["error"] == "not_found"
            assert r.json()["message"].startswith(f"{field}: "), r.json()
        r = await _step(c, undispatched, dispatch_id, {"state": "en_route"})
        assert "none yet" in r.json()["message"]
    assert [e[0] for e in await _events(database)] == ["dispatched"]


@pytest.mark.parametrize("body", [
    {"state": "arrived"},
    {"state": "dispatched"},  # dispatching is POST .../dispatch
    {"state": ""},
    {},
    {"state": "on_scene", "at": "2026-11-22T07:00:00Z"},  # no client times: the engine's clock stamps
])
async def test_bad_step_body_is_422_naming_the_field(
        wired: tuple[Console, StoreWiring, StoreLocation], body: dict[str, str]) -> None:
    console, _, database = wired
    async with console.client() as c:
        await console.login(c, "op1")
        incident_id, dispatch_id = await _dispatched(console, c)
        r = await _step(c, incident_id, dispatch_id, body)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_input"
    assert r.json()["fields"][0]["field"] == ("at" if "at" in body else "state")
    assert [e[0] for e in await _events(database)] == ["dispatched"]


async def test_step_needs_a_floor_user(wired: tuple[Console, StoreWiring, StoreLocation]) -> None:
    console, _, database = wired
    async with console.client() as c:
        await console.login(c, "op1")
        incident_id, dispatch_id = await _dispatched(console, c)
    async with console.client() as c:
        r = await _step(c, incident_id, dispatch_id, {"state": "en_route"})
        assert r.status_code == 401
        assert "log in" in r.json()["message"]
    async with console.client() as c:
        await console.login(c, "adm")
        r = await _step(c, incident_id, dispatch_id, {"state": "en_route"})
        assert r.status_code == 403
        assert "may not do this" in r.json()["message"]
    async with console.client() as c:
        await console.login(c, "op1")
        del c.headers["X-CSRF-Token"]
        r = await _step(c, incident_id, dispatch_id, {"state": "en_route"})
        assert r.status_code == 403
        assert "CSRF" in r.json()["message"]
    assert [e[0] for e in await _events(database)] == ["dispatched"]
