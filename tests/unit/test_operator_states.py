"""The operator state table (queues.states) and the queue policy read from the site file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callflow.policies import queue_policy
from callflow.siteconfig import load_site, pbx_config_dir
from queues.policy import QueuePolicy, UnknownOperator, operator_of
from queues.states import Membership, MemberSnapshot, OperatorTable, State

T0 = datetime(2026, 11, 30, 4, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def table(**wrapup: float) -> OperatorTable:
    return OperatorTable(["op1", "op2"], wrapup=wrapup, start=T0)


def test_everyone_starts_offline() -> None:
    assert [v.state for v in table().views()] == [State.OFFLINE, State.OFFLINE]


def test_login_ring_answer_hangup_with_timed_wrapup() -> None:
    t = table(nonemergency=5)
    first = t.member_added("op1", at(1), Membership("emergency"))
    assert first is not None
    assert (first.old, first.new, first.at) == (State.OFFLINE, State.READY, at(1))
    again = t.member_added("op1", at(1.1), Membership("nonemergency"))  # same state, one more queue
    assert again is not None
    assert again.view.queues == ("emergency", "nonemergency")
    assert t.view("op1").since == at(1)
    ring = t.ringing("op1", at(2), "caller-1")
    assert ring is not None
    assert ring.new is State.RINGING
    on_call = t.connected("op1", at(3), "caller-1")
    assert on_call is not None
    assert on_call.new is State.ON_CALL
    done = t.completed("op1", at(10), "nonemergency")
    assert done is not None
    assert done.new is State.WRAPUP
    assert t.view("op1").wrapup_until == at(15)
    assert t.next_wrapup_end() == at(15)
    assert t.due_wrapups(at(14.9)) == []
    [end] = t.due_wrapups(at(16))
    assert (end.new, end.at, end.cause) == (State.READY, at(15), "wrapup_end")  # stamped with its end


def test_no_wrapup_queue_returns_to_ready() -> None:
    t = table(emergency=0)
    t.member_added("op1", at(0), Membership("emergency"))
    t.connected("op1", at(1), "c")
    done = t.completed("op1", at(2), "emergency")
    assert done is not None
    assert done.new is State.READY


def test_missed_ring_returns_to_ready() -> None:
    t = table()
    t.member_added("op1", at(0), Membership("emergency"))
    t.ringing("op1", at(1), "c")
    back = t.ring_ended("op1", at(9), "c", "AgentRingNoAnswer")
    assert back is not None
    assert (back.new, back.cause) == (State.READY, "AgentRingNoAnswer")


def test_caller_abandoning_clears_the_ring() -> None:
    t = table()
    t.member_added("op1", at(0), Membership("emergency"))
    t.ringing("op1", at(1), "c")
    [back] = t.caller_gone(at(2), "c", "QueueCallerAbandon")
    assert back.new is State.READY
    assert t.caller_gone(at(3), "c", "QueueCallerAbandon") == []


def test_device_going_free_ends_a_ring_but_in_use_waits_for_the_agent_event() -> None:
    t = table()
    t.member_added("op1", at(0), Membership("emergency"))
    t.ringing("op1", at(1), "c")
    assert t.device("op1", at(2), 2, in_call=False) is None  # answered: AgentConnect follows
    assert t.view("op1").state is State.RINGING
    back = t.device("op1", at(3), 1, in_call=False)  # the caller hung up while it rang
    assert back is not None
    assert back.new is State.READY


def test_pause_with_reason_and_resume() -> None:
    t = table()
    t.member_added("op1", at(0), Membership("emergency"))
    t.member_added("op1", at(0), Membership("nonemergency"))
    paused = t.pause("op1", at(5), "emergency", True, "break")
    assert paused is not None
    assert (paused.new, paused.reason) == (State.PAUSED, "break")
    resumed = t.pause("op1", at(9), "", False, "")
    assert resumed is not None
    assert (resumed.new, resumed.reason) == (State.READY, "")


def test_pause_during_a_call_is_pending_until_it_ends() -> None:
    t = table(emergency=0)
    t.member_added("op1", at(0), Membership("emergency"))
    t.connected("op1", at(1), "c")
    pending = t.pause("op1", at(2), "emergency", True, "break")
    assert pending is not None  # the view changed: pause pending
    assert pending.new is State.ON_CALL
    assert pending.view.pause_pending
    done = t.completed("op1", at(30), "emergency")
    assert done is not None
    assert (done.new, done.reason, done.view.pause_pending) == (State.PAUSED, "break", False)


def test_logout_goes_offline_whatever_the_activity() -> None:
    t = table()
    t.member_added("op1", at(0), Membership("emergency"))
    t.ringing("op1", at(1), "c")
    gone = t.member_removed("op1", at(2), "emergency")
    assert gone is not None
    assert gone.new is State.OFFLINE


def test_reconcile_adopts_asterisk_and_reports_each_drift() -> None:
    t = table()
    t.member_added("op1", at(0), Membership("emergency"))
    t.connected("op1", at(1), "c")
    snaps = [
        MemberSnapshot("op1", "emergency", 0, True, "by hand", in_call=False, device_status=1),
        MemberSnapshot("op2", "emergency", 0, False, "", in_call=True, device_status=2),
        MemberSnapshot("op7", "emergency", 0, False, "", in_call=False, device_status=1),
    ]
    drifts, transitions = t.reconcile(at(60), snaps)
    assert {(d.operator, d.what) for d in drifts} == {("op1", "paused"), ("op1", "call"), ("op2", "queues"),
                                                      ("op2", "call"), ("op7", "queues")}
    states = {tr.operator: (tr.new, tr.reason) for tr in transitions}
    assert states == {"op1": (State.PAUSED, "by hand"), "op2": (State.ON_CALL, ""), "op7": (State.READY, "")}
    assert all(tr.at == at(60) and tr.cause == "reconcile" for tr in transitions)
    # a second, identical snapshot: nothing to correct
    assert t.reconcile(at(120), snaps) == ([], [])


def test_reconcile_skips_operators_with_newer_events() -> None:
    t = table()
    t.member_added("op1", at(0), Membership("emergency"))
    drifts, transitions = t.reconcile(at(1), [], skip=["op1"])
    assert (drifts, transitions) == ([], [])
    assert t.view("op1").state is State.READY


def test_operator_outside_the_site_file_is_tracked() -> None:
    t = table()
    t.member_added("op9", at(0), Membership("emergency"))
    assert t.view("op9").state is State.READY


@pytest.fixture
def site_policy() -> QueuePolicy:
    return queue_policy(load_site(pbx_config_dir() / "site.toml").site)


def test_policy_from_the_default_site(site_policy: QueuePolicy) -> None:
    assert site_policy.memberships("op1") == {"emergency": 0, "nonemergency": 0}
    with pytest.raises(UnknownOperator, match=r"unknown operator 'op9'.*op1, op2, op3, op4, op5, op6"):
        site_policy.memberships("op9")


def test_policy_puts_nonemergency_only_operators_and_supervisors_in_the_overflow(tmp_path: Path) -> None:
    text = (pbx_config_dir() / "site.toml").read_text()
    text = text.replace('display_name = "Operator 4"\nclasses = ["emergency", "nonemergency"]',
                        'display_name = "Operator 4"\nclasses = ["nonemergency"]')
    text = text.replace('operators = ["op1", "op2", "op3", "op4", "op5", "op6"]\nannounce_position = false\n'
                        'overflow_s = 15\nsupervisors = []\nsupervisors_s = 0',
                        'operators = ["op1", "op2", "op3", "op5"]\nannounce_position = false\n'
                        'overflow_s = 15\nsupervisors = ["op6"]\nsupervisors_s = 30')
    text = text.replace('announce_position = true', 'announce_position = true\n', 1)
    (tmp_path / "site.toml").write_text(text)
    (tmp_path / "ivr.toml").write_text((pbx_config_dir() / "ivr.toml").read_text())
    policy = queue_policy(load_site(tmp_path / "site.toml").site)
    assert policy.memberships("op4") == {"nonemergency": 0, "emergency": 10}
    assert policy.memberships("op6") == {"nonemergency": 0, "emergency": 20}
    assert policy.memberships("op1") == {"emergency": 0, "nonemergency": 0}
    assert policy.wrapup == {"emergency": 0.0, "nonemergency": 0.0}


def test_operator_of() -> None:
    assert operator_of("PJSIP/op1") == "op1"
    assert operator_of("op2") == "op2"
