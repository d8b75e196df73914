"""`config check` on broken site files: every problem found, each at its line, with a hint.

Each file in tests/unit/siteconfig/broken/ says what it must produce in ``# expect: LINE: text`` lines
at its top; the test asserts exactly those problems (no more, no fewer).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from callflow.cli import main
from callflow.commands.config import EXIT_PROBLEMS
from callflow.siteconfig import (
    CheckContext,
    SiteConfigError,
    check_site,
    load_site,
    pbx_config_dir,
    register_check,
)
from callflow.siteconfig._checks import _CHECKS

HERE = Path(__file__).parent / "siteconfig"
CASES = sorted((HERE / "broken").glob("*.toml"))
_EXPECT = re.compile(r"^# expect: (\d+): (.+)$", re.MULTILINE)
GOOD_SECRET = "Zq7-good-secret-4Yp2xW9"


@pytest.fixture
def site_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory like an admin's: secret files (good, short, world-readable) and an IVR tree."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name, value, mode in (("good", GOOD_SECRET, 0o600), ("short", "abc123", 0o600),
                              ("open", GOOD_SECRET, 0o644)):
        (secrets / name).write_text(value + "\n")
        os.chmod(secrets / name, mode)
    (tmp_path / "ivr.toml").write_text((pbx_config_dir() / "ivr.toml").read_text())  # a real, valid tree
    monkeypatch.setenv("SIAGA_TEST_SECRET", GOOD_SECRET)
    monkeypatch.setenv("SIAGA_TEST_WEAK", "aaaaaaaaaaaaaaaaaaaaaaaa")
    monkeypatch.delenv("SIAGA_TEST_UNSET", raising=False)
    return tmp_path


def problems_of(path: Path) -> list[tuple[int, str]]:
    try:
        loaded = load_site(path)
    except SiteConfigError as exc:
        return [(p.line, p.message) for p in exc.problems]
    return [(p.line, p.message) for p in check_site(loaded, CheckContext())]


def test_valid_site_has_no_problems(site_dir: Path) -> None:
    target = site_dir / "site.toml"
    shutil.copy(HERE / "valid.toml", target)
    assert problems_of(target) == []


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_broken_site_file(case: Path, site_dir: Path) -> None:
    target = site_dir / "site.toml"
    shutil.copy(case, target)
    expected = [(int(line), text) for line, text in _EXPECT.findall(case.read_text())]
    assert expected, f"{case.name} has no `# expect:` lines"
    found = problems_of(target)
    assert len(found) == len(expected), f"{case.name}: expected {expected}, found {found}"
    for (want_line, want_text), (line, message) in zip(expected, found, strict=True):
        assert (line, True) == (want_line, want_text in message), (case.name, found)


def test_every_problem_has_a_hint_and_file_line(site_dir: Path) -> None:
    for case in CASES:
        target = site_dir / "site.toml"
        shutil.copy(case, target)
        try:
            problems = check_site(load_site(target), CheckContext())
        except SiteConfigError as exc:
            problems = exc.problems
        for problem in problems:
            assert problem.hint, (case.name, problem)
            assert str(problem).startswith(f"{target}:{problem.line}: "), problem


def test_check_command_exit_code_and_output(site_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = site_dir / "site.toml"
    shutil.copy(HERE / "broken" / "unknown_operator_in_queue.toml", target)
    assert main(["config", "check", str(target)]) == EXIT_PROBLEMS
    err = capsys.readouterr().err
    assert f"{target}:" in err
    assert "unknown operator op9" in err
    assert "hint:" in err
    shutil.copy(HERE / "valid.toml", target)
    assert main(["config", "check", str(target)]) == 0
    assert "OK" in capsys.readouterr().out


def test_secrets_never_in_check_output(site_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = site_dir / "site.toml"
    shutil.copy(HERE / "broken" / "env_secret_weak.toml", target)
    main(["config", "check", str(target)])
    out = capsys.readouterr()
    assert "aaaaaaaaaaaaaaaaaaaaaaaa" not in out.err + out.out
    assert "SIAGA_TEST_WEAK" in out.err


def test_plugged_in_check_runs(site_dir: Path) -> None:
    """Other components (the IVR tree loader) add their rules to the pipeline."""
    target = site_dir / "site.toml"
    shutil.copy(HERE / "valid.toml", target)

    def ivr_rules(loaded, ctx):  # type: ignore[no-untyped-def]
        yield loaded.problem(("ivr", "tree"), "node root: no-input does not lead to the emergency queue",
                             "set its no_input action to emergency")

    register_check(ivr_rules)
    try:
        problems = check_site(load_site(target), CheckContext())
    finally:
        _CHECKS.remove(ivr_rules)
    assert [(p.line, p.message) for p in problems] == [
        (load_site(target).positions.line(("ivr", "tree")),
         "node root: no-input does not lead to the emergency queue")]


@pytest.mark.parametrize("case", ["ring_timeout_bool", "ring_timeout_string"])
def test_apply_refuses_a_coerced_number_before_touching_asterisk(
        case: str, site_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Lax validation once rendered `ring_timeout_s = true` as `timeout = 1` (a one-second ring)."""
    target = site_dir / "site.toml"
    shutil.copy(HERE / "broken" / f"{case}.toml", target)
    etc = site_dir / "etc"
    code = main(["config", "apply", str(target), "--etc", str(etc), "--state-dir", str(site_dir / "state")])
    assert code == EXIT_PROBLEMS
    assert f"{target}:26: `queues.emergency.ring_timeout_s`: expected an integer" in capsys.readouterr().err
    assert not etc.exists()
