"""One site: what the admin applies is what the whole centre runs, without a restart, and after
``lab down && lab up``. On its own lab instance (it changes the lab's site)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from callflow.lab import LabError, LabStatus, down, free_ports, lab_dir, status, up
from callflow.siteconfig import applied_site_path, pbx_config_dir
from ivr.prompts import generate
from ivr.rules import load_tree
from tests.conftest import IN_CI, lab_instance_name
from tests.support.engine import EngineProcess

pytestmark = pytest.mark.integration
NEW_WORDS = "Siaga satu satu dua, layanan baru. Darurat, tekan satu. Pengaduan, tekan dua."
OP7_SECRET = "Op7-secret-Vx9qLm2Tz8Rk4Wn6"  # a test lab's throwaway SIP secret


@pytest.fixture(scope="module")
def site_lab() -> Iterator[LabStatus]:
    if shutil.which("sipp") is None or (shutil.which("asterisk") is None and os.geteuid() != 0):
        if IN_CI:
            pytest.fail("the lab (Asterisk and SIPp) is not available")
        pytest.skip("the lab (Asterisk and SIPp) is not available")
    instance = lab_instance_name("test-site")
    down(instance)
    shutil.rmtree(lab_dir(instance) / "config", ignore_errors=True)  # no site applied by an earlier run
    try:
        st = up(instance, free_ports())
    except LabError as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield st
    down(instance)


def _new_site(directory: Path) -> Path:
    """The shipped site plus op7 (a registering phone, in both queues) and the root prompt reworded."""
    text = (pbx_config_dir() / "site.toml").read_text()
    op7 = ('\n[[operators]]\nname = "op7"\nextension = "207"\ndisplay_name = "Operator 7"\n'
           'classes = ["emergency", "nonemergency"]\nsecret_env = "SIAGA112_SECRET_OP7"\n')
    marker = "# --- queues:"
    text = text.replace(marker, op7 + "\n" + marker, 1)
    text = text.replace('"op5", "op6"]', '"op5", "op6", "op7"]')
    (directory / "site.toml").write_text(text)
    tree = (pbx_config_dir() / "ivr.toml").read_text()
    start = tree.index("[prompts.root]")
    first = tree.index('text = "', start) + len('text = "')
    (directory / "ivr.toml").write_text(tree[:first] + NEW_WORDS + tree[tree.index('"', first):])
    return directory / "site.toml"


async def _cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow.cli", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "SIAGA112_SECRET_OP7": OP7_SECRET})
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_an_applied_site_is_run_at_once_and_kept_across_lab_restarts(site_lab: LabStatus,
                                                                          tmp_path: Path) -> None:
    instance = site_lab.instance
    site = _new_site(tmp_path)
    code, out = await _cli("operator", "login", "op7", "--lab", instance)
    assert code == 1, out  # not in the site the lab runs yet, and the message names that file
    assert "unknown operator 'op7'" in out
    assert str(pbx_config_dir() / "site.toml") in out

    engine = await EngineProcess(instance, "--database", str(tmp_path / "siaga112.db")).start()
    try:
        code, out = await _cli("config", "apply", str(site), "--lab", instance)
        assert code == 0, out
        changed = out.split("changed: ", 1)[1].splitlines()[0]
        assert "pjsip.conf" in changed  # op7's endpoint
        assert "ivr.toml" in changed  # the tree is part of the apply
        assert ": root changed (new words" in out  # the only prompt whose words changed
        # without a restart: the engine's operator manager and its IVR take the applied site
        await engine.wait_for(lambda r: r.get("event") == "operator.policy_changed"
                              and "op7" in r.get("added", []), timeout=10)
        await engine.wait_for(lambda r: r.get("event") == "ivr.tree_reloaded", timeout=30)
        code, out = await _cli("operator", "login", "op7", "--lab", instance)
        assert code == 0, out
        assert f"site file {applied_site_path(lab_dir(instance) / 'config')}" in out
        await engine.wait_for(lambda r: r.get("event") == "operator.state"
                              and r.get("operator") == "op7", timeout=10)
        tree = load_tree(tmp_path / "ivr.toml").tree
        installed = Path(site_lab.sounds_dir) / "siaga112" / tree.name / "root.wav"
        expected, _ = generate(tree, tree.prompts["root"])
        assert _sha256(installed) == _sha256(expected)  # the next caller hears the new words
        code, out = await _cli("operator", "logout", "op7", "--lab", instance)
        assert code == 0, out
    finally:
        assert await engine.stop() == 0, engine.tail()

    # lab down && lab up: the lab renders the applied site, not the shipped one
    await asyncio.to_thread(down, instance)
    st = await asyncio.to_thread(up, instance, free_ports())
    assert "op7" in (Path(st.config_dir) / "pjsip.conf").read_text()
    assert status(instance).running
    code, out = await _cli("config", "diff", str(site), "--lab", instance)
    assert code == 0, out
    assert "no changes" in out
