"""The callback rules as pure functions: which finished calls need a callback, which numbers may be
dialled, and what an attempt's outcome does to its task. No I/O, no clock: the service carries them out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from callflow.calls.model import CALLBACK_LINKEDID_PREFIX, CallClass, CallRecord, Contact, Outcome
from callflow.numbering import NumberingPlan

CALLBACK_ID_PREFIX = CALLBACK_LINKEDID_PREFIX  # the Originate's ChannelId: the callback call's Uniqueid


class TaskStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (next_attempt_at)
    DIALLING = "dialling"  # an Originate is in flight
    CHECKING = "checking"  # an attempt's outcome is unknown (AMI link lost): re-checked, never redialled
    ANSWERED = "answered"  # the citizen answered and was put in the emergency queue
    SUPERVISOR = "supervisor"  # flagged: a supervisor must act (see ``flag``)
    SUPERSEDED = "superseded"  # the citizen called again and was answered before the callback
    CLOSED = "closed"  # a supervisor closed a flagged task, saying how (callbacks_closures)
    SKIPPED = "skipped"  # never dialled: the nuisance rules said no (the task's ``decision`` says why)


class ClosureOutcome(StrEnum):
    """How a supervisor settled a task flagged for them (``siaga112 callbacks close``)."""

    REACHED = "reached"  # the citizen was reached another way (a call from the supervisor's desk)
    UNREACHABLE = "unreachable"  # tried, and the citizen cannot be reached
    NOT_NEEDED = "not_needed"  # no emergency after all (confirmed by other means)
    OTHER = "other"  # the note says what


OPEN_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.DIALLING, TaskStatus.CHECKING,
                           TaskStatus.SUPERVISOR})


class AttemptOutcome(StrEnum):
    DIALLING = "dialling"
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the link was lost mid-attempt and nothing showed what happened


# OriginateResponse ``Reason`` (Asterisk's control frame of the outbound leg's last state).
_REASONS = {4: AttemptOutcome.ANSWERED, 3: AttemptOutcome.NO_ANSWER, 1: AttemptOutcome.NO_ANSWER,
            5: AttemptOutcome.BUSY, 8: AttemptOutcome.FAILED, 0: AttemptOutcome.FAILED}

_CALLBACK_OUTCOMES = frozenset({Outcome.ABANDONED_IN_IVR, Outcome.ABANDONED_IN_QUEUE, Outcome.SHORT_ABANDON,
                                Outcome.TIMEOUT, Outcome.OVERFLOWED, Outcome.FAILSAFE})
_WITHHELD = frozenset({"", "anonymous", "unknown", "restricted", "withheld", "private", "unavailable"})
_DIALLABLE = re.compile(r"^\+?[0-9]{4,20}$")


@dataclass(frozen=True, slots=True)
class CallbackPolicy:
    """The site file's ``[callbacks]`` section, as the service uses it (built by callflow.policies from
    the site model, which holds the defaults)."""

    enabled: bool
    first_attempt_s: float
    retry_s: float
    max_attempts: int
    ring_timeout_s: float
    max_parallel: int
    caller_id: str
    trunk: str = "citizen-callback"  # PJSIP endpoint for citizens' numbers (contract with pjsip.conf)
    numbering_plan: NumberingPlan = field(default_factory=NumberingPlan)  # numbers it may dial
    per_number_per_hour: int = 1  # callback tasks dialled to one number within any hour (the flood cap)


def originate_outcome(reason: str) -> AttemptOutcome:
    """An OriginateResponse's ``Reason`` as an attempt outcome (an unexpected value is a failure)."""
    try:
        return _REASONS.get(int(reason), AttemptOutcome.FAILED)
    except ValueError:
        return AttemptOutcome.FAILED


def is_callback_call(record: CallRecord) -> bool:
    """A call the engine placed itself to call a citizen back (never the subject of a callback)."""
    return record.is_callback


def from_citizen(record: CallRecord) -> bool:
    """Came in on the citizen ingress (operators' own 112 calls and internal calls do not)."""
    return record.is_citizen_call


def callback_reason(record: CallRecord) -> str | None:
    """Why this finished call needs a callback, or None. Every emergency caller who was never answered
    (abandoned in the IVR or the queue, short abandons included: a silent or cut-off 112 call is exactly
    the one to call back, timed out, overflowed unanswered, fail-safe unanswered); a caller who hung up in
    the IVR before choosing is a possible emergency; an emergency (or not yet classed) call that was up on a
    node when the node stopped (``node_lost``), answered or not. Non-emergency callers are not called
    back."""
    if is_callback_call(record) or not from_citizen(record):
        return None
    if record.outcome is Outcome.NODE_LOST and record.call_class is not CallClass.NONEMERGENCY:
        # cut off by a node failure, answered or not: the citizen may still need help (issue 20)
        return f"{record.outcome} (node {record.node or '?'} stopped with the call up; " \
               f"{'answered by ' + record.operator if record.answered else 'not answered'})"
    if record.answered is not None:
        return None
    if record.outcome not in _CALLBACK_OUTCOMES:
        return None
    if record.call_class is CallClass.EMERGENCY:
        return f"{record.outcome} (emergency)"
    if record.call_class is CallClass.UNKNOWN and record.outcome in (Outcome.ABANDONED_IN_IVR,
                                                                      Outcome.SHORT_ABANDON):
        return f"{record.outcome} before any choice (possible emergency)"
    return None


def number_problem(number: str, plan: NumberingPlan | None = None) -> str | None:
    """Why ``number`` must not be dialled (withheld, anonymous, not a telephone number, or outside the
    site's numbering plan: international, premium rate, short codes), or None."""
    text = number.strip()
    if text.lower() in _WITHHELD:
        return "number withheld or anonymous: cannot call back"
    if not _DIALLABLE.match(text):
        return f"number {text!r} is not a diallable telephone number: cannot call back"
    if not (plan or NumberingPlan()).allows(text):
        # the number itself stays out of the flag: flags are logged, numbers only masked
        return ("number outside the site's numbering plan ([callbacks] dial_patterns: international, "
                "premium-rate or a short code?): not dialled; a supervisor decides whether to call back")
    return None


@dataclass(frozen=True, slots=True)
class NextStep:
    status: TaskStatus
    next_attempt_at: datetime | None
    flag: str = ""


def after_attempt(outcome: AttemptOutcome, attempts: int, at: datetime, policy: CallbackPolicy,
                  max_attempts: int | None = None, *, may_ring_until: datetime | None = None) -> NextStep:
    """The task's next step once attempt number ``attempts`` (1-based) ended with ``outcome`` at ``at``;
    ``max_attempts`` is the task's own limit (:func:`nuisance_decision`), else the policy's.
    ``may_ring_until``: the attempt may still ring the citizen until then (:func:`may_still_ring`); the
    next attempt waits ``retry_s`` after that, so the citizen never gets two of our calls at once."""
    if outcome is AttemptOutcome.ANSWERED:
        return NextStep(TaskStatus.ANSWERED, None)
    if attempts >= (max_attempts or policy.max_attempts):
        return NextStep(TaskStatus.SUPERVISOR, None,
                        f"{attempts} attempt(s) without an answer (last: {outcome}): call the citizen "
                        "another way or close the task")
    last = max(at, may_ring_until) if may_ring_until is not None else at
    return NextStep(TaskStatus.PENDING, last + timedelta(seconds=policy.retry_s))


def may_still_ring(started: datetime, policy: CallbackPolicy) -> datetime:
    """Until when an attempt settled from a lost node's record may still ring the citizen: the node's
    engine stopped (killed or frozen) but its Asterisk may be up and ringing until the Originate's ring
    timeout. Without this wait the leader dialled the next attempt through the other node ``retry_s``
    after its ``node_lost`` record: two calls at once on the citizen's phone."""
    return started + timedelta(seconds=policy.ring_timeout_s)


def channel_id(task_id: int, attempt: int, started: datetime) -> str:
    """The Originate's ChannelId for attempt ``attempt`` of task ``task_id`` started at ``started``. The
    start time (epoch milliseconds) keeps it unique beyond this database: Asterisk's CDR file and
    queue_log outlive a database, and gap recovery must never tie an old callback call to a new task."""
    return f"{CALLBACK_ID_PREFIX}{task_id}-{attempt}-{int(started.timestamp() * 1000)}"


CAP_WINDOW = timedelta(hours=1)
SILENT_ATTEMPTS = 1  # a silent call whose probe got no answer: one attempt, then the supervisor
# A caller who hung up unanswered within [calls] short_abandon_s, before any choice: never lost (it may be
# a cut-off emergency), but most are pocket dials and misdials (Jakarta: 58 % of calls cut off), so one
# attempt, then the supervisor; one who chose emergency first gets every attempt.
SHORT_ABANDON_ATTEMPTS = 1


@dataclass(frozen=True, slots=True)
class NumberHistory:
    """What the service knows about the caller's number when a task is created: the tasks that call it
    back (not skipped) created within :data:`CAP_WINDOW` before now, and a ``repeat_abuse`` flag in force
    (its description, or "")."""

    recent_tasks: tuple[int, ...] = ()
    abuse_flag: str = ""


@dataclass(frozen=True, slots=True)
class NuisanceDecision:
    """Whether a call needing a callback gets one, the attempts it gets (None: the policy's), and the
    decision recorded on the task."""

    call_back: bool
    decision: str
    max_attempts: int | None = None


def nuisance_decision(record: CallRecord, history: NumberHistory, policy: CallbackPolicy) -> NuisanceDecision:
    """The flood rules for a call that :func:`callback_reason` says needs a callback. Separate from
    :func:`number_problem` (which says whether a number can be dialled at all): the service applies that
    first, then this. In order: a flagged number is called back only if the call was classed emergency;
    at most ``per_number_per_hour`` callback tasks per number within an hour (retries of one task are one
    callback); a silent call whose probe got no 55 gets one attempt; so does a short abandon before any
    choice (:data:`SHORT_ABANDON_ATTEMPTS`)."""
    if history.abuse_flag and record.call_class is not CallClass.EMERGENCY:
        return NuisanceDecision(False, f"no callback: number flagged ({history.abuse_flag}) and the call was "
                                       f"classed {record.call_class}, not emergency")
    if len(history.recent_tasks) >= policy.per_number_per_hour:
        tasks = ", ".join(str(t) for t in history.recent_tasks)
        return NuisanceDecision(False, f"no callback: cap of {policy.per_number_per_hour} callback(s) per "
                                       f"number per hour reached (task(s) {tasks}; site [callbacks] "
                                       "per_number_per_hour)")
    if record.outcome is Outcome.SHORT_ABANDON and record.call_class is not CallClass.EMERGENCY:
        return NuisanceDecision(True, f"short abandon before any choice (hung up within [calls] "
                                      f"short_abandon_s): {SHORT_ABANDON_ATTEMPTS} attempt",
                                SHORT_ABANDON_ATTEMPTS)
    if record.contact == Contact.SILENT:
        return NuisanceDecision(True, f"silent call, probe unanswered ({record.contact_detail}): "
                                      f"{SILENT_ATTEMPTS} attempt", SILENT_ATTEMPTS)
    if history.abuse_flag:
        return NuisanceDecision(True, f"called back although flagged ({history.abuse_flag}): the call was "
                                      "classed emergency")
    return NuisanceDecision(True, "called back")
