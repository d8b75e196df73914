"""The FastAGI protocol without I/O: feed bytes from Asterisk, get typed items back; build command bytes.

A FastAGI session is: Asterisk sends ``agi_key: value`` lines and a blank line (the request), then for
every command we send it answers one reply: ``200 result=... [(data)] [key=value ...]``, ``510 ...``,
``511 ...`` or a multi-line ``520-...`` / ``520 ...`` (GOSUB first sends a provisional ``100 Trying...``,
which is skipped). When the channel hangs up Asterisk may send a line
``HANGUP`` at any moment, even between a command and its reply: it is an out-of-band item, never a reply.

The parser frames on bytes (split anywhere), tolerates CRLF, caps line length and header count, and
refuses garbage in the request with :class:`AgiProtocolError` (the shell then closes the session).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

MAX_LINE = 8192
MAX_ENV_LINES = 256
_ENV_LINE = re.compile(r"^(agi_[a-z0-9_]+):\s?(.*)$")
_REPLY_200 = re.compile(r"^result=(\S*)\s*(?:\((.*?)\))?\s*(.*)$")
_COMMAND = re.compile(r"^[A-Z]+( [A-Z]+)*$")


class AgiProtocolError(Exception):
    """The peer sent something that is not FastAGI."""


@dataclass(frozen=True)
class AgiRequest:
    """The request headers (``agi_channel``, ``agi_uniqueid``, ``agi_arg_1``...)."""

    env: Mapping[str, str]

    def get(self, key: str, default: str = "") -> str:
        return self.env.get(key, default)

    def arg(self, n: int) -> str:
        return self.env.get(f"agi_arg_{n}", "")

    @property
    def uniqueid(self) -> str:
        return self.get("agi_uniqueid")

    @property
    def channel(self) -> str:
        return self.get("agi_channel")


@dataclass(frozen=True)
class AgiReply:
    """One command reply. ``result`` and ``data`` only for 200 (``200 result=1 (timeout)``)."""

    code: int
    result: str = ""
    data: str = ""
    extra: str = ""
    lines: tuple[str, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return self.code == 200


@dataclass(frozen=True)
class AgiHangup:
    """Out-of-band ``HANGUP``: the caller is gone (the in-flight command still gets its reply)."""


AgiItem = AgiRequest | AgiReply | AgiHangup


class _State(StrEnum):
    REQUEST = "request"
    REPLIES = "replies"


class AgiParser:
    def __init__(self) -> None:
        self._buffer = bytearray()
        self._state = _State.REQUEST
        self._env: dict[str, str] = {}
        self._env_lines = 0
        self._usage: list[str] | None = None  # inside a multi-line 520 reply

    @property
    def has_request(self) -> bool:
        return self._state is _State.REPLIES

    def feed(self, data: bytes) -> list[AgiItem]:
        self._buffer += data
        items: list[AgiItem] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    raise AgiProtocolError(f"line longer than {MAX_LINE} bytes")
                return items
            if end > MAX_LINE:
                raise AgiProtocolError(f"line longer than {MAX_LINE} bytes")
            raw = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[:end + 1]
            line = raw.decode("utf-8", errors="replace")
            item = self._line(line)
            if item is not None:
                items.append(item)

    def _line(self, line: str) -> AgiItem | None:
        if self._state is _State.REQUEST:
            return self._request_line(line)
        if self._usage is not None:
            self._usage.append(line)
            if line.startswith("520 "):
                lines, self._usage = tuple(self._usage), None
                return AgiReply(520, lines=lines)
            return None
        return self._reply_line(line)

    def _request_line(self, line: str) -> AgiItem | None:
        if line == "":
            if not self._env:
                raise AgiProtocolError("empty request: no agi_* headers before the blank line")
            self._state = _State.REPLIES
            return AgiRequest(dict(self._env))
        self._env_lines += 1
        if self._env_lines > MAX_ENV_LINES:
            raise AgiProtocolError(f"more than {MAX_ENV_LINES} request headers")
        match = _ENV_LINE.match(line)
        if match is None:
            raise AgiProtocolError(f"not an AGI request header: {line[:80]!r}")
        self._env[match.group(1)] = match.group(2)
        return None

    def _reply_line(self, line: str) -> AgiItem | None:
        if line.strip() == "HANGUP":
            return AgiHangup()
        if line == "":
            return None
        code_text, _, rest = line[:3], line[3:4], line[4:]
        if not code_text.isdigit():
            raise AgiProtocolError(f"not an AGI reply: {line[:80]!r}")
        code = int(code_text)
        if line[3:4] == "-":  # multi-line (520-Invalid command syntax...)
            self._usage = [line]
            return None
        if code == 100:  # provisional ("100 result=0 Trying..." before GOSUB's final reply)
            return None
        if code == 200:
            match = _REPLY_200.match(rest)
            if match is None:
                raise AgiProtocolError(f"200 reply without result=: {line[:80]!r}")
            return AgiReply(200, match.group(1), match.group(2) or "", match.group(3), (line,))
        return AgiReply(code, lines=(line,))


def quote(arg: str) -> str:
    """One command argument, quoted the way res_agi's argument splitter reads it back."""
    if any(ch in arg for ch in "\r\n\0"):
        raise ValueError(f"AGI argument contains a line break or NUL: {arg[:40]!r}")
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_command(command: str, *args: str) -> bytes:
    """``encode_command("GET DATA", "/snd/root", "3000", "1")`` -> ``GET DATA "/snd/root" "3000" "1"\\n``."""
    if not _COMMAND.match(command):
        raise ValueError(f"not an AGI command name: {command!r}")
    return (" ".join([command, *(quote(a) for a in args)]) + "\n").encode()

