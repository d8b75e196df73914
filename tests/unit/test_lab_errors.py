"""The lab's error paths that need no running Asterisk."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from callflow.lab import LabError, _root
from callflow.lab.sipp import udp_port_bound
from callflow.siteconfig import SiteConfigError
from callflow.siteconfig._render import substitute


def test_unknown_placeholder_names_file_and_line() -> None:
    with pytest.raises(SiteConfigError, match=r"pjsip\.conf:3: unknown placeholder \{\{NOPE\}\}"):
        substitute("a\nb\nport={{NOPE}}\n", {"SIP_PORT": "1"}, "pjsip.conf")


def test_placeholders_are_replaced_and_asterisk_syntax_untouched() -> None:
    out = substitute("bind=127.0.0.1:{{SIP_PORT}}\nexten => 112,1,Set(X=${EXTEN})\n", {"SIP_PORT": "5"}, "f")
    assert out == "bind=127.0.0.1:5\nexten => 112,1,Set(X=${EXTEN})\n"


def test_not_root_and_no_asterisk_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("SIAGA112_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SIAGA112_ASTERISK_ROOT", raising=False)
    monkeypatch.setattr(_root.shutil, "which", lambda name: None)
    monkeypatch.setattr(_root.os, "geteuid", lambda: 1000)
    with pytest.raises(LabError) as info:
        _root.find_runtime()
    text = str(info.value)
    assert "install Asterisk 22" in text
    assert "debootstrap" in text
    assert not (tmp_path / "sid-root").exists()


def test_failing_debootstrap_reports_its_log_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("building a root is root-only")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake = fake_bin / "debootstrap"
    # A fake debootstrap: the real one cannot be made to fail on demand (a fault, not the happy path).
    fake.write_text("#!/bin/sh\necho 'E: Failed getting release file' >&2\nmkdir -p \"$5\"\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    root = tmp_path / "cache" / "sid-root"
    with pytest.raises(LabError) as info:
        _root.build_root(root)
    text = str(info.value)
    assert "debootstrap failed (exit 1)" in text
    assert "Failed getting release file" in text
    assert str(root.with_name("sid-root.debootstrap.log")) in text
    assert not root.exists()
    assert not root.with_name("sid-root.building").exists()


def test_udp_port_bound_reads_the_kernel_table() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert udp_port_bound(port)
    assert not udp_port_bound(port)


def test_a_state_file_from_another_version_is_still_read(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """A lab started by another siaga112 version (extra or missing keys) can still be seen and stopped."""
    import json  # noqa: PLC0415

    from callflow.lab import status  # noqa: PLC0415

    monkeypatch.setenv("SIAGA112_CACHE_DIR", str(tmp_path))
    state = tmp_path / "labs" / "other-version" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"instance": "other-version", "running": True, "pid": 2 ** 22 + 7,
                                 "a_key_from_the_future": {"x": 1}}))
    st = status("other-version")
    assert st.instance == "other-version"
    assert st.pid is None  # not an Asterisk of ours: reported as not running, never signalled
    assert st.running is False


@pytest.mark.parametrize("instance", ["my lab", "x,Hangup()", "a;b"])
def test_instance_name_that_would_reach_the_dial_plan_is_refused(instance: str) -> None:
    """The lab's paths (sounds, recordings) come from the instance name and reach the dial plan."""
    from callflow.lab import LabPorts, load_lab_site  # noqa: PLC0415 - beside the test that needs it

    with pytest.raises(LabError, match="choose an instance name"):
        load_lab_site(None, ports=LabPorts(), inner=f"/srv/siaga112/{instance}", ami_user="siaga112",
                      secrets={})
