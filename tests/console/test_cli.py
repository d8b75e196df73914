"""``siaga112 console user add | list | disable``: passwords from stdin/env/prompt only, never echoed."""

from __future__ import annotations

import contextlib
import io
import sqlite3
from pathlib import Path

import pytest

from callflow.cli import main

PASSWORD = "Manado-112-secret"


def _cli(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> tuple[int, str, str]:
    code = main(["console", "--database", str(db), "user", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_disable(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "siaga112.db"
    code, _, err = _cli(capsys, db, "list")  # reading never creates a database
    assert code == 2
    assert f"no database at {db} (--database)" in err
    assert not db.exists()

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code, out, err = _cli(capsys, db, "add", "admin1", "--role", "admin", "--password-stdin")
    assert (code, err) == (0, f"siaga112 console: new database {db} (--database)\n")
    assert f"account 'admin1' created (role admin) in {db} (--database)" in out

    monkeypatch.setenv("SIAGA112_CONSOLE_PASSWORD", PASSWORD)
    code, out, _ = _cli(capsys, db, "add", "rina", "--role", "operator", "--operator-id", "op3")
    assert code == 0
    assert "operator op3" in out

    code, out, _ = _cli(capsys, db, "list")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["admin1", "admin", "-", "active"]
    assert lines[1].split()[:4] == ["rina", "operator", "op3", "active"]

    code, out, _ = _cli(capsys, db, "disable", "rina")
    assert code == 0
    assert "disabled" in out
    code, out, _ = _cli(capsys, db, "list")
    assert out.splitlines()[1].split()[3] == "disabled"
    assert PASSWORD not in out


def test_refusals_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "siaga112.db"
    monkeypatch.delenv("SIAGA112_CONSOLE_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal, no env, no --password-stdin
    code, _, err = _cli(capsys, db, "add", "sup", "--role", "supervisor")
    assert code == 2
    assert "--password-stdin" in err

    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, _, err = _cli(capsys, db, "add", "sup", "--role", "supervisor", "--password-stdin")
    assert code == 2
    assert "too short" in err

    code, _, err = _cli(capsys, db, "disable", "ghost")
    assert code == 2
    assert "no account named 'ghost'" in err

    with pytest.raises(SystemExit):
        main(["console", "--database", str(db), "user", "add", "x", "--role", "root"])


def test_cli_audits_account_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "siaga112.db"
    monkeypatch.setenv("SIAGA112_CONSOLE_PASSWORD", PASSWORD)
    assert main(["console", "--database", str(db), "user", "add", "sup", "--role", "supervisor"]) == 0
    assert main(["console", "--database", str(db), "user", "disable", "sup"]) == 0
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT action, target, outcome, address FROM console_audit "
                            "ORDER BY id").fetchall()
    assert rows == [("user.add", "sup", "ok", "local"), ("user.disable", "sup", "ok", "local")]


def test_lab_option_names_the_database_serve_lab_uses(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve --lab` keeps its database in the lab's directory: `console --lab` acts on that file."""
    monkeypatch.setattr("callflow.commands._locate.lab_dir", lambda instance: tmp_path / instance)
    # a lab's database (a two-node lab's node shares its lab's): never the machine's real labs here
    monkeypatch.setattr("callflow.commands._locate.lab_database",
                        lambda instance: tmp_path / instance / "siaga112.db")
    (tmp_path / "mylab").mkdir()
    monkeypatch.setenv("SIAGA112_CONSOLE_PASSWORD", PASSWORD)
    assert main(["console", "--lab", "mylab", "user", "add", "sup", "--role", "supervisor"]) == 0
    capsys.readouterr()
    code, out, _ = _cli(capsys, tmp_path / "mylab" / "siaga112.db", "list")
    assert code == 0
    assert out.split()[:2] == ["sup", "supervisor"]
