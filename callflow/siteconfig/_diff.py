"""What an apply would change: a unified diff per file, secrets masked."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from callflow.siteconfig._render import body
from callflow.siteconfig._secrets import MASK, mask

_SECRET_LINE = re.compile(r"^(\s*(?:password|secret|md5_cred)\s*=\s*)(.*)$", re.IGNORECASE)


def mask_text(text: str, secrets: Mapping[str, str], previous: str | None = None) -> str:
    """Mask known secret values anywhere and the value of every secret-bearing option (old secrets the
    caller does not know included). With ``previous`` (the old text), a secret that changed is marked
    ``(changed)`` so the diff shows the change without showing either value."""
    before = _secret_values(previous) if previous is not None else None
    out = []
    section = ""
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            section = line.split("]", 1)[0]
        match = _SECRET_LINE.match(line.rstrip("\n"))
        if match and match.group(2):
            key = (section, match.group(1).strip())
            changed = before is not None and before.get(key) != match.group(2)
            end = "\n" if line.endswith("\n") else ""
            out.append(f"{match.group(1)}{MASK}{' (changed)' if changed else ''}{end}")
        else:
            out.append(mask(line, secrets))
    return "".join(out)


def _secret_values(text: str) -> dict[tuple[str, str], str]:
    values: dict[tuple[str, str], str] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line.split("]", 1)[0]
        elif match := _SECRET_LINE.match(line):
            values.setdefault((section, match.group(1).strip()), match.group(2))
    return values


def read_live(directory: Path, names: list[str]) -> dict[str, str | None]:
    """Current contents of ``names`` in ``directory`` (None where a file does not exist)."""
    out: dict[str, str | None] = {}
    for name in names:
        path = directory / name
        out[name] = path.read_text(encoding="utf-8") if path.is_file() else None
    return out


def changed_files(old: Mapping[str, str | None], new: Mapping[str, str]) -> list[str]:
    """Files whose effective content (header excluded) differs, or that do not exist yet."""
    return sorted(name for name, text in new.items()
                  if old.get(name) is None or body(old[name] or "") != body(text))


def unified_diff(old: Mapping[str, str | None], new: Mapping[str, str], secrets: Mapping[str, str]) -> str:
    parts: list[str] = []
    for name in sorted(new):
        previous = old.get(name) or ""
        before = mask_text(previous, secrets).splitlines(keepends=True)
        after = mask_text(new[name], secrets, previous).splitlines(keepends=True)
        parts.extend(difflib.unified_diff(before, after, f"applied/{name}", f"new/{name}"))
    return "".join(line if line.endswith("\n") else line + "\n" for line in parts)


def diff_hash(diff: str) -> str:
    return hashlib.sha256(diff.encode("utf-8")).hexdigest()
