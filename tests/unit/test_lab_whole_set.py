"""``lab up --nodes 2 --engines``: what it refuses before starting anything, and its private PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from callflow.cli import main
from callflow.lab import PrivatePostgres, set_status


def test_missing_postgresql_says_make_setup_and_starts_nothing(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SIAGA112_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PG_BIN", str(tmp_path / "no-postgresql"))
    which = shutil.which  # Kamailio present (its absence is refused first, before any store starts)
    monkeypatch.setattr(shutil, "which",
                        lambda name: "/usr/sbin/kamailio" if name == "kamailio" else which(name))
    code = main(["lab", "up", "--nodes", "2", "--engines", "--free-ports", "--instance", "w"])
    err = capsys.readouterr().err
    assert code == 2
    assert "holds no initdb" in err
    assert "`make setup`" in err
    st = set_status("w")
    assert st.store == "postgresql"  # recorded, so `lab down` would find whatever had started
    assert not st.cluster.running
    assert not st.postgres
    assert not st.engines
    assert not (tmp_path / "labs" / "w" / "front").exists()  # Kamailio was never configured


@pytest.mark.parametrize(("argv", "says"), [
    (["--engines"], "add --nodes 2"),
    (["--store", "sqlite"], "add --nodes 2"),
    (["--nodes", "2", "--store", "sqlite"], "add --engines"),
])
def test_engine_options_without_what_they_need_are_refused(
        argv: list[str], says: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SIAGA112_CACHE_DIR", str(tmp_path))
    assert main(["lab", "up", "--instance", "w", *argv]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "labs" / "w").exists()


def test_the_private_cluster_trusts_only_loopback_and_its_own_socket(
        private_postgres: PrivatePostgres) -> None:
    rules = [line.split() for line in (private_postgres.data_dir / "pg_hba.conf").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert all(rule[0] == "local" or rule[3] == "127.0.0.1/32" for rule in rules)
    assert private_postgres.psql("SHOW listen_addresses") == "127.0.0.1"
    assert oct(private_postgres.root.stat().st_mode & 0o777) == "0o700"


def test_missing_kamailio_is_refused_before_the_store_starts(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SIAGA112_CACHE_DIR", str(tmp_path))
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "kamailio" else which(name))
    assert main(["lab", "up", "--nodes", "2", "--engines", "--free-ports", "--instance", "w"]) == 2
    err = capsys.readouterr().err
    assert "Kamailio and it is not installed: run `make setup`" in err
    assert not (tmp_path / "labs" / "w").exists()  # no store made, nothing recorded
