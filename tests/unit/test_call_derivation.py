"""Unit: the state table and the derivation on realistic event sequences, including the IVR's user events
(the IVR is built in parallel; its events follow the SiagaIvr contract in pbx-config/README.md)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from callflow.ami import AmiMessage, parse_event
from callflow.calls.derive import DeriveOptions, derive
from callflow.calls.journal import JournalEntry, Kind, event_ids
from callflow.calls.model import CallClass, CallRecord, Outcome
from callflow.calls.records import record_from_dict, record_to_dict
from callflow.calls.states import TRANSITIONS, CallState, Effect, Signal, apply
from callflow.calls.tracker import CallTracker

T0 = datetime(2026, 11, 22, 1, 0, 0, 123456, tzinfo=UTC)
CALLER = {"Channel": "PJSIP/citizen-ingress-00000001", "Uniqueid": "1795300000.1",
          "Linkedid": "1795300000.1", "CallerIDNum": "081299990000", "CallerIDName": "Warga", "Exten": "112"}
OP1 = {"Channel": "PJSIP/op1-00000002", "Uniqueid": "1795300000.2", "Linkedid": "1795300000.1"}


class Call:
    """Builds a call's journal rows: ``at(s, Event, headers...)`` with s seconds after T0."""

    def __init__(self) -> None:
        self.rows: list[JournalEntry] = []

    def at(self, seconds: float, name: str, base: dict[str, str] | None = None, **headers: str) -> Call:
        when = T0 + timedelta(seconds=seconds)
        stamp = f"{int(when.timestamp())}.{when.microsecond:06d}"
        pairs = [("Event", name), ("Timestamp", stamp), *(base or {}).items(), *headers.items()]
        ev = parse_event(AmiMessage(tuple(pairs)), when)
        linkedid, uniqueid = event_ids(ev)
        self.rows.append(JournalEntry(len(self.rows) + 1, Kind.AMI, name, linkedid, uniqueid, ev.time,
                                      ev.time_source, when, [list(p) for p in pairs]))
        return self

    def agent(self, seconds: float, name: str, member: str = "op1", **headers: str) -> Call:
        dest = {f"Dest{k}": v for k, v in OP1.items()}
        return self.at(seconds, name, CALLER, Queue="emergency", MemberName=member,
                       Interface=f"PJSIP/{member}", **dest, **headers)

    def ivr(self, seconds: float, step: str, **headers: str) -> Call:
        return self.at(seconds, "UserEvent", CALLER, UserEvent="SiagaIvr", Step=step, **headers)

    def entry(self, seconds: float, klass: str = "emergency", route: str = "ivr") -> Call:
        return self.at(seconds, "UserEvent", CALLER, UserEvent="SiagaQueueEntry", Class=klass, Queue=klass,
                       Route=route)

    def caller_hangs_up(self, seconds: float) -> Call:
        return self.at(seconds, "HangupRequest", CALLER, Cause="16").at(seconds + 0.001, "Hangup", CALLER,
                                                                        Cause="16")


def record(call: Call, **opts: float):  # type: ignore[no-untyped-def]
    r = derive(CALLER["Linkedid"], call.rows, DeriveOptions(**opts))
    assert r is not None
    return r


def test_caller_hanging_up_in_the_ivr_is_abandoned_in_ivr() -> None:
    c = (Call().at(0, "Newchannel", CALLER).at(0.2, "Newstate", CALLER, ChannelStateDesc="Up")
         .ivr(0.3, "entered", Node="root").ivr(6.0, "timeout", Node="root").ivr(6.1, "entered", Node="root")
         .caller_hangs_up(9.5))
    r = record(c)
    assert r.outcome is Outcome.ABANDONED_IN_IVR
    assert r.ivr_path == ("root:timeout",)
    assert [i.name for i in r.instants][:2] == ["arrival", "ivr_entered"]
    assert r.hangup_by == "caller"


def test_ivr_answered_but_caller_left_in_the_queue_is_abandoned_not_answered() -> None:
    """The IVR answers the channel (Newstate Up); only AgentConnect is an operator's answer."""
    c = (Call().at(0, "Newchannel", CALLER).at(0.1, "Newstate", CALLER, ChannelStateDesc="Up")
         .ivr(0.2, "entered", Node="root").ivr(2.0, "digit", Node="root", Digit="2")
         .ivr(2.1, "decision", Node="nonemergency", Action="queue", Queue="nonemergency",
              Category="street_lighting")
         .entry(2.2, "nonemergency").at(2.3, "QueueCallerJoin", CALLER, Queue="nonemergency")
         .at(20.0, "QueueCallerAbandon", CALLER, Queue="nonemergency")
         .at(20.0, "QueueCallerLeave", CALLER, Queue="nonemergency").caller_hangs_up(20.01))
    r = record(c)
    assert r.outcome is Outcome.ABANDONED_IN_QUEUE
    assert r.answered is None
    assert r.call_class is CallClass.NONEMERGENCY
    assert r.category == "street_lighting"
    assert r.ivr_path == ("root:2",)
    left = next(i for i in r.instants if i.name == "ivr_left")
    assert left.detail == "queue/nonemergency"
    assert (left.at - next(i.at for i in r.instants if i.name == "ivr_entered")).total_seconds() == 1.9


def test_short_abandon_threshold_is_configurable() -> None:
    c = Call().at(0, "Newchannel", CALLER).caller_hangs_up(2.5)
    assert record(c).outcome is Outcome.SHORT_ABANDON
    assert record(c, short_abandon_s=2.0).outcome is Outcome.ABANDONED_IN_IVR


def test_failsafe_route_is_its_own_outcome_and_keeps_the_answer() -> None:
    c = (Call().at(0, "Newchannel", CALLER).entry(0.5, route="failsafe")
         .at(0.6, "QueueCallerJoin", CALLER, Queue="emergency").agent(0.7, "AgentCalled")
         .at(3.0, "QueueCallerLeave", CALLER, Queue="emergency").agent(3.0, "AgentConnect")
         .caller_hangs_up(10).at(10.1, "Hangup", OP1, Cause="16"))
    r = record(c)
    assert r.outcome is Outcome.FAILSAFE
    assert r.operator == "op1"
    assert r.answer_seconds == 3.0


def test_queue_timeout_and_overflow() -> None:
    timeout = (Call().at(0, "Newchannel", CALLER).at(0.1, "QueueCallerJoin", CALLER, Queue="emergency")
               .at(30, "QueueCallerLeave", CALLER, Queue="emergency").at(30.1, "Hangup", CALLER, Cause="16"))
    assert record(timeout).outcome is Outcome.TIMEOUT
    overflow = (Call().at(0, "Newchannel", CALLER).at(0.1, "QueueCallerJoin", CALLER, Queue="emergency")
                .at(30, "QueueCallerLeave", CALLER, Queue="emergency")
                .at(30.1, "QueueCallerJoin", CALLER, Queue="nonemergency")
                .at(60, "QueueCallerLeave", CALLER, Queue="nonemergency").at(60.1, "Hangup", CALLER))
    assert record(overflow).outcome is Outcome.OVERFLOWED


def test_operator_hanging_up_is_recorded_as_such() -> None:
    c = (Call().at(0, "Newchannel", CALLER).at(0.1, "QueueCallerJoin", CALLER, Queue="emergency")
         .at(1, "Newchannel", OP1).agent(1, "AgentCalled")
         .at(2, "QueueCallerLeave", CALLER, Queue="emergency")
         .agent(2, "AgentConnect").at(30, "HangupRequest", OP1).at(30.01, "Hangup", OP1, Cause="16")
         .at(30.02, "SoftHangupRequest", CALLER).at(30.03, "Hangup", CALLER, Cause="16"))
    r = record(c)
    assert r.outcome is Outcome.ANSWERED
    assert r.hangup_by == "operator"
    assert {g.role for g in r.legs} == {"caller", "operator"}


def test_call_in_progress_has_no_record_until_every_leg_is_gone() -> None:
    c = (Call().at(0, "Newchannel", CALLER).at(0.1, "QueueCallerJoin", CALLER, Queue="emergency")
         .at(1, "Newchannel", OP1).agent(2, "AgentConnect"))
    assert derive(CALLER["Linkedid"], c.rows) is None
    c.caller_hangs_up(5)
    assert derive(CALLER["Linkedid"], c.rows) is None  # the operator's leg is still up
    c.at(5.1, "Hangup", OP1, Cause="16")
    assert derive(CALLER["Linkedid"], c.rows) is not None


def test_illegal_transition_closes_the_call_as_incomplete_never_dropped() -> None:
    c = Call().at(0, "Newchannel", CALLER).agent(1, "AgentConnect")  # answered without ever queueing
    r = derive(CALLER["Linkedid"], c.rows)
    assert r is not None
    assert r.outcome is Outcome.INCOMPLETE
    assert any("illegal transition" in n for n in r.notes)


def test_trailing_events_after_the_end_do_not_change_the_record() -> None:
    c = Call().at(0, "Newchannel", CALLER).caller_hangs_up(5)
    before = record(c)
    c.at(5.2, "Newchannel", OP1).at(5.3, "Hangup", OP1)
    assert record(c) == before


def test_transition_table_illegal_pairs_close_as_incomplete() -> None:
    t = apply(CallState.ARRIVED, Signal.AGENT_CONNECT)
    assert t.after is CallState.INCOMPLETE
    assert Effect.CLOSE_INCOMPLETE in t.effects
    assert apply(CallState.QUEUED, Signal.CALLER_GONE).effects == (Effect.CALL_ENDED,)
    assert apply(CallState.ENDED, Signal.QUEUE_JOIN).after is CallState.ENDED


@given(st.lists(st.sampled_from(list(Signal)), max_size=30))
def test_any_signal_sequence_ends_in_a_known_state(signals: list[Signal]) -> None:
    state = CallState.UNSEEN
    for signal in signals:
        t = apply(state, signal)
        assert t.after in CallState
        assert t.legal == ((state, signal) in TRANSITIONS or state in (CallState.ENDED, CallState.INCOMPLETE))
        state = t.after


async def test_tracker_logs_an_illegal_transition_and_stores_the_call_as_incomplete(tmp_path: Path) -> None:
    records: list[CallRecord] = []
    stored = asyncio.Event()

    class Listener:
        async def on_call_record(self, record: CallRecord) -> None:
            records.append(record)
            stored.set()

    tracker = CallTracker(tmp_path / "t.db", listeners=[Listener()])
    task = asyncio.create_task(tracker.run(cast(Any, None)))
    c = Call().at(0, "Newchannel", CALLER).agent(1, "AgentConnect").caller_hangs_up(5)
    with capture_logs() as logs:
        for row in c.rows:
            await tracker.handle(row.event())
        async with asyncio.timeout(10):
            await stored.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    [warning] = [r for r in logs if r["event"] == "call.illegal_transition"]
    assert warning["log_level"] == "warning"
    assert warning["ami_event"] == "AgentConnect"
    assert [r.outcome for r in records] == [Outcome.INCOMPLETE]
    assert tracker.open == {}


def test_blind_transfer_published_after_the_transferee_reached_its_new_queue() -> None:
    """The order captured on the lab (CI, 2026-11-30): op1 blind-transfers the caller to 112; the
    caller's SiagaQueueEntry (route operator) comes before Asterisk's BlindTransfer event."""
    transferer = {f"Transferer{k}": v for k, v in OP1.items()}
    op2 = {"Channel": "PJSIP/op2-00000003", "Uniqueid": "1795300000.3", "Linkedid": "1795300000.1"}
    c = (Call().at(0, "Newchannel", CALLER).entry(0.5).at(0.6, "QueueCallerJoin", CALLER, Queue="emergency")
         .at(1, "Newchannel", OP1).agent(1, "AgentCalled")
         .at(2, "QueueCallerLeave", CALLER, Queue="emergency").agent(2, "AgentConnect")
         .entry(10, route="operator")
         .at(10.001, "BlindTransfer", None, Result="Success", Extension="112", Context="from-operators",
             **{f"Transferee{k}": v for k, v in CALLER.items()}, **transferer)
         .at(10.002, "Hangup", OP1, Cause="16").at(10.003, "QueueCallerJoin", CALLER, Queue="emergency")
         .at(10.9, "Newchannel", op2).agent(11, "AgentConnect", member="op2")
         .caller_hangs_up(40).at(40.1, "Hangup", op2, Cause="16"))
    r = record(c)
    assert r.outcome is Outcome.TRANSFERRED
    assert r.notes == ()
    assert [i.detail for i in r.instants if i.name == "answered"] == ["op1", "op2"]
    [t] = [i for i in r.instants if i.name == "transferred"]
    assert t.detail == "blind 112@from-operators by PJSIP/op1-00000002"


def test_attended_transfer_is_recorded() -> None:
    op2 = {"Channel": "PJSIP/op2-00000003", "Uniqueid": "1795300000.3", "Linkedid": "1795300000.3"}
    orig = {f"OrigTransferer{k}": v for k, v in OP1.items()}
    target = {f"TransferTarget{k}": v for k, v in op2.items()}
    c = (Call().at(0, "Newchannel", CALLER).at(0.1, "QueueCallerJoin", CALLER, Queue="emergency")
         .at(1, "Newchannel", OP1).agent(1, "AgentCalled")
         .at(2, "QueueCallerLeave", CALLER, Queue="emergency").agent(2, "AgentConnect")
         .at(20, "AttendedTransfer", None, Result="Success", DestType="Bridge", **orig, **target)
         .at(20.1, "Hangup", OP1, Cause="16").caller_hangs_up(40))
    r = record(c)
    assert r.outcome is Outcome.TRANSFERRED
    [t] = [i for i in r.instants if i.name == "transferred"]
    assert t.detail == "attended to PJSIP/op2-00000003 by PJSIP/op1-00000002"


def test_an_answered_callback_is_recorded_as_the_citizens_follow_up() -> None:
    """The engine's callback: the citizen answered, the dial plan's SiagaCallback UserEvent names the call it
    follows up and the citizen's number; the record carries both (the channel's caller id is the "112" the
    citizen saw), and the callback is never an offered call."""
    lid = "siaga-cb-7-1-1795300100000"
    cb = {"Channel": "PJSIP/citizen-callback-00000009", "Uniqueid": lid, "Linkedid": lid,
          "CallerIDNum": "112", "CallerIDName": "112", "Exten": "s"}
    op = {"DestChannel": "PJSIP/op1-0000000a", "DestUniqueid": "1795300101.10", "DestLinkedid": lid}
    c = (Call().at(0, "Newchannel", cb).at(20, "Newstate", cb, ChannelStateDesc="Up")
         .at(20.1, "UserEvent", cb, UserEvent="SiagaCallback", Task="7", Original=CALLER["Linkedid"],
             Number="081299990000", Arrival="1795300000.123456", Status="answered",
             Name64=base64.b64encode("Jérôme D'Souza, Wenang".encode()).decode())
         .at(20.2, "UserEvent", cb, UserEvent="SiagaQueueEntry", Class="emergency", Queue="emergency",
             Route="callback")
         .at(20.3, "QueueCallerJoin", cb, Queue="emergency")
         .at(21.0, "QueueCallerLeave", cb, Queue="emergency")
         .at(21.0, "AgentConnect", cb, Queue="emergency", MemberName="op1", Interface="PJSIP/op1", **op)
         .at(60, "HangupRequest", cb, Cause="16").at(60.001, "Hangup", cb, Cause="16"))
    r = derive(lid, c.rows, DeriveOptions())
    assert r is not None
    assert (r.follows_up, r.caller_number, r.operator) == (CALLER["Linkedid"], "081299990000", "op1")
    assert r.caller_name == "Jérôme D'Souza, Wenang"  # the citizen's, from the call followed up
    assert r.is_callback
    assert not r.is_citizen_call
    assert any(i.name == "callback_answered" and i.detail == "task 7" for i in r.instants)
    assert record_from_dict(record_to_dict(r)) == r
    assert "follows_up" not in record_to_dict(record(Call().at(0, "Newchannel", CALLER).caller_hangs_up(9)))


def test_an_unanswered_callback_attempt_is_an_attempt_of_its_task_not_a_citizen_call() -> None:
    """The citizen never answered attempt 2 of task 7: no SiagaCallback event, the channel rang out. Its
    record is not an ``incomplete`` citizen call with caller "<unknown>" dialling "s"."""
    lid = "siaga-cb-7-2-1795300200000"
    cb = {"Channel": "PJSIP/citizen-callback-0000000b", "Uniqueid": lid, "Linkedid": lid,
          "CallerIDNum": "<unknown>", "CallerIDName": "<unknown>", "Exten": "s"}
    c = Call().at(0, "Newchannel", cb).at(30, "Hangup", cb, Cause="19")
    r = derive(lid, c.rows, DeriveOptions())
    assert r is not None
    assert r.outcome is Outcome.CALLBACK_UNANSWERED
    assert (r.caller_number, r.caller_name, r.dialed) == ("", "", "")
    assert r.notes == ("the engine's callback attempt 2 of task 7, not answered by the citizen: see "
                       "`siaga112 callbacks show 7`",)
    assert not r.is_citizen_call
    assert derive(lid, c.rows, DeriveOptions()) == r  # a pure function of the rows
