"""Silent callers (ivr/silence.py): the engine's speech marks from Asterisk's TALK_DETECT events, the
probe rule, the tree's [silent] section, and the record's contact from the IVR's SiagaSilent event. The
whole path (talk detection, probe, 55) runs on the lab in tests/integration/test_silent_callers.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callflow.ami.codec import AmiMessage
from callflow.ami.events import AmiEvent, ChannelTalkingStop, parse_event
from ivr.rules import TreeError, parse_tree
from ivr.silence import SPEECH_VAR, SPOKE_VAR, Mark, TalkWatch, probe_due, speech_seconds
from tests.unit.test_ivr_rules import BASE

CHANNEL, UNIQUEID = "PJSIP/citizen-ingress-00000009", "1796040000.9"


def event(name: str, uniqueid: str = UNIQUEID, **headers: str) -> AmiEvent:
    msg = AmiMessage((("Event", name), ("Channel", CHANNEL), ("Uniqueid", uniqueid), ("Linkedid", uniqueid),
                      ("Context", "siaga-ivr"), ("Exten", "s"), *headers.items()))
    return parse_event(msg, datetime.now(UTC))


def test_talking_events_are_typed() -> None:
    stop = event("ChannelTalkingStop", Duration="1520")
    assert isinstance(stop, ChannelTalkingStop)
    assert stop.duration_ms == 1520


def test_first_speech_marks_the_channel_once_and_each_stop_adds_up() -> None:
    watch = TalkWatch()
    assert watch.feed(event("ChannelTalkingStart")) == Mark(CHANNEL, UNIQUEID, SPOKE_VAR, "1")
    assert watch.feed(event("ChannelTalkingStop", Duration="1200")) == Mark(CHANNEL, UNIQUEID, SPEECH_VAR,
                                                                            "1200")
    assert watch.feed(event("ChannelTalkingStart")) is None
    assert watch.feed(event("ChannelTalkingStop", Duration="800")) == Mark(CHANNEL, UNIQUEID, SPEECH_VAR,
                                                                           "2000")
    assert watch.speech_ms(UNIQUEID) == 2000
    assert watch.feed(event("Hangup", Cause="16")) is None
    assert watch.speech_ms(UNIQUEID) is None


@pytest.mark.parametrize("case", [
    (False, "", False, 10.0, False, True),  # silent for N s
    (False, "", False, 4.0, False, False),  # not yet N s, another try to come
    (False, "", False, 4.0, True, True),  # the last no-input before the queue: offered anyway
    (True, "", False, 30.0, True, False),  # spoke: not silent
    (False, "3", False, 30.0, True, False),  # a key: not silent
    (False, "", True, 30.0, True, False),  # once per call
])
def test_probe_is_due_only_to_a_silent_caller_once(case: tuple[bool, str, bool, float, bool, bool]) -> None:
    spoke, keys, probed, elapsed, last, due = case
    assert probe_due(spoke=spoke, keys=keys, probed=probed, elapsed_s=elapsed, after_s=10.0,
                     last_chance=last) is due


def test_speech_seconds_for_the_record() -> None:
    assert (speech_seconds("1520"), speech_seconds(""), speech_seconds("x")) == ("1.5", "0.0", "0.0")


SILENT = BASE + """
[silent]
after_s = 5
prompts = ["probe"]

[prompts.probe]
language = "en"
text = "If you cannot speak, press five twice."
"""


def test_the_probe_counts_on_every_path_of_the_bounded_duration() -> None:
    plain = parse_tree(BASE, "ivr.toml", {"root": 1.0, "sub": 1.0, "bye": 1.0})
    silent = parse_tree(SILENT, "ivr.toml", {"root": 1.0, "sub": 1.0, "bye": 1.0, "probe": 2.0})
    assert silent.max_seconds == pytest.approx(plain.max_seconds + 2.0 + 6.0)


def test_a_probe_prompt_that_is_not_defined_is_refused() -> None:
    with pytest.raises(TreeError, match="not defined"):
        parse_tree(SILENT.replace('prompts = ["probe"]', 'prompts = ["nope"]'), "ivr.toml", {})
