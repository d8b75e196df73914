"""Listen-in's shell: follows which call each operator is on (AgentConnect/AgentComplete), rings a
supervisor's phone into ChanSpy (AMI Originate), switches modes (Setvar + Redirect), follows ChanSpyStart /
ChanSpyStop into the sessions' table and the audit trail, and puts a note on the call's record
(``UserEvent(SiagaListen)``, folded by the call tracker like the dial plan's own events)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from callflow.ami import AmiError, EventItem, LinkEvent
from callflow.ami.client import Clock
from callflow.ami.events import AgentComplete, AgentConnect, ChanSpyStart, ChanSpyStop, DTMFEnd, Hangup
from callflow.console.audit import AuditAction, AuditLog, AuditOutcome
from callflow.console.listen import store
from callflow.console.listen.rules import (
    LISTEN_ID_PREFIX,
    ListenMode,
    ListenRefused,
    LiveCall,
    Session,
    SessionState,
    key_pressed,
    note,
    originate,
    spy_started,
    spy_stopped,
    switch,
)
from callflow.console.providers import ProviderUnavailable, Refused
from callflow.console.schema import iso
from callflow.store import Database

log = structlog.get_logger("callflow.console.listen")

LISTEN = "listen-in (AMI link to Asterisk)"


class ActionSession(Protocol):
    async def action(self, name: str, headers: dict[str, str | int] | None = None, *,
                     timeout: float | None = None, variables: dict[str, str] | None = None) -> Any: ...


class ListenService:
    def __init__(self, conn: Database, audit: AuditLog, *, clock: Clock,
                 publish: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.conn = conn
        self.audit = audit
        self.clock = clock
        self.publish = publish
        self.session: ActionSession | None = None  # the engine's AMI session, set when the console runs
        self.calls: dict[str, LiveCall] = {}  # operator -> the call they are on
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    # -- engine events --------------------------------------------------------------------------------
    async def handle(self, item: EventItem) -> None:
        if isinstance(item, LinkEvent):
            return
        if isinstance(item, AgentConnect) and item.dest is not None:
            self.calls[item.member_name] = LiveCall(item.member_name, item.linkedid, item.dest.channel,
                                                    item.time)
        elif isinstance(item, AgentComplete):
            self.calls.pop(item.member_name, None)
        elif isinstance(item, Hangup) and item.chan is not None:
            for op, call in list(self.calls.items()):
                if call.channel == item.chan.channel:
                    del self.calls[op]
            if item.chan.uniqueid.startswith(LISTEN_ID_PREFIX):
                await self._phone_gone(item.chan.uniqueid, item.time, item.cause_txt or "hung up")
        elif isinstance(item, ChanSpyStart | ChanSpyStop) and item.spyer is not None:
            await self._spy_event(item)
        elif isinstance(item, DTMFEnd) and item.uniqueid.startswith(LISTEN_ID_PREFIX):
            await self._key(item)

    async def _key(self, item: DTMFEnd) -> None:
        """A key on the supervisor's phone: ChanSpy (option d) switched the mode; record it."""
        async with self._lock:
            found = next((s for s in await store.open_sessions(self.conn)
                          if s.phone_uniqueid == item.uniqueid), None)
            changed = key_pressed(found, item.digit) if found is not None else None
            if found is None or changed is None:
                return
            await store.save(self.conn, changed)
        log.info("listen.switched", session=found.id, supervisor=found.supervisor, operator=found.operator,
                 linkedid=found.linkedid, mode=changed.mode.value, ami_event=item.name, digit=item.digit)
        await self._note(changed)
        await self.audit.record(found.supervisor, AuditAction.LISTEN, AuditOutcome.OK,
                                target=f"{found.operator} call {found.linkedid}",
                                detail=f"session {found.id}: {changed.mode.value} from {iso(item.time)}")
        self._tell(changed)

    async def _spy_event(self, item: ChanSpyStart | ChanSpyStop) -> None:
        assert item.spyer is not None  # noqa: S101 -- checked by the caller
        async with self._lock:
            found = next((s for s in await store.open_sessions(self.conn)
                          if s.phone_uniqueid == item.spyer.uniqueid), None)
            if found is None:
                return  # someone else's ChanSpy (a dial plan of the site's own)
            if isinstance(item, ChanSpyStart):
                changed = spy_started(found, item.spyer.channel, item.time)
                what = "started"
            else:
                changed = spy_stopped(found, item.time,
                                      "ChanSpy stopped: the call ended or the phone hung up", switching=False)
                what = "stopped"
            await store.save(self.conn, changed)
        log.info(f"listen.{what}", session=found.id, supervisor=found.supervisor, operator=found.operator,
                 linkedid=found.linkedid, mode=changed.mode.value, ami_event=item.name,
                 spyee=item.spyee.channel if item.spyee else "")
        if isinstance(item, ChanSpyStart):
            await self._note(changed)
            await self.audit.record(found.supervisor, AuditAction.LISTEN, AuditOutcome.OK,
                                    target=f"{found.operator} call {found.linkedid}",
                                    detail=f"session {found.id}: {changed.mode.value} started "
                                           f"{iso(item.time)}")
        elif changed.state is SessionState.ENDED:
            await self.audit.record(found.supervisor, AuditAction.LISTEN, AuditOutcome.OK,
                                    target=f"{found.operator} call {found.linkedid}",
                                    detail=f"session {found.id}: ended {iso(item.time)} "
                                           f"({changed.end_reason or 'stopped'})")
        self._tell(changed)

    async def _phone_gone(self, uniqueid: str, at: Any, reason: str) -> None:
        async with self._lock:
            found = next((s for s in await store.open_sessions(self.conn) if s.phone_uniqueid == uniqueid),
                         None)
            if found is None:
                return
            ended = spy_stopped(found, at, f"the supervisor's phone: {reason}", switching=False)
            await store.save(self.conn, ended)
        await self.audit.record(found.supervisor, AuditAction.LISTEN, AuditOutcome.OK,
                                target=f"{found.operator} call {found.linkedid}",
                                detail=f"session {found.id}: ended {iso(at)} ({ended.end_reason})")
        self._tell(ended)

    # -- the console's requests -----------------------------------------------------------------------
    def _ami(self) -> ActionSession:
        if self.session is None:
            raise ProviderUnavailable(LISTEN, f"{LISTEN}: the engine is not attached to Asterisk yet")
        return self.session

    async def start(self, supervisor: str, phone: str | None, operator: str, mode: ListenMode,
                    address: str) -> Session:
        now = self.clock()
        channel_id = f"{LISTEN_ID_PREFIX}{now.strftime('%Y%m%d%H%M%S%f')}-{next(self._ids)}"
        call = self.calls.get(operator)
        target = f"{operator} call {call.linkedid if call else '-'}"
        try:
            action = originate(call, operator, phone, mode, channel_id=channel_id, supervisor=supervisor)
        except ListenRefused as exc:
            await self.audit.record(supervisor, AuditAction.LISTEN, AuditOutcome.FAILED, target=target,
                                    address=address, detail=f"{mode.value}: {exc}")
            raise Refused("operator", str(exc)) from exc
        assert call is not None  # noqa: S101 -- originate() refuses without a call
        session = await store.insert(self.conn, Session(0, supervisor, operator, call.linkedid,
                                                        call.channel, mode, channel_id, now))
        try:
            await self._ami().action("Originate", action.headers, variables=action.variables)
        except (AmiError, ProviderUnavailable) as exc:
            ended = spy_stopped(session, self.clock(), f"not started: {exc}", switching=False)
            await store.save(self.conn, ended)
            await self.audit.record(supervisor, AuditAction.LISTEN, AuditOutcome.FAILED, target=target,
                                    address=address, detail=f"session {session.id}: {mode.value}: {exc}")
            raise Refused("operator", f"Asterisk did not ring your phone ({phone}): {exc}") from exc
        await self.audit.record(supervisor, AuditAction.LISTEN, AuditOutcome.OK, target=target,
                                address=address,
                                detail=f"session {session.id}: {mode.value} requested, ringing {phone}")
        log.info("listen.requested", session=session.id, supervisor=supervisor, operator=operator,
                 linkedid=call.linkedid, mode=mode.value, phone=phone)
        self._tell(session)
        return session

    async def change(self, session_id: int, supervisor: str, mode: ListenMode, address: str) -> Session:
        """Ask ChanSpy to switch (the key, received on the phone's channel); the phone's DTMFEnd records
        it."""
        current = next((s for s in await store.open_sessions(self.conn) if s.id == session_id), None)
        try:
            action = switch(current, session_id, mode, supervisor)
        except ListenRefused as exc:
            await self.audit.record(supervisor, AuditAction.LISTEN, AuditOutcome.FAILED,
                                    target=f"session {session_id}", address=address,
                                    detail=f"{mode.value}: {exc}")
            raise Refused("session_id", str(exc)) from exc
        assert current is not None  # noqa: S101 -- switch() refuses without a session
        try:
            await self._ami().action("PlayDTMF", action)
        except AmiError as exc:
            raise Refused("session_id", f"Asterisk did not switch the mode: {exc}") from exc
        await self.audit.record(supervisor, AuditAction.LISTEN, AuditOutcome.OK,
                                target=f"{current.operator} call {current.linkedid}", address=address,
                                detail=f"session {session_id}: switch to {mode.value} requested")
        return current

    async def stop(self, session_id: int, supervisor: str, address: str) -> None:
        current = next((s for s in await store.open_sessions(self.conn) if s.id == session_id), None)
        if current is None or current.supervisor != supervisor:
            raise Refused("session_id", f"listen-in session {session_id} is not yours or has ended")
        channel = current.phone_channel or current.phone_uniqueid
        try:
            await self._ami().action("Hangup", {"Channel": channel})
        except AmiError as exc:
            raise Refused("session_id", f"Asterisk did not end the session: {exc}") from exc
        await self.audit.record(supervisor, AuditAction.LISTEN, AuditOutcome.OK,
                                target=f"{current.operator} call {current.linkedid}", address=address,
                                detail=f"session {session_id}: stop requested")

    async def sessions(self) -> list[tuple[Session, str]]:
        return await store.recent(self.conn)

    async def _note(self, session: Session) -> None:
        try:
            headers: dict[str, str | int] = dict(note(session, session.mode))
            await self._ami().action("UserEvent", headers)
        except (AmiError, ProviderUnavailable) as exc:
            log.error("listen.note_not_recorded",  # noqa: TRY400 -- an expected refusal, no traceback session=session.id, linkedid=session.linkedid,
                      error=str(exc), action="the session is in console_listen and the audit trail only")

    def _tell(self, session: Session) -> None:
        if self.publish is not None:
            self.publish({"type": "listen.changed", "at": self.clock().isoformat(), "id": session.id,
                          "operator": session.operator, "state": session.state.value,
                          "mode": session.mode.value})
