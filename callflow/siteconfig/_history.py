"""Apply history: one JSON line per apply (who, when, the diff's hash, outcome) and the last N applied
versions (the rendered files and the site file), under a state directory only root can read (the files
hold secrets)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_KEEP = 10


@dataclass(frozen=True)
class ApplyRecord:
    at: str  # UTC ISO-8601 with microseconds
    who: str
    site_file: str
    diff_sha256: str
    outcome: str
    changed: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    version: int | None = None
    problems: list[str] = field(default_factory=list)


class ApplyHistory:
    def __init__(self, state_dir: Path, keep: int = DEFAULT_KEEP) -> None:
        self.state_dir = state_dir
        self.keep = keep
        self.versions_dir = state_dir / "versions"
        self.log_path = state_dir / "history.jsonl"

    def _ensure(self) -> None:
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One apply at a time per target (an advisory lock the next apply waits on)."""
        self._ensure()
        fd = os.open(self.state_dir / "apply.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def record(self, entry: ApplyRecord) -> None:
        self._ensure()
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(entry), sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def records(self) -> list[ApplyRecord]:
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            data: dict[str, Any] = json.loads(line)
            out.append(ApplyRecord(**data))
        return out

    def versions(self) -> list[int]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(int(p.name) for p in self.versions_dir.iterdir() if p.name.isdigit())

    def save_version(self, files: Mapping[str, str], site_text: str) -> int:
        """Keep an applied version; the oldest beyond ``keep`` are removed. Returns its number."""
        self._ensure()
        number = (self.versions()[-1] + 1) if self.versions() else 1
        directory = self.versions_dir / f"{number:06d}"
        tmp = self.versions_dir / f".{number:06d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o700)
        for name, text in {**files, "site.toml": site_text}.items():
            fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
        tmp.rename(directory)
        for old in self.versions()[:-self.keep]:
            shutil.rmtree(self.versions_dir / f"{old:06d}", ignore_errors=True)
        return number
