"""INTERIM, TEST-ONLY: ``AmiEventCallRecordSource`` builds minimal call records straight from AMI events
and serves them through the reports' ``CallRecordSource`` protocol.

It exists so the incident/report integration test can run on a real call before the call tracker (built
in parallel) is merged; after the merge the test switches to the tracker's store. It is NOT the call
tracker: it knows only arrival (the caller channel's ``Newchannel`` Timestamp), answer (the queue's
``AgentConnect`` Timestamp, with the operator's MemberName) and end (the caller channel's ``Hangup``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from callflow.ami import EventItem, LinkEvent
from callflow.ami.events import AgentConnect, Hangup, Newchannel
from callflow.calls.model import CallClass, CallRecord, Instant, InstantSource, Outcome


@dataclass
class _Partial:
    linkedid: str
    caller_number: str
    dialed: str
    arrival: datetime
    answered: datetime | None = None
    operator: str = ""
    queue: str = ""
    ended: datetime | None = None


class AmiEventCallRecordSource:
    """Feed it every AMI event (``feed``); ``ended`` is set for a Linkedid when its caller hangs up."""

    def __init__(self) -> None:
        self._calls: dict[str, _Partial] = {}
        self._ended: dict[str, asyncio.Event] = {}

    def feed(self, item: EventItem) -> None:
        if isinstance(item, LinkEvent):
            return
        if isinstance(item, Newchannel) and item.chan and item.chan.uniqueid == item.chan.linkedid:
            if item.timestamp is None:
                raise AssertionError("Newchannel without a Timestamp: manager.conf needs timestampevents")
            self._calls[item.linkedid] = _Partial(item.linkedid, item.chan.caller_id_num, item.chan.exten,
                                                  item.timestamp)
        elif isinstance(item, AgentConnect) and item.linkedid in self._calls:
            call = self._calls[item.linkedid]
            if call.answered is None:
                call.answered, call.operator, call.queue = item.timestamp, item.member_name, item.queue
        elif isinstance(item, Hangup) and item.chan and item.uniqueid == item.linkedid \
                and item.linkedid in self._calls:
            self._calls[item.linkedid].ended = item.timestamp
            self._ended.setdefault(item.linkedid, asyncio.Event()).set()

    async def wait_ended(self, linkedid: str) -> CallRecord:
        await self._ended.setdefault(linkedid, asyncio.Event()).wait()
        return self._record(self._calls[linkedid])

    def linkedids(self) -> list[str]:
        return list(self._calls)

    @staticmethod
    def _record(p: _Partial) -> CallRecord:
        instants = [Instant("arrival", p.arrival, InstantSource.AMI_TIMESTAMP, "Newchannel")]
        if p.answered is not None:
            instants.append(Instant("answered", p.answered, InstantSource.AMI_TIMESTAMP, p.operator))
        return CallRecord(
            linkedid=p.linkedid, caller_number=p.caller_number, caller_name="", dialed=p.dialed,
            call_class=CallClass.EMERGENCY if p.queue == "emergency" else CallClass.UNKNOWN,
            outcome=Outcome.ANSWERED if p.answered else Outcome.ABANDONED_IN_QUEUE, arrival=p.arrival,
            ended=p.ended, answered=p.answered, operator=p.operator, queue=p.queue,
            instants=tuple(instants), sources=("ami",),
            notes=("interim record from tests/support/ami_call_source.py",))

    async def get(self, linkedid: str) -> CallRecord | None:
        partial = self._calls.get(linkedid)
        return self._record(partial) if partial and partial.ended else None

    async def between(self, since: datetime, until: datetime) -> list[CallRecord]:
        done = [p for p in self._calls.values() if p.ended and since <= p.arrival < until]
        return sorted((self._record(p) for p in done), key=lambda r: r.arrival)
