"""Incidents as plain dicts (JSON for the CLI now, the console's HTTP API later)."""

from __future__ import annotations

from typing import Any

from callflow.incidents.categories import CATEGORIES
from callflow.incidents.model import Dispatch, Incident
from callflow.incidents.registry import Unit


def dispatch_as_dict(d: Dispatch) -> dict[str, Any]:
    return {"id": d.id, "incident_id": d.incident_id, "unit_id": d.unit_id, "unit_name": d.unit_name,
            "agency_id": d.agency_id, "agency_type": d.agency_type, "example_data": d.example,
            "state": d.state.value,
            "dispatched_at": d.dispatched_at.isoformat(),
            "en_route_at": d.en_route_at.isoformat() if d.en_route_at else None,
            "on_scene_at": d.on_scene_at.isoformat() if d.on_scene_at else None,
            "closed_at": d.closed_at.isoformat() if d.closed_at else None,
            "steps": [{"state": s.state.value, "at": s.at.isoformat(), "by": s.by, "source": s.source.value}
                      for s in d.steps]}


def incident_as_dict(i: Incident) -> dict[str, Any]:
    info = CATEGORIES[i.category]
    return {"id": i.id, "category": i.category.value, "category_label_id": info.label_id,
            "category_label_en": info.label_en, "class": info.category_class.value,
            "district": i.district.value, "address": i.address, "notes": i.notes, "status": i.status.value,
            "created_at": i.created_at.isoformat(), "created_by": i.created_by,
            "caller_number": i.caller_number, "linkedids": list(i.linkedids),
            "history": [{"from": c.from_status.value if c.from_status else None, "to": c.to_status.value,
                         "at": c.at.isoformat(), "by": c.by, "source": c.source.value, "note": c.note}
                        for c in i.history],
            "dispatches": [dispatch_as_dict(d) for d in i.dispatches]}


def unit_as_dict(u: Unit) -> dict[str, Any]:
    return {"id": u.id, "name": u.name, "agency_id": u.agency_id, "agency_name": u.agency_name,
            "type": u.agency_type.value, "district": u.district.value,
            "categories": sorted(c.value for c in u.categories), "example_data": u.example}
