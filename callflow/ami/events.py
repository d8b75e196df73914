"""Typed AMI events: the edge past which nothing reads raw AMI dictionaries.

Each event the engine consumes is a frozen dataclass built by :func:`parse_event` (or the class's
``from_ami``). Fields are declared with :func:`header`, naming the AMI header they come from; the
conversion plan for each class is computed once, so typing an event is a handful of dict lookups.
Unknown events become :class:`UnknownEvent` with every header kept: nothing is dropped.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from callflow.ami._event_base import (
    AmiEvent,
    ChannelEvent,
    ChannelSnapshot,
    UnknownEvent,
    _to_bool,
    _to_int,
    build_generic,
    channel,
    compile_builder,
    header,
    parse_timestamp,
)
from callflow.ami.codec import AmiMessage
from callflow.ami.list_items import (
    CoreShowChannel,
    EndpointList,
    QueueEntry,
    QueueMember,
    QueueParams,
    QueueSummary,
)

__all__ = [  # the base names are re-exported: readers import every event name from here
    "AmiEvent", "ChannelEvent", "ChannelSnapshot", "CoreShowChannel", "EndpointList", "QueueEntry",
    "QueueMember", "QueueParams", "QueueSummary", "UnknownEvent", "channel", "header", "parse_event",
    "parse_timestamp",
]

@dataclass(frozen=True, slots=True, kw_only=True)
class FullyBooted(AmiEvent):
    event_name: ClassVar[str] = "FullyBooted"
    status: str = header("Status")
    uptime: int = header("Uptime", _to_int, 0)
    last_reload: int = header("LastReload", _to_int, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Newchannel(ChannelEvent):
    event_name: ClassVar[str] = "Newchannel"


@dataclass(frozen=True, slots=True, kw_only=True)
class Newstate(ChannelEvent):
    event_name: ClassVar[str] = "Newstate"


@dataclass(frozen=True, slots=True, kw_only=True)
class Newexten(ChannelEvent):
    event_name: ClassVar[str] = "Newexten"
    application: str = header("Application")
    app_data: str = header("AppData")


@dataclass(frozen=True, slots=True, kw_only=True)
class Hangup(ChannelEvent):
    event_name: ClassVar[str] = "Hangup"
    cause: int = header("Cause", _to_int, 0)
    cause_txt: str = header("Cause-txt")


@dataclass(frozen=True, slots=True, kw_only=True)
class HangupRequest(ChannelEvent):
    event_name: ClassVar[str] = "HangupRequest"
    cause: int = header("Cause", _to_int, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class SoftHangupRequest(ChannelEvent):
    event_name: ClassVar[str] = "SoftHangupRequest"
    cause: int = header("Cause", _to_int, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class DialBegin(ChannelEvent):
    event_name: ClassVar[str] = "DialBegin"
    dest: ChannelSnapshot | None = channel("Dest")
    dial_string: str = header("DialString")


@dataclass(frozen=True, slots=True, kw_only=True)
class DialEnd(ChannelEvent):
    event_name: ClassVar[str] = "DialEnd"
    dest: ChannelSnapshot | None = channel("Dest")
    dial_status: str = header("DialStatus")


@dataclass(frozen=True, slots=True, kw_only=True)
class DTMFEnd(ChannelEvent):
    event_name: ClassVar[str] = "DTMFEnd"
    digit: str = header("Digit")
    duration_ms: int = header("DurationMs", _to_int, 0)
    direction: str = header("Direction")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelTalkingStart(ChannelEvent):
    """The caller started talking (``TALK_DETECT`` on the channel, module func_talkdetect)."""

    event_name: ClassVar[str] = "ChannelTalkingStart"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelTalkingStop(ChannelEvent):
    """The caller stopped talking; ``duration_ms`` is how long they talked."""

    event_name: ClassVar[str] = "ChannelTalkingStop"
    duration_ms: int = header("Duration", _to_int, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class AGIExecStart(ChannelEvent):
    """An AGI command starts on the channel (class ``agi``): the IVR's menus listen only inside one."""

    event_name: ClassVar[str] = "AGIExecStart"
    command: str = header("Command")
    command_id: str = header("CommandId")


@dataclass(frozen=True, slots=True, kw_only=True)
class AGIExecEnd(ChannelEvent):
    event_name: ClassVar[str] = "AGIExecEnd"
    command: str = header("Command")
    command_id: str = header("CommandId")
    result_code: int = header("ResultCode", _to_int, 0)
    result: str = header("Result")


@dataclass(frozen=True, slots=True, kw_only=True)
class VarSet(ChannelEvent):
    event_name: ClassVar[str] = "VarSet"
    variable: str = header("Variable")
    value: str = header("Value")


@dataclass(frozen=True, slots=True, kw_only=True)
class UserEvent(ChannelEvent):
    """``UserEvent(Name,Key: value,...)`` from the dial plan or AGI; ``user_event`` is ``Name``."""

    event_name: ClassVar[str] = "UserEvent"
    user_event: str = header("UserEvent")

    def get_field(self, key: str, default: str = "") -> str:
        value = self.message.get(key)
        return default if value is None else value


@dataclass(frozen=True, slots=True, kw_only=True)
class _QueueCallerEvent(ChannelEvent):
    queue: str = header("Queue")
    position: int = header("Position", _to_int, 0)
    count: int = header("Count", _to_int, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerJoin(_QueueCallerEvent):
    event_name: ClassVar[str] = "QueueCallerJoin"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerLeave(_QueueCallerEvent):
    event_name: ClassVar[str] = "QueueCallerLeave"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerAbandon(_QueueCallerEvent):
    event_name: ClassVar[str] = "QueueCallerAbandon"
    original_position: int = header("OriginalPosition", _to_int, 0)
    hold_time: int = header("HoldTime", _to_int, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class _AgentEvent(ChannelEvent):
    """Queue agent events: ``chan`` is the caller, ``dest`` the operator's leg."""

    dest: ChannelSnapshot | None = channel("Dest")
    queue: str = header("Queue")
    interface: str = header("Interface")
    member_name: str = header("MemberName")


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentCalled(_AgentEvent):
    event_name: ClassVar[str] = "AgentCalled"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConnect(_AgentEvent):
    event_name: ClassVar[str] = "AgentConnect"
    hold_time: int = header("HoldTime", _to_int, 0)
    ring_time: int = header("RingTime", _to_int, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentComplete(_AgentEvent):
    event_name: ClassVar[str] = "AgentComplete"
    hold_time: int = header("HoldTime", _to_int, 0)
    talk_time: int = header("TalkTime", _to_int, 0)
    reason: str = header("Reason")


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRingNoAnswer(_AgentEvent):
    event_name: ClassVar[str] = "AgentRingNoAnswer"
    ring_time: int = header("RingTime", _to_int, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDump(_AgentEvent):
    event_name: ClassVar[str] = "AgentDump"


@dataclass(frozen=True, slots=True, kw_only=True)
class _QueueMemberEvent(AmiEvent):
    queue: str = header("Queue")
    member_name: str = header("MemberName")
    interface: str = header("Interface")
    state_interface: str = header("StateInterface")
    membership: str = header("Membership")
    penalty: int = header("Penalty", _to_int, 0)
    calls_taken: int = header("CallsTaken", _to_int, 0)
    last_call: int = header("LastCall", _to_int, 0)
    in_call: bool = header("InCall", _to_bool, False)
    status: int = header("Status", _to_int, 0)
    paused: bool = header("Paused", _to_bool, False)
    paused_reason: str = header("PausedReason")
    wrapuptime: int = header("Wrapuptime", _to_int, 0)
    last_pause: int = header("LastPause", _to_int, 0)
    login_time: int = header("LoginTime", _to_int, 0)
    ringinuse: bool = header("Ringinuse", _to_bool, False)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberStatus(_QueueMemberEvent):
    event_name: ClassVar[str] = "QueueMemberStatus"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberAdded(_QueueMemberEvent):
    event_name: ClassVar[str] = "QueueMemberAdded"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberRemoved(_QueueMemberEvent):
    event_name: ClassVar[str] = "QueueMemberRemoved"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueMemberPause(_QueueMemberEvent):
    event_name: ClassVar[str] = "QueueMemberPause"


@dataclass(frozen=True, slots=True, kw_only=True)
class DialState(ChannelEvent):
    event_name: ClassVar[str] = "DialState"
    dest: ChannelSnapshot | None = channel("Dest")
    dial_status: str = header("DialStatus")


@dataclass(frozen=True, slots=True, kw_only=True)
class NewConnectedLine(ChannelEvent):
    event_name: ClassVar[str] = "NewConnectedLine"


@dataclass(frozen=True, slots=True, kw_only=True)
class _BridgeEvent(ChannelEvent):
    bridge_uniqueid: str = header("BridgeUniqueid")
    bridge_type: str = header("BridgeType")
    bridge_num_channels: int = header("BridgeNumChannels", _to_int, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeCreate(_BridgeEvent):
    event_name: ClassVar[str] = "BridgeCreate"


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeDestroy(_BridgeEvent):
    event_name: ClassVar[str] = "BridgeDestroy"


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeEnter(_BridgeEvent):
    event_name: ClassVar[str] = "BridgeEnter"


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeLeave(_BridgeEvent):
    event_name: ClassVar[str] = "BridgeLeave"


@dataclass(frozen=True, slots=True, kw_only=True)
class BlindTransfer(AmiEvent):
    event_name: ClassVar[str] = "BlindTransfer"
    result: str = header("Result")
    transferer: ChannelSnapshot | None = channel("Transferer")
    transferee: ChannelSnapshot | None = channel("Transferee")
    is_external: bool = header("IsExternal", _to_bool, False)
    context: str = header("Context")
    extension: str = header("Extension")


@dataclass(frozen=True, slots=True, kw_only=True)
class AttendedTransfer(AmiEvent):
    event_name: ClassVar[str] = "AttendedTransfer"
    result: str = header("Result")
    orig_transferer: ChannelSnapshot | None = channel("OrigTransferer")
    second_transferer: ChannelSnapshot | None = channel("SecondTransferer")
    transfer_target: ChannelSnapshot | None = channel("TransferTarget")
    dest_type: str = header("DestType")


@dataclass(frozen=True, slots=True, kw_only=True)
class Cdr(AmiEvent):
    """Asterisk's own CDR (cdr_manager). Whole-second times: used for cross-checks only."""

    event_name: ClassVar[str] = "Cdr"
    source: str = header("Source")
    destination: str = header("Destination")
    destination_context: str = header("DestinationContext")
    channel: str = header("Channel")
    destination_channel: str = header("DestinationChannel")
    last_application: str = header("LastApplication")
    start_time: str = header("StartTime")
    answer_time: str = header("AnswerTime")
    end_time: str = header("EndTime")
    duration: int = header("Duration", _to_int, 0)
    billable_seconds: int = header("BillableSeconds", _to_int, 0)
    disposition: str = header("Disposition")
    unique_id: str = header("UniqueID")
    user_field: str = header("UserField")


@dataclass(frozen=True, slots=True, kw_only=True)
class MixMonitorStart(ChannelEvent):
    event_name: ClassVar[str] = "MixMonitorStart"


@dataclass(frozen=True, slots=True, kw_only=True)
class MixMonitorStop(ChannelEvent):
    event_name: ClassVar[str] = "MixMonitorStop"


@dataclass(frozen=True, slots=True, kw_only=True)
class _ChanSpyEvent(AmiEvent):
    """app_chanspy: ``spyer`` is the listening channel (a supervisor's phone), ``spyee`` the channel
    listened to (an operator's leg of a call)."""

    spyer: ChannelSnapshot | None = channel("Spyer")
    spyee: ChannelSnapshot | None = channel("Spyee")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChanSpyStart(_ChanSpyEvent):
    event_name: ClassVar[str] = "ChanSpyStart"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChanSpyStop(_ChanSpyEvent):
    event_name: ClassVar[str] = "ChanSpyStop"


@dataclass(frozen=True, slots=True, kw_only=True)
class DamagedEvent(ChannelEvent):
    """What is left of an event that a line break in caller text (a CR/LF in a caller's number, which
    Asterisk writes to AMI as it is) split in two: the part after the break, with no ``Event`` header. It
    still names the call (``Uniqueid``/``Linkedid`` come late in Asterisk's channel headers) when it has
    them; the call layer treats that call as having a gap that Asterisk's own records fill."""

    event_name: ClassVar[str] = "DamagedEvent"

    @property
    def header_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.message.headers)


EVENT_TYPES: dict[str, type[AmiEvent]] = {
    cls.event_name: cls
    for cls in (
        FullyBooted, Newchannel, Newstate, Newexten, Hangup, HangupRequest, SoftHangupRequest,
        DialBegin, DialEnd, DTMFEnd, ChannelTalkingStart, ChannelTalkingStop, AGIExecStart, AGIExecEnd,
        VarSet, UserEvent, QueueCallerJoin,
        QueueCallerLeave, QueueCallerAbandon, AgentCalled, AgentConnect, AgentComplete, AgentRingNoAnswer,
        AgentDump, QueueMemberStatus, QueueMemberAdded, QueueMemberRemoved, QueueMemberPause, QueueMember,
        BridgeCreate, BridgeDestroy, BridgeEnter, BridgeLeave, BlindTransfer, AttendedTransfer, Cdr,
        MixMonitorStart, MixMonitorStop, CoreShowChannel, QueueParams, QueueEntry, QueueSummary,
        EndpointList, DialState, NewConnectedLine, ChanSpyStart, ChanSpyStop,
    )
}


def parse_event(msg: AmiMessage, received_at: datetime) -> AmiEvent:
    """Type one AMI event message. Never raises for a well-framed message."""
    builder = msg._shape.builder
    if builder is None:
        builder = _builder_for(msg)
    event: AmiEvent = builder(msg, received_at)
    return event


def _builder_for(msg: AmiMessage) -> Callable[[AmiMessage, datetime], Any]:
    """The builder for ``msg``'s shape, generated once per cached shape whose first header is ``Event``
    (so every message of the shape has the same event name); else the generic one."""
    shape = msg._shape
    cls = EVENT_TYPES.get(msg.get("Event") or "", UnknownEvent)
    if shape.cached and shape.kind == "event":
        shape.builder = compile_builder(cls, shape.index)
        return shape.builder
    return functools.partial(build_generic, cls)
