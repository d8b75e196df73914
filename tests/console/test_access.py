"""Roles, CSRF on every state-changing route, audited exports and recording downloads, 503s that name
the component that is not wired."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callflow.console.models import RecordingInfo, ReportSummary
from callflow.console.providers import NotFound, RecordingFile
from tests.console.conftest import Console

SAMPLE = {"category": "fire", "district": "wenang"}


class WavRecordings:
    """A recordings provider over one real file written by the test (the API contract, not the store)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.opened: list[str] = []

    async def recordings(self, linkedid: str | None) -> Sequence[RecordingInfo]:
        started = datetime(2026, 11, 22, tzinfo=UTC)
        return [RecordingInfo(id="rec-1", linkedid="1763791542.1", started_at=started,
                              duration_s=1.0, size_bytes=self.path.stat().st_size, media_type="audio/wav")]

    async def open(self, recording_id: str, by: str) -> RecordingFile:
        self.opened.append(recording_id)
        if recording_id != "rec-1":
            raise NotFound(f"no recording {recording_id}")
        return RecordingFile(self.path, "audio/wav", "rec-1.wav")


class CsvReports:
    async def summary(self, start: datetime, end: datetime) -> ReportSummary:
        return ReportSummary(start=start, end=end, figures={"offered": 3})

    async def export_csv(self, start: datetime, end: datetime) -> bytes:
        return b"linkedid,outcome\n1763791542.1,answered\n"


def _concrete(path: str) -> str:
    return path.replace("{incident_id}", "inc-1").replace("{recording_id}", "rec-1") \
        .replace("{number}", "081234567890").replace("{dispatch_id}", "1")


async def _operations(console: Console) -> list[tuple[str, str]]:
    async with console.client() as c:
        await console.login(c, "op1")
        spec = (await c.get("/api/openapi.json")).json()
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item]


async def test_every_state_changing_operation_refuses_a_missing_csrf_token(console: Console) -> None:
    """Whatever routes exist (the OpenAPI schema lists them all): a logged-in session's POST without the
    CSRF header is refused before the route runs."""
    mutating = [(m, p) for m, p in await _operations(console) if m not in ("GET", "HEAD")]
    assert len(mutating) >= 6
    for user in ("op1", "sup"):
        async with console.client() as c:
            await console.login(c, user)
            del c.headers["X-CSRF-Token"]
            for method, path in mutating:
                if path == "/api/auth/login":
                    continue
                r = await c.request(method, _concrete(path), json={})
                assert r.status_code == 403, (user, method, path, r.text)
                assert "CSRF" in r.json()["message"]


@pytest.mark.parametrize(("user", "method", "path", "body"), [
    ("op1", "POST", "/api/auth/logout", None),
    ("op1", "POST", "/api/operators/me/state", {"state": "ready"}),
    ("op1", "POST", "/api/incidents", SAMPLE),
    ("op1", "POST", "/api/incidents/inc-1/dispatch", {"unit": "Ambulans Wenang"}),
    ("op1", "POST", "/api/incidents/inc-1/status", {"status": "done"}),
    ("sup", "POST", "/api/incidents/inc-1/dispatches/1/step", {"state": "en_route"}),
])
async def test_state_changing_request_without_csrf_token_is_refused(
        console: Console, user: str, method: str, path: str, body: object) -> None:
    async with console.client() as c:
        token = await console.login(c, user)
        for header in (None, "forged" + token[6:]):
            if header is None:
                del c.headers["X-CSRF-Token"]
            else:
                c.headers["X-CSRF-Token"] = header
            r = await c.request(method, path, json=body)
            assert r.status_code == 403, (path, r.text)
            assert "CSRF" in r.json()["message"]
        c.headers["X-CSRF-Token"] = token
        r = await c.request(method, path, json=body)
        assert r.status_code != 403  # past the guard (204, or 503: provider not wired)


@pytest.mark.parametrize(("user", "path", "allowed"), [
    ("op1", "/api/recordings", False),
    ("adm", "/api/recordings", False),
    ("sup", "/api/recordings", True),
    ("op1", "/api/reports/summary?start=2026-11-21T00:00:00Z&end=2026-11-22T00:00:00Z", False),
    ("sup", "/api/reports/summary?start=2026-11-21T00:00:00Z&end=2026-11-22T00:00:00Z", True),
    ("sup", "/api/queues", True),
    ("op1", "/api/queues", True),
])
async def test_roles(console: Console, tmp_path: Path, user: str, path: str, allowed: bool) -> None:
    wav = tmp_path / "rec.wav"
    wav.write_bytes(b"RIFF....WAVE")
    console.ctx.providers.recordings = WavRecordings(wav)
    console.ctx.providers.reports = CsvReports()
    async with console.client() as c:
        await console.login(c, user)
        r = await c.get(path)
    if allowed:
        assert r.status_code in (200, 503), r.text
    else:
        assert r.status_code == 403
        assert "may not do this" in r.json()["message"]


async def test_recording_download_is_supervisor_only_and_audited(console: Console, tmp_path: Path) -> None:
    wav = tmp_path / "rec.wav"
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    recordings = WavRecordings(wav)
    console.ctx.providers.recordings = recordings
    async with console.client() as c:
        await console.login(c, "op1")
        assert (await c.get("/api/recordings/rec-1/download")).status_code == 403
    async with console.client() as c:
        await console.login(c, "sup")
        r = await c.get("/api/recordings/rec-1/download")
        assert r.status_code == 200
        assert r.content == wav.read_bytes()
        assert r.headers["content-type"] == "audio/wav"
        missing = await c.get("/api/recordings/rec-9/download")
        assert missing.status_code == 404
        assert "recording_id" in missing.json()["message"]
    assert recordings.opened == ["rec-1", "rec-9"]  # the operator's attempt never reached the provider
    rows = [r for r in await console.audit_rows() if r[1] == "recording.download"]
    assert rows == [
        ("op1", "recording.download", "denied", "/api/recordings/rec-1/download", "192.0.2.7",
         "role=operator"),
        ("sup", "recording.download", "ok", "rec-1", "192.0.2.7", "rec-1.wav"),
        ("sup", "recording.download", "failed", "rec-9", "192.0.2.7", "not found"),
    ]


async def test_export_is_supervisor_only_and_audited(console: Console) -> None:
    period = "start=2026-11-21T00:00:00%2B08:00&end=2026-11-22T00:00:00%2B08:00"
    async with console.client() as c:
        await console.login(c, "sup")
        r = await c.get(f"/api/reports/export?{period}")
        assert r.status_code == 503  # reports not wired: refused, and the attempt audited
        assert r.json()["component"] == "reports"
        console.ctx.providers.reports = CsvReports()
        r = await c.get(f"/api/reports/export?{period}")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
    async with console.client() as c:
        await console.login(c, "adm")
        assert (await c.get(f"/api/reports/export?{period}")).status_code == 403
    rows = [(r[0], r[2], r[3]) for r in await console.audit_rows() if r[1] == "export"]
    target = "2026-11-21T00:00:00+08:00/2026-11-22T00:00:00+08:00"
    assert rows == [("sup", "unavailable", target), ("sup", "ok", target),
                    ("adm", "denied", "/api/reports/export")]


@pytest.mark.parametrize(("path", "component"), [
    ("/api/calls/stats/today", "call records (call tracker)"),
    ("/api/calls/recent", "call records (call tracker)"),
    ("/api/calls/by-number/081234567890", "call records (call tracker)"),
    ("/api/operators", "operator state (queues/operator manager)"),
    ("/api/incidents", "incidents and dispatch"),
    ("/api/callbacks", "callbacks (queues/operator manager)"),
    ("/api/queues", "queue status (AMI link to Asterisk)"),
])
async def test_unwired_components_answer_503_naming_the_component(
        console: Console, path: str, component: str) -> None:
    async with console.client() as c:
        await console.login(c, "sup")
        r = await c.get(path)
    assert r.status_code == 503
    assert r.json()["component"] == component
    assert component in r.json()["message"]


async def test_not_logged_in_is_401_everywhere(console: Console) -> None:
    operations = await _operations(console)
    assert len(operations) >= 15
    async with console.client() as c:
        for method, path in operations:
            if path == "/api/auth/login":
                continue
            r = await c.request(method, _concrete(path))
            assert r.status_code == 401, (method, path, r.status_code)


async def test_pages_and_openapi(console: Console) -> None:
    async with console.client() as c:
        for page in ("/console", "/wallboard"):
            r = await c.get(page)
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/html")
            assert "default-src 'self'" in r.headers["content-security-policy"]
            assert r.headers["x-frame-options"] == "DENY"
        assert (await c.get("/static/common.js")).status_code == 200
        anonymous = await c.get("/api/openapi.json")  # issue 17: the API's map was public
        assert anonymous.status_code == 401
        assert "paths" not in anonymous.text
        for docs in ("/docs", "/redoc", "/api/docs"):
            assert (await c.get(docs)).status_code == 404
        await console.login(c, "op1")
        spec = (await c.get("/api/openapi.json")).json()
    for path in ("/api/auth/login", "/api/queues", "/api/operators", "/api/calls/recent", "/api/incidents",
                 "/api/incidents/{incident_id}/dispatch",
                 "/api/incidents/{incident_id}/dispatches/{dispatch_id}/step", "/api/callbacks",
                 "/api/reports/export",
                 "/api/recordings/{recording_id}/download", "/api/events", "/api/units",
                 "/api/calls/stats/today", "/api/reports/summary"):
        assert path in spec["paths"], path
