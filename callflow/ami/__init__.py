"""The AMI layer: sans-I/O codec, typed events, asyncio connection and session."""

from callflow.ami.client import (
    STATE_CHANGING_ACTIONS,
    AmiConnection,
    AmiEndpoint,
    AmiSession,
    EventItem,
    LinkEvent,
    utc_now,
)
from callflow.ami.codec import AmiCodec, AmiMessage, encode_action, parse_message
from callflow.ami.errors import (
    ActionFailed,
    ActionTimeout,
    AmiError,
    ConnectionLost,
    LoginFailed,
    OutcomeUnknown,
    ProtocolError,
)
from callflow.ami.events import AmiEvent, UnknownEvent, parse_event

__all__ = [
    "STATE_CHANGING_ACTIONS",
    "ActionFailed",
    "ActionTimeout",
    "AmiCodec",
    "AmiConnection",
    "AmiEndpoint",
    "AmiError",
    "AmiEvent",
    "AmiMessage",
    "AmiSession",
    "ConnectionLost",
    "EventItem",
    "LinkEvent",
    "LoginFailed",
    "OutcomeUnknown",
    "ProtocolError",
    "UnknownEvent",
    "encode_action",
    "parse_event",
    "parse_message",
    "utc_now",
]
