"""Record the raw AMI byte stream to a file, exactly as read from the socket.

The file starts with Asterisk's banner and holds every byte received (events, the login response, Ping
replies), so it can be fed back through :class:`~callflow.ami.codec.AmiCodec` (replay tests) or another
parser (the parse benchmark). Only received bytes are written: the Login action, and so the secret, never
reaches the file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from callflow.ami.client import AmiConnection, AmiEndpoint, Clock, EventItem, utc_now
from callflow.ami.events import AmiEvent

log = structlog.get_logger("callflow.ami.recorder")

_WRITE_BUFFER = 1 << 20  # the socket is read in 64 KiB chunks; the disk sees ~1 MiB writes


@dataclass(frozen=True, slots=True)
class RecordSummary:
    path: Path
    bytes_written: int
    events: int
    started_at: datetime
    ended_at: datetime
    reason: str


async def record_stream(
    endpoint: AmiEndpoint,
    out: Path,
    *,
    stop: asyncio.Event | None = None,
    duration: float | None = None,
    max_events: int | None = None,
    on_event: Callable[[AmiEvent], None] | None = None,
    clock: Clock = utc_now,
) -> RecordSummary:
    """Log in, write every received byte to ``out`` until ``stop`` is set, ``duration`` seconds pass,
    ``max_events`` events arrived, or the link drops. Returns what was written and why it ended."""
    stop = stop or asyncio.Event()
    out.parent.mkdir(parents=True, exist_ok=True)
    events: asyncio.Queue[EventItem] = asyncio.Queue()
    written = 0
    count = 0
    with out.open("wb", buffering=_WRITE_BUFFER) as fh:

        def tap(data: bytes) -> None:
            nonlocal written
            fh.write(data)
            written += len(data)

        conn = AmiConnection(endpoint, events, clock=clock, tap=tap)
        started_at = clock()
        await conn.connect()
        log.info("ami.record_started", where=endpoint.where(), out=str(out))
        reason = "stopped"
        stop_wait: asyncio.Future[object] = asyncio.ensure_future(stop.wait())
        closed: asyncio.Future[object] = conn.closed  # type: ignore[assignment]
        try:
            async with asyncio.timeout(duration):
                while True:
                    get: asyncio.Future[object] = asyncio.ensure_future(events.get())
                    done, _ = await asyncio.wait({get, stop_wait, closed},
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if get not in done:
                        get.cancel()
                        reason = "stopped" if stop_wait in done else f"link lost: {conn.closed.result()}"
                        break
                    item = get.result()
                    if isinstance(item, AmiEvent):
                        count += 1
                        if on_event is not None:
                            on_event(item)
                        if max_events is not None and count >= max_events:
                            reason = f"{count} events recorded"
                            break
        except TimeoutError:
            reason = f"duration of {duration} s reached"
        finally:
            stop_wait.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stop_wait
            await conn.close("recording ended")
    summary = RecordSummary(out, written, count, started_at, clock(), reason)
    log.info("ami.record_ended", out=str(out), bytes=written, events=count, reason=reason)
    return summary
