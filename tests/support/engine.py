"""Run ``siaga112 serve`` as a real process against the lab and read its JSON log lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from callflow.siteconfig import pbx_config_dir

Record = dict[str, Any]

def site_file_with_callbacks(directory: Path, base: Path | None = None, **values: object) -> Path:
    """``base`` (default pbx-config/site.toml) with ``[callbacks]`` values changed (e.g. short timers) and
    its IVR tree by absolute path, written to ``directory``; for the engine's ``SIAGA112_SITE_FILE``."""
    base = base or pbx_config_dir() / "site.toml"
    text = base.read_text()
    start = text.index("\n[callbacks]\n")
    end = text.index("\n[", start + 1)
    section = text[start:end]
    for key, value in values.items():
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        section, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {shown}", section)
        assert count == 1, f"no `{key} = ` in [callbacks] of site.toml"
    text = text[:start] + section + text[end:]
    text = re.sub(r'(?m)^tree = "([^"/][^"]*)"', lambda m: f'tree = "{base.parent / m.group(1)}"', text)
    path = directory / "site.toml"
    path.write_text(text)
    return path


class EngineProcess:
    """``siaga112 serve --lab INSTANCE --log-format json`` as a child process.

    ``records`` holds every JSON log line so far; ``wait_for`` waits on a predicate with a timeout.
    """

    def __init__(self, instance: str, *extra_args: str, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.instance = instance
        self.extra_args = extra_args
        self.env = {**os.environ, **(env or {})}
        if "SIAGA112_SITE_FILE" not in self.env:
            # The lab's database is shared by tests: an engine must not call back the abandoned callers of
            # earlier tests (there is no citizen to answer). Callback tests pass their own site file.
            self.env.setdefault("SIAGA112_CALLBACKS__DIAL", "false")
        self.cwd = cwd
        self.records: list[Record] = []
        self.raw_lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self, *, wait_ivr: bool = True) -> EngineProcess:
        # no console unless a test asks for one (--http HOST:PORT): parallel runs would share its port
        http = () if "--http" in self.extra_args else ("--http", "off")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "callflow.cli", "serve", "--lab", self.instance, "--log-format", "json",
            *self.extra_args, *http, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=self.env, cwd=self.cwd)
        self._reader = asyncio.create_task(self._read())
        await self.wait_for(lambda r: r.get("event") == "ami.connected", timeout=20)
        if wait_ivr and self.env.get("SIAGA112_IVR__ENABLED", "true").lower() not in {"0", "false", "no"}:
            # the IVR (a child process) installs prompts, then listens and the engine opens the dial plan's
            # gate to it (ivr.listening); a call before that fails safe
            await self.wait_for(lambda r: r.get("event") == "ivr.listening", timeout=60)
        return self

    async def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            text = line.decode(errors="replace").rstrip("\n")
            self.raw_lines.append(text)
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(text)
                if isinstance(record, dict):
                    self.records.append(record)
            self._changed.set()
        self._changed.set()

    async def wait_for(self, predicate: Callable[[Record], bool], timeout: float = 15.0) -> Record:
        """First record (old or new) matching ``predicate``; TimeoutError with the log tail otherwise."""
        seen = 0
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for record in self.records[seen:]:
                        if predicate(record):
                            return record
                    seen = len(self.records)
                    if self.proc is not None and self.proc.returncode is not None and self._reader \
                            and self._reader.done():
                        raise AssertionError(f"engine exited ({self.proc.returncode}):\n{self.tail()}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"engine log never matched within {timeout} s; tail:\n{self.tail()}") from None

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.raw_lines[-n:])

    def events_for(self, linkedid: str) -> list[str]:
        return [r["ami_event"] for r in self.records
                if r.get("event") == "call.event" and r.get("linkedid") == linkedid]

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                async with asyncio.timeout(timeout):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        return self.proc.returncode if self.proc.returncode is not None else -1

    async def kill(self) -> None:
        await self.stop(signal.SIGKILL)
