"""Typed events: immutable, exact timestamps, unknown events kept."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callflow.ami import AmiCodec, UnknownEvent, parse_event
from callflow.ami._event_base import build_generic, compile_builder, unescape_c
from callflow.ami.events import EVENT_TYPES, AgentConnect, Hangup, QueueCallerJoin, parse_timestamp

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)


def event(raw: bytes):  # type: ignore[no-untyped-def]
    codec = AmiCodec()
    (msg,) = codec.feed(b"Asterisk Call Manager/11.0.0\r\n" + raw)
    return parse_event(msg, NOW)


def test_timestamp_is_utc_with_exact_microseconds() -> None:
    ts = parse_timestamp("1763791542.000007")
    assert ts == datetime(2025, 11, 22, 6, 5, 42, 7, tzinfo=UTC)
    assert parse_timestamp("1763791542") == datetime(2025, 11, 22, 6, 5, 42, tzinfo=UTC)
    assert parse_timestamp("garbage") is None


def test_agent_connect_is_typed_with_both_legs() -> None:
    ev = event(b"Event: AgentConnect\r\nChannel: PJSIP/citizen-1\r\nUniqueid: 10.1\r\nLinkedid: 10.1\r\n"
               b"DestChannel: PJSIP/op1-2\r\nDestUniqueid: 10.2\r\nDestLinkedid: 10.1\r\nQueue: emergency\r\n"
               b"MemberName: op1\r\nInterface: PJSIP/op1\r\nHoldTime: 4\r\nRingTime: 1\r\n"
               b"Timestamp: 1763791542.5\r\n\r\n")
    assert isinstance(ev, AgentConnect)
    assert (ev.queue, ev.member_name, ev.hold_time, ev.ring_time) == ("emergency", "op1", 4, 1)
    assert ev.linkedid == "10.1"
    assert ev.dest is not None
    assert ev.dest.uniqueid == "10.2"
    assert ev.time == datetime(2025, 11, 22, 6, 5, 42, 500000, tzinfo=UTC)
    assert ev.time_source == "ami_timestamp"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.queue = "other"  # type: ignore[misc]


def test_missing_timestamp_falls_back_to_engine_clock_and_says_so() -> None:
    ev = event(b"Event: Hangup\r\nUniqueid: 1.1\r\nLinkedid: 1.1\r\nCause: 16\r\n\r\n")
    assert isinstance(ev, Hangup)
    assert ev.cause == 16
    assert ev.time == NOW
    assert ev.time_source == "engine_clock"


def test_bad_numbers_do_not_raise() -> None:
    ev = event(b"Event: QueueCallerJoin\r\nUniqueid: 1.1\r\nQueue: emergency\r\nPosition: x\r\n\r\n")
    assert isinstance(ev, QueueCallerJoin)
    assert ev.position == 0


def test_unknown_event_is_kept_whole() -> None:
    ev = event(b"Event: SomethingNew\r\nFoo: bar\r\n\r\n")
    assert isinstance(ev, UnknownEvent)
    assert ev.name == "SomethingNew"
    assert ev.message["Foo"] == "bar"


@given(st.integers(min_value=946684800, max_value=4102444799), st.integers(min_value=0, max_value=999999))
def test_timestamp_is_exact_to_the_microsecond_for_this_century(seconds: int, micros: int) -> None:
    ts = parse_timestamp(f"{seconds}.{micros:06d}")
    assert ts == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=micros)


EVENTS_OF_THE_ISSUE = [
    "Newchannel", "Newstate", "Hangup", "DialBegin", "DialEnd", "DTMFEnd", "VarSet", "UserEvent",
    "QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "AgentCalled", "AgentConnect",
    "AgentComplete", "AgentRingNoAnswer", "QueueMemberStatus", "QueueMemberAdded", "QueueMemberRemoved",
    "QueueMemberPause", "BridgeEnter", "BridgeLeave", "BlindTransfer", "AttendedTransfer", "Cdr",
    "FullyBooted", "QueueParams", "QueueMember", "QueueEntry", "QueueSummary", "CoreShowChannel",
    "EndpointList",
]


@pytest.mark.parametrize("name", EVENTS_OF_THE_ISSUE)
def test_every_consumed_event_is_typed_and_immutable(name: str) -> None:
    ev = event(f"Event: {name}\r\nUniqueid: 1.1\r\nTimestamp: 1763791542.000001\r\n\r\n".encode())
    assert type(ev).__name__ == name
    assert not isinstance(ev, UnknownEvent)
    assert ev.timestamp == datetime(2025, 11, 22, 6, 5, 42, 1, tzinfo=UTC)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.name = "other"  # type: ignore[misc]


def test_transfer_and_member_fields() -> None:
    blind = event(b"Event: BlindTransfer\r\nResult: Success\r\nTransfererChannel: PJSIP/op1-1\r\n"
                  b"TransfererUniqueid: 5.1\r\nTransfereeChannel: PJSIP/citizen-1\r\n"
                  b"TransfereeUniqueid: 5.2\r\n"
                  b"Extension: 202\r\nContext: from-operators\r\nIsExternal: No\r\n\r\n")
    assert blind.transferer is not None
    assert (blind.transferer.channel, blind.transferee.channel, blind.extension) == (
        "PJSIP/op1-1", "PJSIP/citizen-1", "202")
    member = event(b"Event: QueueMember\r\nQueue: emergency\r\nName: op2\r\nLocation: PJSIP/op2\r\n"
                   b"Paused: 1\r\nPausedReason: break\r\nInCall: 0\r\nStatus: 1\r\n\r\n")
    assert (member.member_name, member.interface, member.paused, member.paused_reason) == (
        "op2", "PJSIP/op2", True, "break")


# --- the builders generated per message shape agree with the generic reader -------------------------------

def _headers_of(cls: type) -> list[str]:
    """Every header ``cls`` reads, snapshot headers under their prefixes included."""
    from callflow.ami._event_base import _SNAPSHOT_HEADERS, _Channel  # noqa: PLC0415 - internals under test

    names = ["Timestamp"]
    for f in dataclasses.fields(cls):
        conv = f.metadata.get("conv")
        if isinstance(conv, _Channel):
            names += [conv.prefix + key for key in _SNAPSHOT_HEADERS]
        elif conv is not None:
            names.append(f.metadata["ami"])
    return names


_FIELD_VALUE = st.one_of(st.sampled_from(["", "0", "17", "-3", "yes", "no", " On ", "x", "1763791542.123456",
                                          "Jérôme Ελένη", "a: b"]),
                         st.text(alphabet=st.characters(blacklist_characters="\r\n\x00",
                                                        blacklist_categories=("Cs",)), max_size=8))


@given(st.sampled_from(sorted(EVENT_TYPES)), st.data())
def test_shape_builders_agree_with_the_generic_reader(name: str, data: st.DataObject) -> None:
    cls = EVENT_TYPES[name]
    wanted = _headers_of(cls)
    present = data.draw(st.lists(st.sampled_from(wanted), unique=True, max_size=len(wanted)))
    extra = data.draw(st.lists(st.sampled_from(["Privilege", "AccountCode", "ChanVariable"]), max_size=3))
    lines = [f"Event: {name}"] + [f"{key}: {data.draw(_FIELD_VALUE)}" for key in present + extra]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
    codec = AmiCodec()
    (first,) = codec.feed(b"Asterisk Call Manager/11.0.0\r\n" + raw)
    (second,) = codec.feed(raw)  # the same shape again: typed by the builder generated for it
    for msg in (first, second):
        reference = build_generic(cls, msg, NOW)
        generated = compile_builder(cls, msg._shape.index)(msg, NOW)  # whether or not the shape is cached
        assert type(generated) is cls
        assert generated == reference
        assert generated.timestamp == reference.timestamp  # compare=True already; said for the reader
        assert parse_event(msg, NOW) == reference
        assert generated.message is msg


def test_a_peer_sending_ever_new_headers_is_still_typed_exactly() -> None:
    from callflow.ami import message  # noqa: PLC0415 - the shape cache's bounds

    codec = AmiCodec()
    codec.feed(b"Asterisk Call Manager/11.0.0\r\n")
    for i in range(message.MAX_SHAPES_PER_NAME + 5):  # past the bound, shapes are no longer cached
        (msg,) = codec.feed(f"Event: Hangup\r\nX{i}: 1\r\nUniqueid: 9.{i}\r\nCause: 16\r\n\r\n".encode())
        ev = parse_event(msg, NOW)
        assert isinstance(ev, Hangup)
        assert (ev.uniqueid, ev.cause, msg[f"X{i}"]) == (f"9.{i}", 16, "1")
    assert not msg._shape.cached
    assert len(message._BY_FIRST["Hangup"]) == message.MAX_SHAPES_PER_NAME


# Newchannel as the lab's Asterisk 22 wrote it for a SIPp caller whose From display name was the SIP
# quoted-string "D'Souza \"Q\" \\ x é" (pjsip keeps its quoted-pairs; AMI C-escapes ' " and \).
_ESCAPED_NAME = (b"Event: Newchannel\r\nChannel: PJSIP/citizen-ingress-00000003\r\nChannelState: 4\r\n"
                 b"CallerIDNum: 0812555\r\nCallerIDName: D\\'Souza \\\\\\\"Q\\\\\\\" \\\\\\\\ x \xc3\xa9\r\n"
                 b"ConnectedLineNum: <unknown>\r\nConnectedLineName: O\\'Brien\r\nUniqueid: 1796416552.6\r\n"
                 b"Linkedid: 1796416552.6\r\n\r\n")


def test_caller_names_lose_amis_escaping_exactly() -> None:
    ev = event(_ESCAPED_NAME)
    assert ev.chan.caller_id_name == "D'Souza \"Q\" \\ x é"
    assert ev.chan.connected_line_name == "O'Brien"
    assert ev.chan.caller_id_num == "0812555"
    # the generic reader (messages of shapes not cached) agrees with the generated builder
    assert build_generic(type(ev), ev.message, NOW).chan == ev.chan
    # a line break in a name arrives as \r\n text and is given back as the line break the caller sent
    broken = event(_ESCAPED_NAME.replace(b"O\\'Brien", b"A\\r\\nB"))
    assert broken.chan.connected_line_name == "A\r\nB"


@pytest.mark.parametrize(("sent", "kept"), [
    ("plain", "plain"), ("a\\\\b", "a\\b"), ("\\'\\\"\\?\\a\\b\\f\\n\\r\\t\\v", "'\"?\a\b\f\n\r\t\v"),
    ("ends with \\", "ends with \\"), ("unknown \\q", "unknown \\q")])
def test_unescape_c_is_the_inverse_of_asterisks_escape(sent: str, kept: str) -> None:
    assert unescape_c(sent) == kept
