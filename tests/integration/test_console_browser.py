"""End to end in headless Chromium: the real engine (with its console) on the lab, real SIPp calls.

A supervisor's wallboard shows an emergency caller waiting, live, raises the "emergency caller waiting"
threshold after 10 s (the supervisor acknowledges it: who and when, audited), clears it and shows 0 once
the caller gives up. A repeat caller's call pops on the operator's console with the number, the time
waited (the record's answer time), a ticking talk timer, the IVR path in words and the earlier call; the
operator's own state shows from the start; the callbacks panel follows the stream; the operator
classifies, dispatches the suggested unit, marks it en route and on scene, and closes it on the page; the
wallboard counts the call answered within 10 s. A complaint call's IVR category fills the incident form.
An operator who opens the wallboard gets a 403 page with a way back. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from callflow.ami import AmiConnection, EventItem
from callflow.lab import LabStatus
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippOperator, place_call
from tests.support.browser import (
    GREEN,
    GREY,
    STALE,
    add_user,
    audit,
    choose,
    chromium,
    click,
    displayed,
    fits,
    log_in,
    on_fresh,
    screenshot,
    selected,
    style,
    text,
    wait_contains,
    wait_text,
    wait_visible,
)
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.integration

@pytest.fixture
def browser() -> Iterator[object]:
    with chromium() as driver:
        yield driver


@pytest.fixture
async def console_engine(lab: LabStatus, tmp_path: Path) -> AsyncIterator[tuple[EngineProcess, str]]:
    database = tmp_path / "siaga112.db"
    await asyncio.to_thread(add_user, database, "sup", "supervisor", "--operator-id", "op2")  # sup's phone
    await asyncio.to_thread(add_user, database, "op1", "operator")
    # this test's own database: callbacks on (first attempt after 60 s: none is dialled during a test), so
    # an abandoned call's task is pending and an answered repeat call supersedes it
    proc = EngineProcess(lab.instance, "--http", "127.0.0.1:0",
                         env={"SIAGA112_DATABASE": str(database), "SIAGA112_CALLBACKS__DIAL": "true"})
    await proc.start()
    try:
        listening = await proc.wait_for(lambda r: r.get("event") == "console.listening")
        yield proc, str(listening["url"]).rstrip("/")
    finally:
        assert await proc.stop() == 0, proc.tail()


async def test_wallboard_shows_an_emergency_caller_waiting_live(
        lab: LabStatus, console_engine: tuple[EngineProcess, str], browser: object) -> None:
    engine, url = console_engine
    await asyncio.to_thread(log_in, browser, f"{url}/wallboard", "sup")
    await asyncio.to_thread(wait_text, browser, "#emergency-waiting", "0")
    # operators are wired to the engine's operator manager (issue 6): the site's operators, offline
    await asyncio.to_thread(wait_contains, browser, "#operators", "op1")
    await asyncio.to_thread(wait_contains, browser, "#operators", "offline")
    await asyncio.to_thread(wait_text, browser, "#callbacks-open", "0")  # callbacks are wired (issue 6)
    assert not await asyncio.to_thread(displayed, browser, "#panel-callbacks .panel-status")
    await asyncio.to_thread(wait_text, browser, "#stat-offered", "0")  # call records are wired
    assert not await asyncio.to_thread(displayed, browser, "#panel-stats .panel-status")
    assert await asyncio.to_thread(text, browser, "#stat-short") == "0"  # short abandons, counted apart
    await asyncio.to_thread(wait_text, browser, "#alerts", "all within limits")
    # each operator state has its own colour: offline is not the neutral grey
    assert await asyncio.to_thread(style, browser, "#operators .state-badge", "backgroundColor") != GREY

    # nobody logged in to the queue: the caller rings in the emergency queue, then gives up after 16 s
    call = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"],
                                          CallerScript(
                                              dtmf=PRESS_EMERGENCY, number="081299990112",
                                              cancel_after_ms=16000)))
    alert = "#alerts li[data-kind='emergency_wait']"
    try:
        await engine.wait_for(lambda r: r.get("ami_event") == "QueueCallerJoin")
        await asyncio.to_thread(wait_text, browser, "#emergency-waiting", "1", 10)
        assert await asyncio.to_thread(text, browser, "#nonemergency-waiting") == "0"
        await asyncio.to_thread(screenshot, browser, "wallboard.png")
        # waiting longer than 10 s: the threshold is raised, in red, until a supervisor acknowledges it
        await asyncio.to_thread(wait_visible, browser, f"{alert}.raised button.ack", 12)
        assert await asyncio.to_thread(style, browser, f"{alert}.raised", "color") == "rgb(239, 68, 68)"
        await asyncio.to_thread(screenshot, browser, "wallboard-threshold.png")
        await asyncio.to_thread(click, browser, f"{alert} button.ack")
        await asyncio.to_thread(wait_contains, browser, f"{alert}.acknowledged", "acknowledged by sup at", 5)
        await asyncio.to_thread(screenshot, browser, "wallboard-threshold-acknowledged.png")
        rows = audit(Path(engine.env["SIAGA112_DATABASE"]), "threshold.ack")
        assert [(r[0], r[2]) for r in rows] == [("sup", "ok")], rows
        assert rows[0][3] == "emergency_wait: 1 emergency caller(s) waiting longer than 10 s", rows
        result = await call
        assert result.ok, result.output
        await asyncio.to_thread(wait_text, browser, "#emergency-waiting", "0", 10)
        # the condition ended: the alert is cleared (and kept, greyed, with who acknowledged it)
        await asyncio.to_thread(wait_contains, browser, f"{alert}.cleared", "cleared", 10)
        # the abandoned emergency call becomes an open callback task, shown live once its record is stored
        await asyncio.to_thread(wait_text, browser, "#callbacks-open", "1", 15)
        # and today's service level (0 of 1 answered within 10 s) is below its 90 % target
        await asyncio.to_thread(wait_visible, browser, "#alerts li[data-kind='service_level'].raised", 10)
        await asyncio.to_thread(screenshot, browser, "wallboard-after-abandon.png")
    finally:
        if not call.done():
            call.cancel()


NUMBER = "081288880112"


async def test_repeat_call_pops_is_classified_dispatched_closed_and_counted_on_the_wallboard(
        lab: LabStatus, console_engine: tuple[EngineProcess, str], browser: object,
        ami: tuple[AmiConnection, asyncio.Queue[EventItem]]) -> None:
    engine, url = console_engine
    conn, _ = ami
    # the same browser, two sites: the operator's console on 127.0.0.1, the wallboard on localhost (each
    # host keeps its own session cookie)
    board_url = url.replace("127.0.0.1", "localhost")
    await asyncio.to_thread(log_in, browser, f"{board_url}/wallboard", "sup")
    await asyncio.to_thread(wait_text, browser, "#stat-abandoned", "0")
    board = browser.current_window_handle  # type: ignore[attr-defined]
    await asyncio.to_thread(browser.switch_to.new_window, "tab")  # type: ignore[attr-defined]
    await asyncio.to_thread(log_in, browser, f"{url}/console", "op1")
    console = browser.current_window_handle  # type: ignore[attr-defined]
    # the operator's own state, shown as the page loads (op1 is not in any queue yet: offline)
    await asyncio.to_thread(wait_text, browser, "#my-state", "offline", 10)
    await asyncio.to_thread(wait_text, browser, "#callbacks", "no open callbacks", 10)

    # an earlier call from the same number: nobody in the queue, the caller gives up after 6 s
    earlier = await place_call(lab.sip["host"], lab.sip["port"], CallerScript(
        dtmf=PRESS_EMERGENCY, number=NUMBER, cancel_after_ms=6000))
    assert earlier.ok, earlier.output
    first = await engine.wait_for(lambda r: r.get("event") == "call.record", timeout=30)
    assert first["outcome"] == "abandoned_in_queue", first
    # its callback task shows on the console from the live stream (no reload)
    await asyncio.to_thread(wait_contains, browser, "#callbacks", NUMBER, 15)

    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1", "MemberName": "op1"})
    try:
        await asyncio.to_thread(wait_text, browser, "#my-state", "ready", 10)
        # and after a reload, the state is there again at once
        await asyncio.to_thread(browser.refresh)  # type: ignore[attr-defined]
        await asyncio.to_thread(wait_text, browser, "#my-state", "ready", 10)
        await asyncio.to_thread(wait_text, browser, "#link", "live", 10)
        async with SippOperator(lab.operators["op1"]["port"]), SippOperator(lab.operators["op2"]["port"]):
            call = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"], CallerScript(
                dtmf=PRESS_EMERGENCY, number=NUMBER, hold_ms=16000)))
            try:
                connect = await engine.wait_for(lambda r: r.get("ami_event") == "AgentConnect"
                                                and r.get("member_name") == "op1")
                waited = await asyncio.to_thread(_operator_takes_the_call, browser)
                # the supervisor listens in from the wallboard (sup's phone: op2's SIPp), then whispers
                await asyncio.to_thread(browser.switch_to.window, board)  # type: ignore[attr-defined]
                await asyncio.to_thread(_wallboard_listens_in, browser)
                await engine.wait_for(lambda r: r.get("event") == "listen.switched"
                                      and r.get("mode") == "whisper")
                await asyncio.to_thread(browser.switch_to.window, console)  # type: ignore[attr-defined]
                result = await call
                assert result.ok, result.output
                await asyncio.to_thread(wait_contains, browser, "#pop-state", "ended", 15)
            finally:
                if not call.done():
                    call.cancel()
    finally:
        await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})

    record = await engine.wait_for(lambda r: r.get("event") == "call.record"
                                   and r.get("linkedid") == connect["linkedid"], timeout=30)
    assert record["outcome"] == "answered", record
    assert record["answer_s"] <= 10, f"answered after {record['answer_s']} s: the lab is too slow for this"
    # the pop's "waited" is the stored answer time (arrival at the PBX -> answer), to the second shown
    assert abs(waited - record["answer_s"]) <= 0.15, (waited, record["answer_s"])
    # answered: the earlier call's callback is superseded, and the console's panel follows
    await asyncio.to_thread(wait_text, browser, "#callbacks", "no open callbacks", 15)
    await asyncio.to_thread(_incident_steps, browser)
    await asyncio.to_thread(browser.switch_to.window, board)  # type: ignore[attr-defined]
    await asyncio.to_thread(wait_text, browser, "#stat-offered", "2", 15)
    await asyncio.to_thread(wait_contains, browser, "#stat-10", "1 (50 %)", 5)
    assert await asyncio.to_thread(text, browser, "#stat-abandoned") == "1"
    await asyncio.to_thread(screenshot, browser, "wallboard-answered.png")
    await asyncio.to_thread(browser.switch_to.window, console)  # type: ignore[attr-defined]

    # a complaint: 2 (complaints), then 6 (clean water); the IVR's category fills the incident form
    await conn.action("QueueAdd", {"Queue": "nonemergency", "Interface": "PJSIP/op1", "MemberName": "op1"})
    try:
        async with SippOperator(lab.operators["op1"]["port"]):
            result = await place_call(lab.sip["host"], lab.sip["port"], CallerScript(
                dtmf=((600, "2"), (2600, "6")), number="081277770112", hold_ms=5000))
            assert result.ok, result.output
        await asyncio.to_thread(_complaint_popped, browser)
    finally:
        await conn.action("QueueRemove", {"Queue": "nonemergency", "Interface": "PJSIP/op1"})

    # an operator opening the wallboard: a 403 page that says why, and a link back to the console
    await asyncio.to_thread(browser.get, f"{url}/wallboard")  # type: ignore[attr-defined]
    await asyncio.to_thread(wait_contains, browser, "#forbidden-msg", "logged in as operator", 10)
    await asyncio.to_thread(screenshot, browser, "wallboard-403.png")
    await asyncio.to_thread(click, browser, "#forbidden-back")
    await asyncio.to_thread(wait_text, browser, "#link", "live", 10)
    await asyncio.to_thread(wait_text, browser, "#my-state", "offline", 10)


def _wallboard_listens_in(driver: object) -> None:
    cell = "td.listen[data-operator='op1']"
    wait_visible(driver, f"{cell} button.listen-start[data-mode='listen']", 10)
    click(driver, f"{cell} button.listen-start[data-mode='listen']")
    wait_contains(driver, f"{cell} .listen-state.active", "listen since", 15)
    screenshot(driver, "wallboard-listening.png")
    click(driver, f"{cell} button.listen-mode[data-mode='whisper']")
    wait_contains(driver, f"{cell} .listen-state.active", "whisper since", 10)
    assert text(driver, "#listen-msg") == ""


def _complaint_popped(driver: object) -> None:
    wait_text(driver, "#pop-number", "081277770112", 15)
    wait_text(driver, "#pop-queue", "Complaint (non-emergency)", 5)
    wait_contains(driver, "#pop-ivr", "pressed 6 in the complaints menu", 5)
    assert text(driver, "#pop-ivr") == ("pressed 2 in the main menu, then pressed 6 in the complaints menu, "
                                         "then sent to the complaint queue: Clean water (air bersih).")
    assert selected(driver, "#inc-category") == "clean_water"
    assert text(driver, "#inc-category-hint") == "chosen by the caller in the IVR"
    screenshot(driver, "console-complaint.png")


def _talk_seconds(driver: object) -> int:
    minutes, _, seconds = text(driver, "#pop-timer").partition(":")
    return int(minutes) * 60 + int(seconds)


def _operator_takes_the_call(driver: object) -> float:
    """On the console page: the pop (number, waited, ticking talk timer, IVR path in words, history); gives
    the waited time shown, in seconds."""
    wait_text(driver, "#pop-number", NUMBER, 10)
    wait_text(driver, "#pop-state", "connected", 5)
    assert text(driver, "#pop-queue") == "Emergency"  # once, not "emergency / emergency"
    waited = text(driver, "#pop-waited")
    found = re.fullmatch(r"(\d+\.\d) s \(\d+ s in queue\)", waited)  # from arrival at the PBX; in queue
    assert found, waited
    wait_text(driver, "#my-state", "on a call", 10)
    assert not displayed(driver, "#panel-state .panel-status")  # operator state is wired (issue 6)
    assert style(driver, "#my-state", "backgroundColor") != GREY
    # the talk timer ticks while connected
    first = _talk_seconds(driver)
    WebDriverWait(driver, 5, poll_frequency=0.2).until(lambda d: _talk_seconds(d) >= first + 2)
    assert "live" in str(driver.find_element(By.ID, "pop-timer").get_attribute("class"))  # type: ignore[attr-defined]
    ivr = text(driver, "#pop-ivr")
    assert ivr == "pressed 1 in the main menu, then sent to the emergency queue.", ivr
    # the earlier call from this number, in words
    wait_contains(driver, "#pop-calls", "hung up waiting in the queue — pressed 1 in the main menu", 10)
    assert "repeat caller: 1 earlier call" in text(driver, "#pop-repeat")
    wait_contains(driver, "#pop-incidents", "no earlier incidents", 5)
    assert driver.find_element(By.ID, "inc-number").get_attribute("value") == NUMBER  # type: ignore[attr-defined]
    screenshot(driver, "console-pop.png")
    return float(found.group(1))


def _incident_steps(driver: object) -> None:
    """Classify, dispatch the suggested unit (en route, on scene) and close the incident."""
    _fill_incident(driver)
    wait_contains(driver, "#incident-msg", "created", 10)
    assert style(driver, "#incident-msg", "color") == GREEN  # success in the success colour
    incident_id = text(driver, "#incident-msg").split()[1]
    row = f"#incidents tr[data-incident='{incident_id}']"
    wait_visible(driver, f"{row} select.unit")
    # labels, not ids; the status select shows its whole label
    wait_contains(driver, row, "Fire (kebakaran)", 5)
    assert "Wenang" in text(driver, row)
    assert fits(driver, f"{row} select.status")
    # the suggested unit (a free fire unit in Wenang) first and chosen; only fire units offered
    options = on_fresh(driver, f"{row} select.unit",
                        lambda e: [(o.get_attribute("value"), o.text) for o in Select(e).options])
    assert options[1][0] == "fire-wenang-1", options
    assert options[1][1].startswith("★ suggested:"), options
    assert selected(driver, f"{row} select.unit") == "fire-wenang-1"
    assert all("(fire," in text for _, text in options[1:]), options
    assert fits(driver, f"{row} select.unit")
    _dispatch(driver, row, "fire-wenang-1")
    assert selected(driver, f"{row} select:not(.unit)") == "handling"  # dispatch moved it on
    # a backward move is refused, and the refusal goes once a later step succeeds
    choose(driver, f"{row} select:not(.unit)", "wait")
    wait_contains(driver, "#incidents-msg", "status", 10)
    screenshot(driver, "console-refused.png")
    # the unit's later steps, each stamped by the engine (they feed "dispatch -> on scene")
    line = f"{row} .dispatched .dispatch"
    click(driver, f"{line} button[data-step='en_route']")
    wait_contains(driver, f"{row} .dispatched", "(en route)", 10)
    wait_contains(driver, line, "en route ", 5)  # the engine's time, shown
    wait_text(driver, "#incidents-msg", "", 5)
    click(driver, f"{line} button[data-step='on_scene']")
    wait_contains(driver, f"{row} .dispatched", "(on scene)", 10)
    wait_contains(driver, line, "on scene ", 5)
    WebDriverWait(driver, 5, poll_frequency=0.1, ignored_exceptions=STALE).until(  # only the next step
        lambda d: [b.get_attribute("data-step") for b in d.find_elements(By.CSS_SELECTOR, f"{line} button")]
        == ["closed"])
    screenshot(driver, "console.png")
    choose(driver, f"{row} select:not(.unit)", "done")  # the change is sent as the option is chosen
    wait_contains(driver, f"{row} .dispatched", "(closed)", 10)
    assert selected(driver, f"{row} select:not(.unit)") == "done"


def _dispatch(driver: object, row: str, unit: str) -> None:
    """Choose the unit and press Dispatch. The list is re-read after each change (the page's own request,
    then the live stream): a re-render between the choice and the press loses the choice, and the page
    says "choose a unit"; then choose and press again (at most 5 times)."""
    for _ in range(5):
        choose(driver, f"{row} select.unit", unit)
        click(driver, f"{row} button")
        WebDriverWait(driver, 10, poll_frequency=0.1, ignored_exceptions=STALE).until(
            lambda d: "(dispatched)" in text(d, f"{row} .dispatched") or "choose a unit" in text(d, row))
        if "(dispatched)" in text(driver, f"{row} .dispatched"):
            return
    raise AssertionError(f"the dispatch of {unit} never showed on {row}: {text(driver, row)!r}")


def _fill_incident(driver: object) -> None:
    Select(driver.find_element(By.ID, "inc-category")).select_by_value("fire")  # type: ignore[attr-defined]
    Select(driver.find_element(By.ID, "inc-district")).select_by_value("wenang")  # type: ignore[attr-defined]
    driver.find_element(By.ID, "inc-notes").send_keys("asap di pasar")  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "#incident-form button").click()  # type: ignore[attr-defined]
