"""The console as an engine :class:`~callflow.service.Component`: uvicorn on the engine's own event loop.

``run`` opens the console's tables, serves HTTP until the engine stops, then ends the live streams and
shuts uvicorn down cleanly. ``handle`` turns each engine event the pages show into a stream message
(synchronous fan-out into bounded queues: the engine's consumer never waits on a browser).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import structlog

from callflow.ami import EventItem
from callflow.ami.client import Clock, utc_now
from callflow.calls.model import CallRecord
from callflow.centre import CENTRE_TIMEZONE
from callflow.console.accounts import AccountStore
from callflow.console.app import create_app
from callflow.console.audit import AuditLog
from callflow.console.context import ConsoleContext
from callflow.console.http_server import EmbeddedServer, server_config
from callflow.console.hub import EventHub
from callflow.console.limits import host_names
from callflow.console.listen import LISTEN_SCHEMA, ListenService
from callflow.console.messages import Arrivals, to_message
from callflow.console.providers import Providers, UnavailableQueues
from callflow.console.queue_status import AsteriskQueues
from callflow.console.schema import CONSOLE_SCHEMA
from callflow.console.thresholds import THRESHOLDS_SCHEMA, ThresholdPolicy, ThresholdWatch
from callflow.console.throttle import LoginThrottle
from callflow.console.wiring import Resource
from callflow.console_settings import ConsoleSettings
from callflow.store import StoreLocation, open_database

if TYPE_CHECKING:
    from callflow.service import Engine

log = structlog.get_logger("callflow.console")

DEFAULT_ADDRESS = "127.0.0.1:8112"


class ConsoleError(Exception):
    """The console cannot start as configured; the message says what to change."""


@dataclass(frozen=True, slots=True)
class HttpAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> HttpAddress:
        host, sep, port = text.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConsoleError(f"--http {text!r}: give HOST:PORT, e.g. {DEFAULT_ADDRESS}")
        return cls(host, int(port))

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


def bind(address: HttpAddress) -> socket.socket:
    """Bind the listening socket now, so a taken port is a clear start-up error (uvicorn itself would
    exit the whole process)."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address.host, address.port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConsoleError(f"cannot listen on {address.host}:{address.port} for the console "
                           f"({exc.strerror}): choose another with --http HOST:PORT") from exc
    sock.setblocking(False)
    return sock


class ConsoleComponent:
    name = "console"

    def __init__(self, address: HttpAddress, database: StoreLocation, *, providers: Providers | None = None,
                 clock: Clock = utc_now, session_ttl: timedelta = timedelta(hours=12),
                 per_client_limit: int = 256, resources: Sequence[Resource] = (),
                 thresholds: ThresholdPolicy | None = None, settings: ConsoleSettings | None = None,
                 timezone: str = CENTRE_TIMEZONE) -> None:
        self.thresholds = thresholds or ThresholdPolicy()
        self.timezone = ZoneInfo(timezone)  # the centre's day and clock: the site's [centre] timezone
        self.address = address
        self.settings = settings or ConsoleSettings()
        self.resources = list(resources)  # the providers' connections: opened in run, closed after
        self.database = database
        self.providers = providers or Providers()
        self.clock = clock
        self.session_ttl = session_ttl
        self.hub = EventHub(per_client_limit)
        self.arrivals = Arrivals()
        self.listen: ListenService | None = None  # while the console runs
        self._sock: socket.socket | None = None
        self.started = asyncio.Event()

    def bind(self) -> None:
        if self._sock is None:
            self._sock = bind(self.address)
            self.address = HttpAddress(self.address.host, self._sock.getsockname()[1])

    async def handle(self, item: EventItem) -> None:
        self.arrivals.see(item)
        if self.listen is not None:
            await self.listen.handle(item)
        message = to_message(item, self.arrivals)
        if message is not None:
            self.hub.publish(message)

    async def on_call_record(self, record: CallRecord) -> None:
        """A finished call is stored (a :class:`CallRecordListener`): pages re-read today's figures and
        the caller's history now that the record is there."""
        self.hub.publish({"type": "call.record", "at": (record.ended or record.arrival).isoformat(),
                          "linkedid": record.linkedid, "caller": record.caller_number,
                          "outcome": str(record.outcome), "call_class": str(record.call_class),
                          "operator": record.operator, "answer_seconds": record.answer_seconds})

    async def run(self, engine: Engine) -> None:
        self.bind()
        assert self._sock is not None  # noqa: S101 -- bound just above
        if isinstance(self.providers.queues, UnavailableQueues):  # not replaced by the wiring
            self.providers.queues = AsteriskQueues(engine.session, self.clock)
        db = await open_database(self.database, [CONSOLE_SCHEMA, THRESHOLDS_SCHEMA, LISTEN_SCHEMA])
        started: list[Resource] = []
        try:
            for resource in self.resources:
                await resource.start()
                started.append(resource)
            audit = AuditLog(db, self.clock)
            ctx = ConsoleContext(accounts=AccountStore(db, self.clock, self.session_ttl),
                                 audit=audit, hub=self.hub, providers=self.providers,
                                 throttle=LoginThrottle(self.clock), clock=self.clock, web=self.settings,
                                 host_names=host_names(self.address.host, self.settings.allowed_hosts),
                                 timezone=self.timezone)
            ctx.thresholds = ThresholdWatch(db, self.providers, audit, clock=self.clock,
                                            timezone=ctx.timezone, policy=self.thresholds,
                                            publish=self.hub.publish)
            self.listen = ctx.listen = ListenService(db, audit, clock=self.clock, publish=self.hub.publish)
            ctx.listen.session = engine.session
            server = EmbeddedServer(server_config(create_app(ctx), self.settings))
            watching = asyncio.ensure_future(ctx.thresholds.run())
            try:
                await self._serve(server, engine)
            finally:
                watching.cancel()
                await asyncio.gather(watching, return_exceptions=True)
        finally:
            for resource in reversed(started):
                await resource.stop()
            await db.close()

    async def _serve(self, server: EmbeddedServer, engine: Engine) -> None:
        assert self._sock is not None  # noqa: S101
        serving = asyncio.ensure_future(server.serve(sockets=[self._sock]))
        stopping = asyncio.ensure_future(engine.stopping.wait())
        log.info("console.listening", url=f"http://{self.address.host}:{self.address.port}/",
                 loopback=self.address.loopback)
        if not self.address.loopback:
            log.warning("console.not_loopback", host=self.address.host,
                        hint="put it behind TLS (a reverse proxy) before exposing it beyond this host")
            if not self.settings.allowed_hosts:
                log.warning("console.no_allowed_hosts", host=self.address.host,
                            hint="browsers must use the bind address; list the names they use in "
                                 "[console] allowed_hosts, or they get 421")
        self.started.set()
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            server.should_exit = True
            self.hub.close()
            try:
                await asyncio.wait({serving}, timeout=5)
            except asyncio.CancelledError:
                # the engine cancels components once its consumer is drained: finish the shutdown first
                await asyncio.wait({serving}, timeout=5)
                raise
            finally:
                if not serving.done():
                    serving.cancel()
                    await asyncio.wait({serving}, timeout=1)
                self._sock.close()
                log.info("console.stopped")
        if serving.done() and not serving.cancelled():
            serving.result()  # uvicorn's own failure, if any, surfaces here
