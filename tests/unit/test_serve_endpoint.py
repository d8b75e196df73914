"""``siaga112 serve --lab``: the lab's AMI address, unless the settings name one explicitly (a proxy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callflow.ami import AmiEndpoint
from callflow.commands.serve import explicit_address
from callflow.settings import load_settings

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
