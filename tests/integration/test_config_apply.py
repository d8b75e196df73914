"""`config apply` on a real lab Asterisk: applied and verified, then a real 112 call; a change Asterisk
rejects is rolled back by itself and calls still work; a call up during an apply is not dropped.

These tests change the lab's configuration, so they run on their own lab instance (not the session's).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from callflow.ami import AmiConnection, AmiEvent, AmiMessage, EventItem
from callflow.lab import (
    LabError,
    LabStatus,
    down,
    free_ports,
    lab_ami_after,
    lab_apply_target,
    lab_dir,
    load_secrets,
    up,
)
from callflow.lab.sipp import CallerScript, SippOperator, place_call
from callflow.siteconfig import pbx_config_dir
from callflow.siteconfig._apply import ApplyOutcome, ApplyReport, apply_files
from callflow.siteconfig._history import ApplyHistory
from callflow.siteconfig._render import render_site
from tests.conftest import IN_CI, REPO
from tests.support.ami_waits import assert_no_channels_left, named, next_event

pytestmark = pytest.mark.integration
LabAmi = tuple[AmiConnection, asyncio.Queue[EventItem]]


@pytest.fixture(scope="module")
def config_lab() -> Iterator[LabStatus]:
    if shutil.which("sipp") is None or (shutil.which("asterisk") is None and os.geteuid() != 0):
        message = "the lab (Asterisk and SIPp) is not available"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    digest = hashlib.sha1(str(REPO).encode(), usedforsecurity=False).hexdigest()[:8]
    instance = f"test-config-{digest}"
    down(instance)
    shutil.rmtree(lab_dir(instance) / "config", ignore_errors=True)
    try:
        status = up(instance, free_ports())
    except LabError as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    yield status
    down(instance)


@pytest.fixture
async def lab_ami(config_lab: LabStatus) -> AsyncIterator[LabAmi]:
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    conn = AmiConnection(config_lab.ami_endpoint(), events)
    await conn.connect()
    yield conn, events
    try:
        await assert_no_channels_left(conn)
    finally:
        await conn.close()


async def read_back(lab: LabStatus, action: str, headers: dict[str, str] | None = None
                    ) -> tuple[AmiMessage, list[AmiEvent]]:
    """Read back what Asterisk loaded as `config apply` does, with its own AMI user: the engine's may not
    (PJSIPShowEndpoint(s) need the `system` class, which it no longer has)."""
    conn = AmiConnection(lab.apply_endpoint(), asyncio.Queue())
    await conn.connect()
    try:
        return await conn.list_action(action, headers)
    finally:
        await conn.close()


def site_variant(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    """The default site file with some edits, beside an IVR tree (the IVR component's file, if present)."""
    text = (pbx_config_dir() / "site.toml").read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "site.toml"
    path.write_text(text)
    ivr = pbx_config_dir() / "ivr.toml"
    if ivr.exists():
        shutil.copy(ivr, tmp_path / "ivr.toml")
    else:
        (tmp_path / "ivr.toml").write_text("# stand-in until the IVR tree exists\n")
    return path


async def apply_site(lab: LabStatus, path: Path) -> ApplyReport:
    loaded, secrets, target = await asyncio.to_thread(lab_apply_target, lab, path)
    files = await asyncio.to_thread(render_site, loaded, secrets)
    return await apply_files(files, target, site_file=path, site_text=loaded.text, secrets=secrets,
                             new_ami=lab_ami_after(lab, secrets))


async def answered_112_call(lab: LabStatus, conn: AmiConnection, events: asyncio.Queue[EventItem],
                            number: str = "112") -> None:
    """A real call to ``number``: SIPp citizen -> emergency queue -> op1 (SIPp) answers."""
    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1", "MemberName": "op1"})
    try:
        async with SippOperator(lab.operators["op1"]["port"]):
            result = await place_call(lab.sip["host"], lab.sip["port"],
                                      CallerScript(number="081200007777", hold_ms=1000), number=number)
            assert result.ok, result.output
        await next_event(events, named("QueueCallerJoin", Queue="emergency"))
        await next_event(events, named("AgentConnect", MemberName="op1"))
    finally:
        await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})


async def test_apply_then_a_real_112_call(config_lab: LabStatus, lab_ami: LabAmi, tmp_path: Path) -> None:
    conn, events = lab_ami
    path = site_variant(tmp_path, ('numbers = ["112"]', 'numbers = ["112", "0431112"]'),
                        ('display_name = "Operator 1"', 'display_name = "Operator Satu"'),
                        ("ring_timeout_s = 8", "ring_timeout_s = 9"),
                        ("servicelevel_s = 10", "servicelevel_s = 12"))
    report = await apply_site(config_lab, path)
    assert report.outcome is ApplyOutcome.APPLIED, report
    assert report.changed == ["extensions.conf", "pjsip.conf", "queues.conf"]
    assert report.modules == ["res_pjsip.so", "pbx_config.so", "app_queue.so"]  # only what changed
    # Asterisk runs the new configuration (read back over AMI, not from our files).
    _, detail = await read_back(config_lab, "PJSIPShowEndpoint", {"Endpoint": "op1"})
    assert any(d.message.get("Callerid") == '"Operator Satu" <201>' for d in detail)
    _, queues = await conn.list_action("QueueStatus", {"Queue": "emergency"})
    assert any(q.message.get("ServiceLevel") == "12" for q in queues if q.name == "QueueParams")
    await answered_112_call(config_lab, conn, events)
    await answered_112_call(config_lab, conn, events, number="0431112")  # the new entry number

    again = await apply_site(config_lab, path)
    assert again.outcome is ApplyOutcome.UNCHANGED
    history = ApplyHistory(lab_dir(config_lab.instance) / "config")
    records = history.records()
    assert [r.outcome for r in records[-2:]] == ["applied", "unchanged"]
    assert records[-2].diff_sha256 == report.diff_sha256
    assert records[-2].who
    assert report.version in history.versions()


async def test_rejected_change_is_rolled_back_and_calls_still_work(
        config_lab: LabStatus, lab_ami: LabAmi, tmp_path: Path) -> None:
    conn, events = lab_ami
    before = (Path(config_lab.config_dir) / "pjsip.conf").read_bytes()
    # An option PJSIP does not know passes our checks (pjsip_options are passed as written)...
    bad_option = 'display_name = "Operator Dua"\npjsip_options = { no_such_option = "yes" }'
    path = site_variant(tmp_path, ('display_name = "Operator 2"', bad_option))
    report = await apply_site(config_lab, path)
    # ...Asterisk refuses op2's new definition; verification sees it and restores the previous files.
    assert report.outcome is ApplyOutcome.ROLLED_BACK, report
    assert any("op2" in p for p in report.problems), report.problems
    assert report.rollback_problems == []
    assert (Path(config_lab.config_dir) / "pjsip.conf").read_bytes() == before
    _, detail = await read_back(config_lab, "PJSIPShowEndpoint", {"Endpoint": "op2"})
    assert not any("Dua" in (d.message.get("Callerid") or "") for d in detail)
    assert ApplyHistory(lab_dir(config_lab.instance) / "config").records()[-1].outcome == "rolled_back"
    await answered_112_call(config_lab, conn, events)


async def config_cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow.cli", "config", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, cwd=REPO)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_option_asterisk_refuses_on_an_existing_endpoint_is_rolled_back(
        config_lab: LabStatus, lab_ami: LabAmi, tmp_path: Path) -> None:
    """Issue 15: a misspelt option was "applied and verified" while Asterisk kept op7's old definition
    (AMI shows the endpoint, with the same caller id); only Asterisk's log said so."""
    (tmp_path / "reset").mkdir()
    assert (await apply_site(config_lab, site_variant(tmp_path / "reset"))).ok  # only the option differs
    before = (Path(config_lab.config_dir) / "pjsip.conf").read_bytes()
    path = site_variant(tmp_path, ('display_name = "Operator 2"',
                                   'display_name = "Operator 2"\npjsip_options = { direct_meda = "no" }'))
    code, out = await config_cli("apply", str(path), "--lab", config_lab.instance)
    assert code == 2, out
    assert "Asterisk refused endpoint op2 (option direct_meda); it keeps running its previous" in out
    assert "config_options.c: Could not find option suitable for category 'op2' named 'direct_meda'" in out
    assert "Retaining existing configuration for object of type 'endpoint' with id 'op2'" in out
    assert "previous configuration was restored" in out
    assert (Path(config_lab.config_dir) / "pjsip.conf").read_bytes() == before
    assert ApplyHistory(lab_dir(config_lab.instance) / "config").records()[-1].outcome == "rolled_back"
    _, detail = await read_back(config_lab, "PJSIPShowEndpoint", {"Endpoint": "op2"})
    assert any(d.message.get("Callerid") == '"Operator 2" <202>' for d in detail)


async def test_intruder_section_injected_by_a_value_is_refused_and_nothing_changes(
        config_lab: LabStatus, lab_ami: LabAmi, tmp_path: Path) -> None:
    """Issue 17 item 4: a line break in a pjsip_options value added an [intruder] endpoint without auth."""
    etc = Path(config_lab.config_dir)
    before = {p.name: p.read_bytes() for p in sorted(etc.glob("*.conf"))}
    records = len(ApplyHistory(lab_dir(config_lab.instance) / "config").records())
    intruder = "no\\n\\n[intruder]\\ntype = endpoint\\ncontext = from-operators\\nallow = ulaw"
    option = f'pjsip_options = {{ direct_media = "{intruder}" }}'
    path = site_variant(tmp_path, ('display_name = "Operator 2"', f'display_name = "Operator 2"\n{option}'))
    code, out = await config_cli("apply", str(path), "--lab", config_lab.instance)
    assert code == 1, out
    assert "`operators[1].pjsip_options.direct_media` contains a line break" in out
    assert "nothing was changed" in out
    assert {p.name: p.read_bytes() for p in sorted(etc.glob("*.conf"))} == before
    assert len(ApplyHistory(lab_dir(config_lab.instance) / "config").records()) == records
    _, items = await read_back(config_lab, "PJSIPShowEndpoints")
    names = {i.message.get("ObjectName") for i in items if i.message.get("Event") == "EndpointList"}
    assert "op2" in names
    assert "intruder" not in names


async def test_semicolon_in_a_value_reaches_asterisk_whole(config_lab: LabStatus, lab_ami: LabAmi,
                                                           tmp_path: Path) -> None:
    """`;` is written `\\;`: Asterisk reads the value whole (unescaped, it kept "Ab" of a secret "Ab;...")."""
    path = site_variant(tmp_path, ('display_name = "Operator 3"', 'display_name = "Operator; Tiga"\n'
                                   'pjsip_options = { set_var = "SIAGA_PROBE=Ab;cd;--x" }'))
    report = await apply_site(config_lab, path)
    assert report.outcome is ApplyOutcome.APPLIED, report
    _, detail = await read_back(config_lab, "PJSIPShowEndpoint", {"Endpoint": "op3"})
    shown = next(d.message for d in detail if d.message.get("Event") == "EndpointDetail")
    assert (shown.get("SetVar"), shown.get("Callerid")) == ("SIAGA_PROBE=Ab;cd;--x", '"Operator; Tiga" <203>')


async def test_call_in_progress_survives_an_apply(
        config_lab: LabStatus, lab_ami: LabAmi, tmp_path: Path) -> None:
    conn, events = lab_ami
    path = site_variant(tmp_path, ('display_name = "Operator 3"', 'display_name = "Operator Tiga"'),
                        ("retry_s = 2", "retry_s = 3"), ('numbers = ["112"]', 'numbers = ["112", "0431113"]'))
    await conn.action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1", "MemberName": "op1"})
    try:
        async with SippOperator(config_lab.operators["op1"]["port"]):
            call = asyncio.create_task(place_call(config_lab.sip["host"], config_lab.sip["port"],
                                                  CallerScript(number="081200008888", hold_ms=8000)))
            connect = await next_event(events, named("AgentConnect", MemberName="op1"))
            linkedid = connect.message.get("Linkedid")
            report = await apply_site(config_lab, path)
            assert report.outcome is ApplyOutcome.APPLIED, report
            assert set(report.modules) == {"res_pjsip.so", "pbx_config.so", "app_queue.so"}
            # The call is still up after the reloads: its channels are listed, and the caller (SIPp)
            # completes its script, hanging up itself after 8 s (a BYE from Asterisk would fail it).
            _, items = await conn.list_action("CoreShowChannels")
            assert any(i.message.get("Linkedid") == linkedid for i in items
                       if i.message.get("Event") == "CoreShowChannel")
            result = await call
            assert result.ok, result.output
    finally:
        await conn.action("QueueRemove", {"Queue": "emergency", "Interface": "PJSIP/op1"})


async def test_cli_apply_diff_and_history(config_lab: LabStatus, tmp_path: Path) -> None:
    path = site_variant(tmp_path, ('display_name = "Operator 4"', 'display_name = "Operator Empat"'))

    async def cli(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callflow.cli", "config", *args, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, cwd=REPO)
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode()

    code, diff = await cli("diff", str(path), "--lab", config_lab.instance)
    assert code == 0
    assert '+callerid = "Operator Empat" <204>' in diff
    for value in load_secrets(Path(config_lab.secrets_file)).values():
        assert value not in diff
    code, out = await cli("apply", str(path), "--lab", config_lab.instance)
    assert code == 0, out
    assert "applied and verified" in out
    code, out = await cli("diff", str(path), "--lab", config_lab.instance)
    assert "no changes" in out
    code, out = await cli("history", "--lab", config_lab.instance)
    assert code == 0
    assert "applied" in out
    broken = site_variant(tmp_path, ('operators = ["op1", "op2", "op3", "op4", "op5", "op6"]',
                                     'operators = ["op1", "op9"]'))
    code, out = await cli("apply", str(broken), "--lab", config_lab.instance)
    assert code == 1
    assert f"{broken}:" in out
    assert "unknown operator op9" in out


async def test_production_apply_with_etc_and_a_manager_change(config_lab: LabStatus, tmp_path: Path) -> None:
    """The production path (`--etc`, AMI and secrets from the site file and the environment, no lab
    overrides), including a manager.conf change: the AMI itself is reloaded and a fresh login verifies."""
    (tmp_path / "reset").mkdir()
    reset = await apply_site(config_lab, site_variant(tmp_path / "reset"))  # undo earlier tests' changes
    assert reset.ok, reset
    ports, inner = config_lab.ports(), config_lab.instance_dir_in_root
    edits = [("port = 5038", f"port = {ports.ami}"), ("port = 5060", f"port = {ports.sip}"),
             ("port = 4573", f"port = {ports.agi}"), ("rtp_start = 10000", f"rtp_start = {ports.rtp_start}"),
             ("rtp_end = 20000", f"rtp_end = {ports.rtp_end}"),
             ('recordings = "/var/spool/asterisk/siaga112/recordings"', f'recordings = "{inner}/recordings"'),
             ('sounds = "/var/lib/asterisk/siaga112/sounds"', f'sounds = "{inner}/sounds"'),
             ('moh = "/var/lib/asterisk/siaga112/moh"', f'moh = "{inner}/moh"')]
    edits += [(f"127.0.0.1:{5060 + i}", f"127.0.0.1:{ports.sip + i}") for i in range(1, 5)]
    edits += [("sip:127.0.0.1:5069", f"sip:127.0.0.1:{ports.callback_trunk}")]
    # the lab's AMI TLS listener (certificate made at `lab up`) and its ingress network (127.0.0.1 only)
    edits += [("tls = false", f'tls = true\ntls_port = {ports.ami_tls}\n'
                              f'tls_cert_file = "{inner}/keys/ami-cert.pem"\n'
                              f'tls_key_file = "{inner}/keys/ami-key.pem"'),
              ('ingress_networks = ["127.0.0.0/8"]', 'ingress_networks = ["127.0.0.1/32"]')]
    same = site_variant(tmp_path, *edits)
    lab_secrets = load_secrets(Path(config_lab.secrets_file))
    env = {**os.environ, "SIAGA112_AMI_SECRET": lab_secrets["ami"],
           "SIAGA112_AMI_APPLY_SECRET": lab_secrets["ami_apply"],
           **{f"SIAGA112_SECRET_OP{i}": lab_secrets[f"op{i}"] for i in range(1, 7)}}
    state = tmp_path / "state"
    messages_log = str(Path(config_lab.log_dir) / "messages.log")

    async def cli(*args: str, asterisk_log: str = messages_log) -> tuple[int, str]:
        log = ["--asterisk-log", asterisk_log] if args[0] == "apply" else []
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callflow.cli", "config", *args, "--etc", config_lab.config_dir,
            "--state-dir", str(state), *log, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=REPO, env=env)
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode()

    # Without Asterisk's log an apply cannot see what Asterisk refuses: refused before anything changes.
    code, out = await cli("apply", str(same), asterisk_log=str(tmp_path / "unreadable.log"))
    assert code == 2  # an environment error (README, exit codes)
    assert f"cannot read Asterisk's log {tmp_path / 'unreadable.log'}" in out
    # The site file written with the lab's values renders exactly what the lab runs.
    code, out = await cli("diff", str(same))
    assert (code, out.strip().startswith("no changes")) == (0, True), out
    changed = site_variant(tmp_path, *edits,
                           ('permit = ["127.0.0.1/32"]', 'permit = ["127.0.0.1/32", "127.0.0.2/32"]'),
                           ('display_name = "Operator 3"', 'display_name = "Operator Tiga"'))
    code, out = await cli("apply", str(changed))
    assert code == 0, out
    assert "reloaded: res_pjsip.so, manager" in out
    assert "applied and verified" in out
    assert "permit = 127.0.0.2/255.255.255.255" in (Path(config_lab.config_dir) / "manager.conf").read_text()
    assert [r.outcome for r in ApplyHistory(state).records()] == ["applied"]
