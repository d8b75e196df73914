"""Rendering the site file: golden files, determinism, headers, masking, schema, expectations, history.

Golden files: tests/unit/siteconfig/golden/ holds the rendering of valid.toml with the repository's
pbx-config/ templates. After an intended template change, regenerate them with
``SIAGA112_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_siteconfig_render.py`` and review
the diff.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from callflow.siteconfig import (
    HEADER_END,
    body,
    load_site,
    pbx_config_dir,
    render_site,
    resolve_secrets,
    site_schema,
    write_files,
)
from callflow.siteconfig._diff import changed_files, mask_text, unified_diff
from callflow.siteconfig._expect import Expectation
from callflow.siteconfig._history import ApplyHistory, ApplyRecord
from callflow.siteconfig._positions import Positions

HERE = Path(__file__).parent / "siteconfig"
GOLDEN = HERE / "golden"
SECRET = "Zq7-good-secret-4Yp2xW9"
FILE_SECRET = "file-secret-0123456789abc"


@pytest.fixture
def site_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "good").write_text(FILE_SECRET + "\n")
    os.chmod(tmp_path / "secrets" / "good", 0o600)
    (tmp_path / "ivr.toml").write_text((pbx_config_dir() / "ivr.toml").read_text())  # a real, valid tree
    monkeypatch.setenv("SIAGA_TEST_SECRET", SECRET)
    target = tmp_path / "site.toml"
    shutil.copy(HERE / "valid.toml", target)
    return target


def rendered(site_path: Path) -> dict[str, str]:
    loaded = load_site(site_path)
    return render_site(loaded, resolve_secrets(loaded))


def test_render_matches_golden_files(site_path: Path) -> None:
    files = rendered(site_path)
    if os.environ.get("SIAGA112_UPDATE_GOLDEN"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        GOLDEN.mkdir()
        for name, text in files.items():
            (GOLDEN / name).write_text(text)
    golden = {p.name: p.read_text() for p in sorted(GOLDEN.glob("*.conf"))}
    assert sorted(files) == sorted(golden), "template set changed: regenerate the golden files (see top)"
    for name, text in files.items():
        assert text == golden[name], f"{name} differs from its golden file: regenerate if intended (see top)"


def test_render_is_deterministic_and_written_bytes_match(site_path: Path, tmp_path: Path) -> None:
    first, second = rendered(site_path), rendered(site_path)
    assert first == second
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    write_files(first, out_a)
    write_files(second, out_b)
    for name in first:
        assert (out_a / name).read_bytes() == (out_b / name).read_bytes() == first[name].encode()
        assert (out_a / name).stat().st_mode & 0o777 == 0o600


def test_every_file_has_a_header_naming_its_sources(site_path: Path) -> None:
    for name, text in rendered(site_path).items():
        head = text.split(HEADER_END)[0]
        assert "site file site.toml" in head
        assert f"template pbx-config/{name}" in head
        assert "DO NOT EDIT BY HAND" in head


def test_site_values_reach_the_files(site_path: Path) -> None:
    files = rendered(site_path)
    ext = files["extensions.conf"]
    entry = "1,Gosub(siaga-untrusted-caller,s,1)\n same => n,Set(__SIAGA_DIALED=${EXTEN})"
    assert f"exten => 0431112,{entry}" in ext
    assert "exten => 202,1,Dial(PJSIP/op2,30)" in ext
    assert f"exten => 112,{entry}" in ext
    assert "${STRFTIME(,UTC,%s.%3q)}" in ext  # Asterisk's own syntax untouched
    assert f"password = {SECRET}" in files["pjsip.conf"]
    assert f"password = {FILE_SECRET}" in files["pjsip.conf"]
    assert "contact = sip:op2@127.0.0.1:5062" in files["pjsip.conf"]
    assert "timeout = 8\n" in files["queues.conf"].split("[nonemergency]")[0]
    assert "bindaddr = 127.0.0.1" in files["manager.conf"]
    assert "permit = 127.0.0.1/255.255.255.255" in files["manager.conf"]
    assert "{{" not in "".join(files.values())


def test_secure_defaults_in_rendering(site_path: Path) -> None:
    files = rendered(site_path)
    manager = body(files["manager.conf"])
    assert "deny = 0.0.0.0/0.0.0.0" in manager
    write = next(line for line in manager.splitlines() if line.startswith("write ="))
    assert "command" not in write
    assert "config" not in write
    pjsip = body(files["pjsip.conf"])
    assert "anonymous" not in pjsip.lower().replace("; anonymous calls reach only the 112 ingress", "")
    for op in ("op1", "op2"):
        assert f"[{op}](operator-endpoint)\nauth = {op}\n" in pjsip
    assert "security.log => security" in files["logger.conf"]
    assert "load => res_security_log.so" in files["modules.conf"]
    assert "res_pjsip_endpoint_identifier_anonymous" not in files["modules.conf"]


def test_diff_masks_secrets_known_and_unknown(site_path: Path) -> None:
    new = rendered(site_path)
    old: dict[str, str | None] = dict(new)
    old["pjsip.conf"] = new["pjsip.conf"].replace(SECRET, "an-old-secret-nobody-knows").replace(
        'callerid = "Operator 1"', 'callerid = "Operator One"')
    diff = unified_diff(old, new, {"op1": SECRET})
    assert "Operator One" in diff
    assert "Operator 1" in diff
    assert SECRET not in diff
    assert "an-old-secret-nobody-knows" not in diff
    assert "+password = ******** (changed)" in diff
    assert "-password = ********" in diff
    assert "password = ******** (changed)" not in unified_diff(new, new, {})
    assert changed_files(old, new) == ["pjsip.conf"]
    assert mask_text("secret = abc", {}) == "secret = ********"


def test_header_only_change_is_not_a_change(site_path: Path) -> None:
    new = rendered(site_path)
    old: dict[str, str | None] = {n: t.replace("site file site.toml", "site file other.toml")
                                  for n, t in new.items()}
    assert changed_files(old, new) == []
    assert changed_files({**old, "rtp.conf": None}, new) == ["rtp.conf"]


def test_expectation_read_from_rendered_files(site_path: Path) -> None:
    expect = Expectation.from_files(rendered(site_path))
    assert expect.endpoints == {"citizen-ingress": "", "citizen-callback": "", "op1": '"Operator 1" <201>',
                                "op2": '"Operator 2" <202>'}
    assert expect.queues["emergency"].weight == "100"
    assert expect.queues["nonemergency"].servicelevel == "20"
    assert {"from-citizens", "siaga-entry", "siaga-queue-emergency", "siaga-callback"} <= set(expect.contexts)
    assert expect.extensions == {"from-citizens": ["112", "0431112"], "from-operators": ["201", "202", "112"]}


def test_schema_file_is_up_to_date() -> None:
    exported = (pbx_config_dir() / "site.schema.json").read_text()
    assert exported == site_schema(), "run `siaga112 config schema --out pbx-config/site.schema.json`"


def test_default_site_file_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    from callflow.siteconfig import CheckContext, check_site  # noqa: PLC0415

    path = pbx_config_dir() / "site.toml"
    loaded = load_site(path)
    overrides = {"ami": SECRET, **{op.name: SECRET for op in loaded.site.operators}}
    problems = check_site(loaded, CheckContext(secret_overrides=overrides))
    # The IVR tree is the IVR component's file: until it exists the only problem is its absence.
    expected = [] if (path.parent / "ivr.toml").exists() else ["the IVR tree"]
    assert [p.message.split(" pbx-config")[0].split(" /")[0] for p in problems] == expected


def test_positions_scanner_on_tricky_toml() -> None:
    text = '\n'.join([
        '[a]',                         # 1
        'x = 1  # comment',            # 2
        'multi = [',                   # 3
        '  "fake = 1",',               # 4
        '  { y = 2 },',                # 5
        ']',                           # 6
        'doc = """',                   # 7
        'z = 3',                       # 8
        '"""',                         # 9
        'dotted.key = 4',              # 10
        '[[arr]]',                     # 11
        'n = 1',                       # 12
        '[[arr]]',                     # 13
        'n = 2',                       # 14
        '[arr.sub]',                   # 15
        '"quoted key" = 5',            # 16
    ])
    pos = Positions(text)
    assert pos.line(("a", "x")) == 2
    assert pos.line(("a", "multi", 1)) == 3
    for hidden in (("a", "fake"), ("a", "y"), ("a", "z")):
        assert not pos.has(hidden)
    assert pos.line(("a", "dotted", "key")) == 10
    assert pos.line(("arr", 0, "n")) == 12
    assert pos.line(("arr", 1, "n")) == 14
    assert pos.line(("arr", 1, "sub")) == 15
    assert pos.line(("arr", 1, "sub", "quoted key")) == 16
    assert pos.line(("nowhere",)) == 1


def test_history_keeps_last_n_versions(tmp_path: Path) -> None:
    history = ApplyHistory(tmp_path / "state", keep=3)
    numbers = [history.save_version({"x.conf": f"v{i}"}, "site") for i in range(5)]
    assert numbers == [1, 2, 3, 4, 5]
    assert history.versions() == [3, 4, 5]
    assert (tmp_path / "state" / "versions" / "000005" / "x.conf").read_text() == "v4"
    history.record(ApplyRecord(at="2026-11-22T08:00:00.000001+00:00", who="admin", site_file="s.toml",
                               diff_sha256="ab", outcome="applied", version=5))
    assert [r.outcome for r in history.records()] == ["applied"]
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700


def test_render_and_schema_commands(site_path: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from callflow.cli import main  # noqa: PLC0415

    out = tmp_path / "out"
    assert main(["config", "render", str(site_path), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.conf")) == sorted(p.name for p in GOLDEN.glob("*.conf"))
    assert (out / "pjsip.conf").read_text() == (GOLDEN / "pjsip.conf").read_text()
    assert SECRET not in capsys.readouterr().out
    assert main(["config", "schema"]) == 0
    assert capsys.readouterr().out == site_schema()


def test_only_affected_modules_are_reloaded() -> None:
    from callflow.siteconfig._apply import _reload_modules  # noqa: PLC0415

    modules, restart = _reload_modules(["manager.conf", "queues.conf", "pjsip.conf", "modules.conf"])
    assert modules == ["res_pjsip.so", "app_queue.so", "manager"]  # endpoints first, the AMI itself last
    assert restart == ["modules.conf"]
    assert _reload_modules(["extensions.conf"]) == (["pbx_config.so"], [])
