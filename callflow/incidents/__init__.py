"""Incidents (reports), their status, the agency/unit registry and dispatch.

Public API: :class:`IncidentService` (create, get, list, set_status, link_call, suggest, dispatch,
en_route, arrive, close_dispatch, close, load_registry, units)."""

from callflow.incidents import _tables
from callflow.incidents.categories import (
    CATEGORIES,
    Category,
    CategoryClass,
    CategoryInfo,
    District,
    parse_category,
    parse_district,
)
from callflow.incidents.errors import (
    DispatchError,
    IllegalTransition,
    IncidentError,
    IncidentNotFound,
    RegistryError,
    UnknownCategory,
    UnknownDistrict,
)
from callflow.incidents.model import (
    Dispatch,
    DispatchState,
    DispatchStep,
    Incident,
    IncidentStatus,
    StatusChange,
)
from callflow.incidents.registry import (
    CATEGORY_AGENCY_TYPES,
    Agency,
    AgencyRegistry,
    AgencyType,
    Unit,
    load_registry,
    suggest_unit,
)
from callflow.incidents.service import IncidentService

SCHEMA = _tables.SCHEMA  # the incidents' tables, for a process that opens the store with them

__all__ = [
    "CATEGORIES",
    "CATEGORY_AGENCY_TYPES",
    "SCHEMA",
    "Agency",
    "AgencyRegistry",
    "AgencyType",
    "Category",
    "CategoryClass",
    "CategoryInfo",
    "Dispatch",
    "DispatchError",
    "DispatchState",
    "DispatchStep",
    "District",
    "IllegalTransition",
    "Incident",
    "IncidentError",
    "IncidentNotFound",
    "IncidentService",
    "IncidentStatus",
    "RegistryError",
    "StatusChange",
    "Unit",
    "UnknownCategory",
    "UnknownDistrict",
    "load_registry",
    "parse_category",
    "parse_district",
    "suggest_unit",
]
