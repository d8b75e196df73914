"""The AMI layer: sans-I/O codec, typed events, asyncio connection and session."""

from callflow.ami.client import (
    STATE_CHANGING_ACTIONS,
    AmiConnection,
    AmiEndpoint,
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
from callflow.ami.lists import (
    QueueStatusResult,
    core_show_channels,
    pjsip_endpoints,
    queue_status,
    queue_summary,
)
from callflow.ami.recorder import RecordSummary, record_stream
from callflow.ami.session import AmiSession, next_backoff

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
    "QueueStatusResult",
    "RecordSummary",
    "UnknownEvent",
    "core_show_channels",
    "encode_action",
    "next_backoff",
    "parse_event",
    "parse_message",
    "pjsip_endpoints",
    "queue_status",
    "queue_summary",
    "record_stream",
    "utc_now",
]
