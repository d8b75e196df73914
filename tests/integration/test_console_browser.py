"""End to end in headless Chromium: the real engine (with its console) on the lab, real SIPp calls.

A supervisor's wallboard shows an emergency caller waiting, live, and 0 once the caller gives up; an
operator's console pops the call that rings on their phone. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from callflow.ami import AmiConnection, EventItem
from callflow.lab import LabStatus
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippOperator, place_call
from tests.conftest import IN_CI, REPO
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = REPO / "artifacts"
PASSWORD = "Manado-112-test"
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1300")


def _add_user(database: Path, name: str, role: str) -> None:
    """Through the real CLI, password on stdin (never an argument)."""
    done = subprocess.run([sys.executable, "-m", "callflow.cli", "console", "--database", str(database),
                           "user", "add", name, "--role", role, "--password-stdin"],
                          input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr


@pytest.fixture
def browser() -> Iterator[object]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        message = "Debian packages chromium and chromium-driver are needed (`make setup`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium look for a browser to download
    profile = tempfile.mkdtemp(prefix="siaga112-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*BROWSER_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
async def console_engine(lab: LabStatus, tmp_path: Path) -> AsyncIterator[tuple[EngineProcess, str]]:
    database = tmp_path / "siaga112.db"
    for name, role in (("sup", "supervisor"), ("op1", "operator")):
        await asyncio.to_thread(_add_user, database, name, role)
    proc = EngineProcess(lab.instance, "--http", "127.0.0.1:0", env={"SIAGA112_DATABASE": str(database)})
    await proc.start()
    try:
        listening = await proc.wait_for(lambda r: r.get("event") == "console.listening")
        yield proc, str(listening["url"]).rstrip("/")
    finally:
        assert await proc.stop() == 0, proc.tail()


def _text(driver: object, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)  # type: ignore[attr-defined]


def _wait_text(driver: object, css: str, expected: str, timeout: float = 20) -> None:
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: _text(d, css) == expected)
    except Exception as exc:
        raise AssertionError(f"{css} never showed {expected!r} (shows {_text(driver, css)!r})") from exc


def _wait_contains(driver: object, css: str, part: str, timeout: float = 20) -> None:
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: part in _text(d, css))
    except Exception as exc:
        raise AssertionError(f"{css} never contained {part!r} (shows {_text(driver, css)!r})") from exc


def _log_in(driver: object, url: str, name: str) -> None:
    driver.get(url)  # type: ignore[attr-defined]
    _wait_visible(driver, "#login-form")
    driver.find_element(By.ID, "login-name").send_keys(name)  # type: ignore[attr-defined]
    driver.find_element(By.ID, "login-password").send_keys(PASSWORD)  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()  # type: ignore[attr-defined]
    _wait_text(driver, "#link", "live")  # logged in and the live stream is connected


def _wait_visible(driver: object, css: str, timeout: float = 15) -> None:
    WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: d.find_element(By.CSS_SELECTOR, css).is_displayed())


def _screenshot(driver: object, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    return path


async def test_wallboard_shows_an_emergency_caller_waiting_live(
        lab: LabStatus, console_engine: tuple[EngineProcess, str], browser: object) -> None:
    engine, url = console_engine
    await asyncio.to_thread(_log_in, browser, f"{url}/wallboard", "sup")
    await asyncio.to_thread(_wait_text, browser, "#emergency-waiting", "0")
    # panels whose component is not wired say so plainly
    await asyncio.to_thread(_wait_contains, browser, "#panel-stats .panel-status", "call records")
    # the operators panel is wired to the engine's operator manager (issue 6): the site's operators
    await asyncio.to_thread(_wait_contains, browser, "#operators", "op1")
    await asyncio.to_thread(_wait_contains, browser, "#operators", "offline")

    # nobody logged in to the queue: the caller rings in the emergency queue, then gives up after 8 s
    call = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"],
                                          CallerScript(
                                              dtmf=PRESS_EMERGENCY, number="081299990112",
                                              cancel_after_ms=8000)))
    try:
        await engine.wait_for(lambda r: r.get("ami_event") == "QueueCallerJoin")
        await asyncio.to_thread(_wait_text, browser, "#emergency-waiting", "1", 10)
        assert await asyncio.to_thread(_text, browser, "#nonemergency-waiting") == "0"
        await asyncio.to_thread(_screenshot, browser, "wallboard.png")
        result = await call
        assert result.ok, result.output
        await asyncio.to_thread(_wait_text, browser, "#emergency-waiting", "0", 10)
    finally:
        if not call.done():
            call.cancel()


async def test_operator_console_pops_the_call_ringing_on_their_phone(
        lab: LabStatus, console_engine: tuple[EngineProcess, str], browser: object,
        ami: tuple[AmiConnection, asyncio.Queue[EventItem]]) -> None:

    engine, url = console_engine
    conn, _ = ami
    await asyncio.to_thread(_log_in, browser, f"{url}/console", "op1")
    options = await asyncio.to_thread(browser.find_elements, By.CSS_SELECTOR,  # type: ignore[attr-defined]
                                      "#inc-category option[value]:not([value=''])")
    districts = await asyncio.to_thread(browser.find_elements, By.CSS_SELECTOR,  # type: ignore[attr-defined]
                                        "#inc-district option[value]:not([value=''])")
    assert (len(options), len(districts)) == (16, 11)

    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1", "MemberName": "op1"})
    try:
        async with SippOperator(lab.operators["op1"]["port"]):
            call = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"],
                                                  CallerScript(dtmf=PRESS_EMERGENCY,
                                                               number="081288880112", hold_ms=5000)))
            try:
                await engine.wait_for(lambda r: r.get("ami_event") == "AgentConnect"
                                      and r.get("member_name") == "op1")
                await asyncio.to_thread(_wait_text, browser, "#pop-number", "081288880112", 10)
                await asyncio.to_thread(_wait_text, browser, "#pop-state", "connected", 5)
                assert "emergency" in await asyncio.to_thread(_text, browser, "#pop-queue")
                assert "route ivr" in await asyncio.to_thread(_text, browser, "#pop-ivr")
                assert "choice: emergency" in await asyncio.to_thread(_text, browser, "#pop-ivr")
                # earlier calls need the call records: the pop says so instead of showing nothing
                await asyncio.to_thread(_wait_contains, browser, "#panel-history .panel-status",
                                        "call records")
                # the incident form is prefilled from the pop; incidents are not wired: said plainly
                assert await asyncio.to_thread(
                    lambda: browser.find_element(By.ID, "inc-number").get_attribute("value")  # type: ignore[attr-defined]
                ) == "081288880112"
                await asyncio.to_thread(_fill_incident, browser)
                await asyncio.to_thread(_wait_contains, browser, "#panel-incident .panel-status",
                                        "incidents and dispatch")
                await asyncio.to_thread(_screenshot, browser, "console.png")
                result = await call
                assert result.ok, result.output
                await asyncio.to_thread(_wait_contains, browser, "#pop-state", "ended", 10)
            finally:
                if not call.done():
                    call.cancel()
    finally:
        await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})


def _fill_incident(driver: object) -> None:

    Select(driver.find_element(By.ID, "inc-category")).select_by_value("fire")  # type: ignore[attr-defined]
    Select(driver.find_element(By.ID, "inc-district")).select_by_value("wenang")  # type: ignore[attr-defined]
    driver.find_element(By.ID, "inc-notes").send_keys("asap di pasar")  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "#incident-form button").click()  # type: ignore[attr-defined]
