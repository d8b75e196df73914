"""Agency accounts: ``console user add NAME --role agency --agency ID`` checks the agency against the
registry file (refusing an unknown one, naming the file), and a console database made before agency
accounts existed is upgraded in place (its accounts kept)."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from callflow.cli import main
from callflow.console import CONSOLE_SCHEMA, AccountError, AccountStore, Role
from callflow.console.schema import iso
from callflow.store import Schema, open_database
from tests.console.conftest import AGENCIES, ManualClock

PASSWORD = "Manado-112-secret"


def _cli(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> tuple[int, str, str]:
    code = main(["console", "--database", str(db), "user", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_agency_account_bound_to_an_agency_of_the_registry(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "siaga112.db"
    monkeypatch.setenv("SIAGA112_CONSOLE_PASSWORD", PASSWORD)
    code, out, err = _cli(capsys, db, "add", "pln-desk", "--role", "agency", "--agency", "electricty",
                          "--agencies", str(AGENCIES))
    assert code == 2
    assert f"unknown agency 'electricty': {AGENCIES} has no such [[agency]] id" in err
    assert "electricity" in err  # the valid ids are listed
    code, out, err = _cli(capsys, db, "add", "pln-desk", "--role", "agency", "--agencies", str(AGENCIES))
    assert code == 2
    assert "needs its agency: --agency ID" in err
    code, out, err = _cli(capsys, db, "add", "pln-desk", "--role", "agency", "--agency", "electricity")
    assert code == 2  # no file given and none in the settings
    assert "no agency file to check --agency against" in err
    code, out, err = _cli(capsys, db, "add", "pln-desk", "--role", "agency", "--agency", "electricity",
                          "--agencies", str(AGENCIES))
    assert (code, err) == (0, "")
    assert "role agency, agency electricity" in out
    code, out, _ = _cli(capsys, db, "list")
    assert out.split()[:4] == ["pln-desk", "agency", "electricity", "active"]
    with sqlite3.connect(db) as conn:
        detail = conn.execute("SELECT detail FROM console_audit WHERE action = 'user.add'").fetchone()[0]
    assert detail == "role=agency agency=electricity"


async def test_a_first_version_console_database_is_upgraded_with_its_accounts(tmp_path: Path) -> None:
    db_path = tmp_path / "old.db"
    old = Schema(CONSOLE_SCHEMA.name, CONSOLE_SCHEMA.steps[:1])
    conn = await open_database(db_path, [old])
    clock = ManualClock()
    await conn.execute("INSERT INTO console_users (name, role, password_hash, operator_id, created_at) "
                       "VALUES ('op1', 'operator', 'x', 'op1', ?)", (iso(clock()),))
    await conn.execute("INSERT INTO console_sessions (token_hash, user_id, csrf_token, created_at, "
                       "expires_at, address) VALUES ('t', 1, 'c', ?, ?, 'here')",
                       (iso(clock()), iso(clock())))
    await conn.commit()
    await conn.close()
    conn = await open_database(db_path, [CONSOLE_SCHEMA])
    try:
        store = AccountStore(conn, clock)
        kept = await store.find("op1")
        assert kept is not None
        assert (kept.role, kept.operator_id, kept.agency_id) == (Role.OPERATOR, "op1", None)
        added = await store.add_user("pdam", Role.AGENCY, PASSWORD, agency_id="water")
        assert added.agency_id == "water"
        with pytest.raises(AccountError, match="only agency accounts are bound"):
            await store.add_user("rina", Role.OPERATOR, PASSWORD, agency_id="water")
    finally:
        await conn.close()


def test_password_from_stdin_for_an_agency_account(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code, out, err = _cli(capsys, tmp_path / "s.db", "add", "pdam", "--role", "agency", "--agency", "water",
                          "--agencies", str(AGENCIES), "--password-stdin")
    # the only line on stderr names the database a write created (README: choosing the database)
    assert (code, err) == (0, f"siaga112 console: new database {tmp_path / 's.db'} (--database)\n")
    assert PASSWORD not in out
