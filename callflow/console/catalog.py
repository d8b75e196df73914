"""The report categories and districts the incident form offers (docs: /work/shared/DOMAIN.md).

Ids are the contract with the incidents component; labels are Indonesian first, English second.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    NATURAL_DISASTER = "natural_disaster"
    PUBLIC_ORDER = "public_order"
    FIRE = "fire"
    ACCIDENT = "accident"
    HEALTH = "health"
    CRIME = "crime"
    RIOT = "riot"
    OTHER_EMERGENCY = "other_emergency"
    OTHER_COMPLAINT = "other_complaint"
    ILLEGAL_BUILDING = "illegal_building"
    STREET_LIGHTING = "street_lighting"
    TELECOM_POLE = "telecom_pole"
    FALLEN_TREE = "fallen_tree"
    ELECTRICITY = "electricity"
    CLEAN_WATER = "clean_water"
    GARBAGE = "garbage"


class District(StrEnum):
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


class IncidentStatus(StrEnum):
    WAIT = "wait"  # menunggu
    HANDLING = "handling"  # ditangani
    DONE = "done"  # selesai


@dataclass(frozen=True, slots=True)
class CategoryInfo:
    id: Category
    emergency: bool
    label_id: str
    label_en: str


CATEGORIES: tuple[CategoryInfo, ...] = (
    CategoryInfo(Category.NATURAL_DISASTER, True, "bencana alam", "natural disaster"),
    CategoryInfo(Category.PUBLIC_ORDER, True, "ketenteraman dan ketertiban", "public order / disturbance"),
    CategoryInfo(Category.FIRE, True, "kebakaran", "fire"),
    CategoryInfo(Category.ACCIDENT, True, "kecelakaan", "accident"),
    CategoryInfo(Category.HEALTH, True, "kesehatan", "health / medical"),
    CategoryInfo(Category.CRIME, True, "kriminalitas", "crime"),
    CategoryInfo(Category.RIOT, True, "kerusuhan", "riot"),
    CategoryInfo(Category.OTHER_EMERGENCY, True, "keadaan darurat lain", "other emergency"),
    CategoryInfo(Category.OTHER_COMPLAINT, True, "pengaduan lainnya", "other complaint"),
    CategoryInfo(Category.ILLEGAL_BUILDING, False, "bangunan liar", "illegal building"),
    CategoryInfo(Category.STREET_LIGHTING, False, "penerangan jalan umum", "street lighting"),
    CategoryInfo(Category.TELECOM_POLE, False, "tiang telekomunikasi", "telecom pole"),
    CategoryInfo(Category.FALLEN_TREE, False, "pohon miring/tumbang", "leaning or fallen tree"),
    CategoryInfo(Category.ELECTRICITY, False, "kelistrikan", "electricity (incl. utility poles)"),
    CategoryInfo(Category.CLEAN_WATER, False, "air bersih", "clean water"),
    CategoryInfo(Category.GARBAGE, False, "sampah", "garbage"),
)

DISTRICT_NAMES: dict[District, str] = {
    District.BUNAKEN: "Bunaken",
    District.BUNAKEN_KEPULAUAN: "Bunaken Kepulauan",
    District.MALALAYANG: "Malalayang",
    District.MAPANGET: "Mapanget",
    District.PAAL_DUA: "Paal Dua",
    District.SARIO: "Sario",
    District.SINGKIL: "Singkil",
    District.TIKALA: "Tikala",
    District.TUMINTING: "Tuminting",
    District.WANEA: "Wanea",
    District.WENANG: "Wenang",
}

STATUS_LABELS: dict[IncidentStatus, tuple[str, str]] = {
    IncidentStatus.WAIT: ("menunggu", "waiting"),
    IncidentStatus.HANDLING: ("ditangani", "being handled"),
    IncidentStatus.DONE: ("selesai", "done"),
}
