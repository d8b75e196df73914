"""Sans-I/O codec for the Asterisk Manager Interface.

Fed bytes, it hands back whole messages; asked to send an action, it returns bytes. No sockets, no
asyncio. Framing happens on bytes before any decoding, so a UTF-8 character split across TCP reads is
never damaged (panoramisk 1.4 decodes each chunk first and drops such characters).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from callflow.ami.errors import ProtocolError

# A message ends at an empty line. Asterisk writes CRLF; LF-only peers (and some proxies) are tolerated,
# including a mix of both.
_END_OF_MESSAGE = re.compile(rb"\r?\n\r?\n")
_BANNER_PREFIX = b"Asterisk Call Manager/"
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20  # 1 MiB: far above any real event, low enough to bound memory


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI message (event, response or list item) with its headers in wire order.

    Repeated headers (``Output``, ``ChanVariable``) are kept in order; ``get`` returns the first.
    """

    headers: tuple[tuple[str, str], ...]

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.headers:
            if k == key:
                return v
        return default

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self.headers)

    def get_all(self, key: str) -> list[str]:
        return [v for k, v in self.headers if k == key]

    def as_dict(self) -> dict[str, str]:
        """First value of each header; for logging and the journal."""
        out: dict[str, str] = {}
        for k, v in self.headers:
            out.setdefault(k, v)
        return out

    @property
    def kind(self) -> str:
        """``event``, ``response`` or ``unknown``."""
        first = self.headers[0][0] if self.headers else ""
        if first == "Event":
            return "event"
        if first == "Response":
            return "response"
        return "unknown"

    @property
    def name(self) -> str:
        return self.get("Event") or self.get("Response") or ""

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")


def parse_message(raw: bytes) -> AmiMessage:
    """Decode one framed message (without its terminating blank line)."""
    text = raw.decode("utf-8", errors="replace")
    headers: list[tuple[str, str]] = []
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]  # noqa: PLW2901 - normalising the loop's own line
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            # A bare line (old-style command output): keep it, never drop data.
            headers.append(("", line))
            continue
        headers.append((key.strip(), value[1:] if value.startswith(" ") else value))
    return AmiMessage(tuple(headers))


class AmiCodec:
    """Incremental AMI framer/decoder plus action encoder.

    ``feed(data)`` returns the messages completed by ``data``. The banner line that Asterisk sends on
    connect is captured in ``banner``. A message longer than ``max_message_bytes`` raises
    :class:`ProtocolError`; the caller must reset the connection (the buffer is cleared, memory bounded).
    """

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_message_bytes
        self.banner: str | None = None
        self._expect_banner = True

    def feed(self, data: bytes) -> list[AmiMessage]:
        return list(self._iter_feed(data))

    def _iter_feed(self, data: bytes) -> Iterator[AmiMessage]:
        self._buf += data
        if self._expect_banner and not self._take_banner():
            return
        buf = self._buf
        start = 0
        while True:
            match = _END_OF_MESSAGE.search(buf, start)
            if match is None:
                break
            end = match.start()
            if end - start > self._max:
                self._oversized(end - start)
            if end > start:
                yield parse_message(bytes(buf[start:end]))
            start = match.end()
        if start:
            del buf[:start]
        if len(buf) > self._max:
            self._oversized(len(buf))

    def _take_banner(self) -> bool:
        newline = self._buf.find(b"\n")
        if newline < 0:
            if len(self._buf) > 256:
                self._oversized(len(self._buf), what="banner")
            return False
        line = bytes(self._buf[:newline]).rstrip(b"\r")
        if not line.startswith(_BANNER_PREFIX):
            self._buf.clear()
            raise ProtocolError(f"peer is not an Asterisk manager: first line {line[:80]!r}")
        self.banner = line.decode("utf-8", errors="replace")
        del self._buf[: newline + 1]
        self._expect_banner = False
        return True

    def _oversized(self, size: int, what: str = "message") -> None:
        self._buf.clear()
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
