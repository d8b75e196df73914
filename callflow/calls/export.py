"""Export of call records: JSON (one object per call, legs and instants included) or CSV (one row per
call, the instants flattened into columns). The schema is documented in README.md ("Call records")."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from callflow.calls.model import CallRecord
from callflow.calls.records import record_to_dict
from callflow.csvsafe import write_dicts

# Instants flattened into CSV columns: (column, instant name, which one when repeated).
_CSV_INSTANTS = (("ivr_entered", "ivr_entered", 0), ("ivr_left", "ivr_left", 0),
                 ("queue_joined", "queue_joined", 0), ("first_rung", "rung", 0),
                 ("transferred", "transferred", 0), ("hangup", "hangup", 0))

CSV_COLUMNS = ("linkedid", "caller_number", "caller_name", "dialed", "call_class", "outcome", "arrival",
               "ivr_entered", "ivr_left", "queue_joined", "first_rung", "answered", "transferred", "hangup",
               "ended", "answer_seconds", "operator", "operators_rung", "queue", "category", "ivr_path",
               "hangup_by", "sources", "notes", "follows_up", "contact", "nature")


def export_json(records: Sequence[CallRecord], natures: Mapping[str, str] | None = None) -> str:
    """``natures``: the operators' tag of each call (callflow/calls/nature.py), by linkedid."""
    tags = natures or {}
    return json.dumps([{**record_to_dict(r), "nature": tags.get(r.linkedid, "")} for r in records],
                      ensure_ascii=False, indent=2) + "\n"


def csv_row(record: CallRecord, nature: str = "") -> dict[str, str]:
    d = {**record_to_dict(record), "nature": nature}
    row = {k: "" if d.get(k) is None else str(d[k]) for k in CSV_COLUMNS if k in d}
    for column, name, index in _CSV_INSTANTS:
        found = [i for i in record.instants if i.name == name]
        row[column] = found[index].at.isoformat(timespec="microseconds") if len(found) > index else ""
    row["operators_rung"] = ";".join(i.detail for i in record.instants if i.name == "rung")
    row["ivr_path"] = ">".join(record.ivr_path)
    row["sources"] = ";".join(record.sources)
    row["notes"] = "; ".join(record.notes)
    return row


def export_csv(records: Sequence[CallRecord], natures: Mapping[str, str] | None = None) -> str:
    """One row per call; a cell a spreadsheet would run as a formula is quoted (:mod:`callflow.csvsafe`).
    ``natures``: the operators' tag of each call, by linkedid."""
    tags = natures or {}
    return write_dicts(CSV_COLUMNS, (csv_row(record, tags.get(record.linkedid, "")) for record in records))
