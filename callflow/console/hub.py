"""Fan-out of live messages to connected browsers, never blocking the engine's consumer.

Each subscriber has a bounded queue. When a slow browser lets it fill, the oldest messages are dropped
and the next message it reads is a ``gap`` marker saying how many were lost (the page then re-reads
its panels from the API). Publishing is synchronous and O(subscribers): the engine never waits here.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator

import structlog

from callflow.console.messages import Message

log = structlog.get_logger("callflow.console.hub")


class Subscriber:
    def __init__(self, ident: int, user: str, limit: int) -> None:
        self.ident = ident
        self.user = user
        self.limit = limit
        self._queue: deque[Message] = deque()
        self._ready = asyncio.Event()
        self.dropped = 0  # lost since the last gap marker was read
        self.dropped_total = 0
        self.closed = False

    def offer(self, message: Message) -> None:
        if len(self._queue) >= self.limit:
            self._queue.popleft()
            self.dropped += 1
            self.dropped_total += 1
        self._queue.append(message)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def next(self, timeout: float | None = None) -> Message | None:
        """The next message (a ``gap`` marker first if any were dropped); None on timeout or close."""
        if not self._queue and not self.closed:
            self._ready.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return None
        if self.dropped:
            count, self.dropped = self.dropped, 0
            return {"type": "gap", "dropped": count}
        if self._queue:
            return self._queue.popleft()
        return None

    @property
    def pending(self) -> int:
        return len(self._queue)


class EventHub:
    def __init__(self, per_client_limit: int = 256) -> None:
        self.per_client_limit = per_client_limit
        self._subscribers: dict[int, Subscriber] = {}
        self._ids = itertools.count(1)
        self.published = 0

    def publish(self, message: Message) -> None:
        self.published += 1
        for sub in self._subscribers.values():
            sub.offer(message)

    def subscribe(self, user: str) -> Subscriber:
        sub = Subscriber(next(self._ids), user, self.per_client_limit)
        self._subscribers[sub.ident] = sub
        log.info("console.stream_open", user=user, subscriber=sub.ident, clients=len(self._subscribers))
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if self._subscribers.pop(sub.ident, None) is not None:
            log.info("console.stream_closed", user=sub.user, subscriber=sub.ident,
                     dropped=sub.dropped_total, clients=len(self._subscribers))

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        """End every stream (engine stopping): each subscriber's reader returns at once."""
        for sub in list(self._subscribers.values()):
            sub.close()

    async def messages(self, sub: Subscriber, keepalive: float) -> AsyncIterator[Message | None]:
        """Messages for ``sub`` until closed; None every ``keepalive`` seconds of silence."""
        try:
            while not sub.closed or sub.pending or sub.dropped:
                yield await sub.next(timeout=keepalive)
        finally:
            self.unsubscribe(sub)
