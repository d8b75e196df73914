"""One consumer applies events in arrival order; a raising handler is logged and touches nothing else."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from callflow.ami import EventItem
from callflow.ami.events import UserEvent
from callflow.service import Engine
from tests.support.fake_ami import FakeAmi


class Exploding:
    name = "exploding"

    async def run(self, engine: Engine) -> None:
        return None

    async def handle(self, item: EventItem) -> None:
        if isinstance(item, UserEvent):
            raise RuntimeError(f"handler bug on {item.get_field('Seq')}")  # noqa: TRY004 - a deliberate bug


class Recorder:
    name = "recorder"

    def __init__(self, expected: int) -> None:
        self.seen: list[str] = []
        self.expected = expected
        self.done = asyncio.Event()

    async def run(self, engine: Engine) -> None:
        return None

    async def handle(self, item: EventItem) -> None:
        if isinstance(item, UserEvent):
            self.seen.append(item.get_field("Seq"))
            if len(self.seen) == self.expected:
                self.done.set()


async def test_raising_handler_is_isolated_and_order_is_kept() -> None:
    async with FakeAmi() as peer:
        recorder = Recorder(50)
        engine = Engine(peer.endpoint(), [Exploding(), recorder])
        with capture_logs() as logs:
            runner = asyncio.create_task(engine.run())
            await peer.wait_sessions(1)
            async with asyncio.timeout(10):
                await engine.session.connected.wait()
            connection = engine.session.connection
            for seq in range(50):
                await peer.session.event("UserEvent", ("UserEvent", "SiagaIvr"), ("Seq", str(seq)))
            async with asyncio.timeout(10):
                await recorder.done.wait()
            # same connection, still open, never reconnected
            assert engine.session.connection is connection
            assert connection is not None
            assert not connection.closed.done()
            assert len(peer.sessions) == 1
            await connection.action("Ping")
            engine.stop()
            async with asyncio.timeout(10):
                await runner
    assert recorder.seen == [str(i) for i in range(50)]
    failures = [e for e in logs if e["event"] == "engine.handler_failed"]
    assert len(failures) == 50
    assert failures[0]["component"] == "exploding"
    assert failures[0]["ami_event"] == "UserEvent"
    assert failures[0]["headers"]["Seq"] == "0"  # logged with the event
    assert failures[0]["exc_info"] is True
