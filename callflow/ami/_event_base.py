"""The machinery of typed AMI events: the base classes, field declarations and the builders.

Fields are declared with :func:`header` (or :func:`channel` for a channel snapshot), naming the AMI header
they come from. For each class a builder is generated once from those declarations, so typing an event
is a straight run of dict lookups and slot stores (the engine's hot path).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
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
        return cls(*values)


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
        builder = _BUILDERS.get(cls)
        if builder is None:
            builder = _BUILDERS[cls] = _compile_builder(cls)
        event: E = builder(msg, received_at)
        return event


# Typing an event is the hot path of the engine (and of the parse benchmark). Each class gets a builder
# generated once from its field declarations, as dataclasses itself generates __init__: a straight run of
# dict lookups and slot stores, with no per-event introspection or keyword-argument dict.
_BUILDERS: dict[type, Callable[[AmiMessage, datetime], Any]] = {}


def _compile_builder(cls: type) -> Callable[[AmiMessage, datetime], Any]:
    """Generate ``build(msg, received_at)`` for ``cls``. Fields are stored through their slot
    descriptors (what a frozen dataclass's own ``__init__`` does through ``object.__setattr__``)."""
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_ts": parse_timestamp,
                           "_tnew": tuple.__new__, "_Snap": ChannelSnapshot,
                           "_fromts": datetime.fromtimestamp, "_float": float, "_UTC": UTC,
                           "_int": int, "_TRUE": _TRUE}
    lines = ["def build(msg, received_at):", " h = msg._fields", " get = h.get", " self = _new(_cls)"]
    for i, f in enumerate(dataclasses.fields(cls)):
        env[f"_s{i}"] = getattr(cls, f.name).__set__
        conv = f.metadata.get("conv")
        if f.name == "name":
            value = f"get('Event', {cls.event_name!r})"  # type: ignore[attr-defined]
        elif f.name == "timestamp":
            lines += [" try:", "  v = _fromts(_float(get('Timestamp')), _UTC)",
                      " except (TypeError, ValueError, OverflowError, OSError):",
                      "  v = _ts(get('Timestamp'))"]
            value = "v"
        elif f.name == "received_at":
            value = "received_at"
        elif f.name == "message":
            value = "msg"
        elif isinstance(conv, _Channel):
            # Asterisk sends the whole snapshot: one itemgetter call takes all of it in field order.
            env[f"_snap{i}"] = operator.itemgetter(*(conv.prefix + key for key in _SNAPSHOT_HEADERS))
            env[f"_from{i}"] = functools.partial(ChannelSnapshot.from_headers, prefix=conv.prefix)
            lines += [" try:", f"  v = _tnew(_Snap, _snap{i}(h))", " except KeyError:",
                      f"  v = _from{i}(h)"]
            value = "v"
        elif conv is None:  # a plain field: its declared default
            env[f"_default{i}"] = (f.default_factory if f.default is dataclasses.MISSING
                                   else (lambda d=f.default: d))
            value = f"_default{i}()"
        elif conv is str:
            env[f"_d{i}"] = f.default
            value = f"get({f.metadata['ami']!r}, _d{i})"
        elif conv is _to_int:  # inlined: most typed fields are integers, a call each is measurable
            env[f"_d{i}"] = f.default
            lines += [f" v = get({f.metadata['ami']!r})", " if v is None:", f"  v = _d{i}", " else:",
                      "  try:", "   v = _int(v)", "  except ValueError:", "   v = 0"]
            value = "v"
        elif conv is _to_bool:
            env[f"_d{i}"] = f.default
            lines.append(f" v = get({f.metadata['ami']!r})")
            value = f"_d{i} if v is None else v.strip().lower() in _TRUE"
        else:
            env[f"_c{i}"], env[f"_d{i}"] = conv, f.default
            lines.append(f" v = get({f.metadata['ami']!r})")
            value = f"_d{i} if v is None else _c{i}(v)"
        lines.append(f" _s{i}(self, {value})")
    lines.append(" return self")
    # Everything the body uses becomes a positional default: a local (LOAD_FAST), not a global lookup.
    # Positional, not keyword-only: CPython fills missing positional defaults by copying a tuple, but
    # looks each missing keyword-only default up in a dict on every call (~6 ns each, 20-40 per class).
    lines[0] = f"def build(msg, received_at, {', '.join(f'{k}={k}' for k in env)}):"
    exec("\n".join(lines), env)  # noqa: S102 - source built above from our own field declarations only
    builder: Callable[[AmiMessage, datetime], Any] = env["build"]
    return builder


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
