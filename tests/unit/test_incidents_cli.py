"""The CLI against a temporary database: siaga112 incidents ... and siaga112 report summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callflow.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_AGENCIES = REPO / "examples" / "agencies-manado.example.toml"


class Cli:
    def __init__(self, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.db = db
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        head = 2 if args[0] == "report" else 1  # --db belongs to `incidents` and to `report summary`
        code = main([*args[:head], "--db", str(self.db), *args[head:]])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> object:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path / "cli.db", capsys)


def test_incident_lifecycle_on_the_cli(cli: Cli) -> None:
    code, out, _ = cli("incidents", "--agencies", str(EXAMPLE_AGENCIES), "create", "--category", "kebakaran",
                       "--district", "Paal Dua", "--by", "op1", "--call", "1763800000.11",
                       "--address", "Jl. Contoh 1", "--at", "2026-11-22T10:00:00")
    assert code == 0
    assert "incident #1: fire (kebakaran / fire), emergency" in out
    assert "created  2026-11-22 10:00:00.000000+08:00 by op1" in out  # no offset: the centre's time
    shown = cli.json("incidents", "show", "1")
    assert isinstance(shown, dict)
    assert shown["linkedids"] == ["1763800000.11"]
    assert shown["created_at"] == "2026-11-22T02:00:00+00:00"

    code, out, _ = cli("incidents", "dispatch", "1", "--by", "op1", "--at", "2026-11-22T10:00:40+08:00")
    assert code == 0
    assert "fire-paal_dua-1" in out
    assert "[EXAMPLE DATA]" in out
    code, out, _ = cli("incidents", "en-route", "1", "--by", "op1", "--at", "2026-11-22T10:01:00+08:00")
    assert code == 0
    code, out, _ = cli("incidents", "arrive", "1", "--by", "op1", "--at", "2026-11-22T10:12:00+08:00")
    assert code == 0
    assert "on_scene   2026-11-22 10:12:00.000000+08:00  by op1 (operator)" in out
    code, out, _ = cli("incidents", "close", "1", "--by", "op2", "--at", "2026-11-22T11:00:00+08:00")
    assert code == 0
    assert "status done (selesai)" in out

    listed = cli.json("incidents", "list", "--status", "done")
    assert isinstance(listed, list)
    assert [i["id"] for i in listed] == [1]
    code, out, _ = cli("incidents", "list", "--from", "2026-11-23", "--to", "2026-11-30")
    assert out.strip().endswith("0 incident(s)")

    code, out, _ = cli("report", "summary", "--from", "2026-11-22", "--to", "2026-11-22", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["total"] == 1
    assert report["status"]["done"]["percent"] == 100
    assert report["response"]["count"] == 1
    assert report["response"]["median_s"] == 680.0  # 10:00:40 -> 10:12:00
    assert report["example_data"] is True
    assert report["answer_time"] is None  # no call records in this store: said, not invented
    assert any("no call records" in n for n in report["notes"])


def test_bad_input_on_the_cli_is_a_clear_error_and_changes_nothing(cli: Cli) -> None:
    code, _, err = cli("incidents", "create", "--category", "volcano", "--district", "wenang", "--by", "op1")
    assert code == 1
    assert "siaga112 incidents: unknown category 'volcano'; use one of:" in err
    code, _, err = cli("incidents", "create", "--category", "fire", "--district", "Atlantis", "--by", "op1")
    assert code == 1
    assert "unknown district 'Atlantis'" in err
    assert cli.json("incidents", "list") == []

    assert cli("incidents", "--agencies", str(EXAMPLE_AGENCIES), "create", "--category", "fire",
               "--district", "wenang", "--by", "op1")[0] == 0
    code, _, err = cli("incidents", "arrive", "1", "--by", "op1")
    assert code == 1
    assert "has not been dispatched" in err
    assert cli("incidents", "status", "1", "handling", "--by", "op1")[0] == 0
    code, _, err = cli("incidents", "status", "1", "wait", "--by", "op1")
    assert code == 1
    assert "cannot move back to wait" in err
    assert cli("incidents", "close", "1", "--by", "op1")[0] == 0
    before = cli.json("incidents", "show", "1")
    code, _, err = cli("incidents", "dispatch", "1", "--by", "op1")
    assert code == 1
    assert "a closed incident cannot be dispatched" in err
    assert cli.json("incidents", "show", "1") == before
    code, _, err = cli("incidents", "show", "42")
    assert code == 1
    assert "no incident #42" in err
    code, _, err = cli("incidents", "create", "--category", "fire", "--district", "wenang", "--by", "op1",
                       "--at", "yesterday")
    assert code == 2  # a usage error (README, exit codes)
    assert "--at 'yesterday' is not an ISO 8601 date or time" in err


def test_operator_is_required(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIAGA112_OPERATOR", raising=False)
    code, _, err = cli("incidents", "create", "--category", "fire", "--district", "wenang")
    assert code == 2
    assert "give --by OPERATOR" in err
    monkeypatch.setenv("SIAGA112_OPERATOR", "op9")
    created = cli.json("incidents", "create", "--category", "fire", "--district", "wenang")
    assert isinstance(created, dict)
    assert created["created_by"] == "op9"


def test_bad_registry_and_foreign_database(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[agency]]\nid = "x"\nname = "X"\ntype = "boat"\ndistrict = "wenang"\n'
                   '[[agency.unit]]\nid = "x1"\nname = "X1"\n')
    code, _, err = cli("incidents", "--agencies", str(bad), "units")
    assert code == 1
    assert f"{bad}:1: agency 'x' has unknown type 'boat'" in err
    foreign = tmp_path / "foreign.db"
    foreign.write_text("not a database")
    code = main(["incidents", "--db", str(foreign), "list"])
    assert code == 2
    assert foreign.read_text() == "not a database"


def test_units_and_summary_formats_and_plots(cli: Cli, tmp_path: Path) -> None:
    code, out, _ = cli("incidents", "--agencies", str(EXAMPLE_AGENCIES), "units", "--district", "sario")
    assert code == 0
    assert out.startswith("*** EXAMPLE DATA")
    assert "amb-sario-1" in out
    for category in ("fire", "electricity", "clean_water"):
        assert cli("incidents", "create", "--category", category, "--district", "sario", "--by", "op1",
                   "--at", "2026-05-05T09:00:00")[0] == 0
    code, out, _ = cli("report", "summary", "--from", "2026-05-01", "--to", "2026-05-31")
    assert code == 0
    assert "Reports: 3" in out
    assert "electricity (incl. utility poles) 1 (50 % of class)" in out
    code, out, _ = cli("report", "summary", "--from", "2026-05-01", "--to", "2026-05-31", "--format", "csv")
    assert out.splitlines()[0] == "metric,value"
    assert "total,3" in out.splitlines()
    assert "classes.nonemergency.percent,67" in out.splitlines()
    charts = tmp_path / "charts"
    code, _, err = cli("report", "summary", "--from", "2026-05-01", "--to", "2026-05-31",
                       "--plot", str(charts))
    assert code == 0
    assert sorted(p.name for p in charts.iterdir()) == ["answer-time-distribution.png",
                                                        "reports-per-category.png",
                                                        "service-level-per-hour.png", "status-shares.png"]
    assert "chart: " in err
    code, _, err = cli("report", "summary", "--from", "2026-05-31", "--to", "2026-05-01")
    assert code == 2  # usage errors exit 2 (README, exit codes)
    assert "ends (2026-05-01) before it starts" in err
    code, _, err = cli("report", "summary", "--from", "2026-05-01", "--to", "2026-05-31",
                       "--timezone", "Mars/Base")
    assert code == 2
    assert "unknown time zone 'Mars/Base'" in err


def test_settings_file_gives_registry_target_and_timezone(cli: Cli, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    settings = tmp_path / "engine.toml"
    # load_settings() exports SIAGA112_CONFIG: set it here so monkeypatch removes it after the test
    monkeypatch.setenv("SIAGA112_CONFIG", str(settings))
    site = tmp_path / "site.toml"  # the time zone is the site's: this centre keeps UTC
    shipped = (REPO / "pbx-config" / "site.toml").read_text()
    site.write_text(shipped.replace('timezone = "Asia/Makassar"', 'timezone = "UTC"'))
    settings.write_text(f'site_file = "{site}"\n[incidents]\nagencies_file = "{EXAMPLE_AGENCIES}"\n'
                        'response_target_min = 10\n')
    code, out, err = cli("incidents", "--config", str(settings), "create", "--category", "health",
                         "--district", "wanea", "--by", "op1", "--at", "2026-06-01T23:30:00")
    assert code == 0, err
    assert "2026-06-01 23:30:00.000000+00:00" in out
    for step, at in (("dispatch", "2026-06-01T23:31:00"), ("arrive", "2026-06-01T23:46:00")):
        code, out, err = cli("incidents", "--config", str(settings), step, "1", "--by", "op1", "--at", at)
        assert code == 0, err
    code, out, err = cli("report", "summary", "--config", str(settings), "--from", "2026-06-01",
                         "--to", "2026-06-01", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["period"]["timezone"] == "UTC"
    assert report["response"]["target_min"] == 10
    assert report["response"]["within_target"] == 0  # 15 min against a 10 min target
    assert report["response"]["count"] == 1
