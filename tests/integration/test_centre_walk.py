"""The whole centre at once, as its people use it (the walk issue 15 asks for before anything is resolved).

One lab of its own, the real engine with its console, real SIPp calls:
- an admin applies a site with a new operator while the engine runs; the engine, ``operator list`` and
  the console's operators panel know the operator without a restart;
- an operator logs in (``operator login``), works a call in Chromium: the pop with the caller's number,
  an incident created on the page;
- while calls go on, a supervisor reads every figure: ``report answer-times``, ``report summary``, the
  console's ``/api/reports/summary``, the wallboard's ``/api/calls/stats/today`` and the wallboard page
  itself. Every surface gives the same offered / answered / abandoned / short abandons / within 10 s,
  and those are the figures worked out from the calls this test placed;
- every command run beside the engine leaves the engine's view intact: no deleted file in the engine's
  descriptors, every call record and incident visible to a fresh reader.
Screenshots go to ``artifacts/walk-*.png``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.lab import LabStatus, down, lab_dir
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippOperator, place_call
from callflow.siteconfig import pbx_config_dir
from tests.conftest import REPO, lab_instance_name, start_lab
from tests.support.ami_waits import assert_no_channels_left
from tests.support.browser import (
    PASSWORD,
    add_user,
    choose,
    chromium,
    click,
    log_in,
    screenshot,
    text,
    wait_contains,
    wait_text,
)
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.integration

WITA = ZoneInfo("Asia/Makassar")
OP7_SECRET = "walk-op7-" + hashlib.sha256(str(REPO).encode()).hexdigest()[:20]


@pytest.fixture(scope="module")
def walk_lab() -> Iterator[LabStatus]:
    """A lab of its own: the walk applies a site to it (and starts from the shipped site each run)."""
    instance = lab_instance_name("test-walk")
    shutil.rmtree(lab_dir(instance) / "config", ignore_errors=True)
    status = start_lab(instance)  # fails in CI without the lab, skips elsewhere
    yield status
    down(instance)


@pytest.fixture
async def walk_ami(walk_lab: LabStatus) -> AsyncIterator[AmiConnection]:
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    conn = AmiConnection(walk_lab.ami_endpoint(), events)
    await conn.connect()
    yield conn
    try:
        await assert_no_channels_left(conn)
    finally:
        await conn.close()


def _site_with_op7(directory: Path) -> Path:
    """The shipped site plus op7 (in both queues), beside its IVR tree, as an admin would write it."""
    text_ = (pbx_config_dir() / "site.toml").read_text()
    marker = "\n[[operators]]\n"
    op7 = ('\n[[operators]]\nname = "op7"\nextension = "207"\ndisplay_name = "Operator 7"\n'
           'classes = ["emergency", "nonemergency"]\nsecret_env = "SIAGA112_SECRET_OP7"\n')
    at = text_.rindex(marker)
    end = text_.index("\n[", at + len(marker))
    text_ = text_[:end] + "\n" + op7 + text_[end:]
    text_ = text_.replace('"op5", "op6"]', '"op5", "op6", "op7"]')
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(pbx_config_dir() / "ivr.toml", directory / "ivr.toml")
    path = directory / "site.toml"
    path.write_text(text_)
    return path


async def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow.cli", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})})
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def _cli_json(*args: str) -> Any:
    code, out, err = await _cli(*args)
    assert code == 0, (args, out, err)
    return json.loads(out)


async def _records(engine: EngineProcess, n: int, timeout: float = 45) -> list[dict[str, Any]]:
    """The engine's first ``n`` stored call records (its ``call.record`` log lines)."""
    async with asyncio.timeout(timeout):
        while True:
            seen = [r for r in engine.records if r.get("event") == "call.record"]
            if len(seen) >= n:
                return seen
            known = {id(r) for r in seen}
            await engine.wait_for(lambda r, known=known: r.get("event") == "call.record"  # type: ignore[misc]
                                  and id(r) not in known, timeout)


def _deleted_files(pid: int) -> list[str]:
    gone = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue
        if target.endswith(" (deleted)"):
            gone.append(target)
    return gone


def _fresh(db: Path) -> tuple[int, int]:
    """Call records and incidents as a new process's connection sees them."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
        calls = c.execute("SELECT count(*) FROM calls_records").fetchone()[0]
        incidents = c.execute("SELECT count(*) FROM incident_incident").fetchone()[0]
    return int(calls), int(incidents)


FIGURES = ("offered", "answered", "abandoned", "short_abandons")


async def test_walk_the_centre(walk_lab: LabStatus, walk_ami: AmiConnection, tmp_path: Path) -> None:
    lab = walk_lab
    db = tmp_path / "centre" / "siaga112.db"
    started = datetime.now(UTC)
    for name, role, extra in (("admin1", "admin", ()), ("sup", "supervisor", ()),
                              ("rina", "operator", ("--operator-id", "op1"))):
        await asyncio.to_thread(add_user, db, name, role, *extra)
    engine = EngineProcess(lab.instance, "--http", "127.0.0.1:0", env={"SIAGA112_DATABASE": str(db)})
    await engine.start()
    try:
        listening = await engine.wait_for(lambda r: r.get("event") == "console.listening")
        url = str(listening["url"]).rstrip("/")
        assert engine.proc is not None
        pid = engine.proc.pid

        async def beside(*args: str) -> str:
            """A command run beside the engine: it must leave the engine's view intact."""
            code, out, err = await _cli(*args)
            assert code == 0, (args, out, err)
            assert _deleted_files(pid) == [], f"after `{' '.join(args)}`"
            return out

        # -- the admin applies a site with a new operator; the running engine follows it -------------
        site = _site_with_op7(tmp_path / "admin")
        code, out, err = await _cli("config", "apply", str(site), "--lab", lab.instance,
                               env={"SIAGA112_SECRET_OP7": OP7_SECRET})
        assert code == 0, out + err
        await engine.wait_for(lambda r: r.get("event") == "operator.policy_changed"
                              and "op7" in r.get("added", []), timeout=15)
        listed = await beside("operator", "list", "--json", "--lab", lab.instance, "--database", str(db))
        assert "op7" in {o["operator"] for o in json.loads(listed)}
        async with httpx.AsyncClient(base_url=url, timeout=20) as sup:
            r = await sup.post("/api/auth/login", json={"name": "sup", "password": PASSWORD})
            assert r.status_code == 200, r.text
            operators = (await sup.get("/api/operators")).json()
            assert "op7" in {o["operator"] for o in operators}

            # -- the operator logs in and works a call in Chromium --------------------------------------
            await beside("operator", "login", "op1", "--lab", lab.instance, "--database", str(db))
            with chromium() as browser:
                await asyncio.to_thread(log_in, browser, f"{url}/console", "rina")
                await asyncio.to_thread(wait_text, browser, "#my-state", "ready", 15)
                async with SippOperator(lab.operators["op1"]["port"]):
                    first = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"], CallerScript(
                        dtmf=PRESS_EMERGENCY, number="081211110001", hold_ms=8000)))
                    await asyncio.to_thread(wait_text, browser, "#pop-number", "081211110001", 20)
                    await asyncio.to_thread(wait_text, browser, "#pop-state", "connected", 10)
                    await asyncio.to_thread(choose, browser, "#inc-category", "fire")
                    await asyncio.to_thread(choose, browser, "#inc-district", "wenang")
                    await asyncio.to_thread(click, browser, "#incident-form button[type=submit]")
                    await asyncio.to_thread(wait_contains, browser, "#incident-msg", "created", 10)
                    # and it is in the operator's list of today's incidents (the live stream reloads it)
                    await asyncio.to_thread(wait_contains, browser, "#incidents tr[data-incident]",
                                            "Fire (kebakaran)", 10)
                    await asyncio.to_thread(screenshot, browser, "walk-console.png")
                    # a citizen who hangs up at once (a short abandon), while the first call is up
                    short = await place_call(lab.sip["host"], lab.sip["port"], CallerScript(
                        number="081211110002", cancel_after_ms=300))
                    assert short.ok, short.output
                    await beside("calls", "list", "--database", str(db))
                    await beside("incidents", "list", "--database", str(db))
                    assert (await first).ok
                    # a second answered call, read by the supervisor while it is up
                    second = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"], CallerScript(
                        dtmf=PRESS_EMERGENCY, number="081211110003", hold_ms=6000)))
                    await engine.wait_for(lambda r: r.get("ami_event") == "AgentConnect"
                                          and r.get("caller", "").endswith("003"), timeout=30)
                    # the supervisor reads while this call is up: the finished calls so far, the same on
                    # the wallboard's figures and in the report (the first call and the short abandon)
                    await _records(engine, 2)
                    live = (await sup.get("/api/calls/stats/today")).json()
                    so_far = await _cli_json("report", "answer-times", "--format", "json", "--database",
                                             str(db), "--since", started.isoformat())
                    assert {k: live[k] for k in FIGURES} == {k: so_far["overall"][k] for k in FIGURES} == {
                        "offered": 1, "answered": 1, "abandoned": 0, "short_abandons": 1}, (live, so_far)
                    await beside("console", "user", "list", "--database", str(db))
                    await beside("callbacks", "list", "--database", str(db))
                    assert (await second).ok
                await beside("operator", "logout", "op1", "--lab", lab.instance, "--database", str(db))
                # a caller nobody answers (op1 logged out) gives up after 6 s in the queue
                gave_up = await place_call(lab.sip["host"], lab.sip["port"], CallerScript(
                    dtmf=PRESS_EMERGENCY, number="081211110004", cancel_after_ms=6000))
                assert gave_up.ok, gave_up.output
                outcomes = sorted(str(r["outcome"]) for r in await _records(engine, 4))
                assert outcomes == ["abandoned_in_queue", "answered", "answered", "short_abandon"], outcomes

                # -- the supervisor reads every surface ---------------------------------------------------
                await asyncio.to_thread(log_in, browser, f"{url.replace('127.0.0.1', 'localhost')}/wallboard",
                                        "sup")
                await asyncio.to_thread(wait_text, browser, "#stat-offered", "3", 15)
                board = {k: await asyncio.to_thread(text, browser, f"#stat-{k}")
                         for k in ("offered", "10", "abandoned", "short")}
                await asyncio.to_thread(screenshot, browser, "walk-wallboard.png")

            today = started.astimezone(WITA).date().isoformat()
            times = await _cli_json("report", "answer-times", "--format", "json", "--database", str(db),
                                    "--since", started.isoformat())
            summary = await _cli_json("report", "summary", "--format", "json", "--database", str(db),
                                      "--from", today, "--to", today)
            stats = (await sup.get("/api/calls/stats/today")).json()
            start = datetime.fromisoformat(today).replace(tzinfo=WITA)
            api = (await sup.get("/api/reports/summary", params={
                "start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()})).json()
    finally:
        await engine.stop()

    # worked out from the calls placed: 4 citizen calls, 1 short abandon -> 3 offered; 2 answered (both
    # within 10 s on an idle lab operator), 1 abandoned in the queue
    expected = {"offered": 3, "answered": 2, "abandoned": 1, "short_abandons": 1}
    assert {k: times["overall"][k] for k in FIGURES} == expected, times["overall"]
    assert {k: summary["answer_time"][k] for k in FIGURES} == expected, summary["answer_time"]
    assert {k: stats[k] for k in FIGURES} == expected, stats
    figures = api["figures"]
    assert {k: figures[f"answer_time.{k}"] for k in FIGURES} == expected, figures
    within = times["overall"]["answered_within"]["10"]
    assert summary["answer_time"]["answered_within"]["10"] == within == stats["within_10s"]
    assert figures["answer_time.answered_within.10"] == within
    assert board["offered"] == "3"
    assert board["abandoned"] == "1"
    assert board["short"] == "1"
    assert board["10"].startswith(f"{within} ("), board
    # and nothing the engine committed was lost to the commands run beside it
    calls, incidents = _fresh(db)
    assert calls == 4
    assert incidents == 1

