"""Waiting on a lab's AMI in tests: for an event that matches, and for every channel to be gone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from callflow.ami import AmiConnection, EventItem
from callflow.ami.events import AmiEvent, ChannelEvent


async def next_event(events: asyncio.Queue[EventItem], match: Callable[[AmiEvent], bool],
                     timeout: float = 20.0) -> AmiEvent:
    """The next event from ``events`` that ``match`` accepts (the others are dropped)."""
    async with asyncio.timeout(timeout):
        while True:
            item = await events.get()
            if isinstance(item, AmiEvent) and match(item):
                return item


def named(name: str, **headers: str) -> Callable[[AmiEvent], bool]:
    """Matches event ``name`` whose headers have the given values."""
    return lambda e: e.name == name and all(e.message.get(k) == v for k, v in headers.items())


async def assert_no_channels_left(conn: AmiConnection, timeout: float = 10.0) -> None:
    """Every channel hung up within ``timeout`` (hang-ups in flight finish); else fail naming them."""
    channels: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        _, items = await conn.list_action("CoreShowChannels")
        channels = [i.chan.channel for i in items if isinstance(i, ChannelEvent) and i.chan]
        if not channels or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)  # polling Asterisk's own list: it sends no event when it is empty
    assert not channels, f"channels leaked after the test: {channels}"
