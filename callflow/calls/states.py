"""Call states and transitions, in ONE table.

:func:`signal_of` classifies a journal row as a :class:`Signal` for the call; :func:`apply` returns the
next state and the effects to carry out, as values (no I/O here). A signal that makes no sense in the
call's state is an :class:`Effect.CLOSE_INCOMPLETE`: the caller logs it and closes the call as
``incomplete``; it is never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CallState(StrEnum):
    # every call starts UNSEEN; its caller's Newchannel makes it ARRIVED (then transitions are strict)
    UNSEEN = "unseen"  # first row of the call was not its caller's Newchannel (engine joined late)
    ARRIVED = "arrived"
    IN_IVR = "in_ivr"
    ROUTED = "routed"  # the dial plan announced the queue (SiagaQueueEntry)
    QUEUED = "queued"
    LEFT_QUEUE = "left_queue"  # left the queue: answered next, or timeout / overflow
    ANSWERED = "answered"
    ENDED = "ended"
    INCOMPLETE = "incomplete"


class Signal(StrEnum):
    CALLER_NEW = "caller_new"
    IVR_STEP = "ivr_step"
    IVR_DECISION = "ivr_decision"
    QUEUE_ENTRY = "queue_entry"
    QUEUE_JOIN = "queue_join"
    QUEUE_ABANDON = "queue_abandon"
    QUEUE_LEAVE = "queue_leave"
    AGENT_CONNECT = "agent_connect"
    TRANSFER = "transfer"
    CALLER_GONE = "caller_gone"  # the caller's leg hung up (AMI Hangup or a recovered CDR end)
    CLOSE = "close"  # the tracker closed the call (gap recovery found nothing more)
    NEUTRAL = "neutral"  # legal in any live state, no state change (rings, dials, bridges, hang-up requests)


class Effect(StrEnum):
    CALL_ENDED = "call_ended"  # derive and store the record
    CLOSE_INCOMPLETE = "close_incomplete"  # illegal transition: log, close as incomplete


S, G = CallState, Signal
_LIVE = (S.UNSEEN, S.ARRIVED, S.IN_IVR, S.ROUTED, S.QUEUED, S.LEFT_QUEUE, S.ANSWERED)

# (state, signal) -> next state. Anything not listed is illegal (NEUTRAL and CALLER_GONE/CLOSE are added
# below for every live state).
TRANSITIONS: dict[tuple[CallState, Signal], CallState] = {
    (S.ARRIVED, G.IVR_STEP): S.IN_IVR,
    (S.ARRIVED, G.IVR_DECISION): S.IN_IVR,
    (S.ARRIVED, G.QUEUE_ENTRY): S.ROUTED,
    (S.ARRIVED, G.QUEUE_JOIN): S.QUEUED,
    (S.IN_IVR, G.IVR_STEP): S.IN_IVR,
    (S.IN_IVR, G.IVR_DECISION): S.IN_IVR,
    (S.IN_IVR, G.QUEUE_ENTRY): S.ROUTED,
    (S.IN_IVR, G.QUEUE_JOIN): S.QUEUED,
    (S.ROUTED, G.QUEUE_JOIN): S.QUEUED,
    (S.ROUTED, G.QUEUE_ENTRY): S.ROUTED,
    (S.QUEUED, G.QUEUE_ABANDON): S.QUEUED,
    (S.QUEUED, G.QUEUE_LEAVE): S.LEFT_QUEUE,
    (S.QUEUED, G.AGENT_CONNECT): S.ANSWERED,
    (S.LEFT_QUEUE, G.AGENT_CONNECT): S.ANSWERED,  # Asterisk sends QueueCallerLeave before AgentConnect
    (S.LEFT_QUEUE, G.QUEUE_ENTRY): S.ROUTED,  # overflow to another queue
    (S.LEFT_QUEUE, G.QUEUE_JOIN): S.QUEUED,
    (S.LEFT_QUEUE, G.IVR_STEP): S.IN_IVR,
    (S.ANSWERED, G.TRANSFER): S.ANSWERED,
    (S.ANSWERED, G.QUEUE_ENTRY): S.ROUTED,  # transferred back into a queue
    # Asterisk publishes BlindTransfer once the transfer is done, which can be after the transferee's new
    # dial plan already announced (and joined) its queue: seen on the lab, SiagaQueueEntry first.
    (S.ROUTED, G.TRANSFER): S.ROUTED,
    (S.QUEUED, G.TRANSFER): S.QUEUED,
    (S.ANSWERED, G.QUEUE_JOIN): S.QUEUED,
    # A call first seen mid-way (engine started late, events lost in a gap): anything may follow.
    **{(S.UNSEEN, g): s for g, s in ((G.IVR_STEP, S.IN_IVR), (G.IVR_DECISION, S.IN_IVR),
                                      (G.QUEUE_ENTRY, S.ROUTED), (G.QUEUE_JOIN, S.QUEUED),
                                      (G.QUEUE_ABANDON, S.QUEUED), (G.QUEUE_LEAVE, S.LEFT_QUEUE),
                                      (G.AGENT_CONNECT, S.ANSWERED), (G.TRANSFER, S.ANSWERED),
                                      (G.CALLER_NEW, S.ARRIVED))},
    **{(s, G.NEUTRAL): s for s in _LIVE},
    **{(s, G.CALLER_GONE): S.ENDED for s in _LIVE},
    **{(s, G.CLOSE): S.ENDED for s in _LIVE},
}

TERMINAL = frozenset({S.ENDED, S.INCOMPLETE})


@dataclass(frozen=True, slots=True)
class Transition:
    before: CallState
    signal: Signal
    after: CallState
    effects: tuple[Effect, ...] = ()

    @property
    def legal(self) -> bool:
        return Effect.CLOSE_INCOMPLETE not in self.effects


def apply(state: CallState, signal: Signal) -> Transition:
    """Next state for ``signal`` in ``state``. Terminal states absorb everything (trailing events)."""
    if state in TERMINAL:
        return Transition(state, signal, state)
    after = TRANSITIONS.get((state, signal))
    if after is None:
        return Transition(state, signal, S.INCOMPLETE, (Effect.CLOSE_INCOMPLETE,))
    effects = (Effect.CALL_ENDED,) if after is S.ENDED else ()
    return Transition(state, signal, after, effects)

