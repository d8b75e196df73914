"""`siaga112 lab` against the real Asterisk: status, idempotent up, port clashes, down by pid."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from callflow.lab import LabError, LabStatus, down, free_ports, lab_dir, status, up
from callflow.siteconfig import applied_site_path

pytestmark = pytest.mark.integration


def siaga112(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callflow.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_status_json_says_what_runs_where(lab: LabStatus) -> None:
    result = siaga112("lab", "status", "--instance", lab.instance, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["running"] is True
    assert data["pid"] == lab.pid
    assert data["ami"] == {"host": "127.0.0.1", "port": lab.ami["port"], "username": "siaga112",
                           "tls_port": lab.ami["tls_port"], "tls_ca_file": lab.ami["tls_ca_file"]}
    assert data["ami"]["tls_ca_file"].startswith(data["instance_dir"])  # made at `lab up`, not in the repo
    assert data["sip"]["port"] == lab.sip["port"]
    assert data["fastagi"]["port"] == lab.fastagi["port"]
    assert data["config_dir"].endswith("/etc")
    assert "secret" not in json.dumps({k: v for k, v in data.items() if k != "secrets_file"})
    assert "Asterisk 22" in data["asterisk_version"]
    # where the lab's engine keeps its data and which site it runs (what `--lab` means to every command)
    assert data["database"] == str(lab_dir(lab.instance) / "siaga112.db")
    assert data["site_file"] == str(applied_site_path(lab_dir(lab.instance) / "config"))
    assert data["site_file_from"] == f"the site last applied to lab {lab.instance}"


def test_up_twice_reports_the_running_lab(lab: LabStatus) -> None:
    again = up(lab.instance, free_ports())
    assert again.pid == lab.pid
    result = siaga112("lab", "up", "--instance", lab.instance)
    assert result.returncode == 0
    assert "already running" in result.stdout


def test_port_in_use_is_named_and_nothing_is_left_running(lab: LabStatus) -> None:
    del lab  # the root must exist; the clash is on another instance
    ports = free_ports()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", ports.sip))
        with pytest.raises(LabError, match=rf"port {ports.sip}/udp \(SIP\).*already in use"):
            up("test-port-clash", ports)
    assert not status("test-port-clash").running


def test_down_stops_only_its_own_asterisk(lab: LabStatus) -> None:
    other = up("test-down-own", free_ports())
    try:
        assert other.pid != lab.pid
        was_running, after = down("test-down-own")
        assert was_running
        assert not after.running
        assert not status("test-down-own").running
        assert status(lab.instance).running, "down of one lab must not touch another"
        result = siaga112("lab", "down", "--instance", "test-down-own")
        assert result.returncode == 0
        assert "not running" in result.stdout
    finally:
        down("test-down-own")
