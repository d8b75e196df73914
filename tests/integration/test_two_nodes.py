"""Two nodes: Kamailio in front of two lab Asterisk nodes, one engine per node, one shared store.

A SIPp citizen calls 112 through Kamailio and a SIPp operator answers on node a; node a's Asterisk is then
killed (SIGKILL, nothing said to Kamailio or the engines); the next citizen's call through Kamailio must be
answered by node b within 3 s, reach the operator through Kamailio, and every offered call must have
exactly one record in the shared store. Meanwhile a supervisor watches the wallboard's Nodes panel in
headless Chromium: both nodes up and the leader before, node a lost after (its Asterisk unreachable since
the kill, on the centre's clock), node a's own wallboard saying its Asterisk is down, and all well again
once node a is back. Screenshots go to ``artifacts/``. The full fault matrix is ``bench/failover.py``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from callflow.ami import AmiConnection, EventItem
from callflow.lab import (
    ClusterStatus,
    LabError,
    down_cluster,
    front_view,
    pbx_config_dir,
    up_cluster,
)
from callflow.lab.sipp import CallerScript, SippOperator, place_call
from tests.conftest import IN_CI, lab_instance_name
from tests.support.browser import (
    add_user,
    chromium,
    displayed,
    log_in,
    screenshot,
    style,
    text,
    wait_contains,
    wait_hidden,
    wait_text,
    wait_visible,
)
from tests.support.engine import EngineProcess, Record
from tests.support.pg import PrivatePostgres
from tests.support.pyvoip_operator import PyVoipOperator

pytestmark = pytest.mark.integration

FAILOVER_BUDGET_S = 3.0


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"CI requires the two-node lab: {what}", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[ClusterStatus]:
    if shutil.which("kamailio") is None:
        _missing("Kamailio is not installed (Debian package kamailio: `make setup`)")
    if shutil.which("sipp") is None:
        _missing("SIPp is not installed (Debian package sip-tester: `make setup`)")
    instance = lab_instance_name("twonode")
    down_cluster(instance)
    try:
        st = up_cluster(instance, free=True, site_file=pbx_config_dir() / "site.toml")
    except LabError as exc:
        _missing(f"the two-node lab did not start: {exc}")
        raise  # unreachable: _missing fails or skips
    yield st
    down_cluster(instance)


@pytest.fixture
def store(private_postgres: PrivatePostgres) -> Iterator[str]:
    """The one store both engines journal into: a database on the session's private PostgreSQL (each
    engine names its node: `serve --lab <lab>-a` is node a)."""
    url = private_postgres.create_database("two_nodes")
    yield url
    private_postgres.drop_database(url)


@pytest.fixture
async def engines(two_nodes: ClusterStatus, store: str) -> AsyncIterator[dict[str, EngineProcess]]:
    # each engine with its console (the supervisor's wallboard) on a free port
    procs = {name: EngineProcess(st.instance, "--database", store, "--http", "127.0.0.1:0")
             for name, st in two_nodes.nodes().items()}
    try:
        await asyncio.gather(*(proc.start() for proc in procs.values()))
        yield procs
    finally:
        await asyncio.gather(*(proc.stop() for proc in procs.values()))


@contextlib.asynccontextmanager
async def operator_on_every_node(two_nodes: ClusterStatus, operator: str) -> AsyncIterator[None]:
    """``operator`` a member of the emergency queue on each node (each node rings it through Kamailio)."""
    conns: list[AmiConnection] = []
    try:
        for st in two_nodes.nodes().values():
            events: asyncio.Queue[EventItem] = asyncio.Queue()
            conn = AmiConnection(st.ami_endpoint(), events)
            await conn.connect()
            conns.append(conn)
            await conn.action("QueueAdd", {"Queue": "emergency", "Interface": f"PJSIP/{operator}",
                                           "MemberName": operator})
        yield
    finally:
        for conn in conns:
            with contextlib.suppress(Exception):  # node a is dead by then: its connection is gone
                await conn.close()


async def record_of(engine: EngineProcess, number: str, after: int) -> Record:
    """The record of the call from ``number`` that joined the queue after the engine's ``after``-th log
    line (by its linkedid: a record the engine recovered at start-up from an earlier run's call may carry
    the same masked number)."""
    earlier = {id(r) for r in engine.records[:after]}
    join = await engine.wait_for(lambda r: id(r) not in earlier and r.get("ami_event") == "QueueCallerJoin"
                                 and str(r.get("caller", "")).endswith(number[-3:]), timeout=20)
    return await engine.wait_for(lambda r: r.get("event") == "call.record"
                                 and r.get("linkedid") == join["linkedid"], timeout=30)


async def test_either_node_rings_an_operator_registered_at_the_front(two_nodes: ClusterStatus) -> None:
    """op5 (a pyVoIP softphone) registers at Kamailio only (digest against the site's secret); each node's
    Asterisk reaches it through Kamailio."""
    nodes = two_nodes.nodes()
    at_front = dataclasses.replace(nodes["a"], sip={"host": two_nodes.front["host"],
                                                    "port": int(two_nodes.front["port"])})
    # the node hangs up after 1 s: its BYE must reach the phone (pyVoIP drops Record-Route from its
    # answer: Kamailio routes such a dialog by the registration); the phone's own limit is far beyond
    with PyVoipOperator(at_front, "op5", max_call_s=20) as phone:
        for st in nodes.values():
            phone.answered.clear()
            phone.ended.clear()
            events: asyncio.Queue[EventItem] = asyncio.Queue()
            conn = AmiConnection(st.ami_endpoint(), events)
            await conn.connect()
            try:
                await conn.action("Originate", {"Channel": "PJSIP/op5", "Application": "Wait", "Data": "1",
                                                "Async": "true", "Timeout": "8000"})
                assert await asyncio.to_thread(phone.answered.wait, 8), f"node {st.node} did not ring op5"
                assert await asyncio.to_thread(phone.ended.wait, 5), f"node {st.node}'s BYE never reached op5"
            finally:
                await conn.close()
    assert phone.error is None


@pytest.fixture
def browser() -> Iterator[contextlib.ExitStack]:
    """Where the test starts headless Chromium (in a thread, while a call goes on); closed after."""
    with contextlib.ExitStack() as stack:
        yield stack


async def test_node_killed_next_call_answered_on_the_other_node(
        two_nodes: ClusterStatus, engines: dict[str, EngineProcess], store: str,
        browser: contextlib.ExitStack) -> None:
    nodes = two_nodes.nodes()
    front = (two_nodes.front["host"], int(two_nodes.front["port"]))
    first_number, second_number = "081200002001", "081200002002"
    consoles = {name: await console_url(engine) for name, engine in engines.items()}
    # a supervisor opens node b's wallboard (Chromium starts while the first call goes on)
    browsing = asyncio.gather(asyncio.to_thread(browser.enter_context, chromium()),
                              asyncio.to_thread(add_user, store, "sup", "supervisor"))
    async with operator_on_every_node(two_nodes, "op1"), SippOperator(nodes["a"].operators["op1"]["port"]):
        mark = {name: len(engine.records) for name, engine in engines.items()}
        first = await place_call(*front, CallerScript(number=first_number, dtmf=[(600, "1")], hold_ms=1500,
                                                      route_set=True))
        assert first.ok, first.output
        driver, _ = await browsing
        step = time.monotonic()
        await asyncio.to_thread(sees_both_nodes_up, driver, consoles["b"])
        print(f"wallboard: both nodes up, {time.monotonic() - step:.1f} s")
        first_record = await record_of(engines["a"], first_number, mark["a"])
        assert first_record["outcome"] == "answered"
        assert first_record["operator"] == "op1"
        assert str(first_record["linkedid"]).startswith("a-")  # node a's systemname

        node_a_pid = nodes["a"].pid
        assert node_a_pid is not None
        os.kill(node_a_pid, signal.SIGKILL)
        dialled_at = datetime.now(UTC)  # SIPp's INVITE leaves a few ms later: the figure errs long
        second = await place_call(*front, CallerScript(number=second_number, dtmf=[(600, "1")], hold_ms=1500,
                                                       route_set=True))
        assert second.ok, second.output
        second_record = await record_of(engines["b"], second_number, mark["b"])
    # node b took the call when its Asterisk made the caller's channel (its own event Timestamp); the IVR
    # answers it at once
    taken = next(r for r in engines["b"].records if r.get("ami_event") == "Newchannel"
                 and r.get("uniqueid") == second_record["linkedid"])
    taken_s = (datetime.fromisoformat(taken["ts"]) - dialled_at).total_seconds()
    print(f"node a killed; the next call reached node b {taken_s:.3f} s after it was dialled")
    assert 0 < taken_s < FAILOVER_BUDGET_S
    assert front_view(two_nodes)["a"].startswith("inactive")  # Kamailio took node a out of the list
    step = time.monotonic()
    await asyncio.to_thread(sees_node_a_lost, driver, consoles)
    print(f"wallboard: node a lost, then node a's own, {time.monotonic() - step:.1f} s")

    # node a back: `lab up --nodes 2` starts only what is down (node b keeps its Asterisk and its calls),
    # and the front offers node a new calls again once it answers a probe
    back = await asyncio.to_thread(up_cluster, two_nodes.instance)
    assert back.nodes()["b"].pid == nodes["b"].pid
    assert back.nodes()["a"].running
    async with asyncio.timeout(5):
        while not front_view(back).get("a", "").startswith("active"):  # noqa: ASYNC110 - Kamailio's state
            await asyncio.sleep(0.1)
    # node a's engine, which kept trying, is attached to it again
    await engines["a"].wait_for(lambda r: r.get("event") == "ami.connected" and r.get("reconnect") is True,
                                timeout=15)
    step = time.monotonic()
    await asyncio.to_thread(sees_node_a_back, driver)
    print(f"wallboard: node a back, {time.monotonic() - step:.1f} s")
    assert second_record["outcome"] == "answered"
    assert second_record["operator"] == "op1"
    assert str(second_record["linkedid"]).startswith("b-")

    # records complete: each offered call exactly once in the one store both engines write, with the node
    # that took it (read back with the product's own export)
    linkedids = {str(first_record["linkedid"]), str(second_record["linkedid"])}
    stored = [(r["linkedid"], r["outcome"], r.get("node")) for r in exported(store)
              if r["linkedid"] in linkedids]
    assert sorted(stored) == sorted((lid, "answered", lid[0]) for lid in linkedids)  # a-..., node a


async def console_url(engine: EngineProcess) -> str:
    listening = await engine.wait_for(lambda r: r.get("event") == "console.listening")
    return str(listening["url"]).rstrip("/")


# -- the supervisor's wallboard (each step blocks: run in a thread) -------------------------------------
RED = "rgb(239, 68, 68)"  # --red in style.css
GREEN = "rgb(34, 197, 94)"  # --green
ROW = "#nodes tr[data-node='{}']"
CLOCK = re.compile(r"since (\d\d):(\d\d):(\d\d)")


def on_centre_clock(driver: object, shown: str) -> None:
    """The instant in ``shown`` ("... since HH:MM:SS") is now, or a minute or two ago, on the centre's clock
    (the zone the header names), not on UTC's or the browser's."""
    zone = ZoneInfo(text(driver, "#centre-zone").removeprefix("times: ").split(" ")[0])
    found = CLOCK.search(shown)
    assert found, shown
    now = datetime.now(zone)
    at = now.replace(hour=int(found[1]), minute=int(found[2]), second=int(found[3]), microsecond=0)
    if at > now + timedelta(seconds=5):
        at -= timedelta(days=1)  # shown before midnight, read after it
    assert timedelta(seconds=-5) <= now - at <= timedelta(minutes=5), (shown, now.isoformat())


def sees_both_nodes_up(driver: object, url: str) -> None:
    log_in(driver, f"{url}/wallboard", "sup")
    for node in "ab":
        wait_visible(driver, f"{ROW.format(node)}[data-state='alive']")
        row = text(driver, ROW.format(node))
        assert re.fullmatch(rf"{node}( leader)?( this console)? alive up since \d\d:\d\d:\d\d up", row), row
        on_centre_clock(driver, row)
    assert "this console" in text(driver, ROW.format("b"))  # node b's engine serves this page
    leaders = driver.find_elements("css selector", "#nodes .node-tag.leader")  # type: ignore[attr-defined]
    assert len(leaders) == 1, text(driver, "#nodes")
    assert style(driver, f"{ROW.format('a')} .node-state", "backgroundColor") == GREEN
    screenshot(driver, "wallboard-nodes.png")


def open_page(driver: object, url: str, name: str) -> None:
    """``url`` in the session the browser has, if the engine serving it knows it; else logged in anew."""
    driver.get(url)  # type: ignore[attr-defined]
    WebDriverWait(driver, 15, poll_frequency=0.1).until(
        lambda d: displayed(d, "#app") or displayed(d, "#login-form"))
    if displayed(driver, "#login-form"):
        log_in(driver, url, name)
    wait_text(driver, "#link", "live")


def sees_node_a_lost(driver: object, consoles: dict[str, str]) -> None:
    """On node b's wallboard: node a lost (lost_after_s, 5 s, after the kill), in red, its engine up and its
    Asterisk unreachable since the kill; node b leads. Then node a's own wallboard (the same session: both
    engines keep accounts in the one store) says why its queues cannot be read."""
    a = ROW.format("a")
    wait_visible(driver, f"{a}[data-state='lost']", timeout=15)
    wait_visible(driver, f"{ROW.format('b')} .node-tag.leader", timeout=10)
    row = text(driver, a)
    assert re.fullmatch(r"a lost up since \d\d:\d\d:\d\d unreachable since \d\d:\d\d:\d\d", row), row
    on_centre_clock(driver, row.split(" unreachable ")[1])
    assert style(driver, f"{a} .node-state", "backgroundColor") == RED
    assert style(driver, f"{a} td.node-asterisk", "color") == RED
    screenshot(driver, "wallboard-nodes-a-lost.png")

    open_page(driver, f"{consoles['a']}/wallboard", "sup")
    wait_visible(driver, f"{a}[data-state='lost']")
    assert "this console" in text(driver, a)
    status = "#panel-emergency .panel-status"
    wait_contains(driver, status, "cannot read queue status from Asterisk", 10)
    assert "not wired" not in text(driver, status)  # it is wired: its Asterisk is down
    screenshot(driver, "wallboard-node-a-asterisk-down.png")


def sees_node_a_back(driver: object) -> None:
    """Node a's Asterisk is back and its engine reattached: its own wallboard shows it alive and its
    queues again (re-read when the engine's link to Asterisk is up)."""
    a = ROW.format("a")
    wait_visible(driver, f"{a}[data-state='alive']", timeout=10)
    wait_contains(driver, a, "alive up since", 5)
    assert text(driver, a).endswith(" up"), text(driver, a)
    wait_hidden(driver, "#panel-emergency .panel-status", 20)
    assert text(driver, "#emergency-waiting") == "0"
    screenshot(driver, "wallboard-nodes-a-back.png")


def exported(database: object) -> list[dict[str, object]]:
    """``siaga112 calls export --format json --database DATABASE``."""
    out = subprocess.run([sys.executable, "-m", "callflow.cli", "calls", "export", "--format", "json",
                          "--database", str(database)], capture_output=True, text=True, timeout=60,
                         check=True)
    records: list[dict[str, object]] = json.loads(out.stdout)
    return records
