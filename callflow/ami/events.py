"""Typed AMI events: the edge past which nothing reads raw AMI dictionaries.

Each event the engine consumes is a frozen dataclass built by :func:`parse_event` (or the class's
``from_ami``). Fields are declared with :func:`header`, naming the AMI header they come from; the
conversion plan for each class is computed once, so typing an event is a handful of dict lookups.
Unknown events become :class:`UnknownEvent` with every header kept: nothing is dropped.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple, TypeVar

from callflow.ami.codec import AmiMessage

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_timestamp(value: str | None) -> datetime | None:
    """``Timestamp: 1763791542.123456`` -> UTC-aware datetime, exact to the microsecond.

    ``fromtimestamp`` rounds half-even to the microsecond; a double holds epoch seconds of this century
    to within 2.4e-7 s, so the rounding always lands on the microsecond Asterisk wrote (a property test
    checks it against integer arithmetic).
    """
    if not value:
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _to_int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def _to_float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


def _to_bool(value: str) -> bool:
    return value.strip().lower() in {"1", "yes", "true", "on"}


_SNAPSHOT_HEADERS = ("Channel", "Uniqueid", "Linkedid", "CallerIDNum", "CallerIDName", "ConnectedLineNum",
                     "ConnectedLineName", "ChannelState", "ChannelStateDesc", "Context", "Exten", "Language")


class ChannelSnapshot(NamedTuple):
    """The channel fields Asterisk attaches to an event (optionally under a prefix such as ``Dest``).

    Immutable. A named tuple rather than a frozen dataclass because nearly every event carries one or
    two and building one is a single C call (typing is the engine's hot path).
    """

    channel: str
    uniqueid: str
    linkedid: str
    caller_id_num: str = ""
    caller_id_name: str = ""
    connected_line_num: str = ""
    connected_line_name: str = ""
    state: str = ""
    state_desc: str = ""
    context: str = ""
    exten: str = ""
    language: str = ""

    @classmethod
    def from_headers(cls, h: Mapping[str, str], prefix: str = "") -> ChannelSnapshot | None:
        uniqueid = h.get(prefix + "Uniqueid")
        if uniqueid is None:
            return None
        values = [h.get(prefix + key, "") for key in _SNAPSHOT_HEADERS]
        values[1] = uniqueid
        values[2] = h.get(prefix + "Linkedid", uniqueid)
        return cls(*values)


class _Channel:
    """Marker converter: build a ChannelSnapshot from headers under a prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix


def header(name: str, conv: Callable[[str], Any] = str, default: Any = "") -> Any:
    """Declare a field read from AMI header ``name`` through ``conv``."""
    return field(default=default, metadata={"ami": name, "conv": conv})


def channel(prefix: str = "") -> Any:
    """Declare a ChannelSnapshot field read from the headers under ``prefix``."""
    return field(default=None, metadata={"ami": prefix, "conv": _Channel(prefix)})


E = TypeVar("E", bound="AmiEvent")


@dataclass(frozen=True, slots=True, kw_only=True)
class AmiEvent:
    """Base of all typed events. ``timestamp`` is Asterisk's own event time (manager.conf
    ``timestampevents = yes``); ``received_at`` is the engine clock when the bytes were framed."""

    event_name: ClassVar[str] = ""
    name: str
    timestamp: datetime | None
    received_at: datetime
    message: AmiMessage = field(repr=False, compare=False)

    @property
    def time(self) -> datetime:
        """Best instant for this event: Asterisk's Timestamp, else the engine's receive time."""
        return self.timestamp or self.received_at

    @property
    def time_source(self) -> str:
        return "ami_timestamp" if self.timestamp is not None else "engine_clock"

    @classmethod
    def from_ami(cls: type[E], msg: AmiMessage, received_at: datetime) -> E:
        builder = _BUILDERS.get(cls)
        if builder is None:
            builder = _BUILDERS[cls] = _compile_builder(cls)
        event: E = builder(msg, received_at)
        return event


# Typing an event is the hot path of the engine (and of the parse benchmark). Each class gets a builder
# generated once from its field declarations, as dataclasses itself generates __init__: a straight run of
# dict lookups and slot stores, with no per-event introspection or keyword-argument dict.
_BUILDERS: dict[type, Callable[[AmiMessage, datetime], Any]] = {}


def _compile_builder(cls: type) -> Callable[[AmiMessage, datetime], Any]:
    """Generate ``build(msg, received_at)`` for ``cls``. Fields are stored through their slot
    descriptors (what a frozen dataclass's own ``__init__`` does through ``object.__setattr__``)."""
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_ts": parse_timestamp,
                           "_tnew": tuple.__new__, "_Snap": ChannelSnapshot,
                           "_fromts": datetime.fromtimestamp, "_float": float, "_UTC": UTC}
    lines = ["def build(msg, received_at):", " h = msg._fields", " get = h.get", " self = _new(_cls)"]
    for i, f in enumerate(dataclasses.fields(cls)):
        env[f"_s{i}"] = getattr(cls, f.name).__set__
        conv = f.metadata.get("conv")
        if f.name == "name":
            value = f"get('Event', {cls.event_name!r})"  # type: ignore[attr-defined]
        elif f.name == "timestamp":
            lines += [" try:", "  v = _fromts(_float(get('Timestamp')), _UTC)",
                      " except (TypeError, ValueError, OverflowError, OSError):",
                      "  v = _ts(get('Timestamp'))"]
            value = "v"
        elif f.name == "received_at":
            value = "received_at"
        elif f.name == "message":
            value = "msg"
        elif isinstance(conv, _Channel):
            # Asterisk sends the whole snapshot: one itemgetter call takes all of it in field order.
            env[f"_snap{i}"] = operator.itemgetter(*(conv.prefix + key for key in _SNAPSHOT_HEADERS))
            env[f"_from{i}"] = functools.partial(ChannelSnapshot.from_headers, prefix=conv.prefix)
            lines += [" try:", f"  v = _tnew(_Snap, _snap{i}(h))", " except KeyError:",
                      f"  v = _from{i}(h)"]
            value = "v"
        elif conv is None:  # a plain field: its declared default
            env[f"_default{i}"] = (f.default_factory if f.default is dataclasses.MISSING
                                   else (lambda d=f.default: d))
            value = f"_default{i}()"
        elif conv is str:
            env[f"_d{i}"] = f.default
            value = f"get({f.metadata['ami']!r}, _d{i})"
        else:
            env[f"_c{i}"], env[f"_d{i}"] = conv, f.default
            lines.append(f" v = get({f.metadata['ami']!r})")
            value = f"_d{i} if v is None else _c{i}(v)"
        lines.append(f" _s{i}(self, {value})")
    lines.append(" return self")
    # Everything the body uses becomes a keyword default: a local (LOAD_FAST), not a global lookup.
    lines[0] = f"def build(msg, received_at, *, {', '.join(f'{k}={k}' for k in env)}):"
    exec("\n".join(lines), env)  # noqa: S102 - source built above from our own field declarations only
    builder: Callable[[AmiMessage, datetime], Any] = env["build"]
    return builder


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEvent(AmiEvent):
    """An event about one channel (the caller's, for queue events)."""

    chan: ChannelSnapshot | None = channel()

    @property
    def uniqueid(self) -> str:
        return self.chan.uniqueid if self.chan else ""

    @property
    def linkedid(self) -> str:
        return self.chan.linkedid if self.chan else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(AmiEvent):
    """Any event without a typed class: kept whole, never dropped."""


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
class CoreShowChannel(ChannelEvent):
    """A list item of the CoreShowChannels action."""

    event_name: ClassVar[str] = "CoreShowChannel"
    application: str = header("Application")
    duration: str = header("Duration")
    bridge_id: str = header("BridgeId")


EVENT_TYPES: dict[str, type[AmiEvent]] = {
    cls.event_name: cls
    for cls in (
        FullyBooted, Newchannel, Newstate, Newexten, Hangup, HangupRequest, SoftHangupRequest,
        DialBegin, DialEnd, DTMFEnd, VarSet, UserEvent, QueueCallerJoin, QueueCallerLeave,
        QueueCallerAbandon, AgentCalled, AgentConnect, AgentComplete, AgentRingNoAnswer, AgentDump,
        QueueMemberStatus, QueueMemberAdded, QueueMemberRemoved, QueueMemberPause, QueueMember,
        BridgeCreate, BridgeDestroy, BridgeEnter, BridgeLeave, BlindTransfer, AttendedTransfer, Cdr,
        MixMonitorStart, MixMonitorStop, CoreShowChannel, QueueParams, QueueEntry, QueueSummary,
        EndpointList, DialState, NewConnectedLine,
    )
}


def parse_event(msg: AmiMessage, received_at: datetime) -> AmiEvent:
    """Type one AMI event message. Never raises for a well-framed message."""
    name = msg._fields.get("Event") or ""
    builder = _BY_NAME.get(name)
    if builder is None:
        cls = EVENT_TYPES.get(name, UnknownEvent)
        builder = _BUILDERS.get(cls) or _compile_builder(cls)
        _BUILDERS[cls] = builder
        if cls is not UnknownEvent:
            _BY_NAME[name] = builder
    event: AmiEvent = builder(msg, received_at)
    return event


_BY_NAME: dict[str, Callable[[AmiMessage, datetime], Any]] = {}
