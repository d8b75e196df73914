"""``siaga112 serve``: the engine process.

One AMI session feeds one ordered queue; one consumer applies each item to every component in turn.
A component that raises is logged with the event and skipped; the connection and the other components
carry on. Components (call tracker, IVR server, operator manager...) plug in through :class:`Component`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from typing import Protocol

import structlog

from callflow.ami import AmiEndpoint, AmiSession, EventItem, LinkEvent
from callflow.ami.client import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, Clock, utc_now
from callflow.ami.events import AmiEvent, ChannelEvent, UnknownEvent
from callflow.logs import mask_number

log = structlog.get_logger("callflow.service")

# Events logged as the engine's first view of calls (the call tracker records them in full).
CALL_EVENTS = frozenset({
    "Newchannel", "Hangup", "DialBegin", "DialEnd", "QueueCallerJoin", "QueueCallerLeave",
    "QueueCallerAbandon", "AgentCalled", "AgentConnect", "AgentComplete", "AgentRingNoAnswer",
    "BlindTransfer", "AttendedTransfer", "DTMFEnd", "UserEvent", "FullyBooted",
})


class Component(Protocol):
    """A part of the engine. ``run`` is its background work (return at once if none); ``handle`` is
    called for every AMI event and link change, in order, by the single consumer."""

    name: str

    async def run(self, engine: Engine) -> None: ...

    async def handle(self, item: EventItem) -> None: ...


class CallEventLogger:
    """Logs each call event with its call ids bound (the foundation's view; the tracker records)."""

    name = "call-event-log"

    async def run(self, engine: Engine) -> None:
        return None

    async def handle(self, item: EventItem) -> None:
        if isinstance(item, LinkEvent):
            log.info("ami.link", state=item.state, reason=item.reason,
                     gap_started=item.gap_started.isoformat() if item.gap_started else None)
            return
        if item.name not in CALL_EVENTS or isinstance(item, UnknownEvent):
            return
        fields: dict[str, object] = {"ami_event": item.name, "ts": item.time.isoformat(),
                                     "ts_source": item.time_source}
        if isinstance(item, ChannelEvent) and item.chan is not None:
            fields.update(linkedid=item.chan.linkedid, uniqueid=item.chan.uniqueid,
                          channel=item.chan.channel, caller=mask_number(item.chan.caller_id_num))
        for key in ("queue", "member_name", "hold_time", "cause", "digit", "user_event", "dial_status"):
            value = getattr(item, key, None)
            if value not in (None, ""):
                fields[key] = value
        log.info("call.event", **fields)


class Engine:
    def __init__(self, endpoint: AmiEndpoint, components: Sequence[Component], *, clock: Clock = utc_now,
                 ping_interval: float = DEFAULT_PING_INTERVAL, ping_timeout: float = DEFAULT_PING_TIMEOUT,
                 action_timeout: float = 10.0) -> None:
        self.clock = clock
        self.session = AmiSession(endpoint, clock=clock, ping_interval=ping_interval,
                                  ping_timeout=ping_timeout, action_timeout=action_timeout)
        self.components = list(components)
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        log.info("engine.start", ami=self.session.endpoint.where(),
                 components=[c.name for c in self.components])
        async with asyncio.TaskGroup() as tg:
            session_task = tg.create_task(self.session.run(), name="ami-session")
            consumer = tg.create_task(self._consume(), name="event-consumer")
            workers = [tg.create_task(c.run(self), name=f"component-{c.name}") for c in self.components]
            await self.stopping.wait()
            await self._before_stop()
            self.session.stop()
            await session_task
            await self._drain()
            consumer.cancel()
            for worker in workers:
                worker.cancel()
        log.info("engine.stopped")

    async def _before_stop(self) -> None:
        """Components with a ``before_stop`` (e.g. the IVR gate, which closes while AMI is still up) get
        their last word before the AMI session stops."""
        for component in self.components:
            hook = getattr(component, "before_stop", None)
            if hook is None:
                continue
            try:
                await hook()
            except Exception:  # never blocks the stop
                with contextlib.suppress(Exception):
                    log.exception("engine.before_stop_failed", component=component.name)

    async def _consume(self) -> None:
        while True:
            item = await self.session.events.get()
            await self._apply(item)

    async def _drain(self) -> None:
        while not self.session.events.empty():
            await self._apply(self.session.events.get_nowait())

    async def _apply(self, item: EventItem) -> None:
        for component in self.components:
            try:
                await component.handle(item)
            except Exception:  # one bad event or component never takes the engine down
                with contextlib.suppress(Exception):  # not even through a broken log call
                    log.exception("engine.handler_failed", component=component.name,
                                  ami_event=item.name,
                                  headers=item.message.as_dict() if isinstance(item, AmiEvent) else None)

    def stop(self) -> None:
        self.stopping.set()


async def serve(engine: Engine) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, engine.stop)
    try:
        await engine.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
