"""Unit: answer-time measures (callflow/reports/measures.py) and the export formats, from records built by
hand."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from callflow.calls.export import CSV_COLUMNS, export_csv, export_json
from callflow.calls.model import CallClass, CallRecord, Instant, InstantSource, Leg, Outcome
from callflow.calls.records import record_from_dict, record_to_dict
from callflow.reports.measures import answer_times, answer_times_by, percentile

T0 = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)


def rec(n: int, outcome: Outcome, answer_s: float | None, *, klass: CallClass = CallClass.EMERGENCY,
        hour: int = 1, ivr_s: float | None = None) -> CallRecord:
    arrival = T0.replace(hour=hour) + timedelta(seconds=n)
    instants = [Instant("arrival", arrival, InstantSource.AMI_TIMESTAMP)]
    if ivr_s is not None:
        src = InstantSource.AMI_TIMESTAMP
        instants += [Instant("ivr_entered", arrival + timedelta(seconds=0.5), src),
                     Instant("ivr_left", arrival + timedelta(seconds=0.5 + ivr_s), src, "queue/emergency")]
    answered = arrival + timedelta(seconds=answer_s) if answer_s is not None else None
    return CallRecord(linkedid=f"17953{n:05d}.1", caller_number="081234567890", caller_name="Warga",
                      dialed="112", call_class=klass, outcome=outcome, arrival=arrival,
                      ended=arrival + timedelta(seconds=60), answered=answered,
                      operator="op1" if answered else "", queue=str(klass), instants=tuple(instants),
                      legs=(Leg(f"17953{n:05d}.1", "PJSIP/citizen-ingress-1", "caller", arrival),),
                      sources=("ami",))


def test_percentiles_count_unanswered_calls_and_exclude_short_abandons() -> None:
    records = [rec(i, Outcome.ANSWERED, float(i + 1)) for i in range(8)]  # 1..8 s
    records += [rec(20, Outcome.ABANDONED_IN_QUEUE, None), rec(21, Outcome.SHORT_ABANDON, None)]
    o = answer_times(records)
    assert (o.citizen_calls, o.offered, o.answered, o.short_abandons) == (10, 9, 8, 1)
    assert o.percentiles_s[50] == 5.0
    assert o.percentiles_s[90] is None  # the 9th of 9 offered calls was never answered
    assert o.service_levels[10] == 8 / 9
    assert o.abandon_rate == 1 / 9


def test_by_class_and_hour_and_ivr_time() -> None:
    records = [rec(1, Outcome.ANSWERED, 12.0, klass=CallClass.EMERGENCY, hour=1, ivr_s=4.0),
               rec(2, Outcome.ANSWERED, 25.0, klass=CallClass.NONEMERGENCY, hour=2, ivr_s=6.0)]
    by_class = answer_times_by(records, lambda r: str(r.call_class))
    assert by_class["emergency"].service_levels == {10: 0.0, 15: 1.0, 20: 1.0}
    assert by_class["nonemergency"].service_levels[20] == 0.0
    wita = timezone(timedelta(hours=8))
    assert set(answer_times_by(records, lambda r: r.arrival.astimezone(wita).hour)) == {9, 10}
    overall = answer_times(records)
    assert overall.ivr.median == 4.0
    assert overall.ivr.mean == 5.0
    json.dumps(overall.as_dict())


def test_nearest_rank() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0


def test_json_export_round_trips_and_csv_has_one_row_per_call() -> None:
    records = [rec(1, Outcome.ANSWERED, 3.5, ivr_s=2.0), rec(2, Outcome.ABANDONED_IN_QUEUE, None)]
    data = json.loads(export_json(records))
    assert [record_from_dict(d) for d in data] == records
    assert data[0]["legs"][0]["role"] == "caller"
    assert data[0]["answer_seconds"] == 3.5
    rows = list(csv.DictReader(io.StringIO(export_csv(records))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 2
    assert rows[0]["ivr_left"] == (records[0].arrival + timedelta(seconds=2.5)).isoformat()
    assert rows[1]["answered"] == ""
    assert record_to_dict(records[1])["outcome"] == "abandoned_in_queue"


def test_csv_export_quotes_every_formula_cell() -> None:
    """Issue 17: ``calls export --format csv`` wrote caller text a spreadsheet runs as a formula."""
    payloads = ["=1+2", "@SUM(1+1)", "+1+1", "-1+1+cmd|' /C calc'!A0", "\tx", "\r=1", "a\r=cmd"]
    records = [replace(rec(i, Outcome.ANSWERED, 3.0), caller_name=p, notes=(p,))
               for i, p in enumerate(payloads)]
    text = export_csv(records)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    safe = ["'" + p for p in payloads[:-1]] + ["a\r=cmd"]  # the last: quoted whole, one row
    assert [row["caller_name"] for row in rows] == safe
    assert [row["notes"] for row in rows] == safe
    assert '"a\r=cmd"' in text  # a CR inside a cell is quoted (it was bare: a new row for CR readers)
    assert rows[0]["caller_number"] == "081234567890"  # a plain number stays a number
