"""The site last applied (file and IVR tree) is kept, diffed and followed by a running engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callflow.ami import AmiEndpoint
from callflow.policies import queue_policy
from callflow.site_watch import SiteSource, SiteWatcher
from callflow.siteconfig import LoadedSite, applied_site_path, load_site, pbx_config_dir, store_applied
from callflow.siteconfig._apply import ApplyOutcome, ApplyTarget, apply_files
from callflow.siteconfig._history import ApplyHistory
from queues import OperatorManager

SHIPPED = pbx_config_dir() / "site.toml"


def _site(directory: Path, *, operator: str = "op6", prompt_words: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "site.toml").write_text(SHIPPED.read_text().replace('"op6"', f'"{operator}"'))
    tree = (pbx_config_dir() / "ivr.toml").read_text()
    if prompt_words is not None:
        first = tree.index('text = "') + len('text = "')
        tree = tree[:first] + prompt_words + tree[tree.index('"', first):]
    (directory / "ivr.toml").write_text(tree)
    return directory / "site.toml"


def _apply(state: Path, etc: Path, site: Path) -> tuple[ApplyOutcome, list[str], int | None]:
    loaded = load_site(site)
    target = ApplyTarget(etc_dir=etc, state_dir=state, ami=AmiEndpoint("127.0.0.1", 1, "u", "never used"))
    report = asyncio.run(apply_files({"x.conf": "same\n"}, target, site_file=site, site_text=loaded.text,
                                     secrets={}, site=loaded))
    return report.outcome, report.changed, report.version


def test_a_changed_tree_alone_is_applied_kept_and_in_the_history(tmp_path: Path) -> None:
    etc, state = tmp_path / "etc", tmp_path / "state"
    etc.mkdir()
    (etc / "x.conf").write_text("same\n")  # Asterisk's files unchanged: no AMI needed
    first = _site(tmp_path / "v1")
    assert _apply(state, etc, first) == (ApplyOutcome.APPLIED, ["ivr.toml"], 1)
    assert applied_site_path(state).read_text() == first.read_text()
    assert _apply(state, etc, first)[0] is ApplyOutcome.UNCHANGED

    second = _site(tmp_path / "v2", prompt_words="Selamat datang di layanan darurat yang baru")
    assert _apply(state, etc, second) == (ApplyOutcome.APPLIED, ["ivr.toml"], 2)
    kept = applied_site_path(state).with_name("ivr.toml").read_text()
    assert "yang baru" in kept
    assert "yang baru" in (state / "versions" / "000002" / "ivr.toml").read_text()
    records = ApplyHistory(state).records()
    assert [(r.outcome, r.changed) for r in records] == [
        ("applied", ["ivr.toml"]), ("unchanged", []), ("applied", ["ivr.toml"])]


def test_config_diff_shows_the_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from callflow.cli import main  # noqa: PLC0415

    state = tmp_path / "state"
    store_applied(state, load_site(_site(tmp_path / "v1")))
    changed = _site(tmp_path / "v2", prompt_words="Kata baru")
    for name in ("SIAGA112_AMI_SECRET", *(f"SIAGA112_SECRET_OP{i}" for i in range(1, 7))):
        monkeypatch.setenv(name, "Kx7-pQ2m_Zr9vLt4Wb8nYc3s")
    etc = tmp_path / "etc"
    etc.mkdir()
    assert main(["config", "diff", str(changed), "--etc", str(etc), "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert "+++ new/ivr.toml" in out
    assert "Kata baru" in out


def test_the_engine_follows_an_applied_site(tmp_path: Path) -> None:
    state = tmp_path / "state"
    source = SiteSource([applied_site_path(state), SHIPPED])
    manager = OperatorManager(database=tmp_path / "db", policy=queue_policy(load_site(SHIPPED).site))
    seen: list[LoadedSite] = []

    def learn(loaded: LoadedSite) -> None:
        seen.append(loaded)
        manager.set_policy(queue_policy(loaded.site))

    watcher = SiteWatcher(source, [learn])
    assert not watcher.check()  # nothing changed yet
    assert not manager.table.known("op7")
    store_applied(state, load_site(_site(tmp_path / "v1", operator="op7")))
    assert watcher.check()
    assert seen[-1].path == applied_site_path(state)
    assert manager.table.known("op7")
    assert manager.policy.memberships("op7")  # `operator login op7` against the engine's policy
    assert not watcher.check()  # once per change


def test_a_broken_applied_site_is_refused_and_the_old_one_kept(tmp_path: Path) -> None:
    site = _site(tmp_path / "v1")
    source = SiteSource([site])
    calls: list[LoadedSite] = []
    watcher = SiteWatcher(source, [calls.append])
    site.write_text(site.read_text() + "\nnot toml at all [[[\n")
    assert not watcher.check()
    assert calls == []
