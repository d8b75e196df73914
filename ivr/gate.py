"""The dial plan's gate to the FastAGI IVR: open only while this engine's IVR holds the FastAGI port.

Asterisk cannot authenticate a FastAGI server: whatever process listens on the port gets every 112 caller
(number, channel) and may run any dial plan application on the call (Dial out included). So the dial plan
connects to the IVR only while the global ``SIAGA_IVR_GATE`` is ``open``, and only this component sets it,
over the engine's authenticated AMI session. The gate is a lease (:mod:`callflow.lease`): the global holds
the Asterisk epoch second until which the dial plan trusts the IVR, renewed every few seconds while the IVR
holds the port (so no other process can hold it). It is ended (``0``) when binding failed (another process
holds the port: calls go straight to the emergency queue, never to it) and when the IVR or the engine stops;
and if the engine dies without ending it (``kill -9``), it runs out by itself within ``LEASE_S``: a process
that binds the freed port then gets no call. The global starts at ``0`` on every Asterisk start and dial
plan reload (``clearglobalvars``): the gate is set again on every AMI (re)connect and every ``Reload`` event.

``ivr.listening`` is logged here, once the gate is open: from then on calls reach the IVR.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import structlog

from callflow.ami import AmiError, EventItem, LinkEvent
from callflow.lease import LEASE_S, RENEW_S, grant, revoke

if TYPE_CHECKING:
    from callflow.service import Engine

log = structlog.get_logger("ivr.gate")

GATE_VARIABLE = "SIAGA_IVR_GATE"


class IvrState:
    """What the IVR reports: ``bound`` (it holds the port), ``failed`` (another process holds it),
    ``stopped``."""

    BOUND = "bound"
    FAILED = "failed"
    STOPPED = "stopped"


class IvrGate:
    """Engine component. ``report(state)`` is called (on the engine's loop) as the IVR binds or fails."""

    name = "ivr-gate"

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port
        self.state = IvrState.STOPPED
        self.opened = asyncio.Event()  # the gate is open as far as Asterisk last confirmed
        self._dirty = asyncio.Event()
        self._engine: Engine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failing = False  # the last grant or revoke failed (its warning is already out)

    def report_threadsafe(self, state: str, port: int | None = None) -> None:
        """``report`` from any thread (an IVR serving from its own thread)."""
        loop = self._loop
        if loop is None:
            self.report(state, port)
        else:
            loop.call_soon_threadsafe(self.report, state, port)

    def report(self, state: str, port: int | None = None) -> None:
        if port is not None:
            self.port = port
        if state != self.state:
            self.state = state
            self._dirty.set()

    async def handle(self, item: EventItem) -> None:
        if isinstance(item, LinkEvent):
            self.opened.clear()  # unknown what Asterisk holds until the gate is set again
            if item.state == "up":
                self._dirty.set()
        elif item.name == "Reload":  # a dial plan reload resets globals to extensions.conf's (closed)
            self.opened.clear()
            self._dirty.set()

    async def run(self, engine: Engine) -> None:
        self._engine = engine
        self._loop = asyncio.get_running_loop()
        while True:
            # while the IVR holds the port: renew the lease (or retry a failed grant) every RENEW_S
            renew = RENEW_S if self.state == IvrState.BOUND else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(renew):
                    await self._dirty.wait()
            self._dirty.clear()
            await self._apply()

    async def _apply(self) -> None:
        assert self._engine is not None  # noqa: S101 - set by run() before any apply
        want = "open" if self.state == IvrState.BOUND else "closed"
        was_open = self.opened.is_set()
        try:
            if want == "open":
                await grant(self._engine.session, GATE_VARIABLE)
            else:
                await revoke(self._engine.session, GATE_VARIABLE)
        except AmiError as exc:
            self.opened.clear()
            if want == "closed":
                log.error(  # noqa: TRY400 - AMI down is said in full; no traceback
                    "ivr.gate_not_closed", error=str(exc), ivr=self.state, port=self.port,
                    hint=f"AMI is down: the dial plan's lease on the IVR runs out by itself within "
                         f"{LEASE_S} s of its last renewal (then calls go to the emergency queue); retried "
                         "when AMI is back")
            elif was_open or not self._failing:  # said once per outage, retried every RENEW_S
                log.warning("ivr.gate_not_opened", error=str(exc), port=self.port,
                            hint=f"the lease runs out within {LEASE_S} s: calls go to the emergency queue "
                                 "until AMI is back")
            self._failing = True
            return
        self._failing = False
        if want == "open":
            self.opened.set()
            if not was_open:
                log.info("ivr.listening", port=self.port, gate="open", lease_s=LEASE_S)
            return
        self.opened.clear()
        if self.state == IvrState.FAILED:
            log.error("ivr.gate_closed", port=self.port, ivr=self.state,
                      hint="another process (a stranger, or a second engine) holds the FastAGI port "
                           f"(`ss -lntp sport = :{self.port}`); the dial plan no longer connects to it: "
                           "calls go to the emergency queue meanwhile")
        else:
            log.info("ivr.gate_closed", port=self.port, ivr=self.state,
                     hint="the IVR is not running: calls go to the emergency queue")

    async def before_stop(self) -> None:
        """The engine is stopping: close the gate while AMI is still up."""
        if self._engine is None:
            return
        self.state = IvrState.STOPPED
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self._apply()
