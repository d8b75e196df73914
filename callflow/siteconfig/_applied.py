"""The site a target runs: the site file and its IVR tree as last applied, kept in the state directory
(``<state dir>/applied/site.toml`` and the tree beside it).

``config apply`` (and ``lab up`` with an explicit site file) store them here; the engine, ``operator``,
``ivr prompts``, ``lab up`` and ``config diff`` read them from here, so what the admin applied is what the
whole centre runs. Each file is replaced atomically (write, fsync, rename), the tree before the site file:
a reader that sees the new site file also sees its tree.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from callflow.siteconfig._load import LoadedSite

DEFAULT_STATE_DIR = Path("/var/lib/siaga112/config")  # production: `config apply --etc` keeps it here
APPLIED_DIR = "applied"
SITE_NAME = "site.toml"
TREE_NAME = "ivr.toml"
_TREE_LINE = re.compile(r"^(\s*tree\s*=\s*)(\"[^\"]*\"|'[^']*')(.*)$")


def applied_site_path(state_dir: Path) -> Path:
    """Where the last applied site file of ``state_dir`` is (it may not exist yet)."""
    return state_dir / APPLIED_DIR / SITE_NAME


def tree_path(loaded: LoadedSite) -> Path | None:
    """The IVR tree a site names (None when its IVR is off)."""
    return loaded.resolve(loaded.site.ivr.tree) if loaded.site.ivr.enabled else None


def tree_text(loaded: LoadedSite) -> str | None:
    """The text of the site's IVR tree, None when the IVR is off or the tree cannot be read (the site's
    own checks report that)."""
    path = tree_path(loaded)
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


@dataclass(frozen=True)
class AppliedTexts:
    """The site file's text as stored (its ``tree`` pointing at the stored tree) and the tree's text."""

    site: str
    tree: str | None


def applied_texts(loaded: LoadedSite) -> AppliedTexts:
    """What :func:`store_applied` writes: the tree is stored as ``ivr.toml`` beside the site file, so the
    site file's ``tree = ...`` line is rewritten to name it when it named another path."""
    tree = tree_text(loaded)
    text = loaded.text
    if tree is not None and loaded.site.ivr.tree != Path(TREE_NAME):
        line = loaded.positions.line(("ivr", "tree"))
        lines = text.splitlines(keepends=True)
        if 1 <= line <= len(lines) and (match := _TREE_LINE.match(lines[line - 1].rstrip("\n"))):
            lines[line - 1] = f'{match.group(1)}"{TREE_NAME}"{match.group(3)}\n'
            text = "".join(lines)
    return AppliedTexts(site=text, tree=tree)


def store_applied(state_dir: Path, loaded: LoadedSite) -> Path:
    """Keep ``loaded`` (and its tree) as the site ``state_dir`` runs. Returns the stored site file."""
    texts = applied_texts(loaded)
    directory = state_dir / APPLIED_DIR
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state_dir, 0o700)
    os.chmod(directory, 0o700)
    if texts.tree is not None:
        _write_atomic(directory / TREE_NAME, texts.tree)
    _write_atomic(directory / SITE_NAME, texts.site)
    return directory / SITE_NAME


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
