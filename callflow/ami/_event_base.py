"""The machinery of typed AMI events: the base classes, field declarations and the builders.

Fields are declared with :func:`header` (or :func:`channel` for a channel snapshot), naming the AMI header
they come from. For each class a builder is generated once from those declarations, so typing an event
is a straight run of dict lookups and slot stores (the engine's hot path).
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple, TypeVar

from callflow.ami.codec import AmiMessage

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_timestamp(value: str | None) -> datetime | None:
    """``Timestamp: 1763791542.123456`` -> UTC-aware datetime, exact to the microsecond.

    ``fromtimestamp`` rounds half-even to the microsecond; a double holds epoch seconds of this century
    to within 2.4e-7 s, so the rounding always lands on the microsecond Asterisk wrote (a property test
    checks it against integer arithmetic).
    """
    if not value:
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _to_int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def _to_float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


_TRUE = frozenset({"1", "yes", "true", "on"})


def _to_bool(value: str) -> bool:
    return value.strip().lower() in _TRUE


# Asterisk writes a channel's caller and connected-line names C-escaped (ast_escape_c: D'Souza arrives as
# D\'Souza, a line break as \n), numbers as they are. Undone here, exactly: an unknown escape is kept.
_C_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
              "'": "'", '"': '"', "?": "?"}
_BACKSLASH_PAIR = re.compile(r"\\(.)", re.DOTALL)


def unescape_c(value: str) -> str:
    """Undo Asterisk's ``ast_escape_c`` (the escaping AMI applies to CallerIDName/ConnectedLineName)."""
    if "\\" not in value:
        return value
    return _BACKSLASH_PAIR.sub(lambda m: _C_ESCAPES.get(m.group(1), m.group(0)), value)


def caller_name(value: str, channel: str) -> str:
    """A channel's caller (or connected-line) name as its caller sent it. After AMI's escaping, a PJSIP
    channel's name still holds the SIP quoted-string's escapes (pjsip keeps ``\"`` and ``\\`` of the
    display name as written): those are undone too (RFC 3261 quoted-pair: backslash + any character)."""
    if "\\" not in value:
        return value
    name = unescape_c(value)
    if channel.startswith("PJSIP/"):
        name = _BACKSLASH_PAIR.sub(r"\1", name)
    return name


def _readable_names(values: tuple[str, ...]) -> tuple[str, ...]:
    """Snapshot values (in _SNAPSHOT_HEADERS order) with the two names made readable."""
    items = list(values)
    items[4] = caller_name(items[4], items[0])
    items[6] = caller_name(items[6], items[0])
    return tuple(items)


_SNAPSHOT_HEADERS = ("Channel", "Uniqueid", "Linkedid", "CallerIDNum", "CallerIDName", "ConnectedLineNum",
                     "ConnectedLineName", "ChannelState", "ChannelStateDesc", "Context", "Exten", "Language")


class ChannelSnapshot(NamedTuple):
    """The channel fields Asterisk attaches to an event (optionally under a prefix such as ``Dest``).

    Immutable. A named tuple rather than a frozen dataclass because nearly every event carries one or
    two and building one is a single C call (typing is the engine's hot path).
    """

    channel: str
    uniqueid: str
    linkedid: str
    caller_id_num: str = ""
    caller_id_name: str = ""
    connected_line_num: str = ""
    connected_line_name: str = ""
    state: str = ""
    state_desc: str = ""
    context: str = ""
    exten: str = ""
    language: str = ""

    @classmethod
    def from_headers(cls, h: Mapping[str, str], prefix: str = "") -> ChannelSnapshot | None:
        uniqueid = h.get(prefix + "Uniqueid")
        if uniqueid is None:
            return None
        values = [h.get(prefix + key, "") for key in _SNAPSHOT_HEADERS]
        values[1] = uniqueid
        values[2] = h.get(prefix + "Linkedid", uniqueid)
        return cls(*_readable_names(tuple(values)))


class _Channel:
    """Marker converter: build a ChannelSnapshot from headers under a prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix


def header(name: str, conv: Callable[[str], Any] = str, default: Any = "") -> Any:
    """Declare a field read from AMI header ``name`` through ``conv``."""
    return field(default=default, metadata={"ami": name, "conv": conv})


def channel(prefix: str = "") -> Any:
    """Declare a ChannelSnapshot field read from the headers under ``prefix``."""
    return field(default=None, metadata={"ami": prefix, "conv": _Channel(prefix)})


E = TypeVar("E", bound="AmiEvent")


@dataclass(frozen=True, slots=True, kw_only=True)
class AmiEvent:
    """Base of all typed events. ``timestamp`` is Asterisk's own event time (manager.conf
    ``timestampevents = yes``); ``received_at`` is the engine clock when the bytes were framed."""

    event_name: ClassVar[str] = ""
    name: str
    timestamp: datetime | None
    received_at: datetime
    message: AmiMessage = field(repr=False, compare=False)

    @property
    def time(self) -> datetime:
        """Best instant for this event: Asterisk's Timestamp, else the engine's receive time."""
        return self.timestamp or self.received_at

    @property
    def time_source(self) -> str:
        return "ami_timestamp" if self.timestamp is not None else "engine_clock"

    @classmethod
    def from_ami(cls: type[E], msg: AmiMessage, received_at: datetime) -> E:
        """Type ``msg`` as ``cls`` (list items, and events typed outside :func:`parse_event`)."""
        return build_generic(cls, msg, received_at)


def build_generic(cls: type[E], msg: AmiMessage, received_at: datetime) -> E:
    """Type ``msg`` as ``cls`` by reading each declared header by name: the reference that the generated
    builders below must agree with (a property test checks it), and the path for messages whose shape is
    not cached."""
    fields = msg.fields
    kwargs: dict[str, Any] = {"name": msg.get("Event", cls.event_name),
                              "timestamp": parse_timestamp(msg.get("Timestamp")),
                              "received_at": received_at, "message": msg}
    for f in dataclasses.fields(cls):
        conv = f.metadata.get("conv")
        if f.name in kwargs or conv is None:
            continue
        if isinstance(conv, _Channel):
            kwargs[f.name] = ChannelSnapshot.from_headers(fields, conv.prefix)
        else:
            value = msg.get(f.metadata["ami"])
            kwargs[f.name] = f.default if value is None else conv(value)
    return cls(**kwargs)


# Typing an event is the hot path of the engine (and of the parse benchmark). For each message shape (the
# header names in order, see ``message.Shape``) and event class, a builder is generated once from the
# field declarations, as dataclasses itself generates __init__: each header is read by its known position
# in the message's flat list (a header the shape lacks is its default), converted inline, and stored
# through its slot descriptor (what a frozen dataclass's ``__init__`` does through ``object.__setattr__``).
# No per-event introspection, dictionary or keyword arguments.
_Builder = Callable[[AmiMessage, datetime], Any]


def compile_builder(cls: type, index: Mapping[str, int]) -> _Builder:
    """Generate ``build(msg, received_at)`` for ``cls`` and messages whose shape has ``index`` (header
    name -> position of its first value in the message's flat list)."""
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_ts": parse_timestamp,
                           "_tnew": tuple.__new__, "_Snap": ChannelSnapshot, "_names": _readable_names,
                           "_fromts": datetime.fromtimestamp, "_float": float, "_UTC": UTC,
                           "_int": int, "_TRUE": _TRUE}
    lines = ["", " p = msg._parts", " self = _new(_cls)"]
    for i, f in enumerate(dataclasses.fields(cls)):
        env[f"_s{i}"] = getattr(cls, f.name).__set__
        lines.append(f" _s{i}(self, {_field_source(cls, f, index, env, lines, i=i)})")
    lines.append(" return self")
    # Everything the body uses becomes a positional default: a local (LOAD_FAST), not a global lookup.
    # Positional, not keyword-only: CPython fills missing positional defaults by copying a tuple, but
    # looks each missing keyword-only default up in a dict on every call (~6 ns each, 20-40 per class).
    lines[0] = f"def build(msg, received_at, {', '.join(f'{k}={k}' for k in env)}):"
    exec("\n".join(lines), env)  # noqa: S102 - source built above from our own field declarations only
    builder: _Builder = env["build"]
    return builder


def _field_source(cls: type, f: dataclasses.Field[Any], index: Mapping[str, int], env: dict[str, Any],
                  lines: list[str], *, i: int) -> str:
    """Source of field ``f``'s value; statements it needs first are appended to ``lines``."""
    conv = f.metadata.get("conv")
    if f.name == "received_at":
        return "received_at"
    if f.name == "message":
        return "msg"
    if f.name == "name":
        at = index.get("Event")
        return repr(cls.event_name) if at is None else f"p[{at}]"  # type: ignore[attr-defined]
    if f.name == "timestamp":
        at = index.get("Timestamp")
        if at is None:
            return "None"
        lines += [f" t = p[{at}]", " try:", "  v = _fromts(_float(t), _UTC)",
                  " except (ValueError, OverflowError, OSError):", "  v = _ts(t)"]
        return "v"
    if isinstance(conv, _Channel):
        return _snapshot_source(conv.prefix, index, env, lines, i)
    if conv is None:  # a plain field: its declared default
        env[f"_default{i}"] = (f.default_factory if f.default is dataclasses.MISSING
                               else (lambda d=f.default: d))
        return f"_default{i}()"
    at = index.get(f.metadata["ami"])
    if at is None:  # the shape lacks this header
        env[f"_d{i}"] = f.default
        return f"_d{i}"
    if conv is str:
        return f"p[{at}]"
    if conv is _to_int:  # inlined: most typed fields are integers, a call each is measurable
        lines += [" try:", f"  v = _int(p[{at}])", " except ValueError:", "  v = 0"]
        return "v"
    if conv is _to_bool:
        return f"p[{at}].strip().lower() in _TRUE"
    env[f"_c{i}"] = conv
    return f"_c{i}(p[{at}])"


def _snapshot_source(prefix: str, index: Mapping[str, int], env: dict[str, Any], lines: list[str],
                     i: int) -> str:
    """Source building the ChannelSnapshot under ``prefix``, as ``ChannelSnapshot.from_headers``."""
    where = [index.get(prefix + key) for key in _SNAPSHOT_HEADERS]
    if where[1] is None:  # no Uniqueid: no snapshot
        return "None"
    if all(w is not None for w in where):  # what Asterisk sends: one itemgetter call takes it all
        env[f"_snap{i}"] = operator.itemgetter(*where)
        lines.append(f" s = _snap{i}(p)")
    else:
        items = [f"p[{w}]" if w is not None else "''" for w in where]
        if where[2] is None:
            items[2] = items[1]  # no Linkedid: the channel's own Uniqueid
        lines.append(f" s = ({', '.join(items)},)")
    # names are C-escaped by Asterisk: rare (a backslash in either), so test before the call
    lines.append(" if '\\\\' in s[4] or '\\\\' in s[6]:\n  s = _names(s)")
    return "_tnew(_Snap, s)"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEvent(AmiEvent):
    """An event about one channel (the caller's, for queue events)."""

    chan: ChannelSnapshot | None = channel()

    @property
    def uniqueid(self) -> str:
        return self.chan.uniqueid if self.chan else ""

    @property
    def linkedid(self) -> str:
        return self.chan.linkedid if self.chan else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(AmiEvent):
    """Any event without a typed class: kept whole, never dropped."""
