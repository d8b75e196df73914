"""IncidentService: the operations, and bad input refused with a clear error and nothing changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callflow.calls.model import InstantSource
from callflow.incidents import (
    Category,
    DispatchError,
    DispatchState,
    District,
    IllegalTransition,
    IncidentNotFound,
    IncidentService,
    IncidentStatus,
    UnknownCategory,
    UnknownDistrict,
    load_registry,
    parse_category,
    parse_district,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_AGENCIES = REPO / "examples" / "agencies-manado.example.toml"
T0 = datetime(2026, 11, 22, 6, 0, 0, 123456, tzinfo=UTC)
TABLES = ("incident_incident", "incident_status_change", "incident_call", "dispatch_dispatch",
          "dispatch_event")


class StepClock:
    """A clock that moves one second per reading."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[IncidentService]:
    async with IncidentService.open(tmp_path / "s.db", clock=StepClock()) as svc:
        await svc.load_registry(load_registry(EXAMPLE_AGENCIES))
        yield svc


async def snapshot(service: IncidentService) -> dict[str, list[tuple[object, ...]]]:
    conn = service._conn
    out = {}
    for table in TABLES:
        async with conn.execute(f"SELECT * FROM {table} ORDER BY 1") as cur:  # noqa: S608 - fixed names
            out[table] = [tuple(r) for r in await cur.fetchall()]
    return out


def test_categories_and_districts_parse_ids_and_labels() -> None:
    assert parse_category("kebakaran") is Category.FIRE
    assert parse_category("Clean water") is Category.CLEAN_WATER
    assert parse_category("pohon miring/tumbang") is Category.FALLEN_TREE
    assert parse_category("public_order") is Category.PUBLIC_ORDER
    assert parse_district("Paal Dua") is District.PAAL_DUA
    assert parse_district("bunaken-kepulauan") is District.BUNAKEN_KEPULAUAN
    assert len(Category) == 16
    assert len(District) == 11
    with pytest.raises(UnknownCategory, match="unknown category 'volcano'; use one of: natural_disaster"):
        parse_category("volcano")
    with pytest.raises(UnknownDistrict, match=r"unknown district 'Jakarta'.*wenang"):
        parse_district("Jakarta")


async def test_create_dispatch_arrive_close_records_who_and_when(service: IncidentService) -> None:
    inc = await service.create(category="fire", district="wenang", by="op1", address="Jl. Sam Ratulangi",
                               linkedids=["1763.7", "1763.7", "1763.9"])
    assert inc.status is IncidentStatus.WAIT
    assert inc.linkedids == ("1763.7", "1763.9")
    assert inc.history[0].from_status is None
    assert inc.history[0].by == "op1"
    assert inc.history[0].source is InstantSource.ENGINE_CLOCK
    assert inc.created_at == T0 + timedelta(seconds=1)

    d = await service.dispatch(inc.id, by="op2")
    assert d.unit_id == "fire-wenang-1"  # the fire unit of the incident's district
    assert d.example is True
    inc = await service.get(inc.id)
    assert inc.status is IncidentStatus.HANDLING
    assert inc.history[-1].note == "dispatched fire-wenang-1"
    assert inc.history[-1].by == "op2"

    d = await service.en_route(inc.id, by="op2")
    arrived = datetime(2026, 11, 22, 14, 20, tzinfo=UTC)
    d = await service.arrive(inc.id, by="op2", at=arrived)
    assert d.state is DispatchState.ON_SCENE
    assert d.on_scene_at == arrived
    assert d.steps[-1].source is InstantSource.OPERATOR
    assert d.dispatched_at < d.en_route_at < d.on_scene_at  # type: ignore[operator]

    inc = await service.close(inc.id, by="op3", at=arrived + timedelta(minutes=40))
    assert inc.status is IncidentStatus.DONE
    assert [h.to_status for h in inc.history] == [IncidentStatus.WAIT, IncidentStatus.HANDLING,
                                                 IncidentStatus.DONE]
    assert inc.dispatches[0].closed_at == arrived + timedelta(minutes=40)
    assert inc.dispatches[0].steps[-1].by == "op3"
    assert await service.busy_units() == set()


async def test_suggestion_falls_back_to_another_district_when_busy(service: IncidentService) -> None:
    a = await service.create(category=Category.HEALTH, district=District.SARIO, by="op1")
    b = await service.create(category=Category.HEALTH, district=District.SARIO, by="op1")
    assert (await service.dispatch(a.id, by="op1")).unit_id == "amb-sario-1"
    second = await service.dispatch(b.id, by="op1")
    assert second.unit_id != "amb-sario-1"
    assert second.agency_type == "ambulance"
    water = await service.create(category="clean_water", district="tikala", by="op1")
    assert (await service.dispatch(water.id, by="op1")).unit_id == "water-tikala"


async def test_list_filters(service: IncidentService) -> None:
    await service.create(category="fire", district="wenang", by="op1", at=T0)
    await service.create(category="garbage", district="sario", by="op1", at=T0 + timedelta(days=1))
    assert [i.category for i in await service.list(district=District.SARIO)] == [Category.GARBAGE]
    assert len(await service.list(since=T0, until=T0 + timedelta(hours=1))) == 1
    assert len(await service.list(status=IncidentStatus.WAIT)) == 2
    assert len(await service.list(limit=1)) == 1


async def test_unknown_category_or_district_changes_nothing(service: IncidentService) -> None:
    before = await snapshot(service)
    with pytest.raises(UnknownCategory):
        await service.create(category="volcano", district="wenang", by="op1")
    with pytest.raises(UnknownDistrict):
        await service.create(category="fire", district="Atlantis", by="op1")
    assert await snapshot(service) == before


async def test_status_cannot_move_backwards(service: IncidentService) -> None:
    inc = await service.create(category="crime", district="tikala", by="op1")
    await service.set_status(inc.id, IncidentStatus.HANDLING, by="op1")
    before = await snapshot(service)
    with pytest.raises(IllegalTransition, match=r"#1 is handling: its status cannot move back to wait"):
        await service.set_status(inc.id, "wait", by="op1")
    with pytest.raises(IllegalTransition, match="cannot move to handling"):
        await service.set_status(inc.id, IncidentStatus.HANDLING, by="op1")
    with pytest.raises(IllegalTransition, match="before its last change"):
        await service.set_status(inc.id, IncidentStatus.DONE, by="op1", at=T0 - timedelta(days=1))
    assert await snapshot(service) == before
    done = await service.set_status(inc.id, IncidentStatus.DONE, by="op1")
    with pytest.raises(IllegalTransition, match="back to handling"):
        await service.set_status(done.id, IncidentStatus.HANDLING, by="op1")


async def test_arrival_before_dispatch_is_refused(service: IncidentService) -> None:
    inc = await service.create(category="accident", district="malalayang", by="op1")
    before = await snapshot(service)
    with pytest.raises(DispatchError, match="not been dispatched: on scene before dispatch is impossible"):
        await service.arrive(inc.id, by="op1")
    assert await snapshot(service) == before
    d = await service.dispatch(inc.id, by="op1")
    before = await snapshot(service)
    with pytest.raises(DispatchError, match=r"on scene at .* is before its dispatched time"):
        await service.arrive(inc.id, by="op1", at=d.dispatched_at - timedelta(seconds=5))
    assert await snapshot(service) == before
    await service.arrive(inc.id, by="op1")
    with pytest.raises(DispatchError, match="no open dispatch"):
        await service.arrive(inc.id, by="op1")


async def test_dispatch_of_a_closed_incident_is_refused(service: IncidentService) -> None:
    inc = await service.create(category="fire", district="singkil", by="op1")
    await service.close(inc.id, by="op1")
    before = await snapshot(service)
    with pytest.raises(DispatchError, match="is done \\(closed\\); a closed incident cannot be dispatched"):
        await service.dispatch(inc.id, by="op1")
    assert await snapshot(service) == before


async def test_unknown_and_busy_units_and_missing_incident(service: IncidentService) -> None:
    a = await service.create(category="fire", district="singkil", by="op1")
    b = await service.create(category="fire", district="singkil", by="op1")
    before = await snapshot(service)
    with pytest.raises(DispatchError, match="unknown unit 'fire-mars-1'"):
        await service.dispatch(a.id, by="op1", unit_id="fire-mars-1")
    assert await snapshot(service) == before
    await service.dispatch(a.id, by="op1", unit_id="fire-wenang-1")
    before = await snapshot(service)
    with pytest.raises(DispatchError, match="still on another dispatch"):
        await service.dispatch(b.id, by="op1", unit_id="fire-wenang-1")
    assert await snapshot(service) == before
    with pytest.raises(IncidentNotFound, match="no incident #99"):
        await service.get(99)
    with pytest.raises(IncidentNotFound):
        await service.dispatch(99, by="op1")


async def test_naive_time_is_refused(service: IncidentService) -> None:
    with pytest.raises(Exception, match="has no time zone"):
        await service.create(category="fire", district="wenang", by="op1",
                             at=datetime(2026, 1, 1, 12, 0))  # noqa: DTZ001 - the point of the test


async def test_done_closes_open_dispatches_in_one_transaction(service: IncidentService) -> None:
    inc = await service.create(category="riot", district="wenang", by="op1")
    await service.dispatch(inc.id, by="op1")
    await service.dispatch(inc.id, by="op1")
    with pytest.raises(DispatchError, match="several open"):
        await service.arrive(inc.id, by="op1")
    closed = await service.close(inc.id, by="op2")
    assert all(d.state is DispatchState.CLOSED for d in closed.dispatches)
    assert len({d.closed_at for d in closed.dispatches}) == 1
    assert closed.dispatches[0].closed_at == closed.status_at(IncidentStatus.DONE)


async def test_survives_reopen(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    async with IncidentService.open(db) as svc:
        await svc.load_registry(load_registry(EXAMPLE_AGENCIES))
        inc = await svc.create(category="health", district="wanea", by="op1", linkedids=["1.1"])
        await svc.dispatch(inc.id, by="op1")
    async with IncidentService.open(db) as svc:
        again = await svc.get(inc.id)
        assert again.linkedids == ("1.1",)
        assert again.dispatches[0].unit_id == "amb-wanea-1"
        assert len(await svc.units()) == 71


async def test_units_dropped_from_the_registry_stay_for_history_but_cannot_be_sent(
        service: IncidentService, tmp_path: Path) -> None:
    inc = await service.create(category="fire", district="wenang", by="op1")
    await service.dispatch(inc.id, by="op1", unit_id="fire-wenang-1")
    await service.close(inc.id, by="op1")
    smaller = tmp_path / "small.toml"
    smaller.write_text('[[agency]]\nid = "fire-x"\nname = "X"\ntype = "fire"\ndistrict = "sario"\n'
                       '[[agency.unit]]\nid = "fire-x-1"\nname = "X1"\n')
    await service.load_registry(load_registry(smaller))
    assert [u.id for u in await service.units()] == ["fire-x-1"]
    assert (await service.get(inc.id)).dispatches[0].unit_id == "fire-wenang-1"
    other = await service.create(category="fire", district="wenang", by="op1")
    with pytest.raises(DispatchError, match="no longer in the agency registry"):
        await service.dispatch(other.id, by="op1", unit_id="fire-wenang-1")
    assert (await service.dispatch(other.id, by="op1")).unit_id == "fire-x-1"
