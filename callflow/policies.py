"""The site file's sections as the policies the engine's parts run by: built here, and only here.

The site file's model (:mod:`callflow.siteconfig`) holds the one set of defaults: without a site file, or
with a section left out, a policy is built from that section's defaults, exactly as if the admin had
written them. The domain packages (recordings, queues, queues.callbacks) receive these policy objects;
they never read the site file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from callflow.agencies import Deadline, Endpoint, HandoffPolicy
from callflow.calls.derive import DeriveOptions
from callflow.calls.model import CallClass
from callflow.incidents import Category, CategoryClass
from callflow.numbering import NumberingPlan
from callflow.siteconfig import Agencies, Callbacks, Calls, HandoffDeadline, Recording, Site
from queues.callbacks import CallbackPolicy
from queues.policy import EMERGENCY, PENALTY_OVERFLOW, PENALTY_OWN, PENALTY_SUPERVISOR, QueuePolicy
from recordings import RecordingPolicy


def recording_policy(section: Recording | None = None) -> RecordingPolicy:
    """``[recording]``: what is recorded, from when, retention per class and legal hold. A call never
    classified is kept as long as an emergency."""
    rec = section if section is not None else Recording()
    return RecordingPolicy(
        emergency_from=rec.emergency_from,
        record_nonemergency=rec.nonemergency,
        retention_days={CallClass.EMERGENCY: rec.retention_days.emergency,
                        CallClass.NONEMERGENCY: rec.retention_days.nonemergency,
                        CallClass.UNKNOWN: rec.retention_days.emergency},
        legal_hold=rec.legal_hold,
        held_calls=frozenset(rec.legal_hold_calls),
    )


def callback_policy(section: Callbacks | None = None, *, dial: bool = True) -> CallbackPolicy:
    """``[callbacks]``; ``dial=False`` (the engine's settings ``callbacks.dial``) keeps tasks but dials
    nothing."""
    cb = section if section is not None else Callbacks()
    return CallbackPolicy(enabled=cb.enabled and dial, first_attempt_s=cb.first_attempt_s,
                          retry_s=cb.retry_s, max_attempts=cb.max_attempts, ring_timeout_s=cb.ring_timeout_s,
                          max_parallel=cb.max_parallel, caller_id=cb.caller_id,
                          numbering_plan=NumberingPlan(tuple(cb.dial_patterns)),
                          per_number_per_hour=cb.per_number_per_hour)


def derive_options(section: Calls | None = None) -> DeriveOptions:
    """``[calls]``: how a call's record is derived from the journal (``short_abandon_s``: an unanswered
    caller gone within it is a short abandon, counted apart from offered calls)."""
    calls = section if section is not None else Calls()
    return DeriveOptions(short_abandon_s=calls.short_abandon_s)


def queue_policy(site: Site | None) -> QueuePolicy:
    """``[[operators]]`` and ``[queues]``: who joins which queue with which penalty (queues/policy.py says
    how the emergency queue's overflow tiers work); no operators without a site file."""
    if site is None:
        return QueuePolicy(operators=())
    queues = {EMERGENCY: site.queues.emergency, "nonemergency": site.queues.nonemergency}
    emergency = site.queues.emergency
    members: dict[str, dict[str, int]] = {}
    for op in site.operators:
        mine = {q: PENALTY_OWN for q, queue in queues.items() if op.name in queue.operators}
        if EMERGENCY not in mine:
            if op.name in emergency.supervisors and emergency.supervisors_s:
                mine[EMERGENCY] = PENALTY_SUPERVISOR
            elif emergency.overflow_s and mine:
                mine[EMERGENCY] = PENALTY_OVERFLOW
        members[op.name] = mine
    return QueuePolicy(operators=tuple(op.name for op in site.operators), members=members,
                       wrapup={q: float(queue.wrapup_s) for q, queue in queues.items()})


def handoff_policy(section: Agencies | None = None) -> HandoffPolicy:
    """``[agencies]``: deadlines per category class and per category, and whether agencies see callers'
    numbers."""
    ag = section if section is not None else Agencies()

    def deadline(d: HandoffDeadline) -> Deadline:
        return Deadline(timedelta(minutes=d.acknowledge_min), timedelta(hours=d.done_h))

    return HandoffPolicy(
        by_class={CategoryClass.EMERGENCY: deadline(ag.emergency),
                  CategoryClass.NONEMERGENCY: deadline(ag.nonemergency)},
        by_category={Category(name): deadline(d) for name, d in ag.categories.items()},
        caller_number_visible=ag.show_caller_number, sweep_s=ag.sweep_s, centre_id=ag.centre_id,
        endpoints={agency: Endpoint(e.url, e.secret_env, e.secret_file, e.timeout_s)
                   for agency, e in ag.endpoints.items()})


@dataclass(frozen=True)
class SitePolicies:
    """Every policy the engine takes from one site file."""

    recording: RecordingPolicy
    queues: QueuePolicy
    callbacks: CallbackPolicy
    derive: DeriveOptions
    handoffs: HandoffPolicy

    @classmethod
    def of(cls, site: Site | None, *, dial_callbacks: bool = True) -> SitePolicies:
        """The policies of ``site``; ``None`` (no site file) gives the site model's defaults and no
        operators."""
        if site is None:
            return cls(recording_policy(), queue_policy(None), callback_policy(dial=dial_callbacks),
                       derive_options(), handoff_policy())
        return cls(recording_policy(site.recording), queue_policy(site),
                   callback_policy(site.callbacks, dial=dial_callbacks), derive_options(site.calls),
                   handoff_policy(site.agencies))
