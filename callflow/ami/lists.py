"""Typed results of the list actions the engine reads: QueueStatus, QueueSummary, CoreShowChannels,
PJSIPShowEndpoints. Each waits for the list's ``EventList: Complete`` marker (so the result is complete)
within the action timeout, and returns typed, immutable items."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

import structlog

from callflow.ami.codec import AmiMessage
from callflow.ami.events import (
    AmiEvent,
    CoreShowChannel,
    EndpointList,
    QueueEntry,
    QueueMember,
    QueueParams,
    QueueSummary,
)

log = structlog.get_logger("callflow.ami.lists")

T = TypeVar("T", bound=AmiEvent)


class ListActionSender(Protocol):
    """An :class:`~callflow.ami.client.AmiConnection` or :class:`~callflow.ami.client.AmiSession`."""

    async def list_action(self, name: str, headers: Mapping[str, str | int] | None = None, *,
                          timeout: float | None = None) -> tuple[AmiMessage, list[AmiEvent]]: ...


@dataclass(frozen=True, slots=True)
class QueueStatusResult:
    """Everything QueueStatus lists: each queue's figures, its members and its waiting callers."""

    params: tuple[QueueParams, ...]
    members: tuple[QueueMember, ...]
    entries: tuple[QueueEntry, ...]


def _only(items: list[AmiEvent], kind: type[T]) -> tuple[T, ...]:
    return tuple(i for i in items if isinstance(i, kind))


def _unexpected(items: list[AmiEvent], kinds: tuple[type[AmiEvent], ...], action: str) -> None:
    for item in items:
        if not isinstance(item, kinds):
            log.warning("ami.list_unexpected_item", action=action, item=item.name)


async def queue_status(ami: ListActionSender, queue: str | None = None, *,
                       timeout: float | None = None) -> QueueStatusResult:
    headers = {"Queue": queue} if queue else None
    _, items = await ami.list_action("QueueStatus", headers, timeout=timeout)
    _unexpected(items, (QueueParams, QueueMember, QueueEntry), "QueueStatus")
    return QueueStatusResult(_only(items, QueueParams), _only(items, QueueMember), _only(items, QueueEntry))


async def queue_summary(ami: ListActionSender, queue: str | None = None, *,
                        timeout: float | None = None) -> tuple[QueueSummary, ...]:
    headers = {"Queue": queue} if queue else None
    _, items = await ami.list_action("QueueSummary", headers, timeout=timeout)
    _unexpected(items, (QueueSummary,), "QueueSummary")
    return _only(items, QueueSummary)


async def core_show_channels(ami: ListActionSender, *,
                             timeout: float | None = None) -> tuple[CoreShowChannel, ...]:
    _, items = await ami.list_action("CoreShowChannels", timeout=timeout)
    _unexpected(items, (CoreShowChannel,), "CoreShowChannels")
    return _only(items, CoreShowChannel)


async def pjsip_endpoints(ami: ListActionSender, *, timeout: float | None = None) -> tuple[EndpointList, ...]:
    _, items = await ami.list_action("PJSIPShowEndpoints", timeout=timeout)
    _unexpected(items, (EndpointList,), "PJSIPShowEndpoints")
    return _only(items, EndpointList)
