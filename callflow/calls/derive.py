"""The call record as a PURE function of the journal: the rows of one Linkedid -> a CallRecord.

The rows are folded into evidence (:mod:`callflow.calls.fold`); :func:`outcome_of` decides the outcome
from that evidence and :func:`record_of` builds the record. No clock, no I/O: the same rows always give
the same record, which is what makes ``siaga112 calls rebuild`` reproduce stored rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from callflow.calls.fold import CallFold, LegEvidence, epoch_time, fold
from callflow.calls.journal import JournalEntry, Kind
from callflow.calls.model import CALLBACK_LINKEDID_PREFIX, DEFAULT_SHORT_ABANDON_S, CallRecord, Leg, Outcome

__all__ = ["CallFold", "DeriveOptions", "derive", "epoch_time", "fold", "is_unanswered_callback",
           "outcome_of", "record_of"]


@dataclass(frozen=True, slots=True)
class DeriveOptions:
    short_abandon_s: float = DEFAULT_SHORT_ABANDON_S  # the site file's [calls] short_abandon_s


def is_unanswered_callback(call: CallFold) -> bool:
    """The engine's callback attempt (Linkedid ``siaga-cb-...``) the citizen never answered: the dial plan's
    SiagaCallback event (sent once the citizen answers) never came and no operator answered."""
    return (call.linkedid.startswith(CALLBACK_LINKEDID_PREFIX) and not call.follows_up
            and call.answered is None and call.illegal is None)


def outcome_of(call: CallFold, options: DeriveOptions) -> Outcome:
    if call.node_lost:
        return Outcome.NODE_LOST
    if is_unanswered_callback(call) and call.caller_gone is not None:
        return Outcome.CALLBACK_UNANSWERED
    if call.illegal is not None or (call.caller_gone is None and call.answered is None):
        return Outcome.INCOMPLETE
    if call.route == "failsafe":
        return Outcome.FAILSAFE
    if call.answered is not None:
        return Outcome.TRANSFERRED if call.transfers else Outcome.ANSWERED
    arrival = _arrival(call)
    by_caller = call.hangup_by == "caller" or call.abandoned
    if by_caller and call.caller_gone is not None and arrival is not None \
            and (call.caller_gone - arrival).total_seconds() < options.short_abandon_s:
        return Outcome.SHORT_ABANDON
    if call.queues:
        if call.abandoned:
            return Outcome.ABANDONED_IN_QUEUE
        if len(set(call.queues)) > 1 and call.left_queue:
            return Outcome.OVERFLOWED
        if call.left_queue or call.queue_timeout:
            return Outcome.TIMEOUT
        return Outcome.ABANDONED_IN_QUEUE if by_caller else Outcome.INCOMPLETE
    if by_caller:
        return Outcome.ABANDONED_IN_IVR
    if call.ivr_timeout:
        return Outcome.TIMEOUT
    return Outcome.INCOMPLETE


def _arrival(call: CallFold) -> datetime | None:
    arrivals = [i.at for i in call.instants if i.name == "arrival"]
    if arrivals:
        return arrivals[0]
    times = [i.at for i in call.instants]
    return min(times) if times else None


def _role(call: CallFold, leg: LegEvidence) -> str:
    if leg.uniqueid == call.linkedid:
        return "caller"
    if leg.after_transfer:
        return "transfer_target"
    if leg.agent or leg.channel.startswith("PJSIP/op"):
        return "operator"
    return "other"


def derive(linkedid: str, entries: Sequence[JournalEntry], options: DeriveOptions | None = None,
           *, force: bool = False) -> CallRecord | None:
    """The record of call ``linkedid`` from its journal rows (journal order). None while the call is
    still in progress, unless ``force`` (then an unfinished call is ``incomplete``)."""
    call = fold(linkedid, entries)
    if not call.complete and not force:
        return None
    return record_of(call, options or DeriveOptions(), entries)


def record_of(call: CallFold, options: DeriveOptions, entries: Sequence[JournalEntry]) -> CallRecord | None:
    arrival = _arrival(call)
    if arrival is None:
        if not entries:
            return None
        arrival = entries[0].ts
        call.notes.append("no arrival instant: first journal row used")
    ends = [g.ended for g in call.legs.values() if g.ended is not None]
    sources = sorted({{Kind.AMI: "ami", Kind.CDR_FILE: "asterisk_cdr", Kind.QUEUE_LOG: "queue_log"}[k]
                      for k in call.kinds if k in (Kind.AMI, Kind.CDR_FILE, Kind.QUEUE_LOG)})
    hangup_by = call.hangup_by or ("system" if call.caller_gone is not None else "")
    legs = tuple(Leg(g.uniqueid, g.channel, _role(call, g), g.created, g.answered, g.ended, g.cause)
                 for g in sorted(call.legs.values(), key=lambda g: (g.uniqueid != call.linkedid,
                                                                     g.created or arrival, g.uniqueid)))
    outcome = outcome_of(call, options)
    if outcome is Outcome.CALLBACK_UNANSWERED:
        # the channel's caller id is what the citizen would have seen ("112"), its extension the dial plan's
        # "s": neither is a citizen's; the attempt belongs to its task (the callbacks tables)
        call.caller_number = call.caller_name = call.dialed = ""
        task, _, rest = call.linkedid.removeprefix(CALLBACK_LINKEDID_PREFIX).partition("-")
        attempt = rest.partition("-")[0]
        call.notes.append(f"the engine's callback attempt {attempt or '?'} of task {task or '?'}, not "
                          f"answered by the citizen: see `siaga112 callbacks show {task or 'ID'}`")
    return CallRecord(
        linkedid=call.linkedid, caller_number=call.caller_number, caller_name=call.caller_name,
        dialed=call.dialed, call_class=call.call_class, outcome=outcome,
        arrival=arrival, ended=max(ends) if ends else call.caller_gone, answered=call.answered,
        operator=call.operator, queue=call.queues[-1] if call.queues else "", category=call.category,
        ivr_path=tuple(call.ivr_path), hangup_by=hangup_by, follows_up=call.follows_up, contact=call.contact,
        contact_detail=call.contact_detail, node=call.node,
        instants=tuple(sorted(call.instants, key=lambda i: i.at)), legs=legs, sources=tuple(sources),
        notes=tuple(call.notes))
