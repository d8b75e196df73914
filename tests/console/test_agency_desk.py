"""Agency accounts on the console over the real store (item 1 and 2 of issue 21): an agency works only the
reports handed to it (acknowledge, notes, en route, on scene, done), each step stamped by the engine's
clock and audited; another agency's report, recordings, exports, calls and the live stream are 403; the
caller's number only when the site allows it; a hand-off past its deadline is escalated once, naming who
was told and when, and shows to supervisors and in the backlog."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from callflow.agencies import HandoffPolicy
from callflow.cli import main
from callflow.console import Role
from callflow.console.app import create_app
from callflow.console.wiring import StoreWiring, store_providers
from callflow.incidents import load_registry
from callflow.store import StoreLocation
from tests.console.conftest import AGENCIES, PASSWORD, Console
from tests.support.asgi import served
from tests.support.browser import STALE, chromium, click, log_in, screenshot, text, wait_contains, wait_text

BROWSER_ZONE = "America/New_York"  # an operator's browser set to another zone than the centre's


@pytest.fixture
async def desk(console: Console, tmp_path: Path,
               store_location: StoreLocation) -> AsyncIterator[tuple[Console, StoreWiring, Path]]:
    database = store_location  # the console's own store: one shared store, as in the engine
    assert isinstance(database, Path)  # these tests read the SQLite file directly
    root = tmp_path / "recordings"
    root.mkdir()
    wiring = store_providers(database, recordings_root=root, clock=console.clock,
                             registry=load_registry(AGENCIES), handoffs=HandoffPolicy(sweep_s=3600))
    for resource in wiring.resources:
        await resource.start()
    p = console.ctx.providers
    w = wiring.providers
    p.calls, p.incidents, p.reports = w.calls, w.incidents, w.reports
    p.recordings, p.agencies = w.recordings, w.agencies
    await console.ctx.accounts.add_user("pln-desk", Role.AGENCY, PASSWORD, agency_id="electricity")
    await console.ctx.accounts.add_user("pdam-desk", Role.AGENCY, PASSWORD, agency_id="water")
    try:
        yield console, wiring, database
    finally:
        for resource in reversed(wiring.resources):
            await resource.stop()


async def _handed(console: Console, op: httpx.AsyncClient, category: str, unit: str,
                  caller: str = "081234567890") -> int:
    r = await op.post("/api/incidents", json={"category": category, "district": "wenang",
                                              "address": "Jl. Sam Ratulangi", "caller_number": caller})
    assert r.status_code == 201, r.text
    incident = r.json()["id"]
    console.clock.advance(seconds=30)
    r = await op.post(f"/api/incidents/{incident}/dispatch", json={"unit": unit})
    assert r.status_code == 200, r.text
    return int(incident)


def _at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_an_agency_acknowledges_reports_progress_and_closes_its_report(
        desk: tuple[Console, StoreWiring, Path]) -> None:
    console, wiring, database = desk
    published: list[dict[str, Any]] = []
    wiring.agencies.publish = published.append
    async with console.client() as op, console.client() as pln:
        await console.login(op, "op1")
        await console.login(pln, "pln-desk")
        power = await _handed(console, op, "electricity", "electricity-wenang")
        await _handed(console, op, "clean_water", "water-wenang")  # the water company's, not shown
        handed = console.clock()

        [listed] = (await pln.get("/api/agency/reports")).json()
        assert (listed["id"], listed["agency_id"]) == (power, "electricity")
        assert listed["caller_number"] is None  # the site does not allow it (the default)
        assert _at(listed["handed_at"]) == handed - timedelta(seconds=30)
        # electricity is a non-emergency category: 24 h to acknowledge
        assert _at(listed["acknowledge_due"]) == _at(listed["handed_at"]) + timedelta(hours=24)

        console.clock.advance(minutes=3, microseconds=7)
        r = await pln.post(f"/api/agency/reports/{power}/acknowledge")
        assert r.status_code == 200, r.text
        acked = console.clock()
        assert _at(r.json()["acknowledged_at"]) == acked
        r = await pln.post(f"/api/agency/reports/{power}/acknowledge")  # twice: refused, nothing written
        assert r.status_code == 409
        assert "already acknowledged" in r.json()["message"]

        console.clock.advance(minutes=1)
        r = await pln.post(f"/api/agency/reports/{power}/notes", json={"text": "crew leaving the depot"})
        assert r.status_code == 200, r.text
        assert [n["text"] for n in r.json()["progress"]] == ["crew leaving the depot"]
        console.clock.advance(minutes=1)
        r = await pln.post(f"/api/agency/reports/{power}/step", json={"state": "en_route"})
        assert (r.status_code, _at(r.json()["en_route_at"])) == (200, console.clock())
        console.clock.advance(minutes=20)
        r = await pln.post(f"/api/agency/reports/{power}/step", json={"state": "on_scene"})
        assert (r.status_code, _at(r.json()["on_scene_at"])) == (200, console.clock())
        console.clock.advance(minutes=40)
        r = await pln.post(f"/api/agency/reports/{power}/done", json={"what": ""})
        assert r.status_code == 422  # what was done is required
        what = {"what": "fallen line cut and re-strung"}
        r = await pln.post(f"/api/agency/reports/{power}/done", json=what)
        assert r.status_code == 200, r.text
        done_at = console.clock()
        assert (_at(r.json()["done_at"]), r.json()["done_note"]) == (done_at, "fallen line cut and re-strung")
        assert (await pln.get("/api/agency/reports")).json() == []  # nothing open left
        r = await pln.post(f"/api/agency/reports/{power}/notes", json={"text": "late"})
        assert r.status_code == 409
        assert "already marked done" in r.json()["message"]

        # the centre sees the agency's work: the incident is done with what was done, its unit free
        incident = next(i for i in (await op.get("/api/incidents")).json() if i["id"] == str(power))
    assert incident["status"] == "done"
    [d] = incident["dispatches"]
    assert (d["state"], _at(d["closed_at"])) == ("closed", done_at)
    with sqlite3.connect(database) as db:
        steps = db.execute("SELECT e.state, e.by, e.source FROM dispatch_event e JOIN dispatch_dispatch d "
                           "ON d.id = e.dispatch_id WHERE d.incident_id = ? ORDER BY e.id",
                           (power,)).fetchall()
        note = db.execute("SELECT note, by FROM incident_status_change WHERE incident_id = ? AND "
                          "to_status = 'done'", (power,)).fetchone()
    assert steps == [("dispatched", "op1", "engine_clock"), ("en_route", "pln-desk", "engine_clock"),
                     ("on_scene", "pln-desk", "engine_clock"), ("closed", "pln-desk", "engine_clock")]
    assert note == ("electricity: fallen line cut and re-strung", "pln-desk")
    audited = [(a, act, out, target) for a, act, out, target, *_ in await console.audit_rows()
               if a == "pln-desk"]
    assert audited[1:] == [
        ("pln-desk", "agency.acknowledge", "ok", f"report:{power}"),
        ("pln-desk", "agency.acknowledge", "failed", f"report:{power}"),
        ("pln-desk", "agency.note", "ok", f"report:{power}"),
        ("pln-desk", "agency.step", "ok", f"report:{power}"),
        ("pln-desk", "agency.step", "ok", f"report:{power}"),
        ("pln-desk", "agency.done", "ok", f"report:{power}"),
        ("pln-desk", "agency.note", "failed", f"report:{power}")]
    assert [m["change"] for m in published] == ["agency_acknowledged", "agency_note", "agency_en_route",
                                                "agency_on_scene", "agency_done"]


async def test_an_agency_sees_nothing_else(desk: tuple[Console, StoreWiring, Path]) -> None:
    console, _, _ = desk
    async with console.client() as op, console.client() as pdam:
        await console.login(op, "op1")
        await console.login(pdam, "pdam-desk")
        power = await _handed(console, op, "electricity", "electricity-wenang")
        for method, path in (("GET", f"/api/agency/reports/{power}"),
                             ("POST", f"/api/agency/reports/{power}/acknowledge"),
                             ("GET", "/api/agency/reports/99999"),  # unknown: the same answer, no oracle
                             ("GET", "/api/recordings"), ("GET", "/api/recordings/1/download"),
                             ("GET", "/api/reports/export?start=2026-11-22T00:00:00%2B08:00"
                                     "&end=2026-11-23T00:00:00%2B08:00"),
                             ("GET", "/api/incidents"), ("GET", "/api/calls/recent"), ("GET", "/api/events"),
                             ("GET", "/api/agency/overdue"), ("GET", "/api/agency/backlog"),
                             ("GET", "/api/agency/deliveries"),
                             ("GET", "/api/agency/report?start=2026-11-22T00:00:00%2B08:00"
                                     "&end=2026-11-23T00:00:00%2B08:00")):
            r = await pdam.request(method, path)
            assert r.status_code == 403, (path, r.text)
        assert (await pdam.get("/api/agency/reports")).json() == []
        assert (await op.get("/api/agency/reports")).status_code == 403  # operators have no agency desk
    denied = [(act, out, target) for a, act, out, target, *_ in await console.audit_rows() if a == "pdam-desk"
              and out == "denied"]
    assert ("agency.view", "denied", f"report:{power}") in denied
    assert ("agency.acknowledge", "denied", f"report:{power}") in denied
    assert ("recording.download", "denied", "/api/recordings/1/download") in denied
    assert any(act == "export" for act, _, _ in denied)


async def test_the_caller_number_only_when_the_site_allows_it(
        desk: tuple[Console, StoreWiring, Path]) -> None:
    console, wiring, _ = desk
    async with console.client() as op, console.client() as pln:
        await console.login(op, "op1")
        await console.login(pln, "pln-desk")
        power = await _handed(console, op, "electricity", "electricity-wenang", caller="081299990000")
        assert (await pln.get(f"/api/agency/reports/{power}")).json()["caller_number"] is None
        wiring.agencies.desk.policy = replace(wiring.agencies.desk.policy, caller_number_visible=True)
        assert (await pln.get(f"/api/agency/reports/{power}")).json()["caller_number"] == "081299990000"


async def test_an_overdue_handoff_is_escalated_once_naming_who_was_told(
        desk: tuple[Console, StoreWiring, Path]) -> None:
    console, wiring, _ = desk
    published: list[dict[str, Any]] = []
    wiring.agencies.publish = published.append
    service = wiring.agencies.desk
    async with console.client() as op, console.client() as sup, console.client() as pln:
        await console.login(op, "op1")
        await console.login(sup, "sup")
        await console.login(pln, "pln-desk")
        fire = await _handed(console, op, "fire", "fire-wenang-1")  # emergency: acknowledge within 15 min
        handed = console.clock()
        power = await _handed(console, op, "electricity", "electricity-wenang")  # 24 h: not late
        console.clock.advance(minutes=14, seconds=29)  # the electricity hand-off took 30 s
        assert await service.sweep() == []
        console.clock.advance(seconds=1)  # 15 min after the fire's hand-off: due now
        [made] = await service.sweep()
        assert (made.incident_id, made.agency_id, made.stage.value) == (fire, "fire-wenang", "acknowledge")
        assert made.due_at == handed + timedelta(minutes=15)
        assert made.escalated_at == console.clock()
        assert made.notified == ("supervisor:sup",)  # the fire brigade has no console account
        console.clock.advance(minutes=5)
        assert await service.sweep() == []  # once per stage
        [shown] = (await sup.get("/api/agency/overdue")).json()
        assert shown | {"report_id": fire, "agency_id": "fire-wenang", "stage": "acknowledge",
                        "notified": ["supervisor:sup"], "still_open": True} == shown
        assert _at(shown["escalated_at"]) == made.escalated_at
        backlog = {row["agency_id"]: row for row in (await sup.get("/api/agency/backlog")).json()}
        assert (backlog["fire-wenang"]["open"], backlog["fire-wenang"]["overdue"]) == (1, 1)
        assert (backlog["electricity"]["open"], backlog["electricity"]["overdue"]) == (1, 0)

        # the electricity company lets its report run past 7 days undone (acknowledged in time)
        assert (await pln.post(f"/api/agency/reports/{power}/acknowledge")).status_code == 200
        console.clock.advance(days=7)
        made = await service.sweep()
        assert sorted((m.incident_id, m.stage.value) for m in made) == [(fire, "done"), (power, "done")]
        told = next(m for m in made if m.incident_id == power).notified
        assert told == ("supervisor:sup", "agency:pln-desk")
        await console.login(pln, "pln-desk")  # a week later: the 12 h session has expired
        [late] = (await pln.get("/api/agency/reports")).json()
        assert late["overdue"] == ["done"]
    overdue = [(m["id"], m["stage"], m["notified"]) for m in published if m["type"] == "agency.overdue"]
    assert sorted(overdue) == sorted([(str(fire), "acknowledge", ["supervisor:sup"]),
                                      (str(fire), "done", ["supervisor:sup"]),
                                      (str(power), "done", ["supervisor:sup", "agency:pln-desk"])])


async def test_the_report_and_the_wallboard_count_the_same_backlog(
        desk: tuple[Console, StoreWiring, Path], capsys: pytest.CaptureFixture[str]) -> None:
    console, _, database = desk
    async with console.client() as op, console.client() as sup, console.client() as pln:
        await console.login(op, "op1")
        await console.login(sup, "sup")
        await console.login(pln, "pln-desk")
        first = await _handed(console, op, "electricity", "electricity-wenang")
        await _handed(console, op, "street_lighting", "electricity-sario")
        await _handed(console, op, "clean_water", "water-wenang")
        r = await pln.post(f"/api/agency/reports/{first}/done", json={"what": "fixed"})
        assert r.status_code == 200
        board = {r["agency_id"]: r["open"] for r in (await sup.get("/api/agency/backlog")).json()}
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["report", "agencies", "--database", str(database), "--from",
                                          "2026-11-22", "--to", "2026-11-22", "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0, out
    figures = json.loads(out)
    async with console.client() as sup:
        await console.login(sup, "sup")
        served = (await sup.get("/api/agency/report?start=2026-11-22T00:00:00%2B08:00"
                                "&end=2026-11-23T00:00:00%2B08:00")).json()
    # the console serves the same figures (the backlog's instant differs: the engine's clock, not now)
    assert {k: v for k, v in served.items() if k not in ("backlog", "backlog_at")} == {
        k: v for k, v in figures.items() if k not in ("backlog", "backlog_at")}
    assert served["backlog"].keys() == figures["backlog"].keys()
    assert board == {"electricity": 1, "water": 1}
    assert {a: sum(bands.values()) for a, bands in figures["backlog"].items()} == board
    assert figures["agencies"]["electricity"] | {"handed": 2, "completed": 1, "rate": 0.5,
                                                 "meets_goal": False} == figures["agencies"]["electricity"]
    rows = {(r["agency"], r["category"]): r for r in figures["by_category"]}
    assert rows[("electricity", "electricity")]["completion"]["rate"] == 1.0
    assert figures["months"] == {"2026-11": {"handed": 3, "completed": 1, "rate": 1 / 3, "goal": 0.6,
                                             "meets_goal": False}}


# -- in Chromium ---------------------------------------------------------------------------------------
NOT_YET = "\u2013"  # the page's "not yet" mark (an en dash)


def _agency_in_chromium(url: str, report: int) -> None:
    with chromium() as driver:
        box = f"#report-{report}"
        log_in(driver, f"{url}/agency", "pln-desk", PASSWORD)
        assert text(driver, "#agency-name") == "electricity"
        assert text(driver, "#report-count") == "1"
        assert "081234567890" not in text(driver, box)  # no caller number for agencies by default
        click(driver, f"{box} .ack")
        _wait_until(driver, lambda: f"acknowledged {NOT_YET}" not in text(driver, f"{box} .state")
                    and bool(text(driver, f"{box} .state")))
        click(driver, f"{box} .on-scene")
        _wait_until(driver, lambda: f"on scene {NOT_YET}" not in text(driver, f"{box} .state"))
        driver.find_element(By.CSS_SELECTOR, f"{box} .note-text").send_keys(  # type: ignore[attr-defined]
            "pole replaced, power back")
        click(driver, f"{box} .done")
        wait_text(driver, "#report-count", "0")
        assert text(driver, "#action-msg") == f"#{report} done"
        screenshot(driver, "agency-desk-done.png")


def _wait_until(driver: object, condition: Callable[[], bool]) -> None:
    WebDriverWait(driver, 20, poll_frequency=0.1, ignored_exceptions=STALE).until(lambda _: condition())


def _wallboard_in_chromium(url: str, report: int) -> str:
    """The supervisor's wallboard: the water company's overdue report in the agencies panel, read in a browser
    set to New York's time: the page still shows the centre's clock (the site's zone) and says so."""
    with chromium() as driver:
        driver.execute_cdp_cmd(  # type: ignore[attr-defined]
            "Emulation.setTimezoneOverride", {"timezoneId": BROWSER_ZONE})
        assert driver.execute_script(  # type: ignore[attr-defined]
            "return Intl.DateTimeFormat().resolvedOptions().timeZone") == BROWSER_ZONE
        log_in(driver, f"{url}/wallboard", "sup", PASSWORD)
        wait_contains(driver, "#centre-zone", "times: Asia/Makassar (")
        row = '#agency-backlog tr[data-agency="water"]'
        _wait_until(driver, lambda: bool(text(driver, row)))
        shown = text(driver, f'#agency-overdue li[data-report="{report}"]')
        screenshot(driver, "wallboard-agency-overdue.png")
        return f"{text(driver, row)} | {shown}"


async def test_an_agency_account_in_chromium_acknowledges_reports_on_scene_and_closes(
        desk: tuple[Console, StoreWiring, Path]) -> None:
    console, wiring, database = desk
    async with console.client() as op:
        await console.login(op, "op1")
        power = await _handed(console, op, "electricity", "electricity-wenang")
        water = await _handed(console, op, "clean_water", "water-wenang")
    async with served(create_app(console.ctx)) as url:
        await asyncio.to_thread(_agency_in_chromium, url, power)
        # the water company lets its report go unacknowledged past its 24 h deadline: escalated
        console.clock.advance(hours=24)
        [made] = await wiring.agencies.desk.sweep()
        assert (made.incident_id, made.agency_id, made.notified) == (water, "water",
                                                                     ("supervisor:sup", "agency:pdam-desk"))
        board = await asyncio.to_thread(_wallboard_in_chromium, url, water)
    assert board.startswith("EXAMPLE Water utility 1 1 | ")  # name, open, overdue
    due = made.due_at.astimezone(ZoneInfo("Asia/Makassar")).strftime("%H:%M:%S")  # the centre's clock
    assert due != made.due_at.astimezone(ZoneInfo(BROWSER_ZONE)).strftime("%H:%M:%S")
    assert f"#{water} EXAMPLE Water utility: not acknowledged by {due} — escalated" in board
    assert "to supervisor:sup, agency:pdam-desk" in board
    with sqlite3.connect(database) as db:
        steps = db.execute("SELECT e.state, e.by FROM dispatch_event e JOIN dispatch_dispatch d ON d.id = "
                           "e.dispatch_id WHERE d.incident_id = ? ORDER BY e.id", (power,)).fetchall()
        status = db.execute("SELECT status FROM incident_incident WHERE id = ?", (power,)).fetchone()[0]
        done = db.execute("SELECT kind, by, note FROM agency_handoff_event WHERE incident_id = ? ORDER BY id",
                          (power,)).fetchall()
    assert steps == [("dispatched", "op1"), ("on_scene", "pln-desk"), ("closed", "pln-desk")]
    assert status == "done"
    assert done == [("acknowledged", "pln-desk", ""), ("done", "pln-desk", "pole replaced, power back")]
