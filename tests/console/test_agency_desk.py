"""Agency accounts on the console over the real store (item 1 and 2 of issue 21): an agency works only the
reports handed to it (acknowledge, notes, en route, on scene, done), each step stamped by the engine's
clock and audited; another agency's report, recordings, exports, calls and the live stream are 403; the
caller's number only when the site allows it; a hand-off past its deadline is escalated once, naming who
was told and when, and shows to supervisors and in the backlog."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from callflow.agencies import HandoffPolicy
from callflow.cli import main
from callflow.console import Role
from callflow.console.app import create_app
from callflow.console.wiring import StoreWiring, store_providers
from callflow.incidents import load_registry
from tests.conftest import IN_CI, REPO
from tests.console.conftest import AGENCIES, PASSWORD, Console


BROWSER_ZONE = "America/New_York"  # an operator's browser set to another zone than the centre's


@pytest.fixture
async def desk(console: Console, tmp_path: Path) -> AsyncIterator[tuple[Console, StoreWiring, Path]]:
    database = tmp_path / "console.db"  # the console's own file: one shared store, as in the engine
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
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
NOT_YET = "\u2013"  # the page's "not yet" mark (an en dash)


@asynccontextmanager
async def _served(console: Console) -> AsyncIterator[str]:
    """The console app on a loopback port of this process (uvicorn, as the engine serves it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(console.ctx), lifespan="off", log_config=None,
                                           access_log=False, server_header=False))
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 -- uvicorn's Server exposes a flag, no event
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait({serving}, timeout=5)
        sock.close()


def _chromium() -> tuple[Any, str]:
    profile = tempfile.mkdtemp(prefix="siaga112-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--window-size=1200,900", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options), profile


def _text(driver: Any, css: str) -> str:
    try:
        return str(driver.find_element(By.CSS_SELECTOR, css).text)
    except Exception:  # noqa: BLE001 -- re-rendered or gone meanwhile: read again
        return ""


def _log_in(driver: Any, url: str, name: str) -> None:
    driver.get(url)
    wait = WebDriverWait(driver, 20, poll_frequency=0.1)
    wait.until(lambda d: d.find_element(By.ID, "login-form").is_displayed())
    driver.find_element(By.ID, "login-name").send_keys(name)
    driver.find_element(By.ID, "login-password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait.until(lambda d: d.find_element(By.ID, "app").is_displayed())


def _agency_in_chromium(url: str, report: int, artifacts: Path) -> None:
    driver, profile = _chromium()
    wait = WebDriverWait(driver, 20, poll_frequency=0.1)
    box = f"#report-{report}"

    def text(css: str) -> str:
        return _text(driver, css)

    def click(css: str) -> None:
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, css).is_enabled())
        driver.find_element(By.CSS_SELECTOR, css).click()

    try:
        _log_in(driver, f"{url}/agency", "pln-desk")
        wait.until(lambda d: text("#link") == "live")
        assert text("#agency-name") == "electricity"
        assert text("#report-count") == "1"
        assert "081234567890" not in text(box)  # no caller number for agencies by default
        click(f"{box} .ack")
        wait.until(lambda d: f"acknowledged {NOT_YET}" not in text(f"{box} .state") and text(f"{box} .state"))
        click(f"{box} .on-scene")
        wait.until(lambda d: f"on scene {NOT_YET}" not in text(f"{box} .state"))
        driver.find_element(By.CSS_SELECTOR, f"{box} .note-text").send_keys("pole replaced, power back")
        click(f"{box} .done")
        wait.until(lambda d: text("#report-count") == "0")
        assert text("#action-msg") == f"#{report} done"
        artifacts.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(artifacts / "agency-desk-done.png"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wallboard_in_chromium(url: str, report: int, artifacts: Path) -> str:
    """The supervisor's wallboard: the water company's overdue report in the agencies panel, read in a browser
    set to New York's time: the page still shows the centre's clock (the site's zone) and says so."""
    driver, profile = _chromium()
    wait = WebDriverWait(driver, 20, poll_frequency=0.1)
    try:
        driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": BROWSER_ZONE})
        assert driver.execute_script("return Intl.DateTimeFormat().resolvedOptions().timeZone") == BROWSER_ZONE
        _log_in(driver, f"{url}/wallboard", "sup")
        wait.until(lambda d: _text(d, "#centre-zone"))
        assert _text(driver, "#centre-zone").startswith("times: Asia/Makassar (")
        row = '#agency-backlog tr[data-agency="water"]'
        wait.until(lambda d: _text(d, row))
        shown = _text(driver, f'#agency-overdue li[data-report="{report}"]')
        artifacts.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(artifacts / "wallboard-agency-overdue.png"))
        return f"{_text(driver, row)} | {shown}"
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


async def test_an_agency_account_in_chromium_acknowledges_reports_on_scene_and_closes(
        desk: tuple[Console, StoreWiring, Path]) -> None:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        message = "Debian packages chromium and chromium-driver are needed (`make setup`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    console, wiring, database = desk
    async with console.client() as op:
        await console.login(op, "op1")
        power = await _handed(console, op, "electricity", "electricity-wenang")
        water = await _handed(console, op, "clean_water", "water-wenang")
    async with _served(console) as url:
        await asyncio.to_thread(_agency_in_chromium, url, power, REPO / "artifacts")
        # the water company lets its report go unacknowledged past its 24 h deadline: escalated
        console.clock.advance(hours=24)
        [made] = await wiring.agencies.desk.sweep()
        assert (made.incident_id, made.agency_id, made.notified) == (water, "water",
                                                                     ("supervisor:sup", "agency:pdam-desk"))
        board = await asyncio.to_thread(_wallboard_in_chromium, url, water, REPO / "artifacts")
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
