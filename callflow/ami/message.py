"""One AMI message, and turning framed text into messages.

Two parsers give the same result: a general one (any line ends, bare lines, ``Key:`` without a space,
repeated headers) and a hot path for what Asterisk actually writes (CRLF lines, each ``Key: Value``),
which parses a whole run of messages with a handful of C-level string operations. The hot path checks
its preconditions first and hands anything else to the general parser.

A message is its header names and values in wire order, as one flat list ``[name, value, name, value,
...]``, plus a :class:`Shape`: the header names in order, shared by every message with the same names and
the same first value (every ``Newstate`` Asterisk writes has the same headers). The shape maps a name to
its value's position, so a message needs no dictionary of its own: Asterisk writes a few dozen shapes,
and building a hash table per message (each header name hashed again) cost more than splitting the
message itself. Typed events are built by code generated per shape (``_event_base``), reading values by
position.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

# The hot path turns each line end into ": " + _MARK, so every name but the first comes out of the split
# with _MARK in front of it, and no value can (a message holding _MARK itself goes to the general parser).
_MARK = "\x00"


class Shape:
    """The header names of a message in wire order (repeats kept), and where each name's first value is.

    ``names`` are the names; ``keys`` the same as the hot path's split gives them (every name but the
    first behind ``_MARK``). Every message holding one shape has the same names and the same first value
    (the event's or response's name): the cache below is keyed by that value. ``builder`` is the
    typed-event builder for this shape, generated on first use (only for cached shapes).
    """

    __slots__ = ("builder", "cached", "first", "index", "keys", "kind", "names", "split_head")

    def __init__(self, names: list[str], first: str, cached: bool) -> None:
        self.names = names
        self.keys = names[:1] + [_MARK + name for name in names[1:]]
        self.first = first
        self.cached = cached
        index: dict[str, int] = {}
        for i, key in enumerate(names):
            index.setdefault(key, 2 * i + 1)  # the first value of a repeated header, as a dict would give
        self.index = index
        head = names[0] if names else ""
        self.kind = "event" if head == "Event" else "response" if head == "Response" else "unknown"
        self.builder: Callable[[AmiMessage, Any], Any] | None = None
        self.split_head = _is_split_head(first, index)


def _is_split_head(first: str, index: Mapping[str, int]) -> bool:
    """Does a message of these headers look like the head of an event that a line break in a caller's
    number cut short? A channel snapshot's ``CallerIDNum`` (Asterisk writes numbers unescaped) without the
    ``Uniqueid`` that always follows it, or a ``Cdr`` whose ``CallerID`` came without its ``UniqueID``.
    Decided once per shape (the engine's hot path)."""
    if first == "Cdr":
        return "CallerID" in index and "UniqueID" not in index
    return any(name.endswith("CallerIDNum") and f"{name[:-11]}Uniqueid" not in index for name in index)


# Shapes seen, by their first header's value: the latest one first (a dict lookup and a list compare
# per message), then every cached one. Bounded, so a peer sending ever-new header names cannot grow it:
# past the bounds a shape is made for its message alone and typed through the generic builders.
_LATEST: dict[str, Shape] = {}
_BY_FIRST: dict[str, list[Shape]] = {}
MAX_SHAPES_PER_NAME = 32
MAX_SHAPES = 4096
_shape_count = 0


def shape_of(parts: list[str]) -> Shape:
    """The shape of a flat ``[name, value, ...]`` list (plain names) that an exact parser produced."""
    return _shape(parts[::2], parts[1] if len(parts) > 1 else "", marked=False)


def _shape(keys: list[str], first: str, marked: bool) -> Shape:
    global _shape_count  # noqa: PLW0603 - the cache's size, kept beside it
    known = _BY_FIRST.get(first)
    if known is not None:
        for shape in known:
            if (shape.keys if marked else shape.names) == keys:
                _LATEST[first] = shape
                return shape
    names = keys[:1] + [key[1:] for key in keys[1:]] if marked else keys
    if _shape_count >= MAX_SHAPES or (known is not None and len(known) >= MAX_SHAPES_PER_NAME):
        return Shape(names, first, cached=False)
    shape = Shape(names, first, cached=True)
    _BY_FIRST.setdefault(first, []).append(shape)
    _LATEST[first] = shape
    _shape_count += 1
    return shape


class AmiMessage:
    """One AMI message (event, response or list item), immutable, with its headers in wire order.

    Repeated headers (``Output``, ``ChanVariable``) are all kept, in order, in ``headers``; ``get``,
    ``[]`` and ``fields`` give the first value of each.
    """

    __slots__ = ("_parts", "_shape")
    _parts: list[str]  # [key, value, ...] as parsed (hot path: keys marked); names: _shape.names; read-only
    _shape: Shape

    def __init__(self, headers: Iterable[tuple[str, str]] = ()) -> None:
        parts: list[str] = []
        for k, v in headers:
            parts += (str(k), str(v))
        _set_parts(self, parts)
        _set_shape(self, shape_of(parts))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"AmiMessage is immutable (cannot set {name!r})")

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return tuple(zip(self._shape.names, self._parts[1::2], strict=True))

    @property
    def fields(self) -> Mapping[str, str]:
        """First value of each header (read-only view)."""
        return MappingProxyType(self.as_dict())

    def get(self, key: str, default: str | None = None) -> str | None:
        i = self._shape.index.get(key)
        return default if i is None else self._parts[i]

    def __getitem__(self, key: str) -> str:
        return self._parts[self._shape.index[key]]

    def __contains__(self, key: object) -> bool:
        return key in self._shape.index

    def get_all(self, key: str) -> list[str]:
        return [v for k, v in self.headers if k == key]

    def as_dict(self) -> dict[str, str]:
        """First value of each header, in wire order, as a new dict; for logging and the journal."""
        parts = self._parts
        return {key: parts[i] for key, i in self._shape.index.items()}

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
        """``event``, ``response`` or ``unknown`` (from the first header, as Asterisk writes it)."""
        return self._shape.kind

    @property
    def name(self) -> str:
        return self.get("Event") or self.get("Response") or ""

    @property
    def split_head(self) -> bool:
        """See :func:`_is_split_head`."""
        return self._shape.split_head

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")


# Slot stores that bypass the immutability guard: only this module's constructors use them.
_new_message = object.__new__
_set_parts = AmiMessage._parts.__set__  # type: ignore[attr-defined,misc]
_set_shape = AmiMessage._shape.__set__  # type: ignore[attr-defined,misc]


def _from_parts(parts: list[str]) -> AmiMessage:
    return _with_shape(parts, shape_of(parts))


def parse_message(raw: bytes) -> AmiMessage:
    """Decode one framed message (without its terminating blank line). Any line ends, any content."""
    return parse_text(raw.decode("utf-8", errors="replace"))


def parse_text(text: str) -> AmiMessage:
    """The general parser: CRLF or LF lines, blank lines skipped, bare lines kept under key ``""``."""
    parts: list[str] = []
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]  # noqa: PLW2901 - normalising the loop's own line
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            # A bare line (old-style command output): keep it, never drop data.
            parts += ("", line)
            continue
        # The key is the text before the first ':' as sent (Asterisk never pads it); one space after the
        # colon belongs to the separator.
        parts += (key, value[1:] if value.startswith(" ") else value)
    return _from_parts(parts)


def parse_crlf_run(data: bytes) -> list[AmiMessage] | None:
    """Parse a run of messages joined by CRLF blank lines (without the final blank line).

    Returns ``None`` if the run holds a bare LF (an LF-only or mixed peer): the caller must frame it
    with the general framer, since a bare blank line may end a message inside what looked like one.

    Hot path, for what Asterisk writes: each message is decoded on its own (an ASCII message stays a
    compact ASCII string even when its neighbour holds a Greek name), each line end becomes ``": "`` plus
    a mark, and one ``split`` on ``": "`` yields names and values alternately. Why that is exact: a
    message of n lines must give 2n parts, and the parts at even positions must be the keys of a known
    shape, i.e. every one but the first starts with the mark. Only the first piece of a line can start
    with the mark (the message holds none of its own), so each line starts at an even position, hence
    holds an odd number of separators; n lines, n separators in all: exactly one each. A key list not
    seen before is checked for the marks before it becomes a shape. Anything else goes through
    :func:`parse_text`.
    """
    out: list[AmiMessage] = []
    append = out.append
    new, set_parts, set_shape, latest = _new_message, _set_parts, _set_shape, _LATEST.get
    has_nul = b"\x00" in data  # one memchr for the run; per message only when the run holds one
    for block in data.split(b"\r\n\r\n"):
        if not block:
            continue
        text = block.decode("utf-8", "replace")
        flat = text.replace("\r\n", ": \x00")
        if "\n" in flat:
            return None
        parts = flat.split(": ")
        # Each CRLF (2 characters) became 3, so the lengths count the lines without another scan.
        if len(parts) == 2 * (len(flat) - len(text) + 1) and not (has_nul and b"\x00" in block):
            shape = latest(parts[1])
            if shape is None or shape.keys != parts[::2]:
                shape = _shape_of_marked(parts)
            if shape is not None:
                msg = new(AmiMessage)  # _from_parts, inlined: this loop runs once per message
                set_parts(msg, parts)
                set_shape(msg, shape)
                append(msg)
                continue
        append(_parse_block(text, has_nul))
    return out


def _parse_block(text: str, has_nul: bool) -> AmiMessage:
    """One message the loop above did not take: the same hot path after any blank lines before it
    (Asterisk writes an extra one after some events), else the general parser."""
    body = text
    while body.startswith("\r\n"):
        body = body[2:]
    if body is not text and not (has_nul and "\x00" in body):
        flat = body.replace("\r\n", ": \x00")
        parts = flat.split(": ")
        if len(parts) == 2 * (len(flat) - len(body) + 1):
            shape = _shape_of_marked(parts)
            if shape is not None:
                return _with_shape(parts, shape)
    return parse_text(text)


def _with_shape(parts: list[str], shape: Shape) -> AmiMessage:
    msg: AmiMessage = _new_message(AmiMessage)
    _set_parts(msg, parts)
    _set_shape(msg, shape)
    return msg


def _shape_of_marked(parts: list[str]) -> Shape | None:
    """The shape of the hot path's split, or None if it may differ from the general parser's reading:
    a key without its mark (the split is not aligned on lines) or with a colon (``A:b: c`` is the header
    ``A``, value ``b: c``)."""
    keys = parts[::2]
    for shape in _BY_FIRST.get(parts[1], ()):  # a known shape's keys are marked and colon-free
        if shape.keys == keys:
            _LATEST[parts[1]] = shape
            return shape
    if ":" in keys[0]:
        return None
    for key in keys[1:]:
        if key[:1] != _MARK or ":" in key:
            return None
    return _shape(keys, parts[1], marked=True)
