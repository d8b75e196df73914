"""``siaga112 serve``: the lab's AMI address, unless the settings name one explicitly (a proxy); the paths
it resolves for the composition root."""

from __future__ import annotations

from pathlib import Path

import pytest

from callflow.ami import AmiEndpoint
from callflow.app import EnginePaths
from callflow.calls.tracker import spill_path_for
from callflow.commands.serve import engine_paths, explicit_address
from callflow.lab import LabError
from callflow.settings import load_settings
from callflow.store import PostgresUrl

LAB = AmiEndpoint("127.0.0.1", 25038, "siaga112", "lab-secret")


def test_the_labs_address_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIAGA112_AMI__PORT", raising=False)
    monkeypatch.delenv("SIAGA112_AMI__HOST", raising=False)
    assert explicit_address(load_settings(), LAB) == LAB


def test_an_explicit_port_wins_over_the_labs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIAGA112_AMI__PORT", "40123")
    monkeypatch.delenv("SIAGA112_AMI__HOST", raising=False)
    ep = explicit_address(load_settings(), LAB)
    assert (ep.host, ep.port, ep.username, ep.secret) == ("127.0.0.1", 40123, "siaga112", "lab-secret")


def test_an_explicit_host_from_the_settings_file_wins(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIAGA112_AMI__PORT", raising=False)
    monkeypatch.delenv("SIAGA112_AMI__HOST", raising=False)
    config = tmp_path / "settings.toml"
    config.write_text('[ami]\nhost = "127.0.0.2"\n')
    ep = explicit_address(load_settings(config), LAB)
    assert (ep.host, ep.port, ep.secret) == ("127.0.0.2", 25038, "lab-secret")


def test_serve_resolves_paths_recordings_beside_the_database(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``serve`` hands to build_engine: ``--database`` wins, recordings default to beside it, a
    recordings_dir set in the settings wins; without --lab nothing is a lab's."""
    monkeypatch.delenv("SIAGA112_DATABASE", raising=False)
    monkeypatch.delenv("SIAGA112_RECORDINGS_DIR", raising=False)
    paths = engine_paths(load_settings(), None, tmp_path / "data" / "siaga112.db")
    assert paths == EnginePaths(database=tmp_path / "data" / "siaga112.db",
                                recordings=tmp_path / "data" / "recordings", data_dir=tmp_path / "data")
    agencies = tmp_path / "a.toml"
    settings = load_settings(recordings_dir=tmp_path / "rec", incidents={"agencies_file": agencies})
    paths = engine_paths(settings, None, tmp_path / "db")
    assert (paths.recordings, paths.agencies_file, paths.lab) == (tmp_path / "rec", agencies, None)


def test_serve_on_postgresql_keeps_its_files_in_the_data_directory(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A PostgreSQL store has no folder: the spill file and the recordings go to ``data_dir`` (var/)."""
    monkeypatch.delenv("SIAGA112_DATA_DIR", raising=False)
    monkeypatch.delenv("SIAGA112_RECORDINGS_DIR", raising=False)
    url = PostgresUrl.parse("postgresql://siaga@db.example/siaga112")
    paths = engine_paths(load_settings(), None, url)
    assert (paths.database, paths.data_dir, paths.recordings) == (url, Path("var"), Path("var/recordings"))
    assert spill_path_for(url, paths.data_dir) == Path("var/journal-siaga_db_example_siaga112.spill.jsonl")
    paths = engine_paths(load_settings(data_dir=tmp_path), None, url)
    assert (paths.data_dir, paths.recordings) == (tmp_path, tmp_path / "recordings")


def test_a_lab_that_is_not_running_is_refused_before_anything_is_built() -> None:
    with pytest.raises(LabError, match="is not running: start it with `siaga112 lab up`"):
        engine_paths(load_settings(), "compose-no-such-lab")
