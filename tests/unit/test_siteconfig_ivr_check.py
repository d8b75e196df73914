"""`siaga112 config check` applies the IVR loader's safety rules to the tree the site file names."""

from __future__ import annotations

import shutil
from pathlib import Path

from callflow.siteconfig import check_site, load_site, pbx_config_dir, registered_checks
from ivr import site_check  # registers the check

REPO_SITE = pbx_config_dir() / "site.toml"
REPO_TREE = pbx_config_dir() / "ivr.toml"


def _site_with_tree(tmp_path: Path, tree_text: str) -> Path:
    shutil.copy(REPO_SITE, tmp_path / "site.toml")
    (tmp_path / "ivr.toml").write_text(tree_text)
    return tmp_path / "site.toml"


def ivr_problems(site: Path) -> list[str]:
    return [str(p) for p in check_site(load_site(site)) if "IVR tree" in p.message]


def test_the_shipped_tree_passes(tmp_path: Path) -> None:
    assert site_check.check_ivr_tree in registered_checks()
    assert ivr_problems(_site_with_tree(tmp_path, REPO_TREE.read_text())) == []


def test_a_tree_without_emergency_on_the_first_menu_is_refused_at_its_line(tmp_path: Path) -> None:
    text = REPO_TREE.read_text()
    broken = text.replace('"1" = { action = "emergency" }', '"1" = { goto = "complaints" }')
    assert broken != text
    problems = ivr_problems(_site_with_tree(tmp_path, broken))
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'ivr.toml'}:")
    assert "[emergency-first-menu]" in problems[0]
    assert "siaga112 ivr check" in problems[0]


def test_a_category_the_site_does_not_know_is_reported(tmp_path: Path) -> None:
    site = _site_with_tree(tmp_path, REPO_TREE.read_text())
    text = site.read_text()
    # the site drops "garbage" from its non-emergency categories; the tree still offers it
    assert '"garbage"' in text
    site.write_text(text.replace(', "garbage"', "").replace('"garbage", ', ""))
    problems = ivr_problems(site)
    mentions = [p for p in problems if "'garbage'" in p]
    assert len(mentions) == 1, problems  # one problem for the mistake, naming every key that sends there
    assert "does not list as non-emergency" in mentions[0]
    assert "'complaints' key" in mentions[0]
    assert "'complaints_en' key" in mentions[0]
