"""``lab up --nodes 2 --engines``: what it refuses before starting anything, and its private PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from callflow.cli import main
from callflow.lab import PrivatePostgres, set_status
from callflow.lab._postgres import (
    PostgresUnavailable,
    free_tcp_port,
    kept_cluster_dir,
    make_kept_cluster,
    service_user,
)
from tests.conftest import IN_CI


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
    assert not kept_cluster_dir(tmp_path / "labs" / "w", "w", service_user()).exists()  # no cluster begun


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


def test_a_labs_cluster_asks_for_the_password_only_its_passfile_holds(tmp_path: Path) -> None:
    """The lab's store over TCP: refused without the lab's 0600 pgpass, reached with its URL (which names
    that file, never the password)."""
    import psycopg  # noqa: PLC0415 - the store's driver

    lab_folder = tmp_path / "lab"
    lab_folder.mkdir(mode=0o700)
    try:
        server = make_kept_cluster(lab_folder, "unit", free_tcp_port())
    except PostgresUnavailable as exc:
        if IN_CI:  # CI has PostgreSQL (`make setup`): its absence is a failure, not a skip
            pytest.fail(f"CI requires PostgreSQL: {exc}", pytrace=False)
        pytest.skip(str(exc))
    try:
        server.start()
        url = server.ensure_database("siaga112")
        assert server.passfile is not None
        assert url.endswith(f"/siaga112?passfile={server.passfile}")
        assert oct(server.passfile.stat().st_mode & 0o777) == "0o600"
        password = server.passfile.read_text().strip().rsplit(":", 1)[-1]
        assert password not in url
        assert password not in json.dumps(server.as_dict())
        assert not (server.root / "initdb.pw").exists()
        with psycopg.connect(url, connect_timeout=5) as conn:
            assert conn.execute("SELECT 112").fetchone() == (112,)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(url.split("?", 1)[0], connect_timeout=5, passfile=str(tmp_path / "none"))
    finally:
        server.stop("immediate")
        shutil.rmtree(server.root, ignore_errors=True)
