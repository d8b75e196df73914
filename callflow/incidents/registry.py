"""The agency and unit registry, loaded from a TOML file (see examples/agencies-manado.example.toml).

An agency (hospital, fire brigade, police sector, public works, a utility) has units (an ambulance, a
fire engine, a patrol, a crew), each stationed in a district. Which agency types answer which category
is :data:`CATEGORY_AGENCY_TYPES`; an agency may narrow itself to some categories (a water utility takes
``clean_water`` only). Errors name the file and line.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from callflow.incidents.categories import Category, District, parse_category, parse_district
from callflow.incidents.errors import IncidentError, RegistryError


class AgencyType(StrEnum):
    AMBULANCE = "ambulance"  # hospital / ambulance / puskesmas
    FIRE = "fire"
    POLICE = "police"
    PUBLIC_WORKS = "public_works"
    UTILITY = "utility"  # electricity, water, telecom


# Preference order: the first type with a free unit wins.
CATEGORY_AGENCY_TYPES: dict[Category, tuple[AgencyType, ...]] = {
    Category.NATURAL_DISASTER: (AgencyType.PUBLIC_WORKS, AgencyType.FIRE, AgencyType.AMBULANCE),
    Category.PUBLIC_ORDER: (AgencyType.POLICE,),
    Category.FIRE: (AgencyType.FIRE,),
    Category.ACCIDENT: (AgencyType.AMBULANCE, AgencyType.POLICE),
    Category.HEALTH: (AgencyType.AMBULANCE,),
    Category.CRIME: (AgencyType.POLICE,),
    Category.RIOT: (AgencyType.POLICE,),
    Category.OTHER_EMERGENCY: (AgencyType.POLICE, AgencyType.AMBULANCE),
    Category.OTHER_COMPLAINT: (AgencyType.PUBLIC_WORKS, AgencyType.POLICE),
    Category.ILLEGAL_BUILDING: (AgencyType.PUBLIC_WORKS,),
    Category.STREET_LIGHTING: (AgencyType.PUBLIC_WORKS, AgencyType.UTILITY),
    Category.TELECOM_POLE: (AgencyType.UTILITY,),
    Category.FALLEN_TREE: (AgencyType.PUBLIC_WORKS, AgencyType.FIRE),
    Category.ELECTRICITY: (AgencyType.UTILITY,),
    Category.CLEAN_WATER: (AgencyType.UTILITY,),
    Category.GARBAGE: (AgencyType.PUBLIC_WORKS,),
}


@dataclass(frozen=True, slots=True)
class Unit:
    id: str
    name: str
    agency_id: str
    agency_name: str
    agency_type: AgencyType
    district: District
    categories: frozenset[Category]  # empty: every category of its agency type
    example: bool

    def serves(self, category: Category) -> bool:
        return (self.agency_type in CATEGORY_AGENCY_TYPES[category]
                and (not self.categories or category in self.categories))


@dataclass(frozen=True, slots=True)
class Agency:
    id: str
    name: str
    type: AgencyType
    district: District
    phone: str
    categories: frozenset[Category]
    example: bool


@dataclass(frozen=True, slots=True)
class AgencyRegistry:
    source: str  # file it came from
    example: bool  # the whole file is example data
    agencies: tuple[Agency, ...]
    units: tuple[Unit, ...]

    def unit(self, unit_id: str) -> Unit | None:
        return next((u for u in self.units if u.id == unit_id), None)


def suggest_unit(units: tuple[Unit, ...] | list[Unit], category: Category, district: District,
                 busy: set[str] | frozenset[str] = frozenset()) -> Unit | None:
    """The unit for an incident: by the category's preferred agency types, a free unit in the incident's
    district first, then a free unit of the same type elsewhere (ids sorted, so the choice is stable)."""
    for agency_type in CATEGORY_AGENCY_TYPES[category]:
        candidates = sorted((u for u in units if u.agency_type is agency_type and u.serves(category)
                             and u.id not in busy), key=lambda u: (u.district is not district, u.id))
        if candidates:
            return candidates[0]
    return None


_AGENCY_HEADER = re.compile(r"^\s*\[\[\s*agency\s*\]\]")
_UNIT_HEADER = re.compile(r"^\s*\[\[\s*agency\s*\.\s*unit\s*\]\]")


def _header_lines(text: str) -> list[tuple[int, list[int]]]:
    """(line of each [[agency]], lines of its [[agency.unit]]s), 1-based, in file order."""
    out: list[tuple[int, list[int]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if _AGENCY_HEADER.match(line):
            out.append((number, []))
        elif _UNIT_HEADER.match(line) and out:
            out[-1][1].append(number)
    return out


def load_registry(path: Path) -> AgencyRegistry:
    """Read and check an agency file. Raises :class:`RegistryError` with ``file:line`` and the fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read the agency file ({exc.strerror}); check the path "
                            "given with --agencies or incidents.agencies_file") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: not valid TOML: {exc}; fix the file") from exc
    lines = _header_lines(text)
    example = bool(data.get("example", False))
    agencies: list[Agency] = []
    units: list[Unit] = []
    seen_agency: set[str] = set()
    seen_unit: set[str] = set()
    raw_agencies = data.get("agency", [])
    if not isinstance(raw_agencies, list) or not raw_agencies:
        raise RegistryError(f"{path}:1: no [[agency]] tables; each agency is an [[agency]] table with "
                            "[[agency.unit]] tables for its units")
    for index, raw in enumerate(raw_agencies):
        agency_line, unit_lines = lines[index] if index < len(lines) else (1, [])
        where = f"{path}:{agency_line}"
        agency = _agency(raw, where, example)
        if agency.id in seen_agency:
            raise RegistryError(f"{where}: agency id {agency.id!r} appears twice; ids must be unique")
        seen_agency.add(agency.id)
        agencies.append(agency)
        raw_units = raw.get("unit", [])
        if not isinstance(raw_units, list) or not raw_units:
            raise RegistryError(f"{where}: agency {agency.id!r} has no [[agency.unit]]; add a unit")
        for u_index, raw_unit in enumerate(raw_units):
            u_where = f"{path}:{unit_lines[u_index]}" if u_index < len(unit_lines) else where
            unit = _unit(raw_unit, u_where, agency)
            if unit.id in seen_unit:
                raise RegistryError(f"{u_where}: unit id {unit.id!r} appears twice; ids must be unique")
            seen_unit.add(unit.id)
            units.append(unit)
    return AgencyRegistry(str(path), example, tuple(agencies), tuple(units))


def _text(raw: dict[str, Any], key: str, where: str, what: str, required: bool = True) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise RegistryError(f"{where}: {what} needs a text {key!r}")
    return value.strip()


def _agency(raw: Any, where: str, example: bool) -> Agency:
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: an agency must be a table")
    agency_id = _text(raw, "id", where, "an agency")
    type_text = _text(raw, "type", where, f"agency {agency_id!r}")
    try:
        agency_type = AgencyType(type_text)
    except ValueError:
        valid = ", ".join(t.value for t in AgencyType)
        raise RegistryError(f"{where}: agency {agency_id!r} has unknown type {type_text!r}; use one of: "
                            f"{valid}") from None
    try:
        district = parse_district(_text(raw, "district", where, f"agency {agency_id!r}"))
        categories = frozenset(parse_category(c) for c in raw.get("categories", []))
    except IncidentError as exc:
        raise RegistryError(f"{where}: agency {agency_id!r}: {exc}") from None
    return Agency(agency_id, _text(raw, "name", where, f"agency {agency_id!r}"), agency_type, district,
                  _text(raw, "phone", where, f"agency {agency_id!r}", required=False), categories,
                  example or bool(raw.get("example", False)))


def _unit(raw: Any, where: str, agency: Agency) -> Unit:
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: a unit must be a table")
    unit_id = _text(raw, "id", where, f"a unit of agency {agency.id!r}")
    try:
        district = parse_district(raw["district"]) if "district" in raw else agency.district
    except IncidentError as exc:
        raise RegistryError(f"{where}: unit {unit_id!r}: {exc}") from None
    return Unit(unit_id, _text(raw, "name", where, f"unit {unit_id!r}"), agency.id, agency.name, agency.type,
                district, agency.categories, agency.example)
