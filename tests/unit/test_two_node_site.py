"""A two-node site ([cluster]): the model's refusals, each node's Asterisk files, Kamailio's files (and
Kamailio's own syntax check of them), and the commands refusing to guess which node they configure."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from callflow.commands._config_cluster import for_node
from callflow.lab import LabError
from callflow.siteconfig import (
    SiteConfigError,
    body,
    check_site,
    load_site,
    pbx_config_dir,
    render_front,
    render_node,
    render_site,
    resolve_secrets,
)

HERE = Path(__file__).parent / "siteconfig"
SECRET = "Zq7-good-secret-4Yp2xW9"
FILE_SECRET = 'file-"secret\\0123456789'  # a quote and a backslash: escaped in kamailio.cfg

CLUSTER = """
[cluster]
front = { bind = "10.0.0.5", port = 5060, probe_interval_s = 1, node_timeout_ms = 700 }
nodes = [ { name = "b", sip_address = "10.0.0.12", sip_port = 5060, priority = 5 },
          { name = "a", sip_address = "10.0.0.11", sip_port = 5060, priority = 10 } ]
"""


def write_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str = CLUSTER,
               file_secret: str = FILE_SECRET) -> Path:
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "good").write_text(file_secret + "\n")
    os.chmod(tmp_path / "secrets" / "good", 0o600)
    (tmp_path / "ivr.toml").write_text((pbx_config_dir() / "ivr.toml").read_text())
    monkeypatch.setenv("SIAGA_TEST_SECRET", SECRET)
    target = tmp_path / "site.toml"
    target.write_text((HERE / "valid.toml").read_text() + extra)
    return target


def problems_of(path: Path) -> str:
    with pytest.raises(SiteConfigError) as caught:
        load_site(path)
    return str(caught.value)


def test_without_cluster_the_site_renders_as_one_node_exactly(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # the secret of tests/unit/test_siteconfig_render.py, which made the golden files
    one = load_site(write_site(tmp_path, monkeypatch, extra="", file_secret="file-secret-0123456789abc"))
    assert one.site.cluster is None
    golden = HERE / "golden"
    for name, text in render_site(one, resolve_secrets(one)).items():
        assert body(text) == body((golden / name).read_text()), name
    with pytest.raises(SiteConfigError, match=r"no \[cluster\] section"):
        render_front(one, resolve_secrets(one))


@pytest.mark.parametrize(("cluster", "expected"), [
    ('nodes = [ { name = "a", sip_address = "10.0.0.11", priority = 1 } ]', "at least 2"),
    ('nodes = [ { name = "a", sip_address = "10.0.0.11", priority = 1 },\n'
     '          { name = "a", sip_address = "10.0.0.12", priority = 2 } ]', "node names must differ"),
    ('nodes = [ { name = "a", sip_address = "10.0.0.11", priority = 1 },\n'
     '          { name = "b", sip_address = "10.0.0.11", priority = 2 } ]', "same sip_address and sip_port"),
    ('front = { bind = "10.0.0.11" }\nnodes = [ { name = "a", sip_address = "10.0.0.11", priority = 1 },\n'
     '          { name = "b", sip_address = "10.0.0.12", priority = 2 } ]', "also a node's"),
    ('nodes = [ { name = "a", sip_address = "10.0.0.11", priority = "1" },\n'
     '          { name = "b", sip_address = "10.0.0.12", priority = 2 } ]', "priority"),
    ('nodes = [ { name = "A-1", sip_address = "10.0.0.11", priority = 1 },\n'
     '          { name = "b", sip_address = "10.0.0.12", priority = 2 } ]', "name"),
])
def test_cluster_section_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: str,
                                  expected: str) -> None:
    path = write_site(tmp_path, monkeypatch, extra=f"\n[cluster]\n{cluster}\n")
    assert expected in problems_of(path)


def test_check_refuses_an_operator_contact_on_the_front(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_site(tmp_path, monkeypatch)
    path.write_text(path.read_text().replace("sip:op2@127.0.0.1:5062", "sip:op2@10.0.0.5:5060"))
    problems = [str(p) for p in check_site(load_site(path))]
    assert any("op2's contact is the SIP front itself" in p for p in problems), problems
    assert not [str(p) for p in check_site(load_site(write_site(tmp_path, monkeypatch)))
                if "SIP front" in str(p)]


def test_each_node_runs_its_own_address_and_reaches_operators_through_the_front(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_site(write_site(tmp_path, monkeypatch))
    secrets = resolve_secrets(loaded)
    a, b = render_node(loaded, secrets, "a"), render_node(loaded, secrets, "b")
    assert "bind = 10.0.0.11:5060" in a["pjsip.conf"]
    assert "bind = 10.0.0.12:5060" in b["pjsip.conf"]
    for files in (a, b):
        pjsip = files["pjsip.conf"]
        # every operator, registering or static, through the front; citizens only from the front
        assert re.findall(r"(?m)^contact = (.*)$", pjsip)[1:] == ["sip:op1@10.0.0.5:5060",
                                                                   "sip:op2@10.0.0.5:5060"]
        assert "match = 10.0.0.5/32" in pjsip
    assert {name for name in a if a[name] != b[name]} == {"pjsip.conf"}  # the rest is the same centre
    with pytest.raises(SiteConfigError, match="no node 'c'"):
        render_node(loaded, secrets, "c")


def test_front_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_site(write_site(tmp_path, monkeypatch))
    secrets = resolve_secrets(loaded)
    files = render_front(loaded, secrets)
    assert files == render_front(loaded, secrets)  # deterministic
    dispatcher = [line for line in files["dispatcher.list"].splitlines() if not line.startswith("#")]
    assert dispatcher == ["1 sip:10.0.0.11:5060 0 10 duid=a", "1 sip:10.0.0.12:5060 0 5 duid=b"]
    cfg = files["kamailio.cfg"]
    assert cfg.startswith("#!KAMAILIO\n")
    assert "listen=udp:10.0.0.5:5060" in cfg
    assert 'modparam("tm", "fr_timer", 700)' in cfg
    assert 'modparam("dispatcher", "ds_ping_interval", 1)' in cfg
    # Kamailio's own 408 (the node said nothing) must not count as a live node: with class=4 accepted, a
    # killed node came back to the list at its next probe and calls waited for it again (bench/failover)
    codes = re.search(r'"ds_ping_reply_codes", "([^"]*)"', cfg)
    assert codes is not None
    assert "class=4" not in codes.group(1)
    assert "408" not in codes.group(1)
    assert 'modparam("dispatcher", "list_file", "/etc/kamailio/dispatcher.list")' in cfg
    assert f'$sht(operators=>op1) = "{SECRET}";' in cfg
    assert '$sht(operators=>op2) = "file-\\"secret\\\\0123456789";' in cfg
    assert '$sht(contacts=>op2) = "sip:op2@127.0.0.1:5062";' in cfg
    assert "$sht(contacts=>op1)" not in cfg  # op1 registers
    assert 'is_in_subnet("$si", "127.0.0.0/8")' in cfg  # the trunk's networks (ingress_networks)
    assert "{{" not in cfg


@pytest.mark.skipif(shutil.which("kamailio") is None, reason="Kamailio not installed (make setup)")
def test_kamailio_accepts_the_rendered_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_site(write_site(tmp_path, monkeypatch))
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(render_front(loaded, resolve_secrets(loaded))["kamailio.cfg"])
    check = subprocess.run(["kamailio", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30,
                           check=False)
    assert check.returncode == 0, check.stderr[-2000:]


def test_commands_do_not_guess_the_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    two = load_site(write_site(tmp_path, monkeypatch))
    with pytest.raises(LabError, match=r"nodes b, a behind a SIP front: say which node"):
        for_node(two, None)
    assert for_node(two, "b").site.sip.port == 5060
    assert str(for_node(two, "b").site.sip.bind) == "10.0.0.12"
    one_dir = tmp_path / "one"
    one_dir.mkdir()
    one = load_site(write_site(one_dir, monkeypatch, extra=""))
    with pytest.raises(LabError, match="it is one node"):
        for_node(one, "a")
    assert for_node(one, None) is one


def test_a_command_on_a_node_lab_is_that_node(monkeypatch: pytest.MonkeyPatch) -> None:
    from callflow.commands import _locate  # noqa: PLC0415 - the one rule of where things are
    from callflow.lab import LabStatus  # noqa: PLC0415

    node_a = LabStatus(instance="x-a", running=True, cluster={"instance": "x", "node": "a"})
    monkeypatch.setattr(_locate, "status", lambda name: node_a if name == "x-a" else LabStatus(name, True))
    monkeypatch.delenv("SIAGA112_NODE__NAME", raising=False)
    assert _locate.Location(lab="x-a").settings.node.name == "a"
    assert _locate.Location(lab="plain").settings.node.name == ""  # a one-node lab: a single engine
    assert _locate.Location().settings.node.name == ""
    monkeypatch.setenv("SIAGA112_NODE__NAME", "b")
    with pytest.raises(_locate.LocateError, match="lab 'x-a' is node 'a'"):
        _ = _locate.Location(lab="x-a").settings
