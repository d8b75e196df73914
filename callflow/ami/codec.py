"""Sans-I/O codec for the Asterisk Manager Interface.

Fed bytes, it hands back whole messages; asked to send an action, it returns bytes. No sockets, no
asyncio. Framing happens on bytes before any decoding, so a UTF-8 character split across TCP reads is
never damaged (panoramisk 1.4 decodes each chunk first and drops such characters).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from callflow.ami.errors import ProtocolError
from callflow.ami.message import AmiMessage, parse_crlf_run, parse_message

__all__ = ["AmiCodec", "AmiMessage", "encode_action", "parse_message"]

# A message ends at an empty line. Asterisk writes CRLF; LF-only peers (and some proxies) are tolerated,
# including a mix of both.
_END_OF_MESSAGE = re.compile(rb"\r?\n\r?\n")
_BANNER_PREFIX = b"Asterisk Call Manager/"
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20  # 1 MiB: far above any real event, low enough to bound memory


class AmiCodec:
    """Incremental AMI framer/decoder plus action encoder.

    ``feed(data)`` returns the messages completed by ``data``. The banner line that Asterisk sends on
    connect is captured in ``banner``. A message longer than ``max_message_bytes`` raises
    :class:`ProtocolError`; the caller must reset the connection (the buffer is cleared, memory bounded).

    Framing is always on bytes, and only whole messages are decoded, so a character split across reads
    is never damaged. Asterisk's own output (CRLF everywhere) is split on CRLF blank lines up to the
    last one in the buffer; any bare LF sends the buffer to a regular-expression framer that also
    accepts LF-only and mixed line ends.
    """

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, *,
                 expect_banner: bool = True) -> None:
        self._buf = b""
        self._max = max_message_bytes
        self.banner: str | None = None
        self._expect_banner = expect_banner  # False to read the client's side (actions), e.g. in a fake

    def feed(self, data: bytes) -> list[AmiMessage]:
        buf = self._buf + data if self._buf else bytes(data)
        self._buf = buf
        if self._expect_banner:
            if not self._take_banner():
                return []
            buf = self._buf
        elif b"\n" not in data:  # no new line end, so no new message: only bound the memory
            if len(buf) > self._max:
                self._oversized(len(buf))
            return []
        end = buf.rfind(b"\r\n\r\n")
        if end >= 0:
            rest = buf[end + 4:]
            if b"\n" not in rest or rest.count(b"\n") == rest.count(b"\r\n"):
                run = buf[:end]
                if end > self._max:
                    longest = max(len(block) for block in run.split(b"\r\n\r\n"))
                    if longest > self._max:
                        self._oversized(longest)
                messages = parse_crlf_run(run)
                if messages is not None:
                    self._buf = rest
                    if len(rest) > self._max:
                        self._oversized(len(rest))
                    return messages
        return self._feed_any(buf)  # LF-only or mixed line ends

    def _feed_any(self, buf: bytes) -> list[AmiMessage]:
        out: list[AmiMessage] = []
        start = 0
        while True:
            match = _END_OF_MESSAGE.search(buf, start)
            if match is None:
                break
            end = match.start()
            if end - start > self._max:
                self._oversized(end - start)
            if end > start:
                out.append(parse_message(buf[start:end]))
            start = match.end()
        self._buf = rest = buf[start:]
        if len(rest) > self._max:
            self._oversized(len(rest))
        return out

    def _take_banner(self) -> bool:
        newline = self._buf.find(b"\n")
        if newline < 0:
            if len(self._buf) > 256:
                self._oversized(len(self._buf), what="banner")
            return False
        line = self._buf[:newline].rstrip(b"\r")
        if not line.startswith(_BANNER_PREFIX):
            self._buf = b""
            raise ProtocolError(f"peer is not an Asterisk manager: first line {line[:80]!r}")
        self.banner = line.decode("utf-8", errors="replace")
        self._buf = self._buf[newline + 1:]
        self._expect_banner = False
        return True

    def _oversized(self, size: int, what: str = "message") -> None:
        self._buf = b""
        raise ProtocolError(f"AMI {what} of {size} bytes exceeds the limit of {self._max} bytes")

    @property
    def buffered(self) -> int:
        return len(self._buf)


def encode_action(name: str, headers: Mapping[str, str | int] | None = None,
                  *, action_id: str | None = None,
                  variables: Mapping[str, str] | None = None) -> bytes:
    """Encode an action. Refuses CR or LF (and ':' in names) anywhere before anything is produced.

    Caller-controlled text (a caller's name) cannot inject a header or a second action.
    """
    lines = [("Action", name)]
    if action_id is not None:
        lines.append(("ActionID", action_id))
    for key, value in (headers or {}).items():
        lines.append((key, str(value)))
    for var, value in (variables or {}).items():
        lines.append(("Variable", f"{var}={value}"))
    out: list[str] = []
    for key, value in lines:
        _check_field(name, key, value)
        out.append(f"{key}: {value}\r\n")
    out.append("\r\n")
    return "".join(out).encode("utf-8")


def _check_field(action: str, key: str, value: str) -> None:
    if not key or any(c in key for c in "\r\n:") or key != key.strip():
        raise ValueError(f"AMI action {action!r}: invalid header name {key!r}")
    if "\r" in value or "\n" in value:
        raise ValueError(
            f"AMI action {action!r}: header {key!r} contains CR or LF; refused so that it cannot inject "
            "headers or actions (strip line breaks from caller-supplied text)"
        )
