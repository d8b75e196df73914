"""The console component's start-up checks (its address, a port already taken), the wiring `serve` gives
it, and finished calls reaching the live stream."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callflow.ami import AmiEndpoint
from callflow.app import EnginePaths, build_engine
from callflow.calls.model import CallClass, CallRecord, Outcome
from callflow.calls.tracker import CallTracker
from callflow.console import ConsoleComponent, ConsoleError, HttpAddress
from callflow.console.agency_wiring import AgencyDeskService
from callflow.console.wiring import IndexedRecordings, ServiceIncidents, StoredCalls, StoreReports
from callflow.settings import load_settings
from queues import ManagedOperators
from queues.callbacks import CallbackService


def test_address_parsing() -> None:
    assert HttpAddress.parse("127.0.0.1:8112") == HttpAddress("127.0.0.1", 8112)
    assert HttpAddress.parse("[::1]:9000") == HttpAddress("::1", 9000)
    assert HttpAddress.parse("127.0.0.1:8112").loopback
    assert not HttpAddress.parse("0.0.0.0:8112").loopback
    for bad in ("8112", "localhost", "127.0.0.1:http", ":8112", "127.0.0.1:70000"):
        with pytest.raises(ConsoleError, match="HOST:PORT"):
            HttpAddress.parse(bad)


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        component = ConsoleComponent(HttpAddress("127.0.0.1", port), tmp_path / "db")
        with pytest.raises(ConsoleError, match=f"cannot listen on 127.0.0.1:{port}.*--http HOST:PORT"):
            component.bind()
        # and `serve` refuses to start, saying so, before it attaches to any Asterisk
        done = subprocess.run([sys.executable, "-m", "callflow.cli", "serve", "--http", f"127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={"SIAGA112_AMI__SECRET": "unused", "PATH": "/usr/bin:/bin",
                                   "SIAGA112_DATABASE": str(tmp_path / "db")})
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_serve_wires_the_real_providers_and_listens_for_call_records(tmp_path: Path) -> None:
    """``build_engine`` gives the console the store-backed providers (operators and callbacks keep
    their stand-ins) and makes it a listener of the call tracker; a bad agency file stops ``serve``."""
    # a centre in another zone (Jakarta, WIB): the console's day and clock follow the site, as the reports do
    settings = load_settings(ivr={"enabled": False}, incidents={"timezone": "Asia/Jakarta"})
    paths = EnginePaths(database=tmp_path / "siaga112.db", recordings=tmp_path / "rec")
    engine = build_engine(settings, None, paths, endpoint=AmiEndpoint("127.0.0.1", 1, "siaga112", "unused"),
                          http=HttpAddress("127.0.0.1", 0))
    components = engine.components
    console = next(c for c in components if isinstance(c, ConsoleComponent))
    tracker = next(c for c in components if isinstance(c, CallTracker))
    try:
        p = console.providers
        assert isinstance(p.calls, StoredCalls)
        assert isinstance(p.incidents, ServiceIncidents)
        assert isinstance(p.reports, StoreReports)
        assert isinstance(p.recordings, IndexedRecordings)
        assert p.recordings.root == tmp_path / "rec"
        assert isinstance(p.operators, ManagedOperators)
        assert isinstance(p.callbacks, CallbackService)
        assert console in tracker.listeners
        assert str(console.timezone) == "Asia/Jakarta"
        # an incident change reaches every page (the hub) and the agencies' outbox (issue 21)
        assert isinstance(p.agencies, AgencyDeskService)
        assert p.agencies.publish == console.hub.publish
        watcher = console.hub.subscribe("sup")
        assert p.incidents.notify is not None
        p.incidents.notify({"type": "incident.changed", "id": "5", "change": "dispatched"})
        assert watcher.pending == 1
    finally:
        if console._sock is not None:
            console._sock.close()

    bad = tmp_path / "agencies.toml"
    bad.write_text("[[agency]]\nid = 'x'\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "callflow.cli", "serve", "--http", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"SIAGA112_AMI__SECRET": "unused", "PATH": "/usr/bin:/bin",
                               "SIAGA112_DATABASE": str(tmp_path / "db2"),
                               "SIAGA112_INCIDENTS__AGENCIES_FILE": str(bad)})
    assert done.returncode == 2, done.stderr
    assert str(bad) in done.stderr


async def test_a_stored_call_record_reaches_the_live_stream(tmp_path: Path) -> None:
    console = ConsoleComponent(HttpAddress("127.0.0.1", 0), tmp_path / "db")
    sub = console.hub.subscribe("sup")
    at = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    await console.on_call_record(CallRecord(
        linkedid="1.1", caller_number="081234500112", caller_name="", dialed="112",
        call_class=CallClass.EMERGENCY, outcome=Outcome.ANSWERED, arrival=at, ended=at, answered=at,
        operator="op1"))
    message = await sub.next(timeout=1)
    assert message == {"type": "call.record", "at": at.isoformat(), "linkedid": "1.1",
                       "caller": "081234500112", "outcome": "answered", "call_class": "emergency",
                       "operator": "op1", "answer_seconds": 0.0}
