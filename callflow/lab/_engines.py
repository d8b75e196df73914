"""The engines of a two-node lab: one detached ``siaga112 serve --lab <lab>-<node>`` per node, its JSON log
and its pid in the two-node lab's folder, its console on a port of its own, all on one store."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callflow.lab._control import _check_port_free, lab_dir
from callflow.lab.errors import LabError

CONSOLE_PORTS = {"a": 8113, "b": 8114}  # the engines' consoles beside each other (not --free-ports)
READY_TIMEOUT_S = 90.0  # both engines start at once on a busy machine: AMI, then the IVR's prompts
STOP_TIMEOUT_S = 15.0
READY_EVENTS = ("ami.connected", "ivr.listening")  # attached to its Asterisk, and its IVR answers calls


@dataclass
class EngineState:
    node: str
    instance: str  # the node's lab instance (``serve --lab`` it)
    pid: int | None
    http_port: int
    log_file: str
    running: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "instance": self.instance, "pid": self.pid, "http_port": self.http_port,
                "url": self.url, "log_file": self.log_file, "running": self.running}


def engine_command(instance: str, database: str, http_port: int) -> list[str]:
    return [sys.executable, "-m", "callflow.cli", "serve", "--lab", instance, "--database", database,
            "--http", f"127.0.0.1:{http_port}", "--log-format", "json"]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def engine_is_ours(pid: int | None, instance: str) -> bool:
    """``pid`` is this lab node's engine (a recycled pid is someone else's process: never signalled)."""
    if not pid:
        return False
    cmdline = _cmdline(pid)
    return "callflow.cli serve" in cmdline and f"--lab {instance} " in cmdline


def console_port(node: str, free: bool) -> int:
    if free or node not in CONSOLE_PORTS:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    return CONSOLE_PORTS[node]


def port_free(port: int) -> bool:
    try:
        _check_port_free("console", "tcp", port)
    except LabError:
        return False
    return True


def launch(cluster_instance: str, node: str, instance: str, database: str, http_port: int) -> EngineState:
    """Start one engine, detached (its own session: ``lab down`` stops it and its IVR process together)."""
    if not port_free(http_port):
        raise LabError(f"port {http_port}/tcp on 127.0.0.1, for engine {node}'s console, is already in use: "
                       f"use --free-ports, or stop what holds it (`ss -lntp sport = :{http_port}` shows who)")
    log_path = lab_dir(cluster_instance) / f"engine-{node}.log"
    with log_path.open("ab") as out:
        proc = subprocess.Popen(engine_command(instance, database, http_port), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return EngineState(node, instance, proc.pid, http_port, str(log_path), running=True)


def ready_events(*, ivr_enabled: bool = True) -> tuple[str, ...]:
    """What a started engine logs before it takes calls: :data:`READY_EVENTS`, without the IVR's when the
    engines' settings (read by the command layer: the lab sits below the settings) turn the IVR off."""
    return READY_EVENTS if ivr_enabled else READY_EVENTS[:1]


def wait_ready(engines: list[tuple[EngineState, int]], events: tuple[str, ...] = READY_EVENTS,
               timeout: float = READY_TIMEOUT_S) -> None:
    """Wait until each engine's log (from its byte offset at launch) shows ``events``; an engine that
    exits or is not ready in time is stopped and reported with its log's last lines."""
    deadline = time.monotonic() + timeout
    pending = {state.node: (state, offset, set(events)) for state, offset in engines}
    while pending:
        for node, (state, offset, missing) in list(pending.items()):
            missing.difference_update(_events_since(Path(state.log_file), offset))
            if not missing:
                del pending[node]
            elif not engine_is_ours(state.pid, state.instance):
                raise LabError(f"engine {node} (`siaga112 serve --lab {state.instance}`) exited during "
                               f"start-up; last lines of {state.log_file}:\n"
                               f"{_tail(Path(state.log_file))}")
        if pending and time.monotonic() > deadline:
            node, (state, _, wanted) = next(iter(pending.items()))
            stop(state)
            raise LabError(f"engine {node} did not report {', '.join(sorted(wanted))} within {timeout:.0f} s "
                           f"(stopped); see {state.log_file}:\n{_tail(Path(state.log_file))}")
        time.sleep(0.2)


def _events_since(path: Path, offset: int) -> set[str]:
    seen: set[str] = set()
    with contextlib.suppress(OSError), path.open("rb") as fh:
        fh.seek(offset)
        for line in fh:
            with contextlib.suppress(ValueError):
                event = json.loads(line).get("event")
                if event in READY_EVENTS:
                    seen.add(event)
    return seen


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return f"({path} not readable)"


def stop(state: EngineState) -> bool:
    """SIGTERM to the engine's session (the engine and its IVR), SIGKILL after :data:`STOP_TIMEOUT_S`.
    Returns whether it was running."""
    pid = state.pid
    if pid is None or not engine_is_ours(pid, state.instance):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while engine_is_ours(pid, state.instance) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if engine_is_ours(pid, state.instance):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)
    return True
