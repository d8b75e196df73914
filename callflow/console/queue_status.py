"""Waiting callers per queue, read live from Asterisk (AMI ``QueueStatus``): no tracking of our own.

The list items Asterisk answers with (``QueueParams``, ``QueueMember``, ``QueueEntry``) are typed here
with the AMI layer's own machinery, so nothing reads raw AMI dictionaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

from callflow.ami import AmiError, AmiMessage
from callflow.ami.client import Clock
from callflow.ami.events import AmiEvent, ChannelEvent, header
from callflow.calls.model import CallClass
from callflow.console.models import QueueBoard, QueueCaller, QueueView
from callflow.console.providers import QUEUES, ProviderUnavailable


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueParams(AmiEvent):
    event_name: ClassVar[str] = "QueueParams"
    queue: str = header("Queue")
    calls: int = header("Calls", _int, 0)
    completed: int = header("Completed", _int, 0)
    abandoned: int = header("Abandoned", _int, 0)
    service_level: int = header("ServiceLevel", _int, 0)
    weight: int = header("Weight", _int, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEntry(ChannelEvent):
    event_name: ClassVar[str] = "QueueEntry"
    queue: str = header("Queue")
    position: int = header("Position", _int, 0)
    wait: int = header("Wait", _int, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberItem(AmiEvent):
    event_name: ClassVar[str] = "QueueMember"
    queue: str = header("Queue")
    name: str = header("Name")


class ListActionSession(Protocol):
    async def list_action(self, name: str, headers: Mapping[str, str | int] | None = None, *,
                          timeout: float | None = None) -> tuple[AmiMessage, list[AmiEvent]]: ...


_CLASSES = {CallClass.EMERGENCY.value: CallClass.EMERGENCY.value,
            CallClass.NONEMERGENCY.value: CallClass.NONEMERGENCY.value}


class AsteriskQueues:
    """:class:`~callflow.console.providers.QueuesProvider` asking Asterisk each time (one list action,
    a few ms on loopback). Queues ``emergency`` and ``nonemergency`` map to the call classes."""

    def __init__(self, session: ListActionSession, clock: Clock, timeout: float = 3.0) -> None:
        self._session = session
        self._clock = clock
        self._timeout = timeout

    async def board(self) -> QueueBoard:
        try:
            _, items = await self._session.list_action("QueueStatus", timeout=self._timeout)
        except AmiError as exc:
            raise ProviderUnavailable(QUEUES, f"cannot read queue status from Asterisk: {exc}") from exc
        params: dict[str, QueueParams] = {}
        callers: dict[str, list[QueueCaller]] = {}
        members: dict[str, int] = {}
        for item in items:
            name = item.message.get("Event")
            if name == "QueueParams":
                p = QueueParams.from_ami(item.message, item.received_at)
                params[p.queue] = p
            elif name == "QueueEntry":
                e = QueueEntry.from_ami(item.message, item.received_at)
                chan = e.chan
                callers.setdefault(e.queue, []).append(QueueCaller(
                    position=e.position, caller=chan.caller_id_num if chan else "",
                    caller_name=chan.caller_id_name if chan else "", wait_s=e.wait,
                    uniqueid=e.uniqueid, linkedid=e.linkedid))
            elif name == "QueueMember":
                m = QueueMemberItem.from_ami(item.message, item.received_at)
                members[m.queue] = members.get(m.queue, 0) + 1
        views = []
        # emergency first (the higher weight), then by name
        for queue, p in sorted(params.items(), key=lambda kv: (-kv[1].weight, kv[0])):
            waiting = sorted(callers.get(queue, []), key=lambda c: c.position)
            views.append(QueueView(
                queue=queue, call_class=_CLASSES.get(queue, queue), waiting=len(waiting),
                longest_wait_s=max((c.wait_s for c in waiting), default=0), callers=waiting,
                members=members.get(queue, 0), service_level_s=p.service_level))
        return QueueBoard(at=self._clock(), queues=views)
