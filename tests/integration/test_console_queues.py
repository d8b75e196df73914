"""The wallboard's waiting callers come straight from Asterisk (QueueStatus), checked on the real lab."""

from __future__ import annotations

import asyncio

import pytest

from callflow.ami import AmiConnection, EventItem
from callflow.ami.client import utc_now
from callflow.ami.events import QueueCallerAbandon, QueueCallerJoin, QueueCallerLeave
from callflow.console.queue_status import AsteriskQueues
from callflow.lab import LabStatus
from callflow.lab.sipp import PRESS_EMERGENCY, CallerScript, place_call

pytestmark = pytest.mark.integration


async def _wait_event(events: asyncio.Queue[EventItem], kind: type, timeout: float = 15) -> EventItem:
    async with asyncio.timeout(timeout):
        while True:
            item = await events.get()
            if isinstance(item, kind):
                return item


async def test_waiting_caller_and_longest_wait_read_from_asterisk(
        lab: LabStatus, ami: tuple[AmiConnection, asyncio.Queue[EventItem]]) -> None:
    conn, events = ami
    queues = AsteriskQueues(conn, utc_now)
    before = await queues.board()
    assert [q.queue for q in before.queues][:2] == ["emergency", "nonemergency"]  # emergency first
    assert all(q.waiting == 0 for q in before.queues)

    # nobody logged in: the caller rings in the emergency queue until they give up after 4 s
    call = asyncio.create_task(place_call(lab.sip["host"], lab.sip["port"],
                                          CallerScript(
                                              dtmf=PRESS_EMERGENCY, number="081277770001",
                                              cancel_after_ms=4000)))
    try:
        join = await _wait_event(events, QueueCallerJoin)
        board = await queues.board()
        emergency = board.queues[0]
        assert (emergency.call_class, emergency.waiting, emergency.members) == ("emergency", 1, 0)
        (caller,) = emergency.callers
        assert caller.caller == "081277770001"
        assert caller.uniqueid == join.uniqueid  # type: ignore[attr-defined]
        assert 0 <= emergency.longest_wait_s <= 4
        assert board.queues[1].waiting == 0
        await _wait_event(events, (QueueCallerAbandon, QueueCallerLeave))  # type: ignore[arg-type]
        after = await queues.board()
        assert after.queues[0].waiting == 0
    finally:
        result = await call
    assert result.ok, result.output
