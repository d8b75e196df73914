"""The sans-I/O FastAGI parser and command encoder."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.agi import (
    MAX_LINE,
    AgiHangup,
    AgiItem,
    AgiParser,
    AgiProtocolError,
    AgiReply,
    AgiRequest,
    encode_command,
    quote,
)

REQUEST = (b"agi_network: yes\nagi_network_script: ivr\nagi_request: agi://127.0.0.1:4573/ivr\n"
           b"agi_channel: PJSIP/citizen-ingress-00000001\nagi_uniqueid: 1795334978.7\n"
           b"agi_callerid: 081234567890\nagi_arg_1: /srv/siaga112/x/sounds\n\n")
SESSION = REQUEST + (b"100 result=0 Trying...\n200 result=1\n"
                     b"HANGUP\n"
                     b"200 result= (timeout)\n"
                     b"520-Invalid command syntax.  Proper usage follows:\n"
                     b"Usage: GET DATA <file to be streamed> [timeout] [maxdigits]\n"
                     b"520 End of proper usage.\n"
                     b"510 Invalid or unknown command\n"
                     b"511 Command Not Permitted on a dead channel or intercept routine\n"
                     b"200 result=0 endpos=8000\n")


def feed_all(chunks: list[bytes]) -> list[AgiItem]:
    parser = AgiParser()
    items: list[AgiItem] = []
    for chunk in chunks:
        items += parser.feed(chunk)
    return items


def check_session(items: list[AgiItem]) -> None:
    assert isinstance(items[0], AgiRequest)
    assert items[0].uniqueid == "1795334978.7"
    assert items[0].arg(1) == "/srv/siaga112/x/sounds"
    assert items[1] == AgiReply(200, "1", "", "", ("200 result=1",))
    assert isinstance(items[2], AgiHangup)  # out of band: not taken as the next reply
    assert isinstance(items[3], AgiReply)
    assert (items[3].code, items[3].result, items[3].data) == (200, "", "timeout")
    assert isinstance(items[4], AgiReply)
    assert items[4].code == 520
    assert len(items[4].lines) == 3
    assert [i.code for i in items[5:] if isinstance(i, AgiReply)] == [510, 511, 200]
    last = items[7]
    assert isinstance(last, AgiReply)
    assert (last.result, last.extra) == ("0", "endpos=8000")
    assert len(items) == 8


def test_whole_session_in_one_chunk() -> None:
    check_session(feed_all([SESSION]))


def test_one_byte_at_a_time() -> None:
    check_session(feed_all([SESSION[i:i + 1] for i in range(len(SESSION))]))


@given(st.lists(st.integers(min_value=0, max_value=len(SESSION)), max_size=20))
def test_any_split_points(cuts: list[int]) -> None:
    points = sorted({0, len(SESSION), *cuts})
    check_session(feed_all([SESSION[a:b] for a, b in itertools.pairwise(points)]))


def test_crlf_line_ends_are_tolerated() -> None:
    items = feed_all([SESSION.replace(b"\n", b"\r\n")])
    check_session(items)


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",
    b"agi_channel PJSIP/x\n\n",
    b"\n",
])
def test_garbage_request_is_refused(garbage: bytes) -> None:
    with pytest.raises(AgiProtocolError):
        feed_all([garbage])


def test_endless_line_is_refused() -> None:
    parser = AgiParser()
    with pytest.raises(AgiProtocolError):
        parser.feed(b"agi_x: " + b"a" * (MAX_LINE + 10))


def test_too_many_headers_are_refused() -> None:
    with pytest.raises(AgiProtocolError):
        feed_all([b"".join(b"agi_h%d: x\n" % i for i in range(300))])


def test_garbage_reply_is_refused() -> None:
    with pytest.raises(AgiProtocolError):
        feed_all([REQUEST + b"hello\n"])


def test_commands_quote_their_arguments() -> None:
    assert encode_command("GET DATA", "/snd/root", "3000", "1") == b'GET DATA "/snd/root" "3000" "1"\n'
    assert encode_command("SET VARIABLE", "X", 'a "b" \\c') == b'SET VARIABLE "X" "a \\"b\\" \\\\c"\n'
    with pytest.raises(ValueError, match="line break"):
        quote("x\nEXEC Dial")
    with pytest.raises(ValueError, match="command name"):
        encode_command("GET DATA\nHANGUP")

