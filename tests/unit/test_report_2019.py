"""Acceptance: the summary report reproduces Manado Siaga 112's published 2019 figures from a fixture
year loaded through IncidentService (tests/support/year2019.py documents the figures chosen)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from callflow.incidents import Category, CategoryClass, IncidentService, IncidentStatus, load_registry
from callflow.reports import Period, SummaryReport, summarize
from callflow.reports.plots import write_plots
from callflow.reports.render import as_dict, render_csv, render_text
from tests.support.year2019 import CATEGORY_COUNTS_2019, load_year_2019

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_AGENCIES = REPO / "examples" / "agencies-manado.example.toml"


@pytest.fixture(scope="module")
def year_2019(tmp_path_factory: pytest.TempPathFactory) -> tuple[SummaryReport, Path, list]:
    db = tmp_path_factory.mktemp("year2019") / "siaga112.db"

    async def build() -> tuple[SummaryReport, list]:
        async with IncidentService.open(db) as service:
            await service.load_registry(load_registry(EXAMPLE_AGENCIES))
            started = time.perf_counter()
            calls = await load_year_2019(service)
            print(f"fixture year loaded in {time.perf_counter() - started:.1f} s")
            report = await summarize(service, calls, Period(date(2019, 1, 1), date(2019, 12, 31)))
            return report, await calls.between(report.period.since, report.period.until)

    report, calls = asyncio.run(build())
    return report, db, calls


def test_published_2019_figures(year_2019: tuple[SummaryReport, Path, list]) -> None:
    r, _, _ = year_2019
    assert r.total == 1132
    assert r.by_class[CategoryClass.EMERGENCY] == 842
    assert r.by_class[CategoryClass.NONEMERGENCY] == 290
    d = as_dict(r)
    assert d["classes"]["emergency"]["percent"] == 74
    assert d["classes"]["nonemergency"]["percent"] == 26
    assert r.count(Category.PUBLIC_ORDER).count == 137
    assert r.count(Category.FIRE).count == 123
    assert [c.category for c in r.top[CategoryClass.EMERGENCY][:2]] == [Category.PUBLIC_ORDER, Category.FIRE]
    assert r.count(Category.ELECTRICITY).count == 140
    assert r.count(Category.CLEAN_WATER).count == 62
    cats = {c["id"]: c for c in d["categories"]}
    assert cats["electricity"]["percent_of_class"] == 48
    assert cats["clean_water"]["percent_of_class"] == 21
    assert [c.category for c in r.top[CategoryClass.NONEMERGENCY][:2]] == [Category.ELECTRICITY,
                                                                          Category.CLEAN_WATER]
    assert d["status"]["done"]["percent"] == 51
    assert d["status"]["handling"]["percent"] == 34
    assert d["status"]["wait"]["percent"] == 15
    assert d["completion"]["percent"] == 51
    assert d["completion"]["meets_goal"] is False  # the goal is above 60 %
    # every category as chosen in the fixture, and the class sums hold
    assert {c.category: c.count for c in r.by_category} == CATEGORY_COUNTS_2019
    assert r.by_status == {IncidentStatus.DONE: 577, IncidentStatus.HANDLING: 385, IncidentStatus.WAIT: 170}


def test_2019_text_report_shows_the_figures(year_2019: tuple[SummaryReport, Path, list]) -> None:
    text = render_text(year_2019[0])
    assert "Reports: 1132" in text
    lines = text.splitlines()
    emergency = next(line for line in lines if line.strip().startswith("emergency (kedaruratan)"))
    assert emergency.split()[-3:] == ["842", "74", "%"]
    non = next(line for line in lines if line.strip().startswith("non-emergency"))
    assert non.split()[-3:] == ["290", "26", "%"]
    assert "public order / disturbance 137" in text
    assert "fire 123" in text
    assert "electricity (incl. utility poles) 140 (48 % of class)" in text
    assert "clean water 62 (21 % of class)" in text
    starts = ("  wait ", "  handling ", "  done ")
    status = {line.split()[0]: line.split()[-2] for line in lines if line.startswith(starts)}
    assert status == {"done": "51", "handling": "34", "wait": "15"}
    assert "Completion rate (done): 51 %  (below the goal of above 60 %)" in text
    assert "EXAMPLE DATA" in text  # units came from the example registry


def test_2019_measures_are_consistent(year_2019: tuple[SummaryReport, Path, list]) -> None:
    r, _, calls = year_2019
    assert r.answer is not None
    assert r.answer.offered == 1132 + 150 == len(calls)
    assert r.answer.answered == 1132
    assert r.answer.abandoned == 150
    # every emergency report in handling/done was dispatched once and arrived: one response time each
    assert r.response.count == r.answer_to_dispatch.count > 0
    assert sum(g.reports for g in r.groups["month"].values()) == 1132
    assert sorted(r.groups["month"]) == [f"2019-{m:02d}" for m in range(1, 13)]
    assert sum(g.reports for g in r.groups["district"].values()) == 1132
    assert sum(g.done for g in r.groups["operator"].values()) == 577
    csv_text = render_csv(r)
    assert "categories.fire.count,123\n" in csv_text
    assert "status.done.percent,51\n" in csv_text
    hostile = render_csv(replace(r, notes=("@SUM(1+1)",)))  # issue 17: every CSV quotes formula cells
    assert "notes,'@SUM(1+1)\n" in hostile


def test_2019_json_round_trip(year_2019: tuple[SummaryReport, Path, list]) -> None:
    d = json.loads(json.dumps(as_dict(year_2019[0])))
    assert d["total"] == 1132
    assert d["top"]["emergency"][:2] == ["public_order", "fire"]


def test_2019_plots(year_2019: tuple[SummaryReport, Path, list], tmp_path: Path) -> None:
    r = year_2019[0]
    out = Path(os.environ["SIAGA112_KEEP_CHARTS"]) if os.environ.get("SIAGA112_KEEP_CHARTS") else tmp_path
    paths = write_plots(r, out / "charts")
    assert [p.name for p in paths] == ["answer-time-distribution.png", "service-level-per-hour.png",
                                       "reports-per-category.png", "status-shares.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.stat().st_size > 10_000
