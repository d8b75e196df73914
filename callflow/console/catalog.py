"""The report categories, districts and statuses the incident form offers.

One definition, the incidents component's (``callflow.incidents``): the console re-exports its enums and
shows its labels, Indonesian first, English second, so the form and the store can never disagree.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from callflow.incidents.categories import CATEGORIES, Category, CategoryClass, District
from callflow.incidents.model import IncidentStatus

__all__ = ["Category", "District", "IncidentStatus", "catalog_view"]


def catalog_view(listed: Collection[str] | None = None) -> dict[str, Any]:
    """The incident form's choices: the categories (those the site file lists, when ``listed`` is given:
    its ``[categories]``), the 11 districts, the three statuses."""
    return {
        "categories": [{"id": c.category.value, "emergency": c.category_class is CategoryClass.EMERGENCY,
                        "label_id": c.label_id, "label_en": c.label_en} for c in CATEGORIES.values()
                       if listed is None or c.category.value in listed],
        "districts": [{"id": d.value, "name": d.label} for d in District],
        "statuses": [{"id": s.value, "label_id": s.label_id, "label_en": s.label_en}
                     for s in IncidentStatus],
    }
