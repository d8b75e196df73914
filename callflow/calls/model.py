"""The call record: the data contract between call tracking and everything that reads calls
(queues/callbacks, recordings, incidents, reports, the console). Fields may be added; none renamed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

# The Linkedid (= ChannelId of the Originate) of a call the centre placed to call a citizen back
# (queues/callbacks): an outbound call, never offered to the centre, never itself called back.
CALLBACK_LINKEDID_PREFIX = "siaga-cb-"
# The Linkedid (= ChannelId of the Originate) of a supervisor's phone ringing to listen in on a call
# (callflow/console/listen): not a call to or from the centre; the tracker follows no such call (the call
# listened to gets a note instead).
LISTEN_LINKEDID_PREFIX = "siaga-listen-"
# Contract with pjsip.conf: citizens' calls arrive on the citizen-ingress endpoint.
CITIZEN_INGRESS_PREFIX = "PJSIP/citizen-ingress-"
# An unanswered caller who left within this many seconds of arrival is a short abandon: the default of the
# site file's ``[calls] short_abandon_s`` (callflow/reports/measures.py defines what it means for reports).
DEFAULT_SHORT_ABANDON_S = 3.0


class Outcome(StrEnum):
    ANSWERED = "answered"
    ABANDONED_IN_IVR = "abandoned_in_ivr"
    ABANDONED_IN_QUEUE = "abandoned_in_queue"
    SHORT_ABANDON = "short_abandon"
    TIMEOUT = "timeout"
    OVERFLOWED = "overflowed"
    TRANSFERRED = "transferred"
    FAILSAFE = "failsafe"
    INCOMPLETE = "incomplete"
    # The engine's callback attempt the citizen did not answer: an attempt of its task, not a citizen call.
    CALLBACK_UNANSWERED = "callback_unanswered"
    # The call was up on a node (engine and its Asterisk) that stopped: the surviving leader closed it with
    # what the journal knew (callflow/cluster). Emergency callers get a callback task.
    NODE_LOST = "node_lost"


class CallClass(StrEnum):
    EMERGENCY = "emergency"
    NONEMERGENCY = "nonemergency"
    UNKNOWN = "unknown"


class Contact(StrEnum):
    """What the IVR's silent-call probe found (ivr/silence.py): the record's ``contact``."""

    SILENT = "silent"  # neither speech nor a key before the probe, and no 55 after it
    SILENT_CALLER = "silent_caller"  # silent, then pressed 5 twice: a genuine caller who cannot speak


class InstantSource(StrEnum):
    AMI_TIMESTAMP = "ami_timestamp"  # Asterisk's event Timestamp (microseconds)
    ENGINE_CLOCK = "engine_clock"  # the engine's injectable UTC clock
    ASTERISK_CDR = "asterisk_cdr"  # recovered from Asterisk's CDR file (gap recovery)
    QUEUE_LOG = "queue_log"  # recovered from Asterisk's queue_log (whole seconds)
    OPERATOR = "operator"  # entered by an operator


@dataclass(frozen=True, slots=True)
class Instant:
    """One named moment of a call: ``name`` (arrival, ivr_entered, ivr_left, queue_joined, rung, answered,
    transferred, overflowed, hangup...), a UTC-aware time, where it came from and how precise it is."""

    name: str
    at: datetime
    source: InstantSource
    detail: str = ""  # e.g. the operator rung, the queue joined, the IVR choice
    # None: microseconds (Asterisk's event times, the CDR file). 1.0: queue_log's whole second T, which
    # stands for [T, T + 1 s); ``at`` is then T moved after any instant of the call known to come first.
    precision_s: float | None = None


@dataclass(frozen=True, slots=True)
class Leg:
    uniqueid: str
    channel: str
    role: str  # "caller" | "operator" | "transfer_target" | "other"
    created: datetime | None = None
    answered: datetime | None = None
    ended: datetime | None = None
    hangup_cause: int | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call (all legs sharing a Linkedid). ``answer_seconds`` counts from arrival at the PBX, so time
    in the IVR counts against the caller."""

    linkedid: str
    caller_number: str
    caller_name: str
    dialed: str
    call_class: CallClass
    outcome: Outcome
    arrival: datetime
    ended: datetime | None
    answered: datetime | None = None
    operator: str = ""  # queue member name of the operator who answered
    queue: str = ""
    category: str = ""  # IVR category hint (non-emergency types)
    ivr_path: tuple[str, ...] = ()
    contact: str = ""  # silent-call detection (Contact): "" never probed, "silent", "silent_caller"
    contact_detail: str = ""  # what the IVR detected: speech seconds and keys
    hangup_by: str = ""  # "caller" | "operator" | "system" | ""
    instants: tuple[Instant, ...] = ()
    legs: tuple[Leg, ...] = ()
    sources: tuple[str, ...] = ()  # which sources contributed: "ami", "asterisk_cdr", "queue_log"
    notes: tuple[str, ...] = field(default=())
    follows_up: str = ""  # a callback call: the Linkedid of the citizen's call it follows up
    node: str = ""  # the node (engine + Asterisk) the call was on; "" for a single engine

    @property
    def is_callback(self) -> bool:
        """A call the centre placed to call a citizen back (not a call offered to the centre)."""
        return self.linkedid.startswith(CALLBACK_LINKEDID_PREFIX)

    @property
    def is_citizen_call(self) -> bool:
        """Came in on the citizen ingress (never a callback the centre placed, nor an operator's own call).
        A record recovered from Asterisk's files without legs counts when it dialled a number."""
        if self.is_callback:
            return False
        caller = next((leg for leg in self.legs if leg.role == "caller"), None)
        if caller is not None:
            return caller.channel.startswith(CITIZEN_INGRESS_PREFIX)
        return bool(self.dialed)

    @property
    def answer_seconds(self) -> float | None:
        if self.answered is None:
            return None
        return (self.answered - self.arrival).total_seconds()


class CallRecordListener(Protocol):
    """Told of every finished call record, after it is durably stored."""

    async def on_call_record(self, record: CallRecord) -> None: ...
