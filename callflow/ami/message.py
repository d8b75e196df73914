"""One AMI message, and turning framed text into messages.

Two parsers give the same result: a general one (any line ends, bare lines, ``Key:`` without a space,
repeated headers) and a hot path for what Asterisk actually writes (CRLF lines, each ``Key: Value``),
which parses a whole run of messages with a handful of C-level string operations. The hot path checks
its preconditions first and hands anything else to the general parser.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType


class AmiMessage:
    """One AMI message (event, response or list item), immutable, with its headers in wire order.

    Repeated headers (``Output``, ``ChanVariable``) are all kept, in order, in ``headers``; ``get``,
    ``[]`` and ``fields`` give the first value of each.
    """

    __slots__ = ("_fields", "_repeated")
    _fields: dict[str, str]
    _repeated: tuple[tuple[str, str], ...]  # set only when a header repeats; else _fields says it all

    def __init__(self, headers: Iterable[tuple[str, str]] = ()) -> None:
        pairs = tuple((str(k), str(v)) for k, v in headers)
        fields = _first_values(pairs)
        _set_fields(self, fields)
        if len(fields) != len(pairs):
            _set_repeated(self, pairs)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"AmiMessage is immutable (cannot set {name!r})")

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        try:
            return self._repeated
        except AttributeError:
            return tuple(self._fields.items())  # dict order is wire order

    @property
    def fields(self) -> Mapping[str, str]:
        """First value of each header (read-only view)."""
        return MappingProxyType(self._fields)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._fields.get(key, default)

    def __getitem__(self, key: str) -> str:
        return self._fields[key]

    def __contains__(self, key: object) -> bool:
        return key in self._fields

    def get_all(self, key: str) -> list[str]:
        return [v for k, v in self.headers if k == key]

    def as_dict(self) -> dict[str, str]:
        """First value of each header, as a new dict; for logging and the journal."""
        return dict(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AmiMessage):
            return NotImplemented
        return self.headers == other.headers

    def __hash__(self) -> int:
        return hash(self.headers)

    def __repr__(self) -> str:
        return f"AmiMessage({self.headers!r})"

    @property
    def kind(self) -> str:
        """``event``, ``response`` or ``unknown``."""
        for first in self._fields:  # dict order is wire order; a loop's first step beats next(iter())
            if first == "Event":
                return "event"
            if first == "Response":
                return "response"
            break
        return "unknown"

    @property
    def name(self) -> str:
        return self._fields.get("Event") or self._fields.get("Response") or ""

    @property
    def action_id(self) -> str | None:
        return self._fields.get("ActionID")


# Slot stores that bypass the immutability guard: only this module's constructors use them.
_new_message = object.__new__
_set_repeated = AmiMessage._repeated.__set__  # type: ignore[attr-defined,misc]
_set_fields = AmiMessage._fields.__set__  # type: ignore[attr-defined,misc]


def _from_fields(fields: dict[str, str]) -> AmiMessage:
    msg: AmiMessage = _new_message(AmiMessage)
    _set_fields(msg, fields)
    return msg


def _from_pairs(pairs: tuple[tuple[str, str], ...]) -> AmiMessage:
    msg: AmiMessage = _new_message(AmiMessage)
    fields = _first_values(pairs)
    _set_fields(msg, fields)
    if len(fields) != len(pairs):
        _set_repeated(msg, pairs)
    return msg


def _first_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for k, v in pairs:
        fields.setdefault(k, v)
    return fields


def parse_message(raw: bytes) -> AmiMessage:
    """Decode one framed message (without its terminating blank line). Any line ends, any content."""
    return parse_text(raw.decode("utf-8", errors="replace"))


def parse_text(text: str) -> AmiMessage:
    """The general parser: CRLF or LF lines, blank lines skipped, bare lines kept under key ``""``."""
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
        # The key is the text before the first ':' as sent (Asterisk never pads it); one space after the
        # colon belongs to the separator.
        headers.append((key, value[1:] if value.startswith(" ") else value))
    pairs = tuple(headers)
    fields = _first_values(pairs)
    return _from_fields(fields) if len(fields) == len(pairs) else _from_pairs(pairs)


# A line holding the separator twice ("Key: a: b"): the one-split hot path cannot take it.
_TWO_SEPARATORS = re.compile(rb": [^\n]*: ")


def parse_crlf_run(data: bytes) -> list[AmiMessage] | None:
    """Parse a run of messages joined by CRLF blank lines (without the final blank line).

    Returns ``None`` if the run holds a bare LF (an LF-only or mixed peer): the caller must frame it
    with the general framer, since a bare blank line may end a message inside what looked like one.

    Hot path, for what Asterisk writes: each message is decoded on its own (an ASCII message stays a
    compact ASCII string even when its neighbour holds a Greek name), its line ends become separators,
    and one ``split`` yields keys and values alternately. That is exact when every line holds exactly
    one ``": "``: checked per message by counting, plus one search of the whole run for a line holding
    two. Any other message goes through :func:`parse_text`.
    """
    if not data:
        return []
    simple = _TWO_SEPARATORS.search(data) is None
    out: list[AmiMessage] = []
    append = out.append
    new, set_fields = _new_message, _set_fields
    for block in data.split(b"\r\n\r\n"):
        if not block:
            continue
        text = block.decode("utf-8", "replace")
        flat = text.replace("\r\n", ": ")
        if "\n" in flat:
            return None
        parts = flat.split(": ")
        # No bare LF (checked above), so every LF ends a CRLF line: counting one byte is the cheaper scan.
        if simple and len(parts) == 2 * (block.count(b"\n") + 1):
            pairs = iter(parts)
            fields = dict(zip(pairs, pairs))  # noqa: B905 - even length checked above
            if 2 * len(fields) == len(parts):
                msg = new(AmiMessage)  # _from_fields, inlined: this loop runs once per message
                set_fields(msg, fields)
                append(msg)
            else:  # a repeated header: keep every value in order
                append(_from_pairs(tuple(zip(parts[::2], parts[1::2], strict=True))))
        else:
            append(parse_text(text))
    return out
