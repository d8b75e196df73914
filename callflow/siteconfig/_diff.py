"""What an apply would change: a unified diff per file, secrets masked."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from callflow.siteconfig._render import body
from callflow.siteconfig._secrets import MASK, mask

_SECRET_LINE = re.compile(r"^(\s*(?:password|secret|md5_cred|tlsprivatekey)\s*=\s*)(.*)$",
                          re.IGNORECASE | re.MULTILINE)


def mask_text(text: str, secrets: Mapping[str, str]) -> str:
    """Mask known secret values anywhere and the value of every secret-bearing option (old secrets the
    caller does not know included)."""
    masked = mask(text, secrets)
    return _SECRET_LINE.sub(lambda m: f"{m.group(1)}{MASK}" if m.group(2) else m.group(0), masked)


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
        before = mask_text(old.get(name) or "", secrets).splitlines(keepends=True)
        after = mask_text(new[name], secrets).splitlines(keepends=True)
        parts.extend(difflib.unified_diff(before, after, f"applied/{name}", f"new/{name}"))
    return "".join(line if line.endswith("\n") else line + "\n" for line in parts)


def diff_hash(diff: str) -> str:
    return hashlib.sha256(diff.encode("utf-8")).hexdigest()
