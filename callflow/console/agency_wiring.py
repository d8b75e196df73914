"""The agencies' desk inside the console process: its own store connection, the incident service it
acts through, the periodic sweep that escalates overdue hand-offs, and who an escalation tells.

An escalation is published on the console's live stream (the supervisors' pages and the wallboard) and
names, for the record, the supervisors and the agency's own accounts that were active when it was made
(they see it on their pages: the agency's desk lists it as overdue).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from callflow.agencies import AgencyDesk, Handoff, HandoffPolicy, Overdue
from callflow.agencies.outbox import Outbox, OutboxError
from callflow.ami.client import Clock
from callflow.cluster.rules import Leadership
from callflow.console.providers import AGENCIES, ProviderUnavailable
from callflow.incidents import IncidentError
from callflow.store import Database, DatabaseError, OperationalError

log = structlog.get_logger("callflow.console.agencies")

Publish = Callable[[dict[str, Any]], None]


async def active_accounts(conn: Database, agency_id: str) -> list[str]:
    """``supervisor:NAME`` and ``agency:NAME`` of the active accounts an escalation concerns. The
    console's accounts table may not exist yet (a store no console has opened): then nobody."""
    try:
        async with conn.execute(
                "SELECT role, name FROM console_users WHERE disabled = 0 AND (role = 'supervisor' OR "
                "(role = 'agency' AND agency_id = ?)) ORDER BY role DESC, name", (agency_id,)) as cur:
            return [f"{r[0]}:{r[1]}" for r in await cur.fetchall()]
    except OperationalError:
        return []


class AgencyDeskService:
    """A console resource: opened with the console, closed after it. ``publish``: the live stream."""

    def __init__(self, connect: Callable[[], Any], incidents: Any, policy: HandoffPolicy, *,
                 clock: Clock) -> None:
        self._connect = connect  # opens the store (with the agencies' schema)
        self._incidents = incidents  # the console's ServiceIncidents (its IncidentService, once started)
        self.policy = policy
        self.clock = clock
        self.publish: Publish | None = None
        self._conn: Database | None = None
        self._desk: AgencyDesk | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._deliverer: asyncio.Task[None] | None = None
        self._outbox: Outbox | None = None
        self._changed_reports: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        self.delivery_poll_s = 1.0
        # two nodes on one store: only the leader delivers the outbox and sweeps for overdue hand-offs
        # (each node still queues its own operators' changes); None: a single engine
        self.leadership: Leadership | None = None

    def _leading(self) -> bool:
        return self.leadership is None or self.leadership.fence() is not None

    @property
    def desk(self) -> AgencyDesk:
        if self._desk is None:
            raise ProviderUnavailable(AGENCIES, f"{AGENCIES}: not open (the console is starting or stopping)")
        return self._desk

    async def _notify(self, overdue: Overdue) -> list[str]:
        assert self._conn is not None  # noqa: S101 -- the desk exists only while the connection is open
        told = await active_accounts(self._conn, overdue.agency_id)
        if self._outbox is not None and overdue.agency_id in self._outbox.targets:
            ids = await self._outbox.publish(overdue.incident_id, f"overdue:{overdue.stage.value}",
                                             only=overdue.agency_id)
            told.extend(f"system:{overdue.agency_id} (outbox #{i})" for i in ids)
        if self.publish is not None:
            self.publish({"type": "agency.overdue", "at": self.clock().isoformat(),
                          "id": str(overdue.incident_id), "agency": overdue.agency_id,
                          "stage": overdue.stage.value, "due": overdue.due_at.isoformat(), "notified": told})
        return told

    @property
    def desk_connection(self) -> Database:
        if self._conn is None:
            raise ProviderUnavailable(AGENCIES, f"{AGENCIES}: not open (the console is starting or stopping)")
        return self._conn

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            raise ProviderUnavailable(AGENCIES, f"{AGENCIES}: not open (the console is starting or stopping)")
        return self._outbox

    def on_incident(self, message: dict[str, Any]) -> None:
        """The operators' incident changes (the console's live messages): a dispatch hands the report to
        an agency, and every later change is an update for the agencies' systems."""
        if message.get("type") == "incident.changed" and str(message.get("id", "")).isdigit():
            self._changed_reports.put_nowait((int(message["id"]), str(message.get("change", "update"))))

    async def _changed(self, handoff: Handoff, change: str) -> None:
        self._changed_reports.put_nowait((handoff.incident.id, f"agency_{change}"))
        if self.publish is not None:
            self.publish({"type": "incident.changed", "at": self.clock().isoformat(),
                          "id": str(handoff.incident.id), "change": f"agency_{change}",
                          "status": handoff.incident.status.value, "agency": handoff.agency_id})

    async def start(self) -> None:
        self._conn = await self._connect()
        self._desk = AgencyDesk(self._conn, self._incidents.service, self.policy, clock=self.clock,
                                notifier=self._notify)
        self._desk.listeners.append(self._changed)
        self._outbox = Outbox(self._conn, self._desk, self.policy, clock=self.clock)
        try:
            await self._outbox.start()
        except OutboxError:
            await self.stop()
            raise
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="agencies.sweep")
        self._deliverer = asyncio.create_task(self._deliver_forever(), name="agencies.outbox")

    async def _deliver_forever(self) -> None:
        outbox = self.outbox
        while True:
            try:
                while not self._changed_reports.empty():
                    incident, change = self._changed_reports.get_nowait()
                    if change != "created":
                        await outbox.publish(incident, "handoff" if change == "dispatched" else change)
                if self._leading():
                    await outbox.deliver_due()
            except (DatabaseError, ProviderUnavailable, IncidentError) as exc:  # the next round retries
                log.warning("agencies.outbox_failed", error=str(exc))
            except Exception:  # a bug in one round must not end deliveries: logged in full
                log.exception("agencies.outbox_crashed")
            outbox.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.delivery_poll_s):
                    await outbox.wake.wait()

    async def _sweep_forever(self) -> None:
        while True:
            try:
                if self._leading():
                    await self.desk.sweep()
            except (DatabaseError, ProviderUnavailable, IncidentError) as exc:  # the next sweep retries
                log.warning("agencies.sweep_failed", error=str(exc))
            except Exception:  # a bug in one round must not end escalations: logged in full
                log.exception("agencies.sweep_crashed")
            await asyncio.sleep(self.policy.sweep_s)

    async def stop(self) -> None:
        for task in (self._sweeper, self._deliverer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._sweeper = self._deliverer = None
        if self._outbox is not None:
            await self._outbox.stop()
            self._outbox = None
        self._desk = None
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


__all__: Sequence[str] = ("AgencyDeskService", "active_accounts")
