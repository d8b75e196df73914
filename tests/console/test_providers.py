"""The real providers (callflow/console/wiring.py) over a real store: data written by the owning
components' own code round-trips through the HTTP API; bad input is refused naming the field and
changes nothing; recordings and exports are supervisors-only and audited."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callflow.calls.model import CallClass, CallRecord, Outcome
from callflow.calls.records import store_records
from callflow.calls.tracker import SCHEMAS as CALL_SCHEMAS
from callflow.console.wiring import StoreWiring
from callflow.csvsafe import spreadsheet_safe
from callflow.store import StoreLocation, open_database
from recordings.index import SCHEMA as RECORDING_SCHEMA
from recordings.index import RecordingIndex, RecordingStatus
from tests.conftest import BOTH_STORES
from tests.console.conftest import Console

pytestmark = BOTH_STORES  # the same tests on SQLite and on PostgreSQL

NOW = datetime(2026, 11, 22, 8, 0, 0, 123456, tzinfo=UTC)  # the console fixture's clock: 16:00 WITA
NUMBER = "081234500112"


def call(linkedid: str, arrival: datetime, outcome: Outcome, *, number: str = NUMBER,
         answer_s: float | None = None) -> CallRecord:
    answered = arrival + timedelta(seconds=answer_s) if answer_s is not None else None
    return CallRecord(linkedid=linkedid, caller_number=number, caller_name="", dialed="112",
                      call_class=CallClass.EMERGENCY, outcome=outcome, arrival=arrival,
                      ended=arrival + timedelta(seconds=60), answered=answered,
                      operator="op1" if answered else "", queue="emergency", ivr_path=("root", "1"))


async def _store(database: StoreLocation, records: list[CallRecord]) -> None:
    conn = await open_database(database, CALL_SCHEMAS)
    try:
        await store_records(conn, records)
    finally:
        await conn.close()


async def _count(database: StoreLocation, table: str) -> int:
    async with await open_database(database) as conn, conn.execute(f"SELECT COUNT(*) FROM {table}") as cur:  # noqa: S608
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_calls_history_and_todays_answer_figures(
        wired: tuple[Console, StoreWiring, StoreLocation]) -> None:
    console, _, database = wired
    midnight = datetime(2026, 11, 21, 16, 0, tzinfo=UTC)  # 00:00 WITA on 22 November
    await _store(database, [
        call("1.1", midnight + timedelta(hours=1), Outcome.ANSWERED, answer_s=8.5),
        call("1.2", midnight + timedelta(hours=2), Outcome.ANSWERED, answer_s=12.0, number="081111111111"),
        call("1.3", midnight + timedelta(hours=3), Outcome.ANSWERED, answer_s=19.9),
        call("1.4", midnight + timedelta(hours=4), Outcome.ANSWERED, answer_s=31.0),
        call("1.5", midnight + timedelta(hours=5), Outcome.ABANDONED_IN_QUEUE),
        call("1.6", midnight + timedelta(hours=6), Outcome.ABANDONED_IN_IVR),
        call("1.7", midnight + timedelta(hours=7), Outcome.SHORT_ABANDON),
        call("0.1", midnight - timedelta(minutes=1), Outcome.ANSWERED, answer_s=3.0),  # yesterday (WITA)
        call("0.2", NOW - timedelta(days=31), Outcome.ABANDONED_IN_QUEUE),  # older than 30 days
    ])
    async with console.client() as c:
        await console.login(c, "op1")
        stats = (await c.get("/api/calls/stats/today")).json()
        history = (await c.get(f"/api/calls/by-number/{NUMBER}?days=30")).json()
        recent = (await c.get("/api/calls/recent?limit=3")).json()
        bad = await c.get("/api/calls/by-number/not-a-number")
    # offered answer times 8.5, 12, 19.9, 31, never, never: p50 is the 3rd (19.9), p90 the 6th (not reached)
    # no call tagged: every offered call is genuine; no nuisance, no repeat numbers (masked: an operator)
    assert stats == {"since": "2026-11-21T16:00:00Z", "citizen_calls": 7, "short_abandons": 1, "offered": 6,
                     "answered": 4, "within_10s": 1, "within_15s": 2, "within_20s": 3, "abandoned": 2,
                     "unanswered": 2, "p50_s": 19.9, "p90_s": None, "callback_tasks": 0,
                     "callback_attempts": 0, "callback_citizens_reached": 0, "genuine_offered": 6,
                     "genuine_answered": 4, "genuine_within_10s": 1, "genuine_within_15s": 2,
                     "genuine_within_20s": 3, "genuine_p50_s": 19.9,
                     "nuisance_by_hour": stats["nuisance_by_hour"], "top_repeat_numbers": [],
                     "numbers_masked": True}
    assert sum(h["calls"] for h in stats["nuisance_by_hour"].values()) == 6
    assert all(h["nuisance"] == 0 for h in stats["nuisance_by_hour"].values())
    assert [h["linkedid"] for h in history] == ["1.7", "1.6", "1.5", "1.4", "1.3", "1.1", "0.1"]
    assert history[-1] | {"ivr_path": ["root", "1"], "answer_seconds": 3.0, "operator": "op1"} == history[-1]
    assert [r["linkedid"] for r in recent] == ["1.7", "1.6", "1.5"]
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"] == "number"


async def test_incident_create_dispatch_status_round_trip(
        wired: tuple[Console, StoreWiring, StoreLocation]) -> None:
    console, wiring, database = wired
    published: list[dict[str, object]] = []
    wiring.incidents.notify = published.append
    await _store(database, [call("9.1", NOW - timedelta(days=2), Outcome.ANSWERED, answer_s=5.0)])
    async with console.client() as c:
        await console.login(c, "op1")
        r = await c.post("/api/incidents", json={"category": "fire", "district": "wenang",
                                                 "notes": "asap di pasar", "caller_number": NUMBER,
                                                 "linkedid": "9.2"})
        assert r.status_code == 201, r.text
        created = r.json()
        assert created | {"category": "fire", "district": "wenang", "status": "wait",
                          "notes": "asap di pasar", "caller_number": NUMBER, "linkedid": "9.2",
                          "created_by": "op1", "dispatched_to": []} == created
        incident_id = created["id"]
        # an incident linked only to an earlier call from the number counts as "from this number" too
        r = await c.post("/api/incidents", json={"category": "health", "district": "sario",
                                                 "linkedid": "9.1"})
        assert r.status_code == 201, r.text
        other = r.json()["id"]
        units = (await c.get("/api/units")).json()
        assert {"id": "fire-wenang-1", "busy": False} | next(u for u in units if u["id"] == "fire-wenang-1") \
            == next(u for u in units if u["id"] == "fire-wenang-1")
        r = await c.post(f"/api/incidents/{incident_id}/dispatch", json={"unit": "fire-wenang-1"})
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["dispatched_to"]) == ("handling", ["fire-wenang-1"])
        assert r.json()["dispatches"][0]["state"] == "dispatched"
        assert next(u for u in (await c.get("/api/units")).json() if u["id"] == "fire-wenang-1")["busy"]
        r = await c.post(f"/api/incidents/{incident_id}/status", json={"status": "done"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "done"
        assert r.json()["dispatches"][0]["state"] == "closed"  # done closes the open dispatch
        from_number = (await c.get(f"/api/incidents?caller_number={NUMBER}&days=30")).json()
        assert sorted(i["id"] for i in from_number) == sorted([incident_id, other])
        done = (await c.get("/api/incidents?status=done")).json()
        assert [i["id"] for i in done] == [incident_id]
    assert await _count(database, "incident_incident") == 2
    assert [(m["type"], m["change"]) for m in published] == [
        ("incident.changed", "created"), ("incident.changed", "created"), ("incident.changed", "dispatched"),
        ("incident.changed", "status")]


async def test_incident_refusals_name_the_field_and_change_nothing(
        wired: tuple[Console, StoreWiring, StoreLocation]) -> None:
    console, _, database = wired
    async with console.client() as c:
        await console.login(c, "op1")
        r = await c.post("/api/incidents", json={"category": "volcano", "district": "wenang"})
        assert r.status_code == 422
        assert r.json()["fields"][0]["field"] == "category"
        r = await c.post("/api/incidents", json={"category": "fire", "district": "wenang",
                                                 "caller_number": "12ab"})
        assert (r.status_code, r.json()["fields"][0]["field"]) == (422, "caller_number")
        assert await _count(database, "incident_incident") == 0
        r = await c.post("/api/incidents", json={"category": "fire", "district": "wenang"})
        incident_id = r.json()["id"]

        r = await c.post(f"/api/incidents/{incident_id}/dispatch", json={"unit": "no-such-unit"})
        assert r.status_code == 409
        assert r.json()["fields"][0]["field"] == "unit"
        assert "GET /api/units" in r.json()["message"]
        r = await c.post(f"/api/incidents/{incident_id}/dispatch", json={"unit": ""})
        assert (r.status_code, r.json()["fields"][0]["field"]) == (422, "unit")
        assert await _count(database, "dispatch_dispatch") == 0
        r = await c.post(f"/api/incidents/{incident_id}/status", json={"status": "handling"})
        assert r.status_code == 200
        r = await c.post(f"/api/incidents/{incident_id}/status", json={"status": "wait"})
        assert r.status_code == 409
        assert r.json()["fields"][0]["field"] == "status"
        assert "forward only" in r.json()["message"]
        r = await c.post(f"/api/incidents/{incident_id}/status", json={"status": "done"})
        assert r.status_code == 200
        r = await c.post(f"/api/incidents/{incident_id}/dispatch", json={"unit": "fire-wenang-1"})
        assert (r.status_code, r.json()["fields"][0]["field"]) == (409, "incident_id")
        r = await c.post("/api/incidents/4242/status", json={"status": "done"})
        assert r.status_code == 404
        assert "incident_id" in r.json()["message"]
        r = await c.post("/api/incidents/abc/dispatch", json={"unit": "fire-wenang-1"})
        assert r.status_code == 404
        [stored] = (await c.get("/api/incidents")).json()
    assert (stored["status"], stored["dispatched_to"]) == ("done", [])
    assert await _count(database, "dispatch_dispatch") == 0
    assert await _count(database, "incident_status_change") == 3  # created, handling, done


async def test_reports_summary_and_export_are_supervisor_only_and_audited(
        wired: tuple[Console, StoreWiring, StoreLocation]) -> None:
    console, _, database = wired
    day = datetime(2026, 11, 21, 16, 0, tzinfo=UTC)
    await _store(database, [replace(call("5.1", day + timedelta(hours=1), Outcome.ANSWERED, answer_s=7.0),
                                    caller_name='=HYPERLINK("x")'),
                            replace(call("5.2", day + timedelta(hours=2), Outcome.ABANDONED_IN_QUEUE),
                                    caller_name="-1+1+cmd|' /C calc'!A0"),
                            call("4.9", day - timedelta(hours=1), Outcome.ANSWERED, answer_s=7.0)])
    period = "start=2026-11-22T00:00:00%2B08:00&end=2026-11-23T00:00:00%2B08:00"
    async with console.client() as c:
        await console.login(c, "op1")
        assert (await c.post("/api/incidents", json={"category": "crime", "district": "tikala",
                                                     "linkedid": "5.1"})).status_code == 201
        assert (await c.get(f"/api/reports/summary?{period}")).status_code == 403
        assert (await c.get(f"/api/reports/export?{period}")).status_code == 403
    async with console.client() as c:
        await console.login(c, "sup")
        summary = (await c.get(f"/api/reports/summary?{period}")).json()
        r = await c.get(f"/api/reports/export?{period}")
        bad = await c.get("/api/reports/export?start=2026-11-23T00:00:00%2B08:00&end=2026-11-22T00:00:00Z")
    f = summary["figures"]
    assert (f["total"], f["categories.crime.count"], f["status.wait.count"], f["calls"]) == (1, 1, 1, 2)
    assert (f["answer_time.offered"], f["answer_time.answered"]) == (2, 1)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows[0]["caller_name"] == "'=HYPERLINK(\"x\")"  # never run as a formula in a spreadsheet
    assert rows[0]["caller_number"] == NUMBER
    assert rows[1]["caller_name"] == "'-1+1+cmd|' /C calc'!A0"  # issue 17: passed as a formula
    assert [(row["linkedid"], row["outcome"]) for row in rows] == [("5.1", "answered"),
                                                                   ("5.2", "abandoned_in_queue")]
    assert bad.status_code == 422
    assert "end" in bad.json()["message"]
    audit = [(a[0], a[2]) for a in await console.audit_rows() if a[1] == "export"]
    assert audit == [("op1", "denied"), ("sup", "ok")]


async def test_recordings_list_and_download_round_trip_audited(
        wired: tuple[Console, StoreWiring, StoreLocation], tmp_path: Path) -> None:
    console, _, database = wired
    root = tmp_path / "recordings"
    wav = root / "2026" / "11" / "22" / "1763791542_1-1763791542_1-080000000000.wav"
    wav.parent.mkdir(parents=True)
    wav.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28))
    conn = await open_database(database, [RECORDING_SCHEMA])
    try:
        index = RecordingIndex(conn)
        made = NOW - timedelta(minutes=5)
        good = await index.add(linkedid="1763791542.1", uniqueid="1763791542.1", call_class="emergency",
                               path=wav, fmt="wav", made_at=made, retain_until=made + timedelta(days=365),
                               status=RecordingStatus.RECORDING)
        await index.finish(good, ended_at=made + timedelta(seconds=40), duration_s=40.0,
                           size_bytes=wav.stat().st_size, sha256="0" * 64, call_class="emergency",
                           retain_until=made + timedelta(days=365))
        failed = await index.add(linkedid="1763791600.7", uniqueid="1763791600.7", call_class="emergency",
                                 path=root / "missing.wav", fmt="wav", made_at=made,
                                 retain_until=made + timedelta(days=365), status=RecordingStatus.FAILED,
                                 problem="recordings root not writable")
        outside = await index.add(linkedid="1763791600.8", uniqueid="1763791600.8", call_class="emergency",
                                  path=tmp_path / "elsewhere.wav", fmt="wav", made_at=made,
                                  retain_until=made + timedelta(days=365), status=RecordingStatus.OK)
        (tmp_path / "elsewhere.wav").write_bytes(b"RIFF")
    finally:
        await conn.close()
    async with console.client() as c:
        await console.login(c, "op1")
        assert (await c.get("/api/recordings")).status_code == 403
        assert (await c.get(f"/api/recordings/{good}/download")).status_code == 403
    async with console.client() as c:
        await console.login(c, "sup")
        listed = (await c.get("/api/recordings?linkedid=1763791542.1")).json()
        assert listed == [{"id": str(good), "linkedid": "1763791542.1",
                           "started_at": "2026-11-22T07:55:00.123456Z", "duration_s": 40.0,
                           "size_bytes": wav.stat().st_size, "media_type": "audio/wav",
                           "status": "ok", "call_class": "emergency"}]
        assert len((await c.get("/api/recordings")).json()) == 3
        r = await c.get(f"/api/recordings/{good}/download")
        assert (r.status_code, r.content, r.headers["content-type"]) == (200, wav.read_bytes(), "audio/wav")
        r = await c.get(f"/api/recordings/{failed}/download")
        assert (r.status_code, r.json()["fields"][0]["field"]) == (409, "recording_id")
        assert "recordings root not writable" in r.json()["message"]
        r = await c.get(f"/api/recordings/{outside}/download")
        assert r.status_code == 409
        assert "outside the recordings root" in r.json()["message"]
        assert (await c.get("/api/recordings/999/download")).status_code == 404
    audit = [(a[0], a[2], a[3]) for a in await console.audit_rows() if a[1] == "recording.download"]
    assert audit == [("op1", "denied", f"/api/recordings/{good}/download"), ("sup", "ok", str(good)),
                     ("sup", "failed", str(failed)), ("sup", "failed", str(outside)),
                     ("sup", "failed", "999")]
    conn = await open_database(database, [RECORDING_SCHEMA])
    try:
        trail = await RecordingIndex(conn).audit_trail(good)
    finally:
        await conn.close()
    assert [(t.action, t.by_whom) for t in trail] == [("download", "sup")]


async def test_operators_and_callbacks_still_say_they_are_not_wired(
        wired: tuple[Console, StoreWiring, StoreLocation]) -> None:
    console, _, _ = wired
    async with console.client() as c:
        await console.login(c, "sup")
        for path, component in (("/api/operators", "operator state"), ("/api/callbacks", "callbacks")):
            r = await c.get(path)
            assert r.status_code == 503
            assert component in r.json()["message"]



@pytest.mark.parametrize(("cell", "safe"), [
    ("+6281234500112", "+6281234500112"), ("-1.5", "-1.5"), ("", ""), ("Warga", "Warga"),
    ("=1+1", "'=1+1"), ("@SUM(A1)", "'@SUM(A1)"), ("+cmd", "'+cmd"), ("-x", "'-x"), ("\tx", "'\tx"),
    # issue 17: a sign followed by a digit passed as a number, yet runs as a formula
    ("+1+1", "'+1+1"), ("-1+1+cmd|' /C calc'!A0", "'-1+1+cmd|' /C calc'!A0"), ("\r=1", "'\r=1"),
    ("-2.5e3", "'-2.5e3"), ("+62 812", "'+62 812"),
])
def test_spreadsheet_safe_cells(cell: str, safe: str) -> None:
    assert spreadsheet_safe(cell) == safe
