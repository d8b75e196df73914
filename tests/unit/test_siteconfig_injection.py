"""Site-file values written into Asterisk's files (issue 17 item 4): a line break, a comment or a section
character in a value must never become configuration nobody wrote.

Each injection below once passed `config check` and was rendered as is (the `[intruder]` endpoint was
applied and verified on the lab, and an anonymous INVITE from it rang op1).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callflow.cli import main
from callflow.commands.config import EXIT_PROBLEMS
from callflow.siteconfig import (
    CheckContext,
    SiteConfigError,
    check_site,
    load_site,
    pbx_config_dir,
    render_site,
    resolve_secrets,
    site_schema,
)
from callflow.siteconfig._conf_text import ONE_LINE, Placement, conf_escape, value_problem
from callflow.siteconfig._diff import unified_diff
from callflow.siteconfig._expect import Expectation, uncommented

HERE = Path(__file__).parent / "siteconfig"
SECRET = "Zq7-good-secret-4Yp2xW9"
INTRUDER = "no\\n\\n[intruder]\\ntype = endpoint\\ncontext = from-operators\\nallow = ulaw"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "good").write_text("file-secret-0123456789abc\n")
    os.chmod(tmp_path / "secrets" / "good", 0o600)
    shutil.copy(pbx_config_dir() / "ivr.toml", tmp_path / "ivr.toml")
    monkeypatch.setenv("SIAGA_TEST_SECRET", SECRET)
    target = tmp_path / "site.toml"
    shutil.copy(HERE / "valid.toml", target)
    return target


def edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` by ``new`` in the site file; returns the line number where ``new`` starts."""
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return text[:text.index(old)].count("\n") + 1


def problems(path: Path) -> list[tuple[int, str, str]]:
    try:
        loaded = load_site(path)
    except SiteConfigError as exc:
        return [(p.line, p.message, p.hint) for p in exc.problems]
    return [(p.line, p.message, p.hint) for p in check_site(loaded, CheckContext())]


def test_render_refuses_a_value_that_bypassed_validation(site: Path) -> None:
    """Code that edits a loaded site (the lab's ports and paths, `model_copy` does not validate) cannot
    render an unchecked value either."""
    loaded = load_site(site)
    paths = loaded.site.paths.model_copy(update={"sounds": "/var/lib/x\n[intruder]"})
    bad = dataclasses.replace(loaded, site=loaded.site.model_copy(update={"paths": paths}))
    with pytest.raises(SiteConfigError) as caught:
        render_site(bad, resolve_secrets(loaded))
    assert "`paths.sounds` contains a line break (LF)" in str(caught.value)
    with pytest.raises(SiteConfigError) as caught:
        render_site(loaded, {**resolve_secrets(loaded), "op1": "Zq7-good-secret\n[intruder]"})
    assert "secret for op1 contains a line break (LF)" in str(caught.value)
    assert "intruder" not in str(caught.value)


def test_line_break_in_a_pjsip_option_value_is_refused(site: Path) -> None:
    line = edit(site, 'display_name = "Operator 2"',
                f'display_name = "Operator 2"\npjsip_options = {{ direct_media = "{INTRUDER}" }}') + 1
    found = problems(site)
    assert [(ln, msg.split(":")[0]) for ln, msg, _ in found] == [
        (line, "`operators[1].pjsip_options.direct_media` contains a line break (LF)")]
    assert "new line of pjsip.conf" in found[0][1]
    assert found[0][2]  # a hint
    schema = json.loads(site_schema())  # editors are told the same rule by the JSON Schema
    options = schema["$defs"]["Operator"]["properties"]["pjsip_options"]["patternProperties"]
    assert next(iter(options.values()))["pattern"] == ONE_LINE


def test_line_break_in_paths_sounds_is_refused(site: Path) -> None:
    line = edit(site, "[ami]", '[paths]\nsounds = "/var/lib/x\\n[intruder]\\ntype = endpoint"\n\n[ami]') + 1
    found = problems(site)
    assert [(ln, msg.split(":")[0]) for ln, msg, _ in found] == [
        (line, "`paths.sounds` contains a line break (LF)")]


@pytest.mark.parametrize("path", ["/var/lib/a,b", "/var/lib/a;b", "/var/lib/${X}", "/var/lib/$[1+1]",
                                  "/var/lib/a b", "/var/lib/a(b)", "relative/dir"])
def test_paths_are_plain_absolute_paths(site: Path, path: str) -> None:
    line = edit(site, "[ami]", f'[paths]\nmoh = "{path}"\n\n[ami]') + 1
    found = problems(site)
    assert len(found) == 1
    assert found[0][0] == line
    assert found[0][1].startswith("`paths.moh`")  # the model's pattern or the rendered-value rule


def test_pjsip_option_key_with_a_section_is_refused(site: Path) -> None:
    line = edit(site, 'display_name = "Operator 2"',
                'display_name = "Operator 2"\npjsip_options = { "x = 1\\n[intruder]" = "yes" }') + 1
    assert [ln for ln, _, _ in problems(site)] == [line]


def test_pjsip_options_cannot_replace_what_siaga112_writes(site: Path) -> None:
    line = edit(site, 'display_name = "Operator 2"',
                'display_name = "Operator 2"\npjsip_options = { auth = "nobody" }') + 1
    found = problems(site)
    assert [(ln, "sets `auth`" in msg) for ln, msg, _ in found] == [(line, True)]


def test_two_line_secret_file_is_refused_without_showing_it(site: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    secret_file = site.parent / "secrets" / "good"
    secret_file.write_text("first-line-0123456789\n[intruder]\ntype = endpoint\n")
    line = site.read_text().split("\n").index('secret_file = "secrets/good"') + 1
    found = problems(site)
    assert [(ln, msg.split(":")[0]) for ln, msg, _ in found] == [
        (line, f"secret for op2 (secret file {secret_file}) has more than one line")]
    assert main(["config", "check", str(site)]) == EXIT_PROBLEMS
    err = capsys.readouterr().err
    assert "first-line-0123456789" not in err
    assert "intruder" not in err


def test_environment_secret_with_a_line_break_names_the_variable(site: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIAGA_TEST_SECRET", "Zq7-good-secret\r\n[intruder]")
    found = problems(site)
    assert found
    for _, message, _ in found:
        assert "environment variable SIAGA_TEST_SECRET" in message
        assert "intruder" not in message


def test_semicolon_in_a_secret_is_escaped_and_read_back_whole(site: Path) -> None:
    """Unescaped, Asterisk read `password = Ab;...` as the secret "Ab" and a comment."""
    secret = "Ab;cd-0123456789-;--x"  # `;--` would even open a block comment
    loaded = load_site(site)
    files = render_site(loaded, resolve_secrets(loaded, {"op1": secret, "ami": SECRET + ";1"}))
    pjsip = files["pjsip.conf"]
    assert "password = Ab\\;cd-0123456789-\\;--x\n" in pjsip
    assert "secret = Zq7-good-secret-4Yp2xW9\\;1\n" in files["manager.conf"]
    line = next(ln for ln in pjsip.splitlines() if ln.startswith("password = Ab"))
    assert uncommented(line) == f"password = {secret}"
    diff = unified_diff({}, files, {"op1": secret})
    assert "Ab\\;cd" not in diff
    assert "Ab;cd" not in diff


def test_semicolons_in_display_name_contact_and_options_are_escaped(site: Path) -> None:
    edit(site, 'display_name = "Operator 2"', 'display_name = "Operator; Dua"\n'
         'pjsip_options = { outbound_proxy = "sip:proxy.example;lr" }')
    edit(site, 'contact = "sip:op2@127.0.0.1:5062"', 'contact = "sip:op2@127.0.0.1:5062;transport=udp"')
    assert problems(site) == []
    loaded = load_site(site)
    pjsip = render_site(loaded, resolve_secrets(loaded))["pjsip.conf"]
    assert 'callerid = "Operator\\; Dua" <202>\n' in pjsip
    assert "outbound_proxy = sip:proxy.example\\;lr\n" in pjsip
    assert "contact = sip:op2@127.0.0.1:5062\\;transport=udp\n" in pjsip
    # verification expects what Asterisk will read (unescaped)
    assert Expectation.from_files({"pjsip.conf": pjsip}).endpoints["op2"] == '"Operator; Dua" <202>'


def test_centre_name_with_a_line_break_is_refused(site: Path) -> None:
    line = edit(site, 'name = "Test centre"', 'name = "Test centre\\n[intruder]"')
    assert [(ln, msg.split(" contains")[0]) for ln, msg, _ in problems(site)] == [(line, "`centre.name`")]


def test_apply_refuses_the_intruder_before_writing_anything(site: Path) -> None:
    edit(site, 'display_name = "Operator 2"',
         f'display_name = "Operator 2"\npjsip_options = {{ direct_media = "{INTRUDER}" }}')
    etc = site.parent / "etc"
    code = main(["config", "apply", str(site), "--etc", str(etc), "--state-dir", str(site.parent / "state")])
    assert code == EXIT_PROBLEMS
    assert not etc.exists()


@given(st.text(st.characters(blacklist_categories=("Cc", "Zl", "Zp", "Cs"))))
def test_an_escaped_option_value_reads_back_exactly(value: str) -> None:
    assert value_problem(value, Placement.OPTION, "pjsip.conf") == ("", "")
    written = f"set_var = {conf_escape(value)}"
    assert "\n" not in written
    assert uncommented(written) == f"set_var = {value}"
