"""Commands run beside the engine leave the engine's database intact (issue 15, section 1).

The real engine runs on the lab with its console on. While calls are answered and an operator writes
incidents through the console, 20 read commands (calls, incidents, operators, callbacks, console
accounts) run against the same database. Before the fix, the first read deleted the engine's WAL:
the engine kept writing into a deleted file, its rows were invisible to every other process and lost
for good at a ``kill -9``. Here: the engine never holds a deleted file, every committed row is visible
to a fresh reader at once, and every committed row survives a ``kill -9`` of the engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.lab import LabStatus
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, SippOperator, place_call
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.integration

PASSWORD = "Manado-112-store"
READS = (
    ("calls", "list", "--database", "{db}"),
    ("incidents", "--database", "{db}", "list"),
    ("operator", "list", "--database", "{db}"),
    ("callbacks", "list", "--database", "{db}"),
    ("console", "--database", "{db}", "user", "list"),
)


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callflow.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=60, check=False)


def _deleted_files(pid: int) -> list[str]:
    """The engine's descriptors on files that no longer exist (a deleted WAL or shared-memory file)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    gone = []
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue
        if target.endswith(" (deleted)"):
            gone.append(target)
    return gone


def _fresh_read(db: Path) -> tuple[set[str], set[str]]:
    """Incident ids and call linkedids as a new process sees them (its own SQLite connection)."""
    code = ("import sqlite3, sys, json; c = sqlite3.connect(sys.argv[1]);"
            "print(json.dumps([[r[0] for r in c.execute('SELECT id FROM incident_incident')],"
            "[r[0] for r in c.execute('SELECT linkedid FROM calls_records')]])); c.close()")
    done = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True,
                          timeout=30, check=True)
    incidents, calls = json.loads(done.stdout)
    return {str(i) for i in incidents}, {str(c) for c in calls}


async def test_reads_beside_the_running_engine_lose_nothing(
        lab: LabStatus, tmp_path: Path, ami: tuple[AmiConnection, asyncio.Queue[EventItem]]) -> None:
    db = tmp_path / "centre" / "siaga112.db"
    added = await asyncio.to_thread(_cli, "console", "--database", str(db), "user", "add", "rina",
                                    "--role", "operator", "--operator-id", "op1", "--password-stdin",
                                    stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    # owner-only: the file holds password hashes and callers' numbers
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700

    conn, _ = ami
    engine = EngineProcess(lab.instance, "--http", "127.0.0.1:0", env={"SIAGA112_DATABASE": str(db)})
    await engine.start()
    incidents: set[str] = set()
    linkedids: set[str] = set()
    try:
        listening = await engine.wait_for(lambda r: r.get("event") == "console.listening")
        assert engine.proc is not None
        pid = engine.proc.pid
        for suffix in ("-wal", "-shm"):
            assert stat.S_IMODE(Path(f"{db}{suffix}").stat().st_mode) == 0o600
        await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1", "MemberName": "op1"})
        async with httpx.AsyncClient(base_url=str(listening["url"]).rstrip("/"), timeout=20) as web:
            r = await web.post("/api/auth/login", json={"name": "rina", "password": PASSWORD})
            assert r.status_code == 200, r.text
            web.headers["X-CSRF-Token"] = (await web.get("/api/auth/csrf")).json()["csrf_token"]
            async with SippOperator(lab.operators["op1"]["port"]):
                for n in range(4):
                    call = asyncio.create_task(place_call(
                        lab.sip["host"], lab.sip["port"],
                        CallerScript(number=f"08120000{n:04d}", dtmf=PRESS_EMERGENCY, hold_ms=1200)))
                    for i in range(5):  # 5 reads per call: 20 in all, while the call is up
                        args = [a.format(db=db) for a in READS[(n * 5 + i) % len(READS)]]
                        done = await asyncio.to_thread(_cli, *args)
                        assert done.returncode == 0, (args, done.stderr)
                        assert _deleted_files(pid) == [], f"after `{' '.join(args)}`"
                        created = await web.post("/api/incidents", json={
                            "category": "fire", "district": "wenang", "caller_number": f"08120000{n:04d}"})
                        assert created.status_code == 201, created.text
                        incidents.add(str(created.json()["id"]))
                        # committed: a new process sees it at once
                        assert str(created.json()["id"]) in (await asyncio.to_thread(_fresh_read, db))[0]
                    result = await call
                    assert result.ok, result.output
                    record = await engine.wait_for(
                        lambda r: r.get("event") == "call.record"
                        and r.get("linkedid") not in linkedids, timeout=30)
                    linkedids.add(str(record["linkedid"]))
        assert _deleted_files(pid) == []
        assert Path(f"{db}-wal").exists()
        seen_incidents, seen_calls = await asyncio.to_thread(_fresh_read, db)
        assert incidents <= seen_incidents
        assert linkedids <= seen_calls
    finally:
        await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})
        await engine.kill()

    # after a kill -9 of the engine every committed row is still there
    seen_incidents, seen_calls = await asyncio.to_thread(_fresh_read, db)
    assert len(incidents) == 20
    assert incidents <= seen_incidents
    assert len(linkedids) == 4
    assert linkedids <= seen_calls
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
