"""Typed items of the list actions the engine reads (QueueStatus, QueueSummary, CoreShowChannels,
PJSIPShowEndpoints)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from callflow.ami._event_base import AmiEvent, ChannelEvent, _to_bool, _to_float, _to_int, header


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMember(AmiEvent):
    """A member, as listed by the QueueStatus action (``Name``/``Location`` here, not the events'
    ``MemberName``/``Interface``; the attributes are named as on the events)."""

    event_name: ClassVar[str] = "QueueMember"
    queue: str = header("Queue")
    member_name: str = header("Name")
    interface: str = header("Location")
    state_interface: str = header("StateInterface")
    membership: str = header("Membership")
    penalty: int = header("Penalty", _to_int, 0)
    calls_taken: int = header("CallsTaken", _to_int, 0)
    last_call: int = header("LastCall", _to_int, 0)
    last_pause: int = header("LastPause", _to_int, 0)
    login_time: int = header("LoginTime", _to_int, 0)
    in_call: bool = header("InCall", _to_bool, False)
    status: int = header("Status", _to_int, 0)
    paused: bool = header("Paused", _to_bool, False)
    paused_reason: str = header("PausedReason")
    wrapuptime: int = header("Wrapuptime", _to_int, 0)
    name_: str = header("Name")  # the foundation's name for member_name; kept for its readers


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueParams(AmiEvent):
    """A queue's figures, as listed by the QueueStatus action."""

    event_name: ClassVar[str] = "QueueParams"
    queue: str = header("Queue")
    max: int = header("Max", _to_int, 0)
    strategy: str = header("Strategy")
    calls: int = header("Calls", _to_int, 0)
    hold_time: int = header("Holdtime", _to_int, 0)
    talk_time: int = header("TalkTime", _to_int, 0)
    completed: int = header("Completed", _to_int, 0)
    abandoned: int = header("Abandoned", _to_int, 0)
    service_level: int = header("ServiceLevel", _to_int, 0)
    service_level_perf: float = header("ServicelevelPerf", _to_float, 0.0)
    service_level_perf2: float = header("ServicelevelPerf2", _to_float, 0.0)
    weight: int = header("Weight", _to_int, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEntry(AmiEvent):
    """A caller waiting in a queue, as listed by the QueueStatus action."""

    event_name: ClassVar[str] = "QueueEntry"
    queue: str = header("Queue")
    position: int = header("Position", _to_int, 0)
    channel: str = header("Channel")
    uniqueid: str = header("Uniqueid")
    caller_id_num: str = header("CallerIDNum")
    caller_id_name: str = header("CallerIDName")
    connected_line_num: str = header("ConnectedLineNum")
    connected_line_name: str = header("ConnectedLineName")
    wait: int = header("Wait", _to_int, 0)
    priority: int = header("Priority", _to_int, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSummary(AmiEvent):
    """One queue, as listed by the QueueSummary action."""

    event_name: ClassVar[str] = "QueueSummary"
    queue: str = header("Queue")
    logged_in: int = header("LoggedIn", _to_int, 0)
    available: int = header("Available", _to_int, 0)
    callers: int = header("Callers", _to_int, 0)
    hold_time: int = header("HoldTime", _to_int, 0)
    talk_time: int = header("TalkTime", _to_int, 0)
    longest_hold_time: int = header("LongestHoldTime", _to_int, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointList(AmiEvent):
    """One PJSIP endpoint, as listed by the PJSIPShowEndpoints action."""

    event_name: ClassVar[str] = "EndpointList"
    object_type: str = header("ObjectType")
    object_name: str = header("ObjectName")
    transport: str = header("Transport")
    aor: str = header("Aor")
    auths: str = header("Auths")
    outbound_auths: str = header("OutboundAuths")
    contacts: str = header("Contacts")
    device_state: str = header("DeviceState")
    active_channels: str = header("ActiveChannels")


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreShowChannel(ChannelEvent):
    """A list item of the CoreShowChannels action."""

    event_name: ClassVar[str] = "CoreShowChannel"
    application: str = header("Application")
    duration: str = header("Duration")
    bridge_id: str = header("BridgeId")
