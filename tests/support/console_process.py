"""The console alone in a process of its own (``python -m tests.support.console_process DB``): the real
:class:`ConsoleComponent` with its uvicorn settings, for tests that measure the process (its memory
under a huge request body). Prints its port, serves until standard input closes."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from callflow.console import ConsoleComponent, HttpAddress


@dataclass
class _Engine:
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    session: object = None


async def main(database: Path) -> None:
    component = ConsoleComponent(HttpAddress("127.0.0.1", 0), database)
    component.bind()
    engine = _Engine()
    running = asyncio.create_task(component.run(engine))  # type: ignore[arg-type]
    await component.started.wait()
    print(component.address.port, flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
    engine.stopping.set()
    await running


if __name__ == "__main__":
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout: the port only
    asyncio.run(main(Path(sys.argv[1])))
