"""The sans-I/O AMI codec: framing on bytes, any split point, LF-only, size cap, no injection."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callflow.ami import AmiCodec, ProtocolError, encode_action, parse_message
from callflow.ami.client import login_key

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


# --- the hot path (runs of CRLF messages) gives exactly what the general parser gives ---------------------

_KEY = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1,
               max_size=12)
# values: any text without line breaks, including ": ", colons, non-ASCII, the record separator
_VALUE = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
                 max_size=30)
_LINE = st.one_of(
    st.tuples(_KEY, _VALUE).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.tuples(_KEY, _VALUE).map(lambda kv: f"{kv[0]}:{kv[1]}"),  # no space after the colon
    _VALUE.filter(lambda v: ":" not in v and v != ""),  # a bare line
)
_MESSAGE = st.tuples(st.sampled_from(["", "", "\r\n", "\r\n\r\n"]),  # blank lines before a message
                     st.lists(_LINE, min_size=1, max_size=8).map("\r\n".join)).map("".join)


def general(chunks: list[bytes]) -> list[tuple[tuple[str, str], ...]]:
    """Reference: frame with the regex and parse each message with the general parser."""
    data = b"".join(chunks)
    body = data[data.index(b"\n") + 1:]
    return [parse_message(m).headers for m in re.split(rb"\r?\n\r?\n", body)[:-1] if m]


@given(st.lists(_MESSAGE, min_size=1, max_size=6), st.lists(st.integers(min_value=0, max_value=2000),
                                                            max_size=8))
def test_hot_path_equals_general_parser(messages: list[str], cuts: list[int]) -> None:
    stream = BANNER + "".join(m + "\r\n\r\n" for m in messages).encode()
    points = sorted({c for c in cuts if c <= len(stream)})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    codec = AmiCodec()
    got = [m.headers for chunk in chunks for m in codec.feed(chunk)]
    assert got == general(chunks)
    # The same messages again on the same codec: their shapes are known now (the shape fast path).
    again = [m.headers for m in codec.feed(stream[len(BANNER):])]
    assert again == got


def test_repeated_headers_keep_every_value_on_the_hot_path() -> None:
    codec = AmiCodec()
    (msg,) = codec.feed(BANNER + b"Event: VarSet\r\nChanVariable: A=1\r\nChanVariable: B=2\r\n\r\n")
    assert msg.get_all("ChanVariable") == ["A=1", "B=2"]
    assert msg["ChanVariable"] == "A=1"


def test_a_line_with_two_separators_next_to_a_bare_line_is_parsed_exactly() -> None:
    codec = AmiCodec()
    (msg,) = codec.feed(BANNER + b"Event: X\r\nMessage: a: b\r\nbare\r\n\r\n")
    assert msg.headers == (("Event", "X"), ("Message", "a: b"), ("", "bare"))


def test_a_known_shape_cannot_be_spoofed_by_a_value_holding_the_next_name() -> None:
    codec = AmiCodec()
    codec.feed(BANNER + b"Event: X\r\nCallerIDName: a\r\nChannel: b\r\n\r\n")  # the shape, learned
    # Same names after a plain split on ": ", but the second line holds two separators and the third none.
    (msg,) = codec.feed(b"Event: X\r\nCallerIDName: foo: Channel\r\nPJSIP/x\r\n\r\n")
    assert msg.headers == (("Event", "X"), ("CallerIDName", "foo: Channel"), ("", "PJSIP/x"))


@pytest.mark.parametrize("raw", [b"Event: X\r\nA:b: c\r\n", b"Event: X\r\nA: b\x00: c\r\nB\r\n",
                                 b"\r\nEvent: X\r\nA: b\r\n", b"Event: X\r\nA: \x00B: c\r\nB\r\n"])
def test_hot_path_edge_cases_read_as_the_general_parser_reads(raw: bytes) -> None:
    (msg,) = AmiCodec().feed(BANNER + raw + b"\r\n")
    assert msg.headers == parse_message(raw).headers


def test_invalid_utf8_is_replaced_never_dropped_and_framing_holds() -> None:
    codec = AmiCodec()
    first, second = codec.feed(BANNER + b"Event: A\r\nName: \xff\xfe ok\r\n\r\nEvent: B\r\n\r\n")
    assert first["Name"] == "\ufffd\ufffd ok"
    assert second["Event"] == "B"


def test_lf_message_after_crlf_ones_is_not_held_back() -> None:
    codec = AmiCodec()
    names = [m["Event"] for m in codec.feed(BANNER + b"Event: A\r\n\r\nEvent: B\n\n")]
    assert names == ["A", "B"]


def test_oversized_message_inside_a_run_is_refused() -> None:
    codec = AmiCodec(max_message_bytes=100)
    codec.feed(BANNER)
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        codec.feed(b"Event: A\r\n\r\nEvent: B\r\nX: " + b"y" * 200 + b"\r\n\r\nEvent: C\r\n\r\n")
    assert codec.buffered == 0


def test_md5_login_key_is_asterisks_scheme() -> None:
    """AuthType MD5: hex MD5 of the challenge then the secret (vector from md5sum of the concatenation)."""
    assert login_key("123456789", "s3cret-value") == "cd536cbf1636376fc6a2dad6754e72f9"
    with pytest.raises(ProtocolError, match="no Challenge"):
        login_key("", "s3cret-value")
