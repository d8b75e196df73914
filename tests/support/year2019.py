"""A fixture year built to Manado Siaga 112's published 2019 figures, loaded through IncidentService.

Published (shared DOMAIN.md): 1132 reports; 842 emergency (74 %), 290 non-emergency (26 %); public order
137 and fire 123 the highest emergency categories; electricity 140 (48 % of non-emergency) and clean
water 62 (21 %) the highest non-emergency; done 51 %, handling 34 %, waiting 15 %.

Chosen here (not published), consistently with those figures:
- other categories: health 118, accident 112, other complaint 104, crime 96, other emergency 78,
  natural disaster 41, riot 33 (emergency: 137 + 123 + 582 = 842); street lighting 27, fallen tree 24,
  garbage 19, illegal building 10, telecom pole 8 (non-emergency: 140 + 62 + 88 = 290);
- statuses: done 577 (50.97 % -> 51 %), handling 385 (34.01 % -> 34 %), wait 170 (15.02 % -> 15 %);
- districts, times of day, operators, answer times and unit travel times drawn from a seeded generator;
  every report comes from one answered call (a synthetic CallRecord); 150 abandoned calls are added;
- emergency reports in handling or done were dispatched to the suggested unit, which arrived and was
  released; non-emergency reports were followed up by phone (status changes, no dispatch).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from callflow.calls.model import CallClass, CallRecord, Outcome
from callflow.incidents import Category, CategoryClass, District, IncidentService, IncidentStatus
from callflow.reports import InMemoryCallRecords

CATEGORY_COUNTS_2019: dict[Category, int] = {
    Category.PUBLIC_ORDER: 137, Category.FIRE: 123, Category.HEALTH: 118, Category.ACCIDENT: 112,
    Category.OTHER_COMPLAINT: 104, Category.CRIME: 96, Category.OTHER_EMERGENCY: 78,
    Category.NATURAL_DISASTER: 41, Category.RIOT: 33,
    Category.ELECTRICITY: 140, Category.CLEAN_WATER: 62, Category.STREET_LIGHTING: 27,
    Category.FALLEN_TREE: 24, Category.GARBAGE: 19, Category.ILLEGAL_BUILDING: 10, Category.TELECOM_POLE: 8,
}
STATUS_COUNTS_2019 = {IncidentStatus.DONE: 577, IncidentStatus.HANDLING: 385, IncidentStatus.WAIT: 170}
ABANDONED_CALLS = 150
OPERATORS = ("op1", "op2", "op3", "op4", "op5", "op6")
WITA = ZoneInfo("Asia/Makassar")


def _call(linkedid: str, arrival: datetime, answer_s: float | None, talk_s: float, *, operator: str,
          emergency: bool) -> CallRecord:
    answered = arrival + timedelta(seconds=answer_s) if answer_s is not None else None
    ended = (answered or arrival) + timedelta(seconds=talk_s)
    return CallRecord(
        linkedid=linkedid, caller_number="0812000000", caller_name="", dialed="112",
        call_class=CallClass.EMERGENCY if emergency else CallClass.NONEMERGENCY,
        outcome=Outcome.ANSWERED if answered else Outcome.ABANDONED_IN_QUEUE, arrival=arrival, ended=ended,
        answered=answered, operator=operator if answered else "",
        queue="emergency" if emergency else "general", hangup_by="caller")


async def load_year_2019(service: IncidentService) -> InMemoryCallRecords:
    """Create the year's 1132 incidents through the service (registry already loaded); return their calls."""
    rng = random.Random(2019)  # noqa: S311 - a reproducible fixture, not security
    categories = [c for c, n in CATEGORY_COUNTS_2019.items() for _ in range(n)]
    statuses = [s for s, n in STATUS_COUNTS_2019.items() for _ in range(n)]
    rng.shuffle(categories)
    rng.shuffle(statuses)
    start = datetime(2019, 1, 1, tzinfo=WITA)
    step = timedelta(days=365) / (len(categories) + 1)
    calls = InMemoryCallRecords()
    districts = list(District)
    for k, (category, status) in enumerate(zip(categories, statuses, strict=True)):
        emergency = category.category_class is CategoryClass.EMERGENCY
        arrival = (start + step * (k + 0.5) + timedelta(minutes=rng.uniform(-60, 60))).astimezone(UTC)
        answer_s = round(min(rng.lognormvariate(1.6, 0.6), 45.0), 6)
        operator = rng.choice(OPERATORS)
        linkedid = f"2019.{k:04d}"
        calls.add(_call(linkedid, arrival, answer_s, rng.uniform(60, 240), operator=operator,
                        emergency=emergency))
        created = arrival + timedelta(seconds=answer_s + rng.uniform(20, 90))
        incident = await service.create(category=category, district=rng.choice(districts), by=operator,
                                        linkedids=[linkedid], at=created)
        if status is IncidentStatus.WAIT:
            continue
        if emergency:
            dispatched = created + timedelta(seconds=rng.uniform(5, 75))
            await service.dispatch(incident.id, by=operator, at=dispatched)
            on_scene = dispatched + timedelta(minutes=rng.uniform(6, 40))
            await service.arrive(incident.id, by=operator, at=on_scene)
            released = on_scene + timedelta(minutes=rng.uniform(20, 90))
            if status is IncidentStatus.DONE:
                await service.close(incident.id, by=operator, at=released)
            else:
                await service.close_dispatch(incident.id, by=operator, at=released)
        else:
            handled = created + timedelta(minutes=rng.uniform(5, 120))
            await service.set_status(incident.id, IncidentStatus.HANDLING, by=operator, at=handled)
            if status is IncidentStatus.DONE:
                closed = handled + timedelta(hours=rng.uniform(2, 72))
                await service.close(incident.id, by=operator, at=closed)
    for k in range(ABANDONED_CALLS):
        arrival = (start + timedelta(days=rng.uniform(0, 364))).astimezone(UTC)
        calls.add(_call(f"2019.abandoned.{k:03d}", arrival, None, rng.uniform(1, 40), operator="",
                        emergency=True))
    return calls
