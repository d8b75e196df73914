"""The site file as data: one pydantic model per section, unknown keys refused (``extra="forbid"``).

Field-level rules (types, ranges, name syntax) live here; rules across sections (an operator a queue
names must exist, the AMI must not leave loopback without TLS...) are checks in :mod:`._checks`.

Every section validates in strict mode: a value must already have the key's type in TOML. Lax mode let
``ring_timeout_s = true`` through as 1 (a one-second ring for emergency calls) and ``"8"`` as 8. TOML has
no address, path or enum type, so those keys take a quoted string and nothing else (:func:`_from_text`).
"""

from __future__ import annotations

import ipaddress
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from callflow.calls.model import DEFAULT_SHORT_ABANDON_S
from callflow.centre import CENTRE_TIMEZONE
from callflow.numbering import INDONESIA_DIAL_PATTERNS, compile_patterns
from callflow.siteconfig._conf_text import CONTROL_CHARACTERS, ONE_LINE, PLAIN_PATH
from recordings.policy import RecordFrom  # one enum for the site file and the runtime policy

_NAME = r"^[a-z][a-z0-9_-]{0,31}$"
_ENV = r"^[A-Z_][A-Z0-9_]*$"
_DIGITS = r"^[0-9]{2,15}$"
_PJSIP_OPTION = r"^[a-z][a-z0-9_]*$"
_LINKEDID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# Values rendered into Asterisk's files stay on one line (see _conf_text for why and what is escaped).
_SIP_URI = rf"^sip:[^\s{CONTROL_CHARACTERS}]+$"
OneLine = Annotated[str, Field(pattern=ONE_LINE)]

EMERGENCY_CATEGORIES = ("natural_disaster", "public_order", "fire", "accident", "health", "crime", "riot",
                        "other_emergency", "other_complaint")
NONEMERGENCY_CATEGORIES = ("illegal_building", "street_lighting", "telecom_pole", "fallen_tree",
                           "electricity", "clean_water", "garbage")


class ServiceClass(StrEnum):
    EMERGENCY = "emergency"
    NONEMERGENCY = "nonemergency"


def _text(kind: type[Any]) -> BeforeValidator:
    """For a key TOML can only write as a string (an address, a path, one of a set of words). Strict mode
    would refuse the string itself and lax mode also takes a number (``bind = 2130706433`` is an address
    to pydantic), so such a key is lax (``strict=False``) behind this guard: a string or nothing."""

    def only_text(value: object) -> object:
        if isinstance(value, str | kind):
            return value
        # a ValueError, not a TypeError: pydantic reports only ValueError as a problem with the key
        raise ValueError(f"expected a quoted string, got {toml_type(value)}")

    return BeforeValidator(only_text)


def toml_type(value: object) -> str:
    """How a TOML value was written, for problems: ``a boolean (true)``, ``a string ("8")``."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    kinds = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}
    kind = kinds.get(type(value), type(value).__name__)
    if isinstance(value, list | dict):
        return kind
    shown = json.dumps(value) if isinstance(value, str) else repr(value)
    return f"{kind} ({shown if len(shown) <= 40 else shown[:36] + ' ...'})"


_LAX = Field(strict=False)
IPv4Address = Annotated[ipaddress.IPv4Address, _LAX, _text(ipaddress.IPv4Address)]
IPv4Network = Annotated[ipaddress.IPv4Network, _LAX, _text(ipaddress.IPv4Network)]
FilePath = Annotated[Path, _LAX, _text(Path)]
ServiceClassName = Annotated[ServiceClass, _LAX, _text(ServiceClass)]
RecordFromName = Annotated[RecordFrom, _LAX, _text(RecordFrom)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Centre(_Section):
    name: str = Field(min_length=1, max_length=80, pattern=ONE_LINE,
                      description="the centre's name, shown in headers")
    timezone: str = Field(default=CENTRE_TIMEZONE, description="the centre's local time (IANA name): "
                          "dates, hours and months in reports; a time given without an offset")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: an IANA name such as Asia/Makassar") from None
        return value


class Entry(_Section):
    numbers: list[Annotated[str, Field(pattern=_DIGITS)]] = Field(
        default_factory=lambda: ["112"], min_length=1,
        description="numbers citizens dial to reach the centre; 112 must be one of them")


class SecretRef(_Section):
    """Where a secret comes from. Never the secret itself."""

    secret_env: Annotated[str, Field(pattern=_ENV)] | None = Field(
        default=None, description="name of an environment variable holding the secret")
    secret_file: FilePath | None = Field(
        default=None, description="file holding the secret (one line, mode 0600 or stricter)")

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("give exactly one of secret_env or secret_file (never the secret inline)")
        return self


class Operator(SecretRef):
    name: Annotated[str, Field(pattern=_NAME)] = Field(description="SIP user and endpoint name, e.g. op1")
    extension: Annotated[str, Field(pattern=r"^[0-9]{2,6}$")] = Field(
        description="internal extension (operators call each other on it)")
    display_name: str = Field(min_length=1, max_length=60, pattern=rf'^[^"<>{CONTROL_CHARACTERS}]+$')
    classes: list[ServiceClassName] = Field(min_length=1, description="call classes this operator serves")
    contact: str | None = Field(
        default=None, pattern=_SIP_URI,
        description="static contact (phones that do not register); leave out for registering phones")
    pjsip_options: dict[Annotated[str, Field(pattern=_PJSIP_OPTION)], OneLine] = Field(
        default_factory=dict,
        description="advanced: extra PJSIP endpoint options, one line each (`;` is escaped for Asterisk); "
                    "`config apply` verifies in Asterisk's log that it took them and rolls back otherwise")


class Queue(_Section):
    weight: int = Field(ge=0, le=1000, description="higher is offered first to a member of several queues")
    servicelevel_s: int = Field(ge=1, le=600, description="service-level window for Asterisk's SL figure")
    strategy: str = Field(default="rrmemory", pattern=r"^(ringall|leastrecent|fewestcalls|random|rrmemory|"
                                                        r"rrordered|linear|wrandom)$")
    ring_timeout_s: int = Field(ge=1, le=120, description="how long each operator rings")
    retry_s: int = Field(ge=0, le=60, description="pause before ringing the next operator")
    wrapup_s: int = Field(default=0, ge=0, le=600, description="rest after a call before the next one")
    operators: list[Annotated[str, Field(pattern=_NAME)]] = Field(
        default_factory=list,
        description="operators who may serve this queue (the engine adds them with QueueAdd; never static "
                    "members)")
    announce_position: bool = Field(
        default=False, description="tell waiting callers their position and expected hold time")
    announce_frequency_s: int = Field(default=30, ge=15, le=600,
                                      description="how often the position is announced (announce_position)")
    overflow_s: int = Field(
        default=0, ge=0, le=600,
        description="emergency only: after this wait the caller is also offered to every logged-in operator "
                    "(0 = off)")
    supervisors: list[Annotated[str, Field(pattern=_NAME)]] = Field(
        default_factory=list,
        description="emergency only: operators (supervisors) offered a caller waiting supervisors_s")
    supervisors_s: int = Field(default=0, ge=0, le=900,
                               description="emergency only: wait before supervisors are offered (0 = off)")


class Queues(_Section):
    emergency: Queue
    nonemergency: Queue


class Categories(_Section):
    emergency: list[str] = Field(default_factory=lambda: list(EMERGENCY_CATEGORIES))
    nonemergency: list[str] = Field(default_factory=lambda: list(NONEMERGENCY_CATEGORIES))


class Ivr(_Section):
    enabled: bool = True
    tree: FilePath = Field(default=Path("ivr.toml"), description="the IVR tree, relative to the site file")
    fallback: str = Field(default="emergency", description="queue a caller reaches when the IVR times out, "
                                                          "gets invalid input or fails: must be emergency")


class Retention(_Section):
    """Days a recording is kept after it was made, per call class (a call never classified counts as an
    emergency). These are the only retention defaults: the engine and ``recordings purge`` use them when
    the site file leaves them out."""

    emergency: int = Field(default=365, ge=1, le=3650,
                           description="days an emergency call's recording is kept")
    nonemergency: int = Field(default=90, ge=1, le=3650,
                              description="days a non-emergency call's recording is kept")


class Recording(_Section):
    emergency_from: RecordFromName = Field(
        default=RecordFrom.ANSWER, description="emergency calls are always recorded, from answer or arrival")
    nonemergency: bool = Field(default=False, description="record non-emergency calls")
    retention_days: Retention = Field(default_factory=Retention)
    legal_hold: bool = Field(
        default=False, description="site-wide legal hold: while true, `recordings purge` deletes nothing")
    legal_hold_calls: list[Annotated[str, Field(pattern=_LINKEDID)]] = Field(
        default_factory=list,
        description="calls (Asterisk linkedids, as `recordings list` shows them) whose recordings are on "
                    "legal hold: never purged while listed, whatever their retention")


class Callbacks(_Section):
    """Callbacks to emergency callers who hung up before an operator answered (queues/callbacks)."""

    enabled: bool = Field(default=True, description="call back abandoned emergency calls (off: every task is "
                                                    "flagged for a supervisor instead)")
    first_attempt_s: float = Field(default=60, ge=0, le=3600,
                                   description="first attempt this long after the caller hung up")
    retry_s: float = Field(default=120, ge=1, le=86400, description="wait between unanswered attempts")
    max_attempts: int = Field(default=3, ge=1, le=20,
                              description="attempts before the task is flagged for a supervisor")
    ring_timeout_s: float = Field(default=30, ge=3, le=120, description="how long each attempt rings")
    max_parallel: int = Field(default=4, ge=1, le=50, description="callbacks dialled at the same time")
    per_number_per_hour: int = Field(
        default=1, ge=1, le=20,
        description="callbacks to one number within any hour (a task's retries are one callback); later "
                    "abandoned calls from that number are recorded as skipped, with the reason")
    caller_id: str = Field(default="112", pattern=_DIGITS, description="number the citizen sees")
    trunk_contact: str = Field(
        default="sip:127.0.0.1:5069", pattern=_SIP_URI,
        description="where citizens' numbers are dialled (the telco trunk): PJSIP endpoint citizen-callback")
    dial_patterns: list[str] = Field(
        default_factory=lambda: list(INDONESIA_DIAL_PATTERNS), min_length=1,
        description="the numbering plan: a callback dials only a number matching one of these regular "
                    "expressions in full (Python syntax); any other number (international, premium "
                    "rate, short codes) is flagged for a supervisor. Default: Indonesia's mobile "
                    "(08[1-9]..., +628...) and fixed lines (0 + area code, or 5-8 local digits)")

    @field_validator("dial_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        compile_patterns(patterns)  # a NumberingPlanError (a ValueError) names the bad pattern
        return patterns


class Calls(_Section):
    """How calls are recorded and counted (callflow/reports/measures.py defines every measure)."""

    short_abandon_s: float = Field(
        default=DEFAULT_SHORT_ABANDON_S, ge=0, le=60,
        description="an unanswered caller who hangs up within this many seconds of arrival is a short "
                    "abandon: recorded as such and counted apart from offered calls (0 = none)")


class HandoffDeadline(_Section):
    """How long an agency has, counted from the hand-off (the first dispatch of one of its units)."""

    acknowledge_min: float = Field(gt=0, le=10080, description="acknowledge within this many minutes")
    done_h: float = Field(gt=0, le=8760, description="mark done within this many hours")


def _emergency_deadline() -> HandoffDeadline:
    return HandoffDeadline(acknowledge_min=15, done_h=24)


def _nonemergency_deadline() -> HandoffDeadline:
    return HandoffDeadline(acknowledge_min=24 * 60, done_h=7 * 24)


class AgencyEndpoint(SecretRef):
    """An agency's own system: each hand-off and update is POSTed there as signed EIDO JSON. The secret
    (for the HMAC-SHA256 signature) comes from secret_env or secret_file, never this file."""

    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=500,
                     description="where to POST (http or https)")
    timeout_s: float = Field(default=10, gt=0, le=120, description="how long one attempt may take")


class Agencies(_Section):
    """Reports handed to agencies (callflow/agencies): deadlines, escalation and what agencies may see."""

    emergency: HandoffDeadline = Field(default_factory=_emergency_deadline,
                                       description="deadlines for emergency categories")
    nonemergency: HandoffDeadline = Field(default_factory=_nonemergency_deadline,
                                          description="deadlines for non-emergency categories")
    categories: dict[Annotated[str, Field(pattern=_NAME)], HandoffDeadline] = Field(
        default_factory=dict, description="deadlines for one category (its id, e.g. electricity), "
                                          "overriding its class's")
    show_caller_number: bool = Field(default=False, description="agency accounts see the caller's number")
    endpoints: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")], AgencyEndpoint] = Field(
        default_factory=dict, description="agencies' own systems, by agency id (of the agency file)")
    centre_id: str = Field(default="manado", pattern=_NAME,
                           description="the centre's id in EIDO documents (urn:siaga112:<centre_id>:...)")
    sweep_s: float = Field(default=30, ge=1, le=3600,
                           description="how often overdue hand-offs are looked for")

    @model_validator(mode="after")
    def _known_categories(self) -> Agencies:
        known = set(EMERGENCY_CATEGORIES) | set(NONEMERGENCY_CATEGORIES)
        for name in self.categories:
            if name not in known:
                valid = ", ".join(sorted(known))
                raise ValueError(f"categories: unknown category {name!r}; use one of: {valid}")
        return self


class AmiApply(SecretRef):
    """``config apply``'s own AMI user (reloads and verification: classes system, config, reporting), logged
    in only while applying; the running engine's user cannot reload, read configs or load modules."""

    username: Annotated[str, Field(pattern=_NAME)] = "siaga112-apply"


class Ami(SecretRef):
    bind: IPv4Address = Field(default=ipaddress.IPv4Address("127.0.0.1"))
    port: int = Field(default=5038, ge=1, le=65535)
    username: Annotated[str, Field(pattern=_NAME)] = "siaga112"
    permit: list[IPv4Network] = Field(
        default_factory=lambda: [ipaddress.IPv4Network("127.0.0.1/32")],
        description="networks allowed to log in")
    tls: bool = Field(default=False, description="AMI over TLS (required off loopback)")
    tls_port: int = Field(default=5039, ge=1, le=65535)
    tls_cert_file: FilePath | None = None
    tls_key_file: FilePath | None = None
    apply: AmiApply = Field(
        default_factory=lambda: AmiApply(secret_env="SIAGA112_AMI_APPLY_SECRET"),  # noqa: S106 - a variable's name
        description="`config apply`'s own AMI user; its secret from secret_env or secret_file, never the "
                    "engine's")

    @model_validator(mode="after")
    def _apply_user_is_another(self) -> Ami:
        if self.apply.username == self.username:
            raise ValueError(f"ami.apply.username {self.apply.username!r} is the engine's user: give `config "
                             f"apply` its own (e.g. {self.username}-apply)")
        return self


class Sip(_Section):
    bind: IPv4Address = Field(default=ipaddress.IPv4Address("127.0.0.1"))
    port: int = Field(default=5060, ge=1, le=65535)
    ingress_networks: list[IPv4Network] = Field(
        default_factory=lambda: [ipaddress.IPv4Network("127.0.0.0/8")],
        description="where citizens' calls come from (the telco trunk): unauthenticated, entry numbers only")
    rtp_start: int = Field(default=10000, ge=1024, le=65535)
    rtp_end: int = Field(default=20000, ge=1024, le=65535)


class FastAgi(_Section):
    host: IPv4Address = Field(default=ipaddress.IPv4Address("127.0.0.1"))
    port: int = Field(default=4573, ge=1, le=65535)


class Paths(_Section):
    recordings: str = Field(default="/var/spool/asterisk/siaga112/recordings", pattern=PLAIN_PATH)
    sounds: str = Field(default="/var/lib/asterisk/siaga112/sounds", pattern=PLAIN_PATH)
    moh: str = Field(default="/var/lib/asterisk/siaga112/moh", pattern=PLAIN_PATH)


_NODE_NAME = r"^[a-z][a-z0-9]{0,15}$"


class ClusterNode(_Section):
    """One Asterisk node behind the SIP front. Its name is its Asterisk ``systemname``: the prefix of every
    uniqueid and linkedid it makes, so records from two nodes never collide in the shared store."""

    name: Annotated[str, Field(pattern=_NODE_NAME)] = Field(
        description="the node's name (lower-case letters and digits, e.g. a): its Asterisk systemname")
    sip_address: IPv4Address = Field(description="where the SIP front reaches this node's Asterisk")
    sip_port: int = Field(default=5060, ge=1, le=65535, description="this node's Asterisk SIP port")
    priority: int = Field(ge=0, le=1000, description="higher is offered new calls first (failover order)")


class SipFront(_Section):
    """Kamailio, the entry for citizens' trunks and operators' phones (rendered to kamailio.cfg and
    dispatcher.list): new calls go to the node of highest priority that answers its OPTIONS probes."""

    bind: IPv4Address = Field(default=ipaddress.IPv4Address("127.0.0.1"),
                              description="address citizens' trunks and operators' phones send SIP to")
    port: int = Field(default=5060, ge=1, le=65535)
    probe_interval_s: int = Field(default=1, ge=1, le=60,
                                  description="how often each node is probed with SIP OPTIONS")
    node_timeout_ms: int = Field(
        default=1000, ge=200, le=10000,
        description="a node that has not answered a new call (not even 100 Trying) within this is taken "
                    "as down: the call goes to the next node")
    etc_dir: str = Field(default="/etc/kamailio", pattern=PLAIN_PATH,
                         description="Kamailio's configuration directory (dispatcher.list is read there)")


class Cluster(_Section):
    """Two (or more) Asterisk nodes behind one SIP front. Without this section the site is one node."""

    front: SipFront = Field(default_factory=SipFront)
    nodes: list[ClusterNode] = Field(min_length=2, max_length=8)

    @model_validator(mode="after")
    def _distinct(self) -> Cluster:
        names = [node.name for node in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must differ (got {', '.join(names)})")
        places = [(node.sip_address, node.sip_port) for node in self.nodes]
        if len(set(places)) != len(places):
            raise ValueError("two nodes have the same sip_address and sip_port: give each its own")
        if (self.front.bind, self.front.port) in places:
            raise ValueError("the SIP front's bind and port are also a node's: give the front its own port")
        return self

    def node(self, name: str) -> ClusterNode | None:
        return next((node for node in self.nodes if node.name == name), None)


class Site(_Section):
    """The whole site file."""

    centre: Centre
    entry: Entry = Field(default_factory=Entry)
    operators: list[Operator] = Field(default_factory=list)
    queues: Queues
    categories: Categories = Field(default_factory=Categories)
    ivr: Ivr = Field(default_factory=Ivr)
    recording: Recording = Field(default_factory=Recording)
    callbacks: Callbacks = Field(default_factory=Callbacks)
    calls: Calls = Field(default_factory=Calls)
    agencies: Agencies = Field(default_factory=Agencies)
    ami: Ami
    sip: Sip = Field(default_factory=Sip)
    fastagi: FastAgi = Field(default_factory=FastAgi)
    paths: Paths = Field(default_factory=Paths)
    cluster: Cluster | None = Field(
        default=None, description="two Asterisk nodes behind Kamailio (README: two-node deployment); "
                                  "leave out for one node")

    def operator(self, name: str) -> Operator | None:
        return next((op for op in self.operators if op.name == name), None)
