"""One day's calls, every surface, the same figures (issue 16).

One fixture day (22 November 2026, WITA) holds one call of each kind: answered, transferred, abandoned in
the queue, abandoned in the IVR, a short abandon, a fail-safe call, an overflowed call, and the engine's
own callback calls (one answered, one unanswered attempt); operators tagged two calls nuisance (prank,
silent) and corrected a third from prank to non-emergency (the latest tag counts). The figures, over all
offered calls and over genuine calls, are worked out by hand below from
the definitions in callflow/reports/measures.py, then read back from every surface:
``siaga112 report answer-times --format json``, ``siaga112 report summary --format json``,
``siaga112 calls export --format csv``, ``GET /api/reports/summary`` and ``GET /api/calls/stats/today``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callflow.calls.model import CallClass, CallRecord, Instant, InstantSource, Leg, Outcome
from callflow.calls.nature import Nature, tag_call
from callflow.calls.records import store_records
from callflow.calls.tracker import SCHEMAS as CALL_SCHEMAS
from callflow.cli import main
from callflow.console.wiring import StoreWiring
from callflow.store import StoreLocation, open_database
from queues.callbacks import store as callbacks
from queues.callbacks.rules import AttemptOutcome, TaskStatus
from tests.conftest import BOTH_STORES
from tests.console.conftest import Console

pytestmark = BOTH_STORES  # the same tests on SQLite and on PostgreSQL

DAY = datetime(2026, 11, 21, 16, 0, tzinfo=UTC)  # 00:00 WITA, 22 November; the console's clock: 16:00 WITA
AMI = InstantSource.AMI_TIMESTAMP


def at(hh_mm_ss: str) -> datetime:
    """A UTC time on 22 November 2026."""
    h, m, s = (float(x) for x in hh_mm_ss.split(":"))
    return datetime(2026, 11, 22, tzinfo=UTC) + timedelta(hours=h, minutes=m, seconds=s)


def citizen(linkedid: str, arrival: datetime, outcome: Outcome, *, answer_s: float | None = None,
            length_s: float = 60.0, klass: CallClass = CallClass.EMERGENCY,
            ivr: tuple[float, float] | None = None, number: str = "081234500001",
            operator: str = "op1") -> CallRecord:
    """A call from a citizen: its caller leg came in on the citizen ingress."""
    answered = arrival + timedelta(seconds=answer_s) if answer_s is not None else None
    instants = [Instant("arrival", arrival, AMI)]
    if ivr is not None:
        instants.append(Instant("ivr_entered", arrival + timedelta(seconds=ivr[0]), AMI))
        if ivr[1] >= 0:
            instants.append(Instant("ivr_left", arrival + timedelta(seconds=ivr[1]), AMI, "queue/emergency"))
    if answered is not None:
        instants.append(Instant("answered", answered, AMI, operator))
    ended = arrival + timedelta(seconds=length_s)
    return CallRecord(linkedid=linkedid, caller_number=number, caller_name="Warga", dialed="112",
                      call_class=klass, outcome=outcome, arrival=arrival, ended=ended, answered=answered,
                      operator=operator if answered else "", queue=str(klass), instants=tuple(instants),
                      legs=(Leg(linkedid, f"PJSIP/citizen-ingress-{linkedid[-4:]}", "caller", arrival,
                                None, ended, 16),), sources=("ami",))


def callback_call(linkedid: str, arrival: datetime, *, answer_s: float | None) -> CallRecord:
    """A call the engine placed to call a citizen back (its Linkedid is the Originate's ChannelId)."""
    answered = arrival + timedelta(seconds=answer_s) if answer_s is not None else None
    ended = arrival + timedelta(seconds=90 if answered else 30)
    return CallRecord(linkedid=linkedid, caller_number="081234500003" if answered else "",
                      caller_name="", dialed="s" if answered else "",
                      call_class=CallClass.EMERGENCY if answered else CallClass.UNKNOWN,
                      outcome=Outcome.ANSWERED if answered else Outcome.CALLBACK_UNANSWERED, arrival=arrival,
                      follows_up="1795000003.3" if answered else "",
                      ended=ended, answered=answered, operator="op1" if answered else "",
                      legs=(Leg(linkedid, "PJSIP/citizen-callback-00000001", "caller", arrival, None,
                                ended),),
                      sources=("ami",))


# The day, in UTC (WITA = UTC+8).
CALLS = [
    citizen("1795000001.1", at("01:00:00"), Outcome.ANSWERED, answer_s=7.5, ivr=(0.2, 3.2)),      # 09 WITA
    citizen("1795000002.2", at("01:10:00"), Outcome.TRANSFERRED, answer_s=12.0, operator="op2"),  # 09
    citizen("1795000003.3", at("02:00:00"), Outcome.ABANDONED_IN_QUEUE, length_s=40.0,            # 10
            number="081234500003"),
    citizen("1795000004.4", at("02:30:00"), Outcome.ABANDONED_IN_IVR, length_s=9.0,               # 10
            klass=CallClass.UNKNOWN, ivr=(0.2, -1), number="anonymous"),
    citizen("1795000005.5", at("03:00:00"), Outcome.SHORT_ABANDON, length_s=1.5,                  # 11
            klass=CallClass.UNKNOWN, number="081234500005"),
    citizen("1795000006.6", at("04:00:00"), Outcome.FAILSAFE, answer_s=18.0),                     # 12
    citizen("1795000007.7", at("05:00:00"), Outcome.OVERFLOWED, length_s=45.0,                    # 13
            number="081234500007"),
    # the engine's callbacks: not offered calls
    callback_call("siaga-cb-1-1-1795317690000", at("02:01:30"), answer_s=20.0),
    callback_call("siaga-cb-3-1-1795320090000", at("03:01:30"), answer_s=None),
    # the day before (WITA) and the day after: outside every period below
    citizen("1794999999.9", DAY - timedelta(minutes=1), Outcome.ANSWERED, answer_s=3.0),
]


async def store_day(database: StoreLocation) -> None:
    """The records as the tracker stores them; the callback tasks as the callback service does."""
    conn = await open_database(database, [*CALL_SCHEMAS, callbacks.CALLBACKS_SCHEMA])
    try:
        await store_records(conn, CALLS)
        made = at("02:00:40")
        t1 = await callbacks.create_task(conn, linkedid="1795000003.3", number="081234500003",
                                         reason="abandoned_in_queue (emergency)", call_class="emergency",
                                         arrival=at("02:00:00"), now=made, status=TaskStatus.PENDING,
                                         next_attempt_at=made + timedelta(seconds=50))
        assert t1 is not None
        await callbacks.add_attempt(conn, t1.id, 1, "siaga-cb-1-1-1795317690000", at("02:01:30"))
        # the citizen answered the callback 70 s after hanging up (02:00:40 -> 02:01:50)
        await callbacks.set_attempt(conn, "siaga-cb-1-1-1795317690000", outcome=AttemptOutcome.ANSWERED,
                                    ended_at=at("02:01:50"))
        await callbacks.update_task(conn, t1.id, now=at("02:01:50"), status=TaskStatus.ANSWERED,
                                    operator="op1")
        t2 = await callbacks.create_task(conn, linkedid="1795000004.4", number="anonymous",
                                         reason="abandoned_in_ivr before any choice (possible emergency)",
                                         call_class="unknown", arrival=at("02:30:00"), now=at("02:30:09"),
                                         status=TaskStatus.SUPERVISOR, next_attempt_at=None,
                                         flag="number withheld or anonymous: cannot call back")
        assert t2 is not None
        t3 = await callbacks.create_task(conn, linkedid="1795000005.5", number="081234500005",
                                         reason="short_abandon before any choice (possible emergency)",
                                         call_class="unknown", arrival=at("03:00:00"), now=at("03:00:01.5"),
                                         status=TaskStatus.PENDING, next_attempt_at=at("03:01:30"))
        assert t3 is not None
        await callbacks.add_attempt(conn, t3.id, 1, "siaga-cb-3-1-1795320090000", at("03:01:30"))
        await callbacks.set_attempt(conn, "siaga-cb-3-1-1795320090000", outcome=AttemptOutcome.NO_ANSWER,
                                    ended_at=at("03:02:00"))
        await callbacks.update_task(conn, t3.id, now=at("03:02:00"), status=TaskStatus.PENDING,
                                    next_attempt_at=at("03:04:00"), attempts=1)
        t4 = await callbacks.create_task(conn, linkedid="1795000007.7", number="081234500007",
                                         reason="overflowed (emergency)", call_class="emergency",
                                         arrival=at("05:00:00"), now=at("05:00:45"),
                                         status=TaskStatus.PENDING, next_attempt_at=at("05:01:45"))
        assert t4 is not None
        # the operators' tags (issue 19): the latest tag of a call is its nature
        for linkedid, number, nature in (
                ("1795000001.1", "081234500001", Nature.GENUINE_EMERGENCY),
                ("1795000002.2", "081234500001", Nature.PRANK),
                ("1795000002.2", "081234500001", Nature.NON_EMERGENCY),  # corrected: not a prank
                ("1795000004.4", "anonymous", Nature.SILENT),
                ("1795000007.7", "081234500007", Nature.PRANK)):
            await tag_call(conn, linkedid=linkedid, caller_number=number, nature=nature, by="op1",
                           at=at("06:00:00"))
    finally:
        await conn.close()


# -- the figures, by hand -------------------------------------------------------------------------
# citizen calls: the 7 on the citizen ingress that day (the 2 callback calls are the engine's own)
# short abandons: 1 (1795000005.5, 1.5 s) -> offered 6: answered, transferred, queue, IVR, fail-safe, overflow
# answered: 7.5 s, 12 s, 18 s (fail-safe, taken by an operator) -> 3; abandoned (IVR or queue): 2;
# unanswered: 6 - 3 = 3 (the overflowed call nobody answered too)
# within 10 s: 1; 15 s: 2; 20 s: 3 -> service levels 1/6, 2/6, 3/6 (17 %, 33 %, 50 %)
# nearest rank over the 6 offered (7.5, 12, 18, never, never, never): p50 = 3rd = 18 s; p90 = 6th: not reached
# mean of the answered: (7.5 + 12 + 18) / 3 = 12.5 s
# time in the IVR: 3.0 s (the answered call) and 8.8 s (hung up in the IVR at 9 s): median (nearest rank)
# 3.0 s, mean 5.9 s
# callbacks: 4 tasks (queue, IVR, short abandon, overflow), 2 attempts (1 unanswered), 1 citizen reached,
# taken by op1; hang-up 02:00:40 -> the citizen answered 02:01:50: 70 s
EXPECTED: dict[str, Any] = {
    "citizen_calls": 7, "short_abandons": 1, "offered": 6, "answered": 3, "abandoned": 2, "unanswered": 3,
    "abandon_rate": 2 / 6, "answered_within": {"10": 1, "15": 2, "20": 3},
    "service_levels": {"10": 1 / 6, "15": 2 / 6, "20": 3 / 6},
    "percent_within": {"10": 17, "15": 33, "20": 50},
    "percentiles_s": {"p50": 18.0, "p90": None, "p95": None, "p99": None},
    "mean_answer_s": 12.5, "ivr_time_p50_s": 3.0, "ivr_time_mean_s": pytest.approx(5.9),
    "outcomes": {"abandoned_in_ivr": 1, "abandoned_in_queue": 1, "answered": 1, "failsafe": 1,
                 "overflowed": 1, "short_abandon": 1, "transferred": 1},
}
EXPECTED_CALLBACKS: dict[str, Any] = {
    "tasks": 4, "attempts": 2, "unanswered_attempts": 1, "citizens_reached": 1, "taken_by_operator": 1,
    "hangup_to_reached": {"count": 1, "mean_s": 70.0, "median_s": 70.0, "p90_s": 70.0, "max_s": 70.0},
}
# genuine calls: less 1795000004.4 (silent) and 1795000007.7 (prank); 1795000002.2's prank tag was
# corrected, the untagged short abandon counts -> citizen calls 5, short abandons 1, offered 4: answered
# (7.5 s), transferred (12 s), abandoned in the queue, fail-safe (18 s) -> answered 3, abandoned 1;
# within 10/15/20 s: 1, 2, 3 of 4; nearest rank over (7.5, 12, 18, never): p50 = 2nd = 12 s, p90 not
# reached; mean of the answered 12.5 s; time in the IVR: the answered call's 3.0 s only
EXPECTED_GENUINE: dict[str, Any] = {
    "citizen_calls": 5, "short_abandons": 1, "offered": 4, "answered": 3, "abandoned": 1, "unanswered": 1,
    "abandon_rate": 0.25, "answered_within": {"10": 1, "15": 2, "20": 3},
    "service_levels": {"10": 0.25, "15": 0.5, "20": 0.75},
    "percent_within": {"10": 25, "15": 50, "20": 75},
    "percentiles_s": {"p50": 12.0, "p90": None, "p95": None, "p99": None},
    "mean_answer_s": 12.5, "ivr_time_p50_s": 3.0, "ivr_time_mean_s": 3.0,
    "outcomes": {"abandoned_in_queue": 1, "answered": 1, "failsafe": 1, "short_abandon": 1, "transferred": 1},
}
# nuisance share by local hour (WITA) over offered calls: 09 none of 2; 10 the silent call of 2; 12 none of
# 1; 13 the prank call of 1 (11 had only the short abandon: no offered call)
EXPECTED_NUISANCE_BY_HOUR: dict[str, Any] = {
    "09": {"nuisance": 0, "calls": 2, "share": 0.0}, "10": {"nuisance": 1, "calls": 2, "share": 0.5},
    "12": {"nuisance": 0, "calls": 1, "share": 0.0}, "13": {"nuisance": 1, "calls": 1, "share": 1.0},
}
# top repeat numbers: one nuisance call each, by number; masked to the last 3 digits except for supervisors
TOP_NUMBERS = [{"number": "081234500007", "nuisance_calls": 1}, {"number": "anonymous", "nuisance_calls": 1}]
TOP_MASKED = [{"number": "*********007", "nuisance_calls": 1}, {"number": "******ous", "nuisance_calls": 1}]
ANSWER_SECONDS = {"1795000001.1": "7.5", "1795000002.2": "12.0", "1795000006.6": "18.0"}


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def flat(prefix: str, d: dict[str, Any]) -> dict[str, float]:
    """A figures dict as the console's report flattens it (numbers only; None is left out)."""
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= flat(f"{prefix}.{k}", v)
        elif isinstance(v, int | float):
            out[f"{prefix}.{k}"] = float(v)
    return out


async def test_every_surface_shows_the_same_figures(wired: tuple[Console, StoreWiring, StoreLocation],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    console, _, database = wired
    await store_day(database)
    db = ("--database", str(database))

    def cli_surfaces() -> tuple[Any, Any, str]:
        times = cli_json(capsys, "report", "answer-times", "--format", "json",
                         "--since", "2026-11-21T16:00:00Z", "--until", "2026-11-22T16:00:00Z", *db)
        summary = cli_json(capsys, "report", "summary", "--from", "2026-11-22", "--to", "2026-11-22",
                           "--format", "json", *db)
        assert main(["calls", "export", "--format", "csv", "--since", "2026-11-21T16:00:00Z", *db]) == 0
        export = capsys.readouterr().out
        shown = cli_json(capsys, "report", "summary", "--from", "2026-11-22", "--to", "2026-11-22",
                         "--format", "json", "--show-numbers", *db)
        return times, summary, export, shown

    times, summary, export, shown = await asyncio.to_thread(cli_surfaces)  # the CLI runs its own loop

    async with console.client() as c:
        await console.login(c, "sup")
        wallboard = (await c.get("/api/calls/stats/today")).json()
        await console.login(c, "adm")  # the wallboard's other role: numbers masked
        masked_board = (await c.get("/api/calls/stats/today")).json()
        await console.login(c, "sup")
        period = "start=2026-11-22T00:00:00%2B08:00&end=2026-11-23T00:00:00%2B08:00"
        api = (await c.get(f"/api/reports/summary?{period}")).json()

    # report answer-times: the day, by class and by local hour
    assert times["overall"] == EXPECTED
    assert times["callbacks"] == EXPECTED_CALLBACKS
    assert {k: v["offered"] for k, v in times["by_class"].items()} == {"emergency": 5, "unknown": 1}
    assert {k: v["short_abandons"] for k, v in times["by_class"].items()} == {"emergency": 0, "unknown": 1}
    assert {k: v["offered"] for k, v in times["by_hour"].items()} == {"09": 2, "10": 2, "11": 0, "12": 1,
                                                                      "13": 1}
    # report summary: the same figures, the same shape, the same hours
    assert summary["answer_time"] == EXPECTED
    assert summary["callbacks"] == EXPECTED_CALLBACKS
    assert summary["answer_time_by_hour"] == times["by_hour"]
    # the console's summary: the same figures, flattened
    figures = api["figures"]
    assert {k: v for k, v in figures.items() if k.startswith("answer_time.")} == \
        flat("answer_time", EXPECTED | {"ivr_time_mean_s": figures["answer_time.ivr_time_mean_s"]})
    assert figures["answer_time.ivr_time_mean_s"] == pytest.approx(5.9)
    assert {k: v for k, v in figures.items() if k.startswith("callbacks.")} == flat("callbacks",
                                                                                    EXPECTED_CALLBACKS)
    # honest numbers (issue 19): genuine calls, the nuisance share by hour, the top repeat numbers
    assert times["genuine"] == EXPECTED_GENUINE
    assert times["nuisance_by_hour"] == EXPECTED_NUISANCE_BY_HOUR
    assert times["top_repeat_numbers"] == TOP_MASKED
    assert summary["genuine"] == EXPECTED_GENUINE
    assert summary["nuisance_by_hour"] == EXPECTED_NUISANCE_BY_HOUR
    assert summary["top_repeat_numbers"] == TOP_MASKED
    assert shown["top_repeat_numbers"] == TOP_NUMBERS
    assert {k: v for k, v in figures.items() if k.startswith("genuine.")} == flat("genuine", EXPECTED_GENUINE)
    assert {k: v for k, v in figures.items() if k.startswith("nuisance_by_hour.")} == \
        flat("nuisance_by_hour", EXPECTED_NUISANCE_BY_HOUR)
    assert api["top_repeat_numbers"] == TOP_NUMBERS  # supervisors only
    # the wallboard: today so far (00:00 -> 16:00 WITA) is the whole fixture day
    g = EXPECTED_GENUINE
    assert wallboard == {
        "since": "2026-11-21T16:00:00Z", "citizen_calls": 7, "short_abandons": 1, "offered": 6, "answered": 3,
        "within_10s": 1, "within_15s": 2, "within_20s": 3, "abandoned": 2, "unanswered": 3, "p50_s": 18.0,
        "p90_s": None, "callback_tasks": 4, "callback_attempts": 2, "callback_citizens_reached": 1,
        "genuine_offered": g["offered"], "genuine_answered": g["answered"],
        "genuine_within_10s": g["answered_within"]["10"], "genuine_within_15s": g["answered_within"]["15"],
        "genuine_within_20s": g["answered_within"]["20"], "genuine_p50_s": g["percentiles_s"]["p50"],
        "nuisance_by_hour": EXPECTED_NUISANCE_BY_HOUR, "top_repeat_numbers": TOP_NUMBERS,
        "numbers_masked": False}
    assert masked_board == wallboard | {"top_repeat_numbers": TOP_MASKED, "numbers_masked": True}
    # the export's derived field: answer_seconds = answered - arrival, for the same three answered calls
    rows = {r["linkedid"]: r for r in csv.DictReader(io.StringIO(export))}
    assert {k: r["answer_seconds"] for k, r in rows.items() if r["answer_seconds"]} == \
        ANSWER_SECONDS | {"siaga-cb-1-1-1795317690000": "20.0"}  # the callback call's own, never offered
