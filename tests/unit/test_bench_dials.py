"""bench/dials.py, which counts bench/failover.py's double dials: an attempt dialled twice, or a dial no
attempt accounts for, must show; retransmissions and separate attempts must not."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 5, 2, 40, tzinfo=UTC)


def load_dials() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_dials", REPO / "bench" / "dials.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


dials = load_dials()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def block(when: datetime, head: str, message: str) -> str:
    stamp = when.strftime("%Y-%m-%d %H:%M:%S.%f")
    return f"----------------------------------------------- {stamp}\n{head}\n\n{message}\n\n"


def invite(number: str, call_id: str) -> str:
    return (f"INVITE sip:{number}@127.0.0.1:25069 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:25060;branch=z9hG4bK1\n"
            f'From: "112" <sip:112@127.0.0.1>;tag=a\nTo: <sip:{number}@127.0.0.1>\nCall-ID: {call_id}\n'
            "CSeq: 1 INVITE\nContent-Length: 0")


def trace(*parts: tuple[float, str, str]) -> str:
    return "".join(block(at(s), head, msg) for s, head, msg in parts)


RECEIVED = "UDP message received [520] bytes :"
SENT = "UDP message sent (315 bytes):"


def test_the_trace_gives_one_invite_per_call_id_and_ignores_what_was_sent_and_other_requests() -> None:
    text = trace((1.0, RECEIVED, invite("081500001", "c1")),
                 (1.5, RECEIVED, invite("081500001", "c1")),  # a retransmission
                 (1.6, SENT, "SIP/2.0 180 Ringing\nCall-ID: c1\nCSeq: 1 INVITE"),
                 (4.0, RECEIVED, "CANCEL sip:081500001@127.0.0.1:25069 SIP/2.0\nCall-ID: c1\nCSeq: 1 CANCEL"),
                 (9.0, RECEIVED, invite("081500002", "c2")))
    invites = dials.invites_in_trace(text, "a")
    assert [(i.number, i.call_id, i.at, i.trunk) for i in invites] == [
        ("081500001", "c1", at(1.0), "a"), ("081500002", "c2", at(9.0), "a")]


def test_each_attempt_dialled_once_counts_no_double_dial() -> None:
    attempts = [dials.Dialled(1, "081500001", 1, at(0.9)), dials.Dialled(1, "081500001", 2, at(6.0)),
                dials.Dialled(2, "081500002", 1, at(3.0))]
    invites = [dials.Invite("081500001", "c1", at(1.0)), dials.Invite("081500001", "c2", at(6.1)),
               dials.Invite("081500002", "c3", at(3.2))]
    count = dials.count_dials(attempts, invites)
    assert (count.attempts, count.invites, count.double_dials, count.not_reached) == (3, 3, 0, 0)


def test_an_attempt_dialled_twice_is_a_double_dial() -> None:
    # task 1's attempt 1 reached the citizen twice (two Call-IDs: two Originates), e.g. a woken leader's
    # stale Originate after its successor dialled the attempt; the second node's INVITE counts too
    attempts = [dials.Dialled(1, "081500001", 1, at(0.9))]
    text_a = trace((1.0, RECEIVED, invite("081500001", "c1")))
    text_b = trace((1.2, RECEIVED, invite("081500001", "other-node-c9")))
    invites = dials.invites_in_trace(text_a, "a") + dials.invites_in_trace(text_b, "b")
    count = dials.count_dials(attempts, invites)
    assert count.per_attempt == {(1, 1): 2}
    assert count.double_dials == 1


def test_a_stale_dial_landing_after_the_next_attempt_started_is_a_double_dial() -> None:
    # attempt 1 never reached the citizen in time (its engine froze); attempt 2 did; then attempt 1's
    # Originate went out late: the citizen is called twice for attempt 2's slot
    attempts = [dials.Dialled(1, "081500001", 1, at(0.0)), dials.Dialled(1, "081500001", 2, at(20.0))]
    invites = [dials.Invite("081500001", "c2", at(20.1)), dials.Invite("081500001", "c1", at(21.0))]
    count = dials.count_dials(attempts, invites)
    assert count.per_attempt == {(1, 1): 0, (1, 2): 2}
    assert (count.double_dials, count.not_reached) == (1, 1)


def test_a_dial_with_no_recorded_attempt_is_a_double_dial() -> None:
    attempts = [dials.Dialled(1, "081500001", 1, at(5.0))]
    invites = [dials.Invite("081500001", "c0", at(4.0)),  # before any attempt of its number
               dials.Invite("081500009", "c9", at(6.0)),  # a number with no task at all
               dials.Invite("081500001", "c1", at(5.1))]
    count = dials.count_dials(attempts, invites)
    assert [i.call_id for i in count.unrecorded] == ["c0", "c9"]
    assert count.double_dials == 2
