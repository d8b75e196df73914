"""The IVR as a supervised child process of the engine (the default ``[ivr] isolation = "process"``).

Why a process: the engine's interpreter is busy with every AMI event of every call; a burst of callers
is also a burst of events, and a FastAGI reply that waits for the interpreter lock waits behind them.
Measured on the lab with 50 callers pressing 1 together (bench/ivr_latency.py): the IVR inside the
engine added 57-83 ms at p95 (own thread) against the plain dial plan; the same IVR in a process of its
own added about 6 ms. The child dies with the engine (PR_SET_PDEATHSIG): a killed engine leaves no IVR
behind, and the dial plan fails safe until a new engine's IVR listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from callflow.ami import EventItem
from ivr.gate import IvrGate, IvrState

if TYPE_CHECKING:
    from callflow.service import Engine

log = structlog.get_logger("ivr.process")
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> bool:
    """In the child: be killed when the engine dies. False if the engine is already gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    return os.getppid() == parent_pid


class IvrProcess:
    """Engine component: runs ``siaga112 ivr serve`` as a child and restarts it if it exits."""

    name = "ivr"

    def __init__(self, *, lab: str | None, log_format: str, restart_max_s: float = 10.0,
                 gate: IvrGate | None = None, site_file: Path | None = None) -> None:
        self.lab, self.log_format, self.restart_max_s = lab, log_format, restart_max_s
        self.gate = gate  # told what the child reports over its status pipe (bound/failed/stopped)
        self.site_file = site_file  # --site given to the engine: the child reads the same site
        self.proc: asyncio.subprocess.Process | None = None

    def command(self, status_fd: int | None = None) -> list[str]:
        cmd = [sys.executable, "-m", "callflow.cli", "ivr", "serve", "--log-format", self.log_format,
               "--parent-pid", str(os.getpid())]
        if status_fd is not None:
            cmd += ["--status-fd", str(status_fd)]
        if self.lab is not None:
            cmd += ["--lab", self.lab]
        if self.site_file is not None:
            cmd += ["--site", str(self.site_file)]
        return cmd

    async def _spawn(self) -> tuple[asyncio.subprocess.Process, asyncio.Task[None] | None]:
        if self.gate is None:
            proc = await asyncio.create_subprocess_exec(*self.command(), stdin=asyncio.subprocess.DEVNULL)
            return proc, None
        read_fd, write_fd = os.pipe()
        try:
            # stdout/stderr inherited: the child's JSON log lines join the engine's
            proc = await asyncio.create_subprocess_exec(*self.command(write_fd), pass_fds=(write_fd,),
                                                        stdin=asyncio.subprocess.DEVNULL)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        return proc, asyncio.create_task(self._status(read_fd), name="ivr-status")

    async def _status(self, read_fd: int) -> None:
        """Lines ``<state> <port>`` from the child, handed to the gate; EOF = the child is gone."""
        assert self.gate is not None  # noqa: S101 - only started with a gate
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                    os.fdopen(read_fd, "rb", buffering=0))
        try:
            while line := await reader.readline():
                state, _, port = line.decode(errors="replace").strip().partition(" ")
                self.gate.report(state, int(port) if port.isdigit() else None)
        finally:
            transport.close()
            self.gate.report(IvrState.STOPPED)

    async def handle(self, item: EventItem) -> None:
        return None

    async def run(self, engine: Engine | None = None) -> None:
        del engine
        backoff = 0.5
        try:
            while True:
                self.proc, status = await self._spawn()
                code = await self.proc.wait()
                if status is not None:
                    with contextlib.suppress(Exception):
                        await status
                if code == 3:  # the tree was refused: restarting cannot help until an admin fixes it
                    log.error("ivr.process_stopped", exit=code, hint="fix the tree (siaga112 ivr check) and "
                              "restart the engine; calls go to the emergency queue meanwhile")
                    return
                log.error("ivr.process_exited", exit=code, restart_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.restart_max_s)
        finally:
            await self._stop()

    async def _stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            async with asyncio.timeout(5):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
