"""A fault-injecting fake AMI peer, for what a real Asterisk cannot be made to do.

Never a stand-in for the happy path (that runs against the lab Asterisk). It speaks just enough AMI
(banner, Login, Ping, list actions with ``EventList``) and lets a test inject faults: go silent while
keeping the socket open (half-open), send garbage or an oversized frame, split bytes anywhere (inside a
UTF-8 character), read slowly, drop the connection with actions in flight, refuse a login.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from callflow.ami import AmiCodec, AmiEndpoint, AmiMessage
from callflow.ami.client import login_key

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
USERNAME = "siaga112"
SECRET = "fake-peer-Secret-9f8e7d"  # a throwaway secret, only for this fake

ActionHook = Callable[["FakeSession", AmiMessage], Awaitable[bool]]


def frame(*headers: tuple[str, str]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in headers).encode() + b"\r\n"


@dataclass
class FakeSession:
    """One client connection to the fake peer."""

    peer: FakeAmi
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    logged_in: bool = False
    challenge: str = ""
    actions: list[AmiMessage] = field(default_factory=list)

    async def send(self, data: bytes, *, split_every: int | None = None) -> None:
        """Write raw bytes; ``split_every=1`` sends them one byte per write (and per TCP segment)."""
        if split_every is None:
            self.writer.write(data)
            await self.writer.drain()
            return
        for i in range(0, len(data), split_every):
            self.writer.write(data[i:i + split_every])
            await self.writer.drain()
            await asyncio.sleep(0)

    async def event(self, name: str, *headers: tuple[str, str]) -> None:
        await self.send(frame(("Event", name), *headers))

    async def respond(self, action: AmiMessage, response: str = "Success", *headers: tuple[str, str]) -> None:
        await self.send(frame(("Response", response), ("ActionID", action.get("ActionID") or ""),
                              *headers))

    def drop(self) -> None:
        """Close the socket at once (a crash or a cable pulled)."""
        self.writer.transport.abort()


class FakeAmi:
    """``async with FakeAmi() as peer``: listens on 127.0.0.1, ``peer.endpoint()`` to connect.

    ``silent``: read and ignore everything (a half-open link: TCP alive, Asterisk gone).
    ``no_reply``: action names that get no response at all. ``hook``: called for each action first; return
    True if it answered. ``read_delay``: seconds to wait before reading each chunk (a slow reader).
    ``list_items``: items answered for list actions, by action name.
    """

    def __init__(self, *, hook: ActionHook | None = None, read_delay: float = 0.0) -> None:
        self.hook = hook
        self.read_delay = read_delay
        self.silent = False
        self.refuse_login = False
        self.no_reply: set[str] = set()
        self.list_items: dict[str, list[tuple[str, list[tuple[str, str]]]]] = {}
        self.sessions: list[FakeSession] = []
        self.actions: list[AmiMessage] = []  # every action received, over all connections
        self.connected = asyncio.Event()
        self._action_seen = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> FakeAmi:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for session in self.sessions:
            session.drop()  # each serving task then sees EOF and ends on its own
        if self._tasks:
            _, stuck = await asyncio.wait(list(self._tasks), timeout=2)
            for task in stuck:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._server.wait_closed()

    def endpoint(self, secret: str = SECRET, username: str = USERNAME) -> AmiEndpoint:
        return AmiEndpoint("127.0.0.1", self.port, username, secret)

    @property
    def session(self) -> FakeSession:
        return self.sessions[-1]

    def received(self, action: str) -> list[AmiMessage]:
        return [a for a in self.actions if a.get("Action") == action]

    async def wait_actions(self, action: str, count: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.received(action)) < count:
                self._action_seen.clear()
                await self._action_seen.wait()

    async def wait_sessions(self, count: int, timeout: float = 10.0) -> FakeSession:
        async with asyncio.timeout(timeout):
            while len([s for s in self.sessions if s.logged_in]) < count:
                self.connected.clear()
                await self.connected.wait()
        return self.sessions[-1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        session = FakeSession(self, reader, writer)
        self.sessions.append(session)
        codec = AmiCodec(expect_banner=False)
        try:
            writer.write(BANNER)
            await writer.drain()
            while True:
                if self.read_delay:
                    await asyncio.sleep(self.read_delay)
                data = await reader.read(4096)
                if not data:
                    break
                for action in codec.feed(data):
                    session.actions.append(action)
                    self.actions.append(action)
                    self._action_seen.set()
                    if not self.silent:
                        await self._answer(session, action)
        except (ConnectionError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _answer(self, session: FakeSession, action: AmiMessage) -> None:
        name = action.get("Action") or ""
        if self.hook is not None and await self.hook(session, action):
            return
        if name in self.no_reply:
            return
        if name == "Challenge":  # as Asterisk: a random challenge per session, MD5(challenge + secret)
            session.challenge = f"{random.randrange(10**8, 10**9)}"  # noqa: S311 - a fake's challenge
            await session.respond(action, "Success", ("Challenge", session.challenge))
            return
        if name == "Login":
            expected = login_key(session.challenge, SECRET) if session.challenge else None
            if self.refuse_login or action.get("Username") != USERNAME or action.get("Key") != expected:
                await session.respond(action, "Error", ("Message", "Authentication failed"))
                return
            await session.respond(action, "Success", ("Message", "Authentication accepted"))
            session.logged_in = True
            self.connected.set()
            await session.event("FullyBooted", ("Privilege", "system,all"), ("Status", "Fully Booted"))
            return
        if name == "Ping":
            await session.respond(action, "Success", ("Ping", "Pong"), ("Timestamp", "1763791542.000001"))
            return
        if name in {"CoreShowChannels", "QueueStatus", "QueueSummary", "PJSIPShowEndpoints"}:
            await self._list(session, action, name)
            return
        await session.respond(action, "Success", ("Message", f"{name} done"))

    async def _list(self, session: FakeSession, action: AmiMessage, name: str) -> None:
        action_id = action.get("ActionID") or ""
        await session.respond(action, "Success", ("EventList", "start"),
                              ("Message", "Items will follow"))
        items = self.list_items.get(name, [])
        for event, headers in items:
            await session.event(event, ("ActionID", action_id), *headers)
        complete = {"CoreShowChannels": "CoreShowChannelsComplete", "QueueStatus": "QueueStatusComplete",
                    "QueueSummary": "QueueSummaryComplete", "PJSIPShowEndpoints": "EndpointListComplete"}
        await session.event(complete[name], ("ActionID", action_id), ("EventList", "Complete"),
                            ("ListItems", str(len(items))))
