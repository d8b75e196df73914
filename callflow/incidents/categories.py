"""Report categories and the districts of Manado: ids plus Indonesian and English labels, as published
by Manado Siaga 112 (see shared DOMAIN.md). Parsing is forgiving about case, spaces and labels; an
unknown value is refused with the list of valid ones."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from callflow.incidents.errors import UnknownCategory, UnknownDistrict


class CategoryClass(StrEnum):
    EMERGENCY = "emergency"  # kedaruratan
    NONEMERGENCY = "nonemergency"  # non kedaruratan


class Category(StrEnum):
    # emergency (kedaruratan)
    NATURAL_DISASTER = "natural_disaster"
    PUBLIC_ORDER = "public_order"
    FIRE = "fire"
    ACCIDENT = "accident"
    HEALTH = "health"
    CRIME = "crime"
    RIOT = "riot"
    OTHER_EMERGENCY = "other_emergency"
    OTHER_COMPLAINT = "other_complaint"
    # non-emergency (non kedaruratan)
    ILLEGAL_BUILDING = "illegal_building"
    STREET_LIGHTING = "street_lighting"
    TELECOM_POLE = "telecom_pole"
    FALLEN_TREE = "fallen_tree"
    ELECTRICITY = "electricity"
    CLEAN_WATER = "clean_water"
    GARBAGE = "garbage"

    @property
    def info(self) -> CategoryInfo:
        return CATEGORIES[self]

    @property
    def category_class(self) -> CategoryClass:
        return CATEGORIES[self].category_class


@dataclass(frozen=True, slots=True)
class CategoryInfo:
    category: Category
    label_id: str  # Indonesian
    label_en: str
    category_class: CategoryClass


_E, _N = CategoryClass.EMERGENCY, CategoryClass.NONEMERGENCY
CATEGORIES: dict[Category, CategoryInfo] = {c.category: c for c in (
    CategoryInfo(Category.NATURAL_DISASTER, "bencana alam", "natural disaster", _E),
    CategoryInfo(Category.PUBLIC_ORDER, "ketenteraman dan ketertiban", "public order / disturbance", _E),
    CategoryInfo(Category.FIRE, "kebakaran", "fire", _E),
    CategoryInfo(Category.ACCIDENT, "kecelakaan", "accident", _E),
    CategoryInfo(Category.HEALTH, "kesehatan", "health / medical", _E),
    CategoryInfo(Category.CRIME, "kriminalitas", "crime", _E),
    CategoryInfo(Category.RIOT, "kerusuhan", "riot", _E),
    CategoryInfo(Category.OTHER_EMERGENCY, "keadaan darurat lain", "other emergency", _E),
    CategoryInfo(Category.OTHER_COMPLAINT, "pengaduan lainnya", "other complaint", _E),
    CategoryInfo(Category.ILLEGAL_BUILDING, "bangunan liar", "illegal building", _N),
    CategoryInfo(Category.STREET_LIGHTING, "penerangan jalan umum", "street lighting", _N),
    CategoryInfo(Category.TELECOM_POLE, "tiang telekomunikasi", "telecom pole", _N),
    CategoryInfo(Category.FALLEN_TREE, "pohon miring/tumbang", "leaning or fallen tree", _N),
    CategoryInfo(Category.ELECTRICITY, "kelistrikan", "electricity (incl. utility poles)", _N),
    CategoryInfo(Category.CLEAN_WATER, "air bersih", "clean water", _N),
    CategoryInfo(Category.GARBAGE, "sampah", "garbage", _N),
)}


class District(StrEnum):
    """The 11 districts (kecamatan) of Manado."""

    BUNAKEN = "bunaken"
    BUNAKEN_KEPULAUAN = "bunaken_kepulauan"
    MALALAYANG = "malalayang"
    MAPANGET = "mapanget"
    PAAL_DUA = "paal_dua"
    SARIO = "sario"
    SINGKIL = "singkil"
    TIKALA = "tikala"
    TUMINTING = "tuminting"
    WANEA = "wanea"
    WENANG = "wenang"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").title()


def _key(text: str) -> str:
    return "_".join(text.strip().lower().replace("-", " ").replace("/", " ").split())


_CATEGORY_ALIASES: dict[str, Category] = {}
for _info in CATEGORIES.values():
    for _alias in (_info.category.value, _info.label_id, _info.label_en):
        _CATEGORY_ALIASES[_key(_alias)] = _info.category


def parse_category(text: str) -> Category:
    """A category from its id or either label (``fire``, ``kebakaran``, ``Clean water``)."""
    found = _CATEGORY_ALIASES.get(_key(text))
    if found is None:
        valid = ", ".join(c.value for c in Category)
        raise UnknownCategory(f"unknown category {text!r}; use one of: {valid}")
    return found


def parse_district(text: str) -> District:
    """A district from its id or name (``paal_dua``, ``Paal Dua``)."""
    try:
        return District(_key(text))
    except ValueError:
        valid = ", ".join(d.value for d in District)
        raise UnknownDistrict(f"unknown district {text!r}; Manado's districts are: {valid}") from None
