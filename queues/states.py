"""The operator state table: what each operator is doing, derived from Asterisk's queue events.

Pure (no I/O): :class:`OperatorTable` takes typed facts (membership, pause, ring, answer, hang-up, wrap-up
end, a QueueStatus snapshot) with Asterisk's time and returns the :class:`Transition` each one caused, if
any. The component (``queues.operators``) feeds it AMI events and stores the transitions.

States: ``offline`` (in no queue), ``ready``, ``ringing``, ``on_call``, ``wrapup`` (timed, after a call),
``paused`` (with a reason). A pause that arrives during a call is *pending*: the state stays ``on_call``
with ``pause_pending`` until the call ends, then becomes ``paused`` (Asterisk already offers the operator
no new call; the call in progress goes on).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum


class State(StrEnum):
    OFFLINE = "offline"
    READY = "ready"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAPUP = "wrapup"
    PAUSED = "paused"


class Activity(StrEnum):
    IDLE = "idle"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAPUP = "wrapup"


@dataclass(frozen=True, slots=True)
class Membership:
    queue: str
    penalty: int = 0
    paused: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class MemberSnapshot:
    """One operator as Asterisk's QueueStatus lists them (one entry per queue they are in)."""

    operator: str
    queue: str
    penalty: int
    paused: bool
    reason: str
    in_call: bool
    device_status: int  # AST_DEVICE_*: 1 not in use, 2 in use, 3 busy, 6 ringing, 7 ring+in use, 8 on hold


DEVICE_IN_USE = frozenset({2, 3, 7, 8})
DEVICE_RINGING = frozenset({6, 7})
DEVICE_FREE = frozenset({1, 4, 5})  # not in use, invalid, unavailable: no ring and no call on the device


@dataclass(frozen=True, slots=True)
class OperatorView:
    """An operator's state as shown (console, CLI, database)."""

    operator: str
    state: State
    since: datetime
    reason: str = ""
    pause_pending: bool = False
    queues: tuple[str, ...] = ()
    caller: str = ""  # uniqueid of the caller being rung/served
    wrapup_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    operator: str
    at: datetime
    old: State
    new: State
    reason: str
    cause: str  # the event or action that caused it (QueueMemberPause, AgentConnect, reconcile...)
    view: OperatorView


@dataclass(frozen=True, slots=True)
class Drift:
    """The engine's table disagreed with Asterisk; Asterisk's view was adopted."""

    operator: str
    what: str
    engine: str
    asterisk: str


@dataclass
class _Operator:
    name: str
    since: datetime
    memberships: dict[str, Membership] = field(default_factory=dict)
    activity: Activity = Activity.IDLE
    caller: str = ""
    wrapup_until: datetime | None = None
    state: State = State.OFFLINE
    reason: str = ""
    pending: bool = False
    shown_queues: tuple[str, ...] = ()

    @property
    def pause_pending(self) -> bool:
        return self.paused and self.activity in (Activity.ON_CALL, Activity.RINGING)

    @property
    def paused(self) -> bool:
        return any(m.paused for m in self.memberships.values())

    @property
    def pause_reason(self) -> str:
        return next((m.reason for m in self.memberships.values() if m.paused and m.reason), "")

    def derive(self) -> tuple[State, str]:
        if not self.memberships:
            return State.OFFLINE, ""
        if self.activity is Activity.ON_CALL:
            return State.ON_CALL, ""
        if self.activity is Activity.RINGING:
            return State.RINGING, ""
        if self.paused:
            return State.PAUSED, self.pause_reason
        if self.activity is Activity.WRAPUP:
            return State.WRAPUP, ""
        return State.READY, ""

    def view(self) -> OperatorView:
        return OperatorView(
            operator=self.name, state=self.state, since=self.since, reason=self.reason,
            pause_pending=self.pause_pending,
            queues=tuple(sorted(self.memberships)), caller=self.caller,
            wrapup_until=self.wrapup_until if self.activity is Activity.WRAPUP else None)


class OperatorTable:
    """Every operator's state. ``wrapup`` maps a queue to its wrap-up time (site file ``wrapup_s``)."""

    def __init__(self, operators: Iterable[str], *, wrapup: Mapping[str, float] | None = None,
                 start: datetime) -> None:
        self._ops: dict[str, _Operator] = {name: _Operator(name, start) for name in operators}
        self.wrapup = dict(wrapup or {})

    # -- reading ---------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(self._ops)

    def known(self, name: str) -> bool:
        return name in self._ops

    def view(self, name: str) -> OperatorView:
        return self._ops[name].view()

    def views(self) -> list[OperatorView]:
        return [self._ops[name].view() for name in sorted(self._ops)]

    def penalty(self, name: str, queue: str) -> int | None:
        op = self._ops.get(name)
        member = op.memberships.get(queue) if op else None
        return member.penalty if member else None

    def learn(self, operators: Iterable[str], wrapup: Mapping[str, float], at: datetime) -> list[str]:
        """A newly applied site: operators it adds are tracked from ``at`` (logged out); its wrap-up
        times replace the old ones. Operators it no longer lists stay tracked (they may be logged in).
        Returns the names added."""
        added = [name for name in operators if name not in self._ops]
        for name in added:
            self._ops[name] = _Operator(name, at)
        self.wrapup = dict(wrapup)
        return added

    def restore(self, view: OperatorView) -> None:
        """Start from a stored view (engine restart); the first reconcile corrects it against Asterisk."""
        op = self._get(view.operator, view.since)
        op.state, op.reason, op.since, op.pending = view.state, view.reason, view.since, view.pause_pending
        op.shown_queues = view.queues
        op.memberships = {q: Membership(q, paused=view.state is State.PAUSED or view.pause_pending,
                                        reason=view.reason) for q in view.queues}
        op.activity = {State.ON_CALL: Activity.ON_CALL, State.RINGING: Activity.RINGING,
                       State.WRAPUP: Activity.WRAPUP}.get(view.state, Activity.IDLE)
        op.caller, op.wrapup_until = view.caller, view.wrapup_until

    # -- facts -----------------------------------------------------------------------------------------
    def member_added(self, name: str, at: datetime, member: Membership) -> Transition | None:
        op = self._get(name, at)
        op.memberships[member.queue] = member
        return self._settle(op, at, "QueueMemberAdded")

    def member_removed(self, name: str, at: datetime, queue: str) -> Transition | None:
        op = self._get(name, at)
        op.memberships.pop(queue, None)
        if not op.memberships:
            op.activity, op.caller, op.wrapup_until = Activity.IDLE, "", None
        return self._settle(op, at, "QueueMemberRemoved")

    def pause(self, name: str, at: datetime, queue: str, paused: bool, reason: str) -> Transition | None:
        op = self._get(name, at)
        queues = [queue] if queue in op.memberships else list(op.memberships)
        for q in queues:
            op.memberships[q] = replace(op.memberships[q], paused=paused, reason=reason if paused else "")
        return self._settle(op, at, "QueueMemberPause")

    def ringing(self, name: str, at: datetime, caller: str) -> Transition | None:
        op = self._get(name, at)
        if op.activity is not Activity.ON_CALL:
            op.activity, op.caller = Activity.RINGING, caller
        return self._settle(op, at, "AgentCalled")

    def ring_ended(self, name: str, at: datetime, caller: str, cause: str) -> Transition | None:
        """No answer (AgentRingNoAnswer), or the caller left/was taken while this operator rang."""
        op = self._get(name, at)
        if op.activity is Activity.RINGING and (not caller or op.caller == caller):
            op.activity, op.caller = Activity.IDLE, ""
        return self._settle(op, at, cause)

    def caller_gone(self, at: datetime, caller: str, cause: str) -> list[Transition]:
        ringing = [op.name for op in self._ops.values()
                   if op.activity is Activity.RINGING and op.caller == caller]
        return [t for name in ringing if (t := self.ring_ended(name, at, caller, cause)) is not None]

    def connected(self, name: str, at: datetime, caller: str) -> Transition | None:
        op = self._get(name, at)
        op.activity, op.caller, op.wrapup_until = Activity.ON_CALL, caller, None
        return self._settle(op, at, "AgentConnect")

    def completed(self, name: str, at: datetime, queue: str) -> Transition | None:
        op = self._get(name, at)
        wrapup = self.wrapup.get(queue, 0.0)
        if wrapup > 0:
            op.activity, op.wrapup_until = Activity.WRAPUP, at + timedelta(seconds=wrapup)
        else:
            op.activity, op.wrapup_until = Activity.IDLE, None
        op.caller = ""
        return self._settle(op, at, "AgentComplete")

    def due_wrapups(self, now: datetime) -> list[Transition]:
        """Wrap-ups that have run out by ``now``; each transition is stamped with its end."""
        out = []
        for op in self._ops.values():
            if op.activity is Activity.WRAPUP and op.wrapup_until is not None and op.wrapup_until <= now:
                end = op.wrapup_until
                op.activity, op.wrapup_until = Activity.IDLE, None
                if (t := self._settle(op, end, "wrapup_end")) is not None:
                    out.append(t)
        return out

    def next_wrapup_end(self) -> datetime | None:
        ends = [op.wrapup_until for op in self._ops.values()
                if op.activity is Activity.WRAPUP and op.wrapup_until is not None]
        return min(ends) if ends else None

    def device(self, name: str, at: datetime, status: int, in_call: bool) -> Transition | None:
        """QueueMemberStatus: a ring that ended without an agent event (caller hung up) is cleared."""
        op = self._get(name, at)
        # only a free device ends a ring: "in use" is the answer, which AgentConnect reports
        if op.activity is Activity.RINGING and status in DEVICE_FREE and not in_call:
            op.activity, op.caller = Activity.IDLE, ""
        return self._settle(op, at, "QueueMemberStatus")

    def reconcile(self, at: datetime, members: Iterable[MemberSnapshot], *,
                  skip: Iterable[str] = ()) -> tuple[list[Drift], list[Transition]]:
        """Adopt Asterisk's membership, pause and call state where the table differs (``skip``: operators
        with events newer than the snapshot). Returns the drifts found and the transitions they caused."""
        seen: dict[str, list[MemberSnapshot]] = {}
        for m in members:
            seen.setdefault(m.operator, []).append(m)
        drifts: list[Drift] = []
        transitions: list[Transition] = []
        skipped = set(skip)
        for name in sorted(set(self._ops) | set(seen)):
            if name in skipped:
                continue
            op = self._get(name, at)
            snaps = {s.queue: s for s in seen.get(name, [])}
            asterisk = {q: Membership(q, s.penalty, s.paused, s.reason if s.paused else "")
                        for q, s in snaps.items()}
            if set(asterisk) != set(op.memberships):
                drifts.append(Drift(name, "queues", ",".join(sorted(op.memberships)) or "-",
                                    ",".join(sorted(asterisk)) or "-"))
            elif any(asterisk[q].paused != op.memberships[q].paused for q in asterisk):
                now_paused = any(m.paused for m in asterisk.values())
                drifts.append(Drift(name, "paused", str(op.paused), str(now_paused)))
            op.memberships = asterisk
            in_call = any(s.in_call or s.device_status in DEVICE_IN_USE for s in snaps.values())
            ringing = any(s.device_status in DEVICE_RINGING for s in snaps.values())
            if op.activity is Activity.ON_CALL and not in_call:
                drifts.append(Drift(name, "call", "on_call", "not in a call"))
                op.activity, op.caller = Activity.IDLE, ""
            elif op.activity in (Activity.IDLE, Activity.WRAPUP) and any(s.in_call for s in snaps.values()):
                drifts.append(Drift(name, "call", op.activity.value, "in a queue call"))
                op.activity, op.wrapup_until = Activity.ON_CALL, None
            elif op.activity is Activity.RINGING and not ringing:
                op.activity, op.caller = Activity.IDLE, ""
            if not op.memberships:
                op.activity, op.caller, op.wrapup_until = Activity.IDLE, "", None
            if (t := self._settle(op, at, "reconcile")) is not None:
                transitions.append(t)
        return drifts, transitions

    # -- internals -------------------------------------------------------------------------------------
    def _get(self, name: str, at: datetime) -> _Operator:
        op = self._ops.get(name)
        if op is None:  # a member the site file does not list (added by hand): tracked all the same
            op = self._ops[name] = _Operator(name, at)
        return op

    def _settle(self, op: _Operator, at: datetime, cause: str) -> Transition | None:
        state, reason = op.derive()
        pending = op.pause_pending
        queues = tuple(sorted(op.memberships))
        if state is op.state and reason == op.reason and pending == op.pending and queues == op.shown_queues:
            return None
        old = op.state
        if state is not op.state or reason != op.reason:
            op.since = at
        op.state, op.reason, op.pending, op.shown_queues = state, reason, pending, queues
        return Transition(op.name, at, old, state, reason, cause, op.view())
