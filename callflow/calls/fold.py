"""Evidence about one call, gathered row by row from the journal.

:class:`CallFold` walks a call's rows in journal order through the state table
(:mod:`callflow.calls.states`) and keeps what they say: instants with their sources, legs, queues, IVR
steps, who answered and who hung up. AMI rows after the call is complete are trailing events and are
ignored; recovered rows (Asterisk's CDR file, queue_log) only fill what the AMI rows lack.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from callflow.ami.events import (
    AgentCalled,
    AgentConnect,
    AgentRingNoAnswer,
    AmiEvent,
    AttendedTransfer,
    BlindTransfer,
    ChannelEvent,
    ChannelSnapshot,
    DamagedEvent,
    Hangup,
    HangupRequest,
    Newchannel,
    Newstate,
    QueueCallerAbandon,
    QueueCallerJoin,
    QueueCallerLeave,
    SoftHangupRequest,
    UserEvent,
)
from callflow.calls.journal import JournalEntry, Kind
from callflow.calls.model import CallClass, Contact, Instant, InstantSource
from callflow.calls.states import CallState, Signal, Transition, apply

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NODE_LOST_MARK = "node_lost"  # a journal mark (Kind.MARK) the leader writes for a call of a lost node
AMI = InstantSource.AMI_TIMESTAMP
_WHOLE_SECOND = timedelta(seconds=1)
# Instants a queue_log event cannot precede (the call's own order): its whole second is bounded by them.
_COMES_BEFORE: dict[str, tuple[str, ...]] = {
    "ENTERQUEUE": ("arrival", "ivr_entered", "ivr_left", "routed"),
    "RINGNOANSWER": ("arrival", "ivr_left", "routed", "queue_joined", "rung"),
    "CONNECT": ("arrival", "ivr_left", "routed", "queue_joined", "rung", "ring_no_answer"),
    "ABANDON": ("arrival", "ivr_left", "routed", "queue_joined", "rung", "ring_no_answer"),
}


def epoch_time(value: str) -> datetime | None:
    """``1795334494.925103`` (CDR(...,u), queue_log) -> UTC datetime; None when empty or zero."""
    value = (value or "").strip()
    if not value:
        return None
    sec, _, frac = value.partition(".")
    try:
        if int(sec) <= 0:
            return None
        return _EPOCH + timedelta(seconds=int(sec), microseconds=int((frac + "000000")[:6]) if frac else 0)
    except ValueError:
        return None


@dataclass
class LegEvidence:
    uniqueid: str
    channel: str = ""
    created: datetime | None = None
    answered: datetime | None = None
    ended: datetime | None = None
    cause: int | None = None
    after_transfer: bool = False
    agent: bool = False


@dataclass
class CallFold:
    """Evidence about one call, fed row by row. ``complete`` says the record can be derived now."""

    linkedid: str
    state: CallState = CallState.UNSEEN
    legs: dict[str, LegEvidence] = field(default_factory=dict)
    instants: list[Instant] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    caller_number: str = ""
    caller_name: str = ""
    caller_seen: bool = False  # the caller's number and name were taken from a readable event
    dialed: str = ""
    call_class: CallClass = CallClass.UNKNOWN
    queues: list[str] = field(default_factory=list)
    route: str = ""
    category: str = ""
    ivr_path: list[str] = field(default_factory=list)
    contact: str = ""
    contact_detail: str = ""
    operator: str = ""
    follows_up: str = ""  # a callback call: the citizen's call it follows up (SiagaCallback Original)
    answered: datetime | None = None
    transfers: int = 0
    abandoned: bool = False
    left_queue: bool = False
    queue_timeout: bool = False
    ivr_timeout: bool = False
    hangup_by: str = ""
    soft_hangup: bool = False
    caller_gone: datetime | None = None
    closed_reason: str = ""
    kinds: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    illegal: Transition | None = None
    node: str = ""  # the node whose engine journaled the call's own rows (not a leader's mark)
    node_lost: str = ""  # the node_lost mark's detail: the node stopped with the call up

    @property
    def complete(self) -> bool:
        if self.state is CallState.INCOMPLETE or self.closed_reason:
            return True
        return self.state is CallState.ENDED and all(g.ended is not None for g in self.legs.values())

    @property
    def live_legs(self) -> list[str]:
        return [u for u, g in self.legs.items() if g.ended is None]

    def _leg(self, uniqueid: str, channel: str = "") -> LegEvidence:
        leg = self.legs.get(uniqueid)
        if leg is None:
            leg = self.legs[uniqueid] = LegEvidence(uniqueid, channel, after_transfer=self.transfers > 0)
        if channel and not leg.channel:
            leg.channel = channel
        return leg

    def _instant(self, name: str, at: datetime, source: InstantSource, detail: str = "",
                 *, fill_only: bool = False, precision_s: float | None = None) -> None:
        if fill_only and any(i.name == name for i in self.instants):
            return
        self.instants.append(Instant(name, at, source, detail, precision_s))

    def _whole_second(self, at: datetime, event: str) -> datetime:
        """queue_log's whole second ``at`` stands for [at, at + 1 s): never earlier than an instant of this
        call known (to the microsecond) to come before ``event`` within that second."""
        names = _COMES_BEFORE.get(event, ("arrival",))
        known = [i.at for i in self.instants
                 if i.name in names and i.precision_s is None and at <= i.at < at + _WHOLE_SECOND]
        return max([at, *known])

    def _signal(self, signal: Signal, *, lenient: bool = False) -> Transition | None:
        transition = apply(self.state, signal)
        if not transition.legal:
            if lenient:  # recovered evidence overlapping what the AMI rows already said
                return None
            self.illegal = transition
            self.notes.append(f"illegal transition: {signal} in state {transition.before}")
        if transition.before is not transition.after or not transition.legal:
            self.transitions.append(transition)
        self.state = transition.after
        return transition

    # -- feeding -----------------------------------------------------------------------------------
    def feed(self, entry: JournalEntry) -> Transition | None:
        """Apply one journal row. AMI rows after the call is complete are ignored (trailing events);
        recovered rows (CDR file, queue_log) only fill gaps, so they are read whenever they come."""
        recovered = entry.kind in (Kind.CDR_FILE, Kind.QUEUE_LOG)
        if self.complete and not recovered:
            return None
        self.kinds.add(entry.kind)
        if entry.kind != Kind.MARK and entry.node and not self.node:
            self.node = entry.node
        if entry.kind == Kind.AMI:
            return self._feed_event(entry.event())
        if entry.kind == Kind.CDR_FILE:
            return self._feed_cdr(entry.data)
        if entry.kind == Kind.QUEUE_LOG:
            return self._feed_queue_log(entry.data, entry.ts)
        if entry.kind == Kind.MARK and entry.name == "close":
            reason = str(entry.data.get("reason", "closed")) if isinstance(entry.data, dict) else "closed"
            transition = self._signal(Signal.CLOSE, lenient=True)
            self.closed_reason = reason
            self.notes.append(f"closed by the tracker: {reason}")
            return transition
        if entry.kind == Kind.MARK and entry.name == NODE_LOST_MARK:
            # the surviving leader's word: the node this call was up on stopped (callflow/cluster)
            data = entry.data if isinstance(entry.data, dict) else {}
            transition = self._signal(Signal.CLOSE, lenient=True)
            self.node = self.node or str(data.get("node", ""))
            self.node_lost = str(data.get("detail", "")) or "node lost"
            self.closed_reason = f"node {data.get('node', '?')} lost"
            self.notes.append(f"node {data.get('node', '?')} lost with the call up ({self.node_lost}); "
                              f"recorded by node {entry.node or '?'}")
            self._instant("node_lost", entry.ts, InstantSource.ENGINE_CLOCK, str(data.get("node", "")))
            return transition
        return None

    def _caller_from(self, chan: ChannelSnapshot) -> None:
        self.caller_number, self.caller_name = chan.caller_id_num, chan.caller_id_name
        self.caller_seen = True

    def _first_readable_caller(self, ev: AmiEvent, caller: ChannelSnapshot | None) -> None:
        """The caller's Newchannel could not be read (caller text split it): the first readable event of
        the caller's channel says who called (after the dial plan filtered the number)."""
        if caller is not None and not self.caller_seen and not isinstance(ev, DamagedEvent):
            self._caller_from(caller)

    def _feed_event(self, ev: AmiEvent) -> Transition | None:
        at = ev.time
        src = AMI if ev.timestamp is not None else InstantSource.ENGINE_CLOCK
        chan = ev.chan if isinstance(ev, ChannelEvent) else None
        is_caller = chan is not None and chan.uniqueid == self.linkedid
        if isinstance(ev, Newchannel) and chan is not None:
            leg = self._leg(chan.uniqueid, chan.channel)
            leg.created = at
            if is_caller:
                self._caller_from(chan)
                self.dialed = chan.exten
                self._instant("arrival", at, src, chan.channel)
                return self._signal(Signal.CALLER_NEW)
            return self._signal(Signal.NEUTRAL)
        if chan is not None:
            self._leg(chan.uniqueid, chan.channel)
        self._first_readable_caller(ev, chan if is_caller else None)
        if isinstance(ev, Newstate) and chan is not None and chan.state_desc == "Up":
            leg = self._leg(chan.uniqueid)
            leg.answered = leg.answered or at
            return self._signal(Signal.NEUTRAL)
        if isinstance(ev, UserEvent):
            return self._feed_user_event(ev, at, src)
        if isinstance(ev, QueueCallerJoin):
            self.queues.append(ev.queue)
            if self.call_class is CallClass.UNKNOWN:
                self.call_class = _class_of_queue(ev.queue)
            self._instant("queue_joined", at, src, ev.queue)
            return self._signal(Signal.QUEUE_JOIN)
        if isinstance(ev, AgentCalled):
            if ev.dest is not None:
                self._leg(ev.dest.uniqueid, ev.dest.channel).agent = True
            self._instant("rung", at, src, ev.member_name)
            return self._signal(Signal.NEUTRAL)
        if isinstance(ev, AgentRingNoAnswer):
            self._instant("ring_no_answer", at, src, ev.member_name)
            return self._signal(Signal.NEUTRAL)
        if isinstance(ev, QueueCallerAbandon):
            self.abandoned = True
            self._instant("abandoned", at, src, ev.queue)
            return self._signal(Signal.QUEUE_ABANDON)
        if isinstance(ev, QueueCallerLeave):
            self.left_queue = True
            self._instant("queue_left", at, src, ev.queue)
            return self._signal(Signal.QUEUE_LEAVE)
        if isinstance(ev, AgentConnect):
            if self.answered is None:
                self.answered, self.operator = at, ev.member_name
            self._instant("answered", at, src, ev.member_name)
            return self._signal(Signal.AGENT_CONNECT)
        if isinstance(ev, BlindTransfer | AttendedTransfer):
            return self._feed_transfer(ev, at, src)
        if isinstance(ev, HangupRequest) and chan is not None and not self.hangup_by \
                and self.caller_gone is None:
            self.hangup_by = "caller" if is_caller else ("operator" if self._leg(chan.uniqueid).agent
                                                         or chan.channel.startswith("PJSIP/op") else "other")
            return self._signal(Signal.NEUTRAL)
        if isinstance(ev, SoftHangupRequest):
            self.soft_hangup = True
            return self._signal(Signal.NEUTRAL)
        if isinstance(ev, Hangup) and chan is not None:
            leg = self._leg(chan.uniqueid)
            leg.ended, leg.cause = at, ev.cause
            if is_caller:
                self.caller_gone = at
                self._instant("hangup", at, src, f"{self.hangup_by or 'system'}; cause {ev.cause}")
                return self._signal(Signal.CALLER_GONE)
            return self._signal(Signal.NEUTRAL)
        return None  # bridges, dials, DTMF, Cdr events... journaled, not needed for the record

    def _feed_user_event(self, ev: UserEvent, at: datetime, src: InstantSource) -> Transition | None:
        if ev.user_event == "SiagaQueueEntry":
            klass, self.route = ev.get_field("Class"), ev.get_field("Route")
            if klass in {c.value for c in CallClass}:
                self.call_class = CallClass(klass)
            self.category = ev.get_field("Category") or self.category
            self._instant("routed", at, src, f"{ev.get_field('Queue')} ({self.route or 'unknown route'})")
            return self._signal(Signal.QUEUE_ENTRY)
        if ev.user_event == "SiagaCallback":
            # the citizen answered the engine's callback (pbx-config/extensions.conf [siaga-callback]): the
            # record is theirs (their number, digits only: the engine dials nothing else) and names the
            # call it follows up
            self.follows_up = ev.get_field("Original") or self.follows_up
            number = ev.get_field("Number")
            if number.lstrip("+").isdigit():
                self.caller_number = number
            self.caller_name = _decoded_name(ev.get_field("Name64")) or self.caller_name
            self._instant("callback_answered", at, src, f"task {ev.get_field('Task')}")
            return None
        if ev.user_event == "SiagaRecording" and ev.get_field("Status") == "failed":
            # the recorder could not record this call (recordings root full/unwritable, MixMonitor refused)
            self.notes.append(f"recording failed: {ev.get_field('Problem') or 'no reason given'}")
            return None
        if ev.user_event == "SiagaOverflow":
            # the emergency queue widened the offer (queuerules.conf) and an operator of the wider group rang
            tier = ev.get_field("Tier") or "operators"
            group = "supervisors" if tier == "supervisors" else "all logged-in operators"
            self.notes.append(f"overflow: offered to {group} after {ev.get_field('WaitS') or '?'} s waiting "
                              f"({ev.get_field('Operator') or 'unknown operator'} rung)")
            self._instant("overflow", at, src, tier)
            return None
        if ev.user_event == "SiagaListen":
            # a supervisor listening in on the call (the console's listen-in, ChanSpy): sent by the engine at
            # each ChanSpyStart (the session's start, and each mode switch); console_listen has the end
            self.notes.append(f"supervisor {ev.get_field('Supervisor') or '?'} listened in on "
                              f"{ev.get_field('Operator') or '?'} ({ev.get_field('Mode') or '?'}) from "
                              f"{at.strftime('%H:%M:%S')} UTC (listen-in session {ev.get_field('Session')})")
            return None
        if ev.user_event == "SiagaSilent":
            # the IVR's silent-call probe (ivr/silence.py): probed, then perhaps 55
            status = ev.get_field("Status")
            if status in {c.value for c in Contact}:
                self.contact = status
                self.contact_detail = (f"speech {ev.get_field('SpeechS') or '0'} s, "
                                       f"keys {ev.get_field('Keys') or 'none'}")
                self._instant("silent_probe" if status == Contact.SILENT else "silent_55", at, src,
                              self.contact_detail)
            return None
        if ev.user_event == "SiagaIvr":
            step, node, digit = ev.get_field("Step"), ev.get_field("Node"), ev.get_field("Digit")
            if not any(i.name == "ivr_entered" for i in self.instants):
                self._instant("ivr_entered", at, src, node)
            if step == "digit":
                self.ivr_path.append(f"{node}:{digit}")
            elif step in {"timeout", "invalid"}:
                self.ivr_path.append(f"{node}:{step}")
                self.ivr_timeout = self.ivr_timeout or step == "timeout"
            if step == "decision":
                action = ev.get_field("Action")
                self.category = ev.get_field("Category") or self.category
                self._instant("ivr_left", at, src, "/".join(x for x in (action, ev.get_field("Queue")) if x))
                return self._signal(Signal.IVR_DECISION)
            return self._signal(Signal.IVR_STEP)
        return None

    def _feed_transfer(self, ev: BlindTransfer | AttendedTransfer, at: datetime,
                       src: InstantSource) -> Transition | None:
        if ev.result and ev.result.lower() != "success":
            self._instant("transfer_failed", at, src, ev.result)
            return None
        self.transfers += 1
        if isinstance(ev, BlindTransfer):
            who = ev.transferer.channel if ev.transferer else ""
            detail = f"blind {ev.extension}@{ev.context} by {who}"
        else:
            who = ev.orig_transferer.channel if ev.orig_transferer else ""
            target = ev.transfer_target.channel if ev.transfer_target else ""
            detail = f"attended to {target} by {who}"
        self._instant("transferred", at, src, detail)
        return self._signal(Signal.TRANSFER)

    def _feed_cdr(self, row: dict[str, Any]) -> Transition | None:
        src = InstantSource.ASTERISK_CDR
        uniqueid = str(row.get("uniqueid", ""))
        leg = self._leg(uniqueid, str(row.get("channel", "")))
        start, answer, end = (epoch_time(str(row.get(k, ""))) for k in ("start", "answer", "end"))
        leg.created = leg.created or start
        leg.answered = leg.answered or answer
        dst = str(row.get("dstchannel", ""))
        for other in self.legs.values():  # the CDR's end is also the end of the leg it was bridged to
            if dst and other.channel == dst and other.ended is None:
                other.ended = end
        if uniqueid != self.linkedid:
            leg.ended = leg.ended or end
            return None
        if not self.caller_number:
            self.caller_number, self.dialed = str(row.get("src", "")), str(row.get("dst", ""))
        route = _cdr_route(str(row.get("userfield", "")))
        if route and not self.route:  # the dial plan's route (fail-safe...), left where recovery reads it
            self.route = route
            self.notes.append(f"route {route} taken from Asterisk's CDR file (userfield)")
        if start is not None:
            self._instant("arrival", start, src, leg.channel, fill_only=True)
        if leg.ended is None and end is not None:
            leg.ended = end
            self.caller_gone = end
            self.notes.append("the engine did not see the hang-up: end taken from Asterisk's CDR file")
            self._instant("hangup", end, src, f"{self.hangup_by or 'unknown'}; {row.get('disposition', '')}")
            return self._signal(Signal.CALLER_GONE, lenient=True)
        return None

    def _feed_queue_log(self, row: dict[str, Any], at: datetime) -> Transition | None:
        src, event = InstantSource.QUEUE_LOG, str(row.get("event", ""))
        queue, agent = str(row.get("queue", "")), str(row.get("agent", ""))
        at = self._whole_second(at, event)
        whole = 1.0
        if event == "ENTERQUEUE":
            if queue not in self.queues:
                self.queues.append(queue)
            if self.call_class is CallClass.UNKNOWN:
                self.call_class = _class_of_queue(queue)
            self._instant("queue_joined", at, src, queue, fill_only=True, precision_s=whole)
            return self._signal(Signal.QUEUE_JOIN, lenient=True)
        if event == "RINGNOANSWER":
            self._instant("ring_no_answer", at, src, agent, fill_only=True, precision_s=whole)
        elif event == "CONNECT" and self.answered is None:
            self.answered, self.operator = at, agent
            self._instant("answered", at, src, agent, precision_s=whole)
            return self._signal(Signal.AGENT_CONNECT, lenient=True)
        elif event in {"COMPLETECALLER", "COMPLETEAGENT"} and not self.hangup_by:
            self.hangup_by = "caller" if event == "COMPLETECALLER" else "operator"
        elif event == "ABANDON":
            self.abandoned = True
            self.hangup_by = self.hangup_by or "caller"
            self._instant("abandoned", at, src, queue, fill_only=True, precision_s=whole)
        elif event in {"EXITWITHTIMEOUT", "EXITEMPTY"}:
            self.queue_timeout = True
            self.left_queue = True
        elif event in {"BLINDTRANSFER", "ATTENDEDTRANSFER"} and self.transfers == 0:
            self.transfers = 1
            self._instant("transferred", at, src, f"{event.lower()} {'/'.join(row.get('data', [])[:2])}",
                          precision_s=whole)
        return None


def _cdr_route(userfield: str) -> str:
    """``siaga_route=failsafe`` (pbx-config/extensions.conf sets the caller's CDR userfield) -> failsafe."""
    for part in userfield.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "siaga_route":
            return value.strip()
    return ""


def _class_of_queue(queue: str) -> CallClass:
    return CallClass(queue) if queue in {c.value for c in CallClass} else CallClass.UNKNOWN


def fold(linkedid: str, entries: Sequence[JournalEntry]) -> CallFold:
    call = CallFold(linkedid)
    for entry in entries:
        call.feed(entry)
    return call


def _decoded_name(name64: str) -> str:
    """The citizen's name the callback service sent base64-encoded (caller text never crosses the dial plan
    raw); anything that does not decode to UTF-8 is left out, never half-taken."""
    if not name64:
        return ""
    try:
        return base64.b64decode(name64, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
