"""Keys Asterisk dropped between IVR menus (ivr/keys.py): which ones are given back, to which menu, once.

The event sequences are what Asterisk 22 writes for one channel (AMI keeps a channel's events in order);
the whole path on the real lab, with PlayDTMF, is in tests/integration/test_ivr.py."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from structlog.testing import capture_logs

from callflow.ami.codec import AmiMessage
from callflow.ami.errors import ActionFailed
from callflow.ami.events import AmiEvent, parse_event
from callflow.service import Engine
from ivr.keys import MAX_PENDING, KeyRelay, MissedKeys, PlayBack

CHANNEL, UNIQUEID = "PJSIP/citizen-ingress-00000007", "1796030000.7"
GET_DATA = 'GET DATA "/srv/sounds/siaga112/default/root" "5000" "1"'
GOSUB = 'GOSUB "siaga-ivr-step" "step" "1" "digit,root,2,complaints"'


def event(name: str, context: str = "siaga-ivr", uniqueid: str = UNIQUEID, **headers: str) -> AmiEvent:
    msg = AmiMessage((("Event", name), ("Channel", CHANNEL), ("Uniqueid", uniqueid), ("Linkedid", uniqueid),
                      ("Context", context), ("Exten", "s"), *headers.items()))
    return parse_event(msg, datetime.now(UTC))


def start(command: str, cid: str = "11") -> AmiEvent:
    return event("AGIExecStart", Command=command, CommandId=cid)


def end(command: str, cid: str = "11") -> AmiEvent:
    return event("AGIExecEnd", Command=command, CommandId=cid, ResultCode="200", Result="Success")


def key(digit: str, context: str = "siaga-ivr", direction: str = "Received") -> AmiEvent:
    return event("DTMFEnd", context=context, Digit=digit, DurationMs="120", Direction=direction)


def run(relay: KeyRelay, *events: AmiEvent) -> list[PlayBack]:
    return [back for ev in events if (back := relay.feed(ev)) is not None]


def test_a_key_pressed_before_the_first_menu_is_played_into_it() -> None:
    relay = KeyRelay()
    backs = run(relay, key("1"), start(GOSUB, "1"), end(GOSUB, "1"), start(GET_DATA, "2"))
    assert backs == [PlayBack(CHANNEL, UNIQUEID, "1", "2")]
    assert relay.pending(UNIQUEID) == []


def test_a_key_dropped_right_after_a_step_is_played_into_the_next_menu() -> None:
    """As captured at 100 calls/s: after the GOSUB step, Asterisk's snapshot still names the subroutine's
    context (siaga-ivr-step) while the AGI loop drops the key."""
    relay = KeyRelay()
    backs = run(relay, start(GOSUB, "1"), end(GOSUB, "1"), key("1", context="siaga-ivr-step"),
                start(GET_DATA, "2"))
    assert [b.digit for b in backs] == ["1"]


def test_a_key_heard_by_a_menu_is_not_played_again() -> None:
    relay = KeyRelay()
    assert run(relay, start(GET_DATA), key("2"), end(GET_DATA), start(GOSUB), end(GOSUB),
               start(GET_DATA, "12")) == []
    assert relay.dropped_seen == 0


def test_keys_between_menus_go_one_per_menu_in_order() -> None:
    """2 then 4 pressed quickly while the IVR was stalled: the root menu gets 2, the complaints menu 4."""
    relay = KeyRelay()
    backs = run(relay, key("2"), key("4"), start(GET_DATA, "a"), key("2"), end(GET_DATA, "a"),
                start(GOSUB, "b"), end(GOSUB, "b"), start(GET_DATA, "c"))
    assert [(b.digit, b.command_id) for b in backs] == [("2", "a"), ("4", "c")]


def test_a_key_played_back_too_late_is_dropped_again_and_goes_to_the_next_menu() -> None:
    relay = KeyRelay()
    first = run(relay, key("1"), start(GET_DATA, "a"))
    # the menu timed out before the key arrived: Asterisk drops the played-back key as well, reports it
    again = run(relay, end(GET_DATA, "a"), key("1"), start(GOSUB, "b"), end(GOSUB, "b"), start(GET_DATA, "c"))
    assert [b.command_id for b in first + again] == ["a", "c"]


def test_a_key_played_back_that_lands_in_a_message_goes_to_the_next_menu() -> None:
    """As captured at 100 calls/s: the root menu heard the caller's next key before our 2 landed; the 2
    arrived during the "invalid" message, which ignores keys: it is given to the retry menu."""
    relay = KeyRelay()
    invalid = 'STREAM FILE "/srv/sounds/siaga112/default/invalid" ""'
    backs = run(relay, key("2"), start(GET_DATA, "a"), key("4"), end(GET_DATA, "a"),
                start(invalid, "b"), key("2"), end(invalid, "b"), start(GET_DATA, "c"))
    assert [(b.digit, b.command_id) for b in backs] == [("2", "a"), ("2", "c")]


def test_keys_during_other_commands_outside_the_ivr_or_sent_are_not_given_back() -> None:
    relay = KeyRelay()
    invalid = 'STREAM FILE "/srv/sounds/siaga112/default/invalid" ""'
    backs = run(relay, start(invalid), key("3"), end(invalid),  # the "invalid" message ignores keys
                key("5", context="siaga-queue-emergency"),  # past the IVR: the queue's, not a menu's
                key("6", direction="Sent"),  # a key Asterisk sent, not the caller's
                key("x"), start(GET_DATA))
    assert backs == []


def test_the_decision_or_the_hang_up_ends_the_call_and_memory_is_bounded() -> None:
    relay = KeyRelay()
    decided = event("UserEvent", UserEvent="SiagaIvr", Step="decision", Node="root")
    assert run(relay, key("1"), decided, start(GET_DATA)) == []
    run(relay, key("1"), event("Hangup", Cause="16"))
    assert len(relay) == 0
    for _ in range(MAX_PENDING + 5):
        relay.feed(key("9"))
    assert relay.pending(UNIQUEID) == ["9"] * MAX_PENDING


class Session:
    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def action(self, name: str, headers: Mapping[str, str | int] | None = None,
                     **_: object) -> AmiMessage:
        self.sent.append((name, dict(headers or {})))
        if self.refuse:
            raise ActionFailed(name, "No such channel")
        return AmiMessage((("Response", "Success"),))


class FakeEngine:
    def __init__(self, session: Session) -> None:
        self.session = session


async def _component(session: Session) -> MissedKeys:
    component = MissedKeys()
    task = asyncio.create_task(component.run(cast(Engine, FakeEngine(session))))
    await asyncio.sleep(0)  # run() takes the engine
    task.cancel()
    return component


async def test_the_component_plays_the_key_back_as_received() -> None:
    session = Session()
    component = await _component(session)
    for ev in (key("1"), start(GET_DATA, "7")):
        await component.handle(ev)
    async with asyncio.timeout(2):
        await component.settled()
    assert component.played == 1
    assert session.sent == [("PlayDTMF", {"Channel": CHANNEL, "Digit": "1", "Duration": 120,
                                          "Receive": "true"})]


async def test_a_refused_play_back_is_logged_and_the_engine_goes_on() -> None:
    session = Session(refuse=True)
    component = await _component(session)
    with capture_logs() as logs:
        for ev in (key("1"), start(GET_DATA, "7")):
            await component.handle(ev)
        async with asyncio.timeout(2):
            await component.settled()
    assert component.played == 0
    lost = next(e for e in logs if e["event"] == "ivr.missed_key_lost")
    assert "No such channel" in lost["error"]
