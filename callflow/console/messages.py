"""Engine events -> the small JSON messages the console's live stream carries.

Only what the pages show: queue callers joining and leaving, operators rung/connected/done, operator
(queue member) status, the dial plan's class/IVR user events, and the AMI link state. Everything else
gives None and is not sent.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from callflow.ami import EventItem, LinkEvent
from callflow.ami.events import (
    AgentCalled,
    AgentComplete,
    AgentConnect,
    AgentRingNoAnswer,
    AmiEvent,
    ChannelEvent,
    DTMFEnd,
    Newchannel,
    QueueCallerAbandon,
    QueueCallerJoin,
    QueueCallerLeave,
    QueueMemberAdded,
    QueueMemberPause,
    QueueMemberRemoved,
    QueueMemberStatus,
    UserEvent,
)

Message = dict[str, Any]
IVR_CONTEXTS = frozenset({"siaga-ivr", "siaga-ivr-step"})  # the IVR's own keys come as call.ivr

_QUEUE_CALLER = (QueueCallerJoin, QueueCallerLeave, QueueCallerAbandon)
_AGENT = (AgentCalled, AgentConnect, AgentComplete, AgentRingNoAnswer)
_MEMBER = (QueueMemberStatus, QueueMemberAdded, QueueMemberRemoved, QueueMemberPause)
_QUEUE_TYPES: dict[type[AmiEvent], str] = {
    QueueCallerJoin: "queue.join", QueueCallerLeave: "queue.leave", QueueCallerAbandon: "queue.abandon",
}
_AGENT_TYPES: dict[type[AmiEvent], str] = {
    AgentCalled: "agent.called", AgentConnect: "agent.connect", AgentComplete: "agent.complete",
    AgentRingNoAnswer: "agent.noanswer",
}
_MEMBER_TYPES: dict[type[AmiEvent], str] = {
    QueueMemberStatus: "member.status", QueueMemberAdded: "member.added",
    QueueMemberRemoved: "member.removed", QueueMemberPause: "member.pause",
}
# Asterisk's device states (QueueMemberStatus Status: AST_DEVICE_*), by number.
DEVICE_STATES = ("unknown", "not_in_use", "in_use", "busy", "invalid", "unavailable", "ringing",
                 "ringinuse", "onhold")


def _epoch_iso(text: str) -> str:
    """``1795300000.123456`` (the dial plan's SIAGA_ARRIVAL) -> UTC ISO text; '' if it is not a time."""
    try:
        return datetime.fromtimestamp(float(text), UTC).isoformat() if text else ""
    except (ValueError, OverflowError, OSError):
        return ""


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def _call_fields(event: ChannelEvent) -> Message:
    chan = event.chan
    return {
        "linkedid": event.linkedid,
        "uniqueid": event.uniqueid,
        "caller": chan.caller_id_num if chan else "",
        "caller_name": chan.caller_id_name if chan else "",
    }


class Arrivals:
    """When each call reached the PBX: the caller's channel's ``Newchannel`` time, the call record's
    ``arrival`` (answer time counts from it). The pop's "waited" uses it, so it is the record's answer time
    while the call is live. The newest ``limit`` calls are kept (a call is done long before that)."""

    def __init__(self, limit: int = 2000) -> None:
        self.limit = limit
        self._at: OrderedDict[str, datetime] = OrderedDict()

    def see(self, item: EventItem) -> None:
        if isinstance(item, Newchannel) and item.chan is not None and item.chan.uniqueid == item.linkedid:
            self._at[item.linkedid] = item.time
            while len(self._at) > self.limit:
                self._at.popitem(last=False)

    def of(self, linkedid: str) -> datetime | None:
        return self._at.get(linkedid)


def to_message(item: EventItem, arrivals: Arrivals | None = None) -> Message | None:
    """The stream message for one engine item, or None when the console does not show it."""
    if isinstance(item, LinkEvent):
        return {"type": "link", "state": item.state, "at": item.at.isoformat()}
    base: Message = {"at": item.time.isoformat()}
    kind = type(item)
    if isinstance(item, _QUEUE_CALLER):
        msg = {"type": _QUEUE_TYPES[kind], **base, **_call_fields(item), "queue": item.queue,
               "position": item.position, "count": item.count}
        if isinstance(item, QueueCallerAbandon):
            msg["hold_time"] = item.hold_time
        return msg
    if isinstance(item, _AGENT):
        msg = {"type": _AGENT_TYPES[kind], **base, **_call_fields(item), "queue": item.queue,
               "operator": item.member_name, "interface": item.interface}
        arrival = arrivals.of(item.linkedid) if arrivals is not None else None
        if arrival is not None:
            msg["arrival"] = arrival.isoformat()
        if isinstance(item, AgentConnect):
            msg.update(hold_time=item.hold_time, ring_time=item.ring_time)
        elif isinstance(item, AgentComplete):
            msg.update(hold_time=item.hold_time, talk_time=item.talk_time, reason=item.reason)
        return msg
    if isinstance(item, _MEMBER):
        device = DEVICE_STATES[item.status] if 0 <= item.status < len(DEVICE_STATES) else "unknown"
        return {"type": _MEMBER_TYPES[kind], **base, "queue": item.queue, "operator": item.member_name,
                "interface": item.interface, "paused": item.paused, "paused_reason": item.paused_reason,
                "in_call": item.in_call, "device": device}
    if isinstance(item, DTMFEnd) and item.direction == "Received" and item.chan is not None \
            and item.chan.context not in IVR_CONTEXTS:
        # a caller's key after the IVR: a silent caller's yes (1) / no (2), shown live on the pop
        return {"type": "call.key", **base, **_call_fields(item), "digit": item.digit}
    if isinstance(item, UserEvent):
        if item.user_event == "SiagaQueueEntry":
            return {"type": "call.queue_entry", **base, **_call_fields(item),
                    "class": item.get_field("Class"), "queue": item.get_field("Queue"),
                    "route": item.get_field("Route"), "category": item.get_field("Category"),
                    "abuse": item.get_field("Abuse")}
        if item.user_event == "SiagaCallback":
            # the citizen answered the engine's callback: the pop shows whose call it follows up
            number = item.get_field("Number")
            return {"type": "call.callback", **base, **_call_fields(item),
                    "caller": number if number.lstrip("+").isdigit() else "", "caller_name": "",
                    "original": item.get_field("Original"), "task": item.get_field("Task"),
                    "original_arrival": _epoch_iso(item.get_field("Arrival")),
                    "original_waited_s": _seconds(item.get_field("Waited"))}
        if item.user_event == "SiagaSilent":
            return {"type": "call.silent", **base, **_call_fields(item), "status": item.get_field("Status"),
                    "speech_s": item.get_field("SpeechS"), "keys": item.get_field("Keys")}
        if item.user_event == "SiagaIvr":
            return {"type": "call.ivr", **base, **_call_fields(item), "step": item.get_field("Step"),
                    "node": item.get_field("Node"), "digit": item.get_field("Digit"),
                    "action": item.get_field("Action"), "category": item.get_field("Category")}
    return None
