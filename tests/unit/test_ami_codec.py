"""The sans-I/O AMI codec: framing on bytes, any split point, LF-only, size cap, no injection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callflow.ami import AmiCodec, ProtocolError, encode_action

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
STREAM = (
    BANNER
    + b"Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n"
    + b"Event: Newchannel\r\nChannel: PJSIP/citizen-ingress-00000001\r\nCallerIDName: J\xc3\xa9r\xc3\xb4me "
    + b"\xce\x95\xce\xbb\xce\xad\xce\xbd\xce\xb7\r\nUniqueid: 1.1\r\nLinkedid: 1.1\r\n"
    + b"Timestamp: 1763791542.123456\r\n\r\n"
    + b"Event: Hangup\r\nUniqueid: 1.1\r\nCause: 16\r\n\r\n"
)


def feed_all(chunks: list[bytes]) -> list[dict[str, str]]:
    codec = AmiCodec()
    out = []
    for chunk in chunks:
        out.extend(m.as_dict() for m in codec.feed(chunk))
    return out


def test_whole_stream() -> None:
    messages = feed_all([STREAM])
    assert [m.get("Event") or m.get("Response") for m in messages] == ["Success", "Newchannel", "Hangup"]
    assert messages[1]["CallerIDName"] == "Jérôme Ελένη"


def test_one_byte_at_a_time_keeps_split_characters() -> None:
    messages = feed_all([STREAM[i:i + 1] for i in range(len(STREAM))])
    assert messages == feed_all([STREAM])
    assert messages[1]["CallerIDName"] == "Jérôme Ελένη"


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_any_split_points(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert feed_all(chunks) == feed_all([STREAM])


def test_lf_only_and_mixed_line_ends() -> None:
    lf = STREAM.replace(b"\r\n", b"\n")
    assert feed_all([lf]) == feed_all([STREAM])
    mixed = BANNER + b"Event: A\nX: 1\r\n\nEvent: B\r\n\r\n"
    assert [m["Event"] for m in feed_all([mixed])] == ["A", "B"]


def test_repeated_headers_and_bare_lines_are_kept() -> None:
    codec = AmiCodec()
    (msg,) = codec.feed(BANNER + b"Response: Success\r\nOutput: a\r\nOutput: b\r\nno colon here\r\n\r\n")
    assert msg.get_all("Output") == ["a", "b"]
    assert ("", "no colon here") in msg.headers


def test_oversized_message_is_a_protocol_error_and_memory_is_bounded() -> None:
    codec = AmiCodec(max_message_bytes=1024)
    codec.feed(BANNER)
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        codec.feed(b"Event: Big\r\nX: " + b"a" * 2000)
    assert codec.buffered == 0


def test_not_an_asterisk_peer() -> None:
    with pytest.raises(ProtocolError, match="not an Asterisk manager"):
        AmiCodec().feed(b"HTTP/1.1 400 Bad Request\r\n\r\n")


@pytest.mark.parametrize("value", ["x\r\nAction: Hangup\r\nChannel: PJSIP/op1", "a\nb", "a\rb"])
def test_crlf_in_a_value_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        encode_action("Setvar", {"Variable": "CALLERNAME", "Value": value})


def test_crlf_in_a_variable_is_refused() -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        encode_action("Originate", {"Channel": "PJSIP/op1"}, variables={"NAME": "x\r\nAction: Hangup"})


def test_encode_round_trip() -> None:
    data = encode_action("QueueAdd", {"Queue": "emergency", "Interface": "PJSIP/op1"}, action_id="7")
    assert data == b"Action: QueueAdd\r\nActionID: 7\r\nQueue: emergency\r\nInterface: PJSIP/op1\r\n\r\n"
