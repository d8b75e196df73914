"""Thin asyncio shell around :mod:`callflow.ami.codec` (the reconnecting session is in :mod:`.session`).

``AmiConnection`` is one logged-in session: a reader task that frames bytes with the codec and routes
responses to waiting actions by ActionID, a heartbeat that turns a silent peer (half-open TCP) into
:class:`ConnectionLost`, and typed events pushed in arrival order onto one queue.

``AmiSession`` (in :mod:`.session`, which imports this module) keeps a connection alive: reconnect with
exponential backoff and jitter, and a :class:`LinkEvent` on the same queue for every loss and every
(re)connect so the call layer can recover what happened in between. State-changing actions in flight when
the link drops are never re-sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import random
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from callflow.ami.codec import AmiCodec, AmiMessage, encode_action
from callflow.ami.errors import (
    ActionFailed,
    ActionTimeout,
    AmiError,
    ConnectionLost,
    LoginFailed,
    OutcomeUnknown,
    ProtocolError,
)
from callflow.ami.events import (
    AmiEvent,
    CoreShowChannel,
    DamagedEvent,
    QueueEntry,
    QueueMember,
    QueueParams,
    parse_event,
)

log = structlog.get_logger("callflow.ami")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


# A silent (half-open) link is noticed within interval + timeout = 4 s of its last Ping reply.
DEFAULT_PING_INTERVAL = 1.5
DEFAULT_PING_TIMEOUT = 2.5

# Actions that change Asterisk's state: never replayed after a reconnect (outcome unknown instead).
STATE_CHANGING_ACTIONS = frozenset({
    "Originate", "Redirect", "Hangup", "QueueAdd", "QueueRemove", "QueuePause", "MixMonitor",
    "StopMixMonitor", "Setvar", "Reload", "Command", "UserEvent", "Atxfer", "BlindTransfer",
})


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """The AMI link went ``down`` or came ``up``.

    ``up`` is the gap record: after a loss it carries when the lost link last delivered anything
    (``gap_started``; for a silent, half-open link that is before the loss was noticed) and when it came
    back (``at``); events in between never reached the engine. ``down``'s ``at`` is that same instant.
    It also carries the live state re-read before any later event is handed on: the channels up
    (CoreShowChannels) and the queues' figures, members and waiting callers (QueueStatus), as of
    ``resynced_at``, so the call layer can close, keep or adopt the calls it tracked across the gap.
    """

    state: str  # "up" | "down"
    at: datetime
    reason: str = ""
    gap_started: datetime | None = None
    reconnect: bool = False
    channels: tuple[CoreShowChannel, ...] = ()
    queue_params: tuple[QueueParams, ...] = ()
    queue_members: tuple[QueueMember, ...] = ()
    queue_entries: tuple[QueueEntry, ...] = ()
    resynced_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"link-{self.state}"


EventItem = AmiEvent | LinkEvent


@dataclass
class _Pending:
    action: str
    future: asyncio.Future[AmiMessage]
    state_changing: bool
    collect: list[AmiEvent] | None = None
    done_event: asyncio.Future[None] | None = None


# Parts of one split event that are taken as injected before the split is given up (a line break in a
# number makes two parts; each further CR/LF CR/LF one more).
MAX_SPLIT_PARTS = 16


def login_key(challenge: str, secret: str) -> str:
    """AMI's ``AuthType: MD5`` answer: hex MD5 of the challenge followed by the secret (Asterisk's own
    scheme, not ours to choose; it keeps the secret off the wire)."""
    if not challenge:
        raise ProtocolError("AMI Challenge response carried no Challenge header")
    return hashlib.md5((challenge + secret).encode(), usedforsecurity=False).hexdigest()


@dataclass
class AmiEndpoint:
    """Where and as whom to log in. ``tls_ca_file``: connect over TLS, trusting that certificate (a
    self-signed one, or the CA that signed Asterisk's); ``tls``: over TLS with the system's CAs."""

    host: str
    port: int
    username: str
    secret: str = field(repr=False)
    tls: bool = False
    tls_ca_file: str | None = None

    def where(self) -> str:
        scheme = "tls://" if self.uses_tls else ""
        return f"{scheme}{self.username}@{self.host}:{self.port}"

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.tls_ca_file is not None

    def ssl_context(self) -> ssl.SSLContext | None:
        """Certificate and host name verified (the name or address we connect to must be in the
        certificate); None for plain TCP."""
        if not self.uses_tls:
            return None
        return ssl.create_default_context(cafile=self.tls_ca_file)


class AmiConnection:
    """One AMI session. Use ``await connect()``, then ``action``/``list_action``; ``closed`` resolves
    with the reason when the link dies."""

    def __init__(
        self,
        endpoint: AmiEndpoint,
        events: asyncio.Queue[EventItem],
        *,
        clock: Clock = utc_now,
        action_timeout: float = 10.0,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        ping_timeout: float = DEFAULT_PING_TIMEOUT,
        connect_timeout: float = 5.0,
        max_message_bytes: int = 1 << 20,
        tap: Callable[[bytes], None] | None = None,
        hold_events: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self._tap = tap  # sees every byte read, as read (the recorder writes them to a file)
        self._events = events
        self._clock = clock
        self._action_timeout = action_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._connect_timeout = connect_timeout
        self._codec = AmiCodec(max_message_bytes)
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._prefix = f"s{random.randrange(1 << 30):x}-"  # noqa: S311 - only distinguishes sessions
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.banner: str | None = None
        # When bytes last arrived: after a loss, anything Asterisk sent later may be missing (a half-open
        # link is silent for the whole heartbeat deadline before it is noticed).
        self.last_received: datetime | None = None
        # Held events wait (in order) until release_events(): the session re-reads state first.
        self._holding = hold_events
        self._held: list[AmiEvent] = []
        # Inside an event that a line break in caller text split (see _route): messages until its tail.
        self._split_left = 0

    async def connect(self) -> None:
        ep = self.endpoint
        try:
            context = ep.ssl_context()
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(
                    ep.host, ep.port, ssl=context, server_hostname=ep.host if context else None)
        except ssl.SSLError as exc:
            trusted = ep.tls_ca_file or "the system CA store"
            raise ConnectionLost(f"AMI TLS handshake with {ep.host}:{ep.port} failed: {exc.reason or exc} "
                                 f"(is it Asterisk's TLS port, and does {trusted} hold its certificate or "
                                 "CA?)") from exc
        except (OSError, TimeoutError) as exc:
            raise ConnectionLost(f"cannot reach AMI at {ep.host}:{ep.port}: {exc or 'timed out'}") from exc
        self._writer = writer
        self._tasks.append(asyncio.create_task(self._read_loop(reader), name="ami-reader"))
        try:
            response = await self._login()
        except ActionFailed as exc:
            await self.close("login refused")
            raise LoginFailed(f"AMI login refused for user {ep.username!r} at {ep.host}:{ep.port}: "
                              f"{exc.message} (check the AMI user and secret)") from None
        except AmiError:
            await self.close("login failed")
            raise
        del response
        self.banner = self._codec.banner
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="ami-heartbeat"))

    @property
    def tls_version(self) -> str | None:
        """The TLS version of the link (``TLSv1.3``...), None over plain TCP."""
        ssl_object = self._writer.get_extra_info("ssl_object") if self._writer is not None else None
        return ssl_object.version() if ssl_object is not None else None

    async def _login(self) -> AmiMessage:
        """Log in with AMI's MD5 challenge: Asterisk sends a random challenge, we answer with
        MD5(challenge + secret), so the secret itself never crosses the socket (whoever holds the AMI port
        while Asterisk restarts learns nothing it could replay)."""
        ep = self.endpoint
        challenge = await self.action("Challenge", {"AuthType": "MD5"}, timeout=self._connect_timeout)
        key = login_key(challenge.get("Challenge") or "", ep.secret)
        return await self.action("Login", {"Username": ep.username, "AuthType": "MD5", "Key": key,
                                           "Events": "on"}, timeout=self._connect_timeout)

    async def action(self, name: str, headers: Mapping[str, str | int] | None = None, *,
                     timeout: float | None = None,
                     variables: Mapping[str, str] | None = None) -> AmiMessage:
        """Send an action and return its response. ``Response: Error`` raises :class:`ActionFailed`."""
        pending = await self._send(name, headers, variables=variables)
        return await self._await(pending, timeout)

    async def list_action(self, name: str, headers: Mapping[str, str | int] | None = None, *,
                          timeout: float | None = None) -> tuple[AmiMessage, list[AmiEvent]]:
        """Send a list action (QueueStatus, CoreShowChannels...) and return the response with every
        item, complete (up to the ``EventList: Complete`` marker)."""
        pending = await self._send(name, headers, collect=True)
        assert pending.done_event is not None  # noqa: S101 - set by _send(collect=True)
        limit = self._action_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                response = await self._await(pending, limit)
                if (response.get("EventList") or "").lower() == "start":
                    await asyncio.shield(pending.done_event)
        except TimeoutError:
            raise ActionTimeout(f"AMI action {name} did not complete within {limit:.1f} s") from None
        finally:
            self._drop_pending(pending)
        return response, list(pending.collect or [])

    async def _send(self, name: str, headers: Mapping[str, str | int] | None, *,
                    variables: Mapping[str, str] | None = None, collect: bool = False) -> _Pending:
        if self.closed.done():
            raise ConnectionLost(f"AMI link to {self.endpoint.host}:{self.endpoint.port} is down "
                                 f"({self.closed.result()})")
        action_id = f"{self._prefix}{next(self._ids)}"
        data = encode_action(name, headers, action_id=action_id, variables=variables)  # refuses CR/LF
        loop = asyncio.get_running_loop()
        pending = _Pending(name, loop.create_future(), name in STATE_CHANGING_ACTIONS)
        if collect:
            pending.collect = []
            pending.done_event = loop.create_future()
        self._pending[action_id] = pending
        assert self._writer is not None  # noqa: S101 - connect() sets it before any action
        self._writer.write(data)
        return pending

    async def _await(self, pending: _Pending, timeout: float | None) -> AmiMessage:
        limit = self._action_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                response = await asyncio.shield(pending.future)
        except TimeoutError:
            self._drop_pending(pending)
            raise ActionTimeout(f"AMI action {pending.action} got no response within {limit:.1f} s") from None
        if (response.get("Response") or "").lower() == "error":
            self._drop_pending(pending)
            raise ActionFailed(pending.action, response.get("Message") or "(no message)")
        if pending.collect is None:
            self._drop_pending(pending)
        return response

    def _drop_pending(self, pending: _Pending) -> None:
        for key, value in list(self._pending.items()):
            if value is pending:
                del self._pending[key]

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        reason = "closed by peer"
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                received_at = self.last_received = self._clock()
                if self._tap is not None:
                    self._tap(data)
                for msg in self._codec.feed(data):
                    await self._route(msg, received_at)
        except ProtocolError as exc:
            reason = f"protocol error: {exc}"
            log.exception("ami.protocol_error", error=str(exc), peer=self.endpoint.where())
        except (OSError, asyncio.IncompleteReadError) as exc:
            reason = f"socket error: {exc}"
        except asyncio.CancelledError:
            reason = "closed"
            raise
        finally:
            self._finish(reason)

    async def _route(self, msg: AmiMessage, received_at: datetime) -> None:
        action_id = msg.action_id
        pending = self._pending.get(action_id) if action_id else None
        if msg.kind == "response":
            if pending is not None and not pending.future.done():
                pending.future.set_result(msg)
            return
        if msg.kind != "event":
            # The tail of an event split by a line break in caller text: no values logged (caller data),
            # only which call lost an event; the call layer completes that call from Asterisk's records.
            self._split_left = 0
            damaged = DamagedEvent.from_ami(msg, received_at)
            log.warning("ami.unframed_message", header_names=list(damaged.header_names)[:40],
                        linkedid=damaged.linkedid or None, uniqueid=damaged.uniqueid or None)
            if damaged.chan is None:
                return
            event: AmiEvent = damaged
        else:
            if self._split_left:
                # Asterisk writes each event whole: an event between a split event's head and its tail was
                # written by the caller (a CR/LF CR/LF in the number, then "Event: ..."): never trusted.
                self._split_left -= 1
                log.warning("ami.injected_event_dropped", ami_event=msg.name[:40],
                            header_names=[name[:40] for name, _ in msg.headers][:40])
                return
            if msg.split_head:
                self._split_left = MAX_SPLIT_PARTS
                log.warning("ami.split_event", ami_event=msg.name,
                            hint="a caller's number held a line break (Asterisk passes it to AMI as it is); "
                                 "that call's record is completed from Asterisk's own files")
                return
            event = parse_event(msg, received_at)
        if pending is not None and pending.collect is not None:
            if (msg.get("EventList") or "").lower() == "complete" or msg.name.endswith("Complete"):
                if pending.done_event is not None and not pending.done_event.done():
                    pending.done_event.set_result(None)
                self._drop_pending(pending)
            else:
                pending.collect.append(event)
            return
        if self._holding:
            self._held.append(event)
            return
        await self._events.put(event)

    async def release_events(self) -> None:
        """Hand on the events held since login, in order, then pass later ones straight through."""
        while self._held:
            batch, self._held = self._held, []
            for event in batch:
                await self._events.put(event)
        self._holding = False  # no await since the last check: nothing can slip in between

    async def _heartbeat(self) -> None:
        while not self.closed.done():
            await asyncio.sleep(self._ping_interval)
            try:
                await self.action("Ping", timeout=self._ping_timeout)
            except ActionTimeout:
                log.error("ami.heartbeat_lost",  # noqa: TRY400 - a timeout, not a bug: no traceback
                          peer=self.endpoint.where(), timeout_s=self._ping_timeout)
                await self.close(f"no Ping reply within {self._ping_timeout:.1f} s (half-open connection)")
                return
            except AmiError:
                return

    def _finish(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        for pending in self._pending.values():
            if pending.future.done():
                continue
            if pending.state_changing:
                pending.future.set_exception(OutcomeUnknown(
                    f"AMI action {pending.action} was in flight when the link dropped ({reason}); "
                    "it was not re-sent: re-query the state"))
            else:
                pending.future.set_exception(ConnectionLost(
                    f"AMI link dropped before {pending.action} completed ({reason})"))
            pending.future.exception()  # mark retrieved: nobody may be awaiting any more
        self._pending.clear()
        if self._writer is not None:
            self._writer.close()

    async def close(self, reason: str = "closed") -> None:
        self._finish(reason)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for task in self._tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._writer is not None:
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()


# The reconnecting session (callflow.ami.session) builds on this module, never the other way round:
# import AmiSession and next_backoff from there or from the package (callflow.ami).
__all__ = [
    "DEFAULT_PING_INTERVAL", "DEFAULT_PING_TIMEOUT", "STATE_CHANGING_ACTIONS", "AmiConnection", "AmiEndpoint",
    "Clock", "EventItem", "LinkEvent", "login_key", "utc_now",
]
