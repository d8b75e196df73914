"""A report as a NENA Emergency Incident Data Object (EIDO), JSON, as NENA-STA-021.1a-2022 defines it
(schema: github.com/NENA911/EIDO-JSON, tag ``NENA-STA-021.1a``, ``Schema/openapi.yaml``; pinned in
:data:`EIDO_SCHEMA_PIN`). Pure: the same report and instant give the same document.

What the document carries: the report (category as the incident type, status, the centre's id), its
location as text (address and district of Manado), the operator's notes and the agencies' progress notes,
every agency a unit of which was dispatched (and the centre itself, the issuing agency), each dispatch
and unit with its current state. The caller's number is left out unless the site allows agencies to see
it (then as the call's call-back URI). Ids are URNs under the centre's domain, stable per report.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from callflow.agencies.rules import Handoff
from callflow.incidents import CATEGORIES, CategoryClass, DispatchState, Incident, IncidentStatus

EIDO_VERSION = "1.0"  # the only value STA-021.1a's schema allows
# The schema the documents are checked against in tests (NENA publishes it without a licence grant, so
# it is not copied into this repository; tests read it from SIAGA112_EIDO_SCHEMA, checked by hash).
EIDO_SCHEMA_PIN = {"repository": "https://github.com/NENA911/EIDO-JSON", "tag": "NENA-STA-021.1a",
                   "commit": "016f8df63cf52f63e2d4756d3cb7bd73026ae6f9", "path": "Schema/openapi.yaml"}

# Status words from the standard's Incident Status and Primary Unit Status registries (NENA registry
# values as text); the centre's own words travel alongside as internal text.
_INCIDENT_STATUS = {IncidentStatus.WAIT: "Pending", IncidentStatus.HANDLING: "Dispatched",
                    IncidentStatus.DONE: "Closed"}
_UNIT_STATUS = {DispatchState.DISPATCHED: "Dispatched", DispatchState.EN_ROUTE: "Enroute",
                DispatchState.ON_SCENE: "OnScene", DispatchState.CLOSED: "Available"}
_AGENCY_TYPE = {"ambulance": "ems", "fire": "fire", "police": "police", "public_works": "other",
                "utility": "other"}


def _stage(h: Handoff) -> str:
    return "done" if h.done_at else "acknowledged" if h.acknowledged_at else "handed"


def _at(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def eido_document(incident: Incident, handoffs: Sequence[Handoff], *, centre_id: str, at: datetime,
                  reason: str = "update", caller_number_visible: bool = False) -> dict[str, Any]:
    """The EIDO of ``incident`` at instant ``at``: ``reason`` is why it is issued (``handoff``,
    ``update``, ``overdue``, ``export``)."""
    base = f"urn:siaga112:{centre_id}"
    centre = f"{base}:agency:centre"
    report = f"{base}:incident:{incident.id}"

    def prologue(ident: str, when: datetime = at) -> dict[str, Any]:
        return {"$id": ident, "lastUpdateTimeStamp": _at(when), "updatedByAgencyReference": {"$ref": centre}}

    info = CATEGORIES[incident.category]
    notes: list[dict[str, Any]] = []
    if incident.notes:
        notes.append(prologue(f"{report}:note:operator", incident.created_at)
                     | {"notesActionComments": incident.notes})
    for h in handoffs:
        for n, e in enumerate(h.events):
            if e.note and e.note != "implied":
                agency = f"{base}:agency:{h.agency_id}"
                notes.append({"$id": f"{report}:note:{h.agency_id}:{n}", "lastUpdateTimeStamp": _at(e.at),
                              "updatedByAgencyReference": {"$ref": agency},
                              "notesActionComments": f"{e.kind.value}: {e.note}"})
    agencies = [prologue(centre) | {"agencyRoleDescriptionRegistryText": ["PSAP"], "agencyType": ["psap"],
                                    "incidentOwningAgencyIndicator": True}]
    seen: set[str] = set()
    for d in incident.dispatches:
        if d.agency_id not in seen:
            seen.add(d.agency_id)
            agencies.append(prologue(f"{base}:agency:{d.agency_id}")
                            | {"agencyRoleDescriptionRegistryText": ["Responding"],
                               "agencyType": [_AGENCY_TYPE.get(d.agency_type, "other")],
                               "incidentOwningAgencyIndicator": False})
    resources = [prologue(f"{report}:unit:{d.unit_id}", max(s.at for s in d.steps))
                 | {"agentReference": [], "emergencyResourceTypeCommonRegistryText": d.agency_type,
                    "emergencyResourceName": d.unit_name,
                    "primaryUnitStatusRegistryText": _UNIT_STATUS[d.state],
                    "resourceAttributeRegistryText": [], "secondaryUnitStatusRegistryText": [],
                    "unitStatusInternal": [d.state.value]}
                 for d in incident.dispatches]
    dispatches = [prologue(f"{report}:dispatch:{d.id}", d.dispatched_at)
                  | {"agencyReference": {"$ref": f"{base}:agency:{d.agency_id}"},
                     "emergencyResourceReference": [{"$ref": f"{report}:unit:{d.unit_id}"}]}
                  for d in incident.dispatches]
    location = prologue(f"{report}:location") | {
        "locationTypeDescriptionRegistryText": "Incident",
        "locationDescriptionText": ", ".join(p for p in (incident.address, incident.district.label,
                                                          "Manado") if p)}
    statuses = [incident.status.value] + [f"{h.agency_id}:{_stage(h)}" for h in handoffs]
    doc: dict[str, Any] = prologue(f"{report}:eido:{at.strftime('%Y%m%dT%H%M%S%f')}") | {
        "eidoVersion": EIDO_VERSION,
        "issuingElementIdentification": f"{base}:siaga112",
        "incidentComponent": prologue(report) | {
            "incidentTrackingIdentifier": report,
            "incidentTypeCommonRegistryText": info.label_en,
            "incidentTypeInternalCode": incident.category.value,
            "incidentTypeInternalText": info.label_id,
            "incidentStatusCommonRegistryText": [_INCIDENT_STATUS[incident.status]],
            "incidentStatusInternalText": statuses,
            "internalIncidentId": str(incident.id),
            "incidentPriorityInternalText": info.category_class.value,
            "incidentCommonPriorityNumber": 1 if info.category_class is CategoryClass.EMERGENCY else 3,
            "locationReference": [{"$ref": location["$id"]}],
            "notesReference": [{"$ref": n["$id"]} for n in notes],
        },
        "agencyComponent": agencies,
        "dispatchComponent": dispatches,
        "emergencyResourceComponent": resources,
        "locationComponent": [location],
        "notesComponent": notes,
        "additionalDataComponent": [prologue(f"{report}:reason") | {"additionalDataByValue": reason}],
    }
    if caller_number_visible and incident.caller_number:
        doc["additionalDataComponent"].append(prologue(f"{report}:caller") | {
            "additionalDataByValue": f"tel:{incident.caller_number}", "urlPurpose": "caller call-back"})
    return doc
