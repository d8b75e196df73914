"""One rule for the database, the site file and the time zone (callflow/commands/_locate.py), in every
command: precedence, options before or after the action, no empty database created by a read."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callflow.cli import build_parser, main
from callflow.commands._locate import LocateError, Location, parse_local
from callflow.lab import lab_dir
from callflow.siteconfig import applied_site_path, load_site, pbx_config_dir, store_applied

SHIPPED = pbx_config_dir() / "site.toml"


@pytest.fixture(autouse=True)
def _clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Labs under a temporary cache, no settings from the caller's environment."""
    monkeypatch.setenv("SIAGA112_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("SIAGA112_DATABASE", "SIAGA112_CONFIG", "SIAGA112_SITE_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def _site_copy(path: Path, **replace: str) -> Path:
    text = SHIPPED.read_text(encoding="utf-8")
    for old, new in replace.items():
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    (path.parent / "ivr.toml").write_text((pbx_config_dir() / "ivr.toml").read_text(encoding="utf-8"))
    return path


# -- the precedence rule -------------------------------------------------------------------------------
def test_database_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = tmp_path / "engine.toml"
    settings.write_text('database = "from-settings.db"\n')
    given = tmp_path / "given.db"
    assert Location(lab="x", database=given, config=settings).database.path == given
    assert Location(lab="x", database=given).database.how == "--database"
    chosen = Location(lab="x", config=settings).database
    assert (chosen.path, chosen.how) == (Path("from-settings.db"), f"'database' in settings file {settings}")
    monkeypatch.setenv("SIAGA112_DATABASE", str(tmp_path / "env.db"))
    assert Location(lab="x").database.path == tmp_path / "env.db"
    assert Location(lab="x").database.how == "SIAGA112_DATABASE"
    monkeypatch.delenv("SIAGA112_DATABASE")
    assert Location(lab="x").database.path == lab_dir("x") / "siaga112.db"
    assert Location(lab="x").database.how == "--lab x"
    bare = Location().database
    assert (bare.path, bare.how[:11]) == (Path("var/siaga112.db"), "the default")


def test_site_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    named = _site_copy(tmp_path / "named" / "site.toml") if (tmp_path / "named").mkdir() is None else None
    assert named is not None
    assert Location(lab="x").site_file.path == SHIPPED
    assert "nothing applied to lab x yet" in Location(lab="x").site_file.how
    store_applied(lab_dir("x") / "config", load_site(named))
    applied = applied_site_path(lab_dir("x") / "config")
    assert Location(lab="x").site_file.path == applied
    assert Location(lab="x").site_file.how == "the site last applied to lab x"
    assert Location(lab="y").site_file.path == SHIPPED  # another lab: its own
    monkeypatch.setenv("SIAGA112_SITE_FILE", str(tmp_path / "env-site.toml"))
    assert Location(lab="x").site_file.path == tmp_path / "env-site.toml"
    assert Location(lab="x", site=named).site_file.path == named
    assert Location(lab="x", site=named).site_file.how == "--site"


def test_applied_site_keeps_its_tree_beside_it(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    site = _site_copy(tmp_path / "site.toml", **{'tree = "ivr.toml"': 'tree = "elsewhere/tree.toml"'})
    (tmp_path / "elsewhere" / "tree.toml").write_text((tmp_path / "ivr.toml").read_text())
    stored = store_applied(tmp_path / "state", load_site(site))
    again = load_site(stored)
    assert again.resolve(again.site.ivr.tree) == stored.with_name("ivr.toml")
    assert stored.with_name("ivr.toml").read_text() == (tmp_path / "ivr.toml").read_text()
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700


def test_time_without_offset_is_the_centres_local_time(tmp_path: Path) -> None:
    assert parse_local("2026-11-22T08:00", "Asia/Makassar") == datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    assert parse_local("2026-11-22T08:00+00:00", "Asia/Makassar") == datetime(2026, 11, 22, 8, tzinfo=UTC)
    utc_site = _site_copy(tmp_path / "site.toml", **{'timezone = "Asia/Makassar"': 'timezone = "UTC"'})
    assert Location(site=utc_site).when("2026-11-22T08:00") == datetime(2026, 11, 22, 8, tzinfo=UTC)
    with pytest.raises(LocateError, match="local time in Asia/Makassar"):
        parse_local("yesterday", "Asia/Makassar", "--since")


def test_the_old_timezone_setting_is_refused_not_ignored(tmp_path: Path) -> None:
    settings = tmp_path / "engine.toml"
    settings.write_text('[incidents]\ntimezone = "UTC"\n')
    with pytest.raises(LocateError, match=r"\[centre\] timezone"):
        _ = Location(config=settings).timezone


# -- every command: the options before or after the action; --help says the time rule ------------------
AFTER_AND_BEFORE = [
    (["calls", "list"], 1), (["calls", "show", "L"], 1), (["callbacks", "list"], 1),
    (["incidents", "list"], 1), (["incidents", "show", "1"], 1), (["recordings", "list"], 1),
    (["operator", "list"], 1), (["operator", "login", "op1"], 1), (["console", "user", "list"], 1),
    (["report", "answer-times"], 1), (["report", "operators"], 1), (["report", "summary", "--from",
                                                                    "2026-01-01", "--to", "2026-01-02"], 1),
    (["serve"], 1),
]


@pytest.mark.parametrize(("argv", "head"), AFTER_AND_BEFORE)
def test_options_before_or_after_the_action(argv: list[str], head: int, tmp_path: Path) -> None:
    where = ["--lab", "x", "--database", str(tmp_path / "d.db"), "--site", "s.toml", "--config", "c.toml"]
    variants = [[*argv, *where]]
    if head < len(argv):
        variants.append([*argv[:head], *where, *argv[head:]])
    for variant in variants:
        args = build_parser().parse_args(variant)
        assert (args.lab, args.database, args.site, args.config) == (
            "x", tmp_path / "d.db", Path("s.toml"), Path("c.toml")), variant


@pytest.mark.parametrize("argv", [["calls", "list"], ["report", "answer-times"], ["incidents", "create"],
                                  ["recordings", "purge"], ["callbacks", "list"]])
def test_help_says_a_time_without_offset_is_local(argv: list[str], capsys: pytest.CaptureFixture[str]
                                                  ) -> None:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    assert "without an offset: the centre's local time" in " ".join(capsys.readouterr().out.split())


# -- no command creates an empty database to read from --------------------------------------------------
READS = [
    ["calls", "list"], ["calls", "show", "1.1"], ["calls", "export"], ["calls", "rebuild", "--check"],
    ["callbacks", "list"], ["callbacks", "show", "1"], ["report", "answer-times"], ["report", "operators"],
    ["report", "summary", "--from", "2026-01-01", "--to", "2026-01-02"], ["incidents", "list"],
    ["incidents", "show", "1"], ["incidents", "units"], ["recordings", "list"], ["recordings", "verify"],
    ["operator", "list"], ["console", "user", "list"], ["console", "user", "disable", "x"],
]


@pytest.mark.parametrize("argv", READS)
@pytest.mark.parametrize("where", ["--lab", "--database", "none"])
def test_reads_refuse_a_missing_database(argv: list[str], where: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    missing = {"--lab": lab_dir("nolab") / "siaga112.db", "--database": tmp_path / "missing.db",
               "none": tmp_path / "var" / "siaga112.db"}[where]
    options = {"--lab": ["--lab", "nolab"], "--database": ["--database", str(missing)], "none": []}[where]
    assert main([*argv, *options]) == 2
    err = capsys.readouterr().err
    assert f"no database at {missing}" in err or f"no database at {missing.relative_to(tmp_path)}" in err
    assert "--lab INSTANCE, --database PATH|URL or --config FILE" in err
    assert not any(missing.parent.glob("*.db*")) if missing.parent.exists() else True
    if where == "none":
        assert not (tmp_path / "var").exists()


def test_a_write_names_the_database_it_creates_and_never_the_bare_default(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIAGA112_CONSOLE_PASSWORD", "Manado-112-secret")
    assert main(["console", "user", "add", "sup", "--role", "supervisor"]) == 2
    assert "no database at var/siaga112.db (the default" in capsys.readouterr().err
    assert not (tmp_path / "var").exists()
    assert main(["console", "user", "add", "sup", "--role", "supervisor", "--lab", "x"]) == 0
    out, err = capsys.readouterr()
    assert f"new database {lab_dir('x') / 'siaga112.db'} (--lab x)" in err
    assert f"in {lab_dir('x') / 'siaga112.db'} (--lab x)" in out


def test_console_refuses_an_operator_the_site_does_not_list(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIAGA112_CONSOLE_PASSWORD", "Manado-112-secret")
    db = tmp_path / "x.db"
    code = main(["console", "user", "add", "rina", "--role", "operator", "--operator-id", "op9",
                 "--database", str(db)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"no operator 'op9' in the site file {SHIPPED}" in err
    assert "op1, op2, op3, op4, op5, op6" in err
    assert not db.exists()  # refused before anything was written
    site = _site_copy(tmp_path / "site.toml", **{'name = "op6"': 'name = "op9"'})
    assert main(["console", "user", "add", "rina", "--role", "operator", "--operator-id", "op9",
                 "--database", str(db), "--site", str(site)]) == 0


def test_lab_status_json_gives_database_and_site(capsys: pytest.CaptureFixture[str]) -> None:
    import json  # noqa: PLC0415

    assert main(["lab", "status", "--json", "--instance", "nolab"]) == 3  # not running
    data = json.loads(capsys.readouterr().out)
    assert data["database"] == str(lab_dir("nolab") / "siaga112.db")
    assert data["database_exists"] is False
    assert data["site_file"] == str(SHIPPED)
    assert "nothing applied" in data["site_file_from"]


def test_namespace_without_options_means_the_defaults() -> None:
    where = Location.of(argparse.Namespace())
    assert where.database.path == Path("var/siaga112.db")
    assert where.site_file.path == SHIPPED


def test_config_check_of_the_shipped_site_says_how(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIAGA112_AMI_SECRET", "SIAGA112_AMI_APPLY_SECRET",
                 *(f"SIAGA112_SECRET_OP{i}" for i in range(1, 7))):
        monkeypatch.delenv(name, raising=False)
    assert main(["config", "check", str(SHIPPED)]) == 1
    err = capsys.readouterr().err
    assert err.count("is not set") == 8
    assert "`siaga112 config check pbx-config/site.toml --lab INSTANCE`" in err


def test_a_supervisors_phone_must_be_an_operator_of_the_site(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIAGA112_CONSOLE_PASSWORD", "Manado-112-secret")
    db = tmp_path / "x.db"
    assert main(["console", "user", "add", "sup", "--role", "supervisor", "--operator-id", "op9",
                 "--database", str(db)]) == 1
    assert f"no operator 'op9' in the site file {SHIPPED}" in capsys.readouterr().err
    assert main(["console", "user", "add", "sup", "--role", "supervisor", "--operator-id", "op2",
                 "--database", str(db)]) == 0
