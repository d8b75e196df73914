"""Operator state shared by two nodes' queues, as pure rules (no I/O, no clock).

Each node's Asterisk runs its own queues. Without help, node B neither knows that op1 logged in on node A
(B's queue lacks the member), nor that op1 is on a call through A (B sees op1's phone idle and rings it).
Both facts live in the shared store, and each engine mirrors them to its own Asterisk:

- **Who is logged in, and paused**: the *roster*. A change an operator makes on one node (log in/out,
  pause/resume: a queue member event the mirror did not cause) becomes the roster's next version; every
  node brings its own Asterisk's members to the newest version (QueueAdd / QueueRemove / QueuePause).
  Events the mirror caused itself are expected and never become versions (no ping-pong between nodes).
- **On a call / ringing**: the members' *state interface* is a custom device state,
  ``Custom:siaga-<operator>``, instead of the phone itself. Each node reports its own view of the phone
  (``PJSIP/<operator>`` device state) to the store; each engine sets the custom state on its Asterisk to the
  busiest of all nodes' views. An operator on a call through node A is then "in use" in node B's queues
  too, and B's queue (``ringinuse = no``) does not ring them. Why a device state and not a pause: a pause
  would show as the operator's own pause (console, reports, the operator state table) and fight with real
  pauses; the device state is exactly what Asterisk's queue already asks before ringing a member.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

STATE_PREFIX = "Custom:siaga-"


def state_interface(operator: str) -> str:
    """The member's state interface in a two-node centre (QueueAdd ``StateInterface``)."""
    return f"{STATE_PREFIX}{operator}"


class Busy(StrEnum):
    """A phone's device state as the queues care about it (``DEVICE_STATE()`` values)."""

    IDLE = "NOT_INUSE"
    RINGING = "RINGING"
    IN_USE = "INUSE"


_RANK = {Busy.IDLE: 0, Busy.RINGING: 1, Busy.IN_USE: 2}
# Asterisk's device state names (DeviceStateChange ``State``) -> what the queues care about
_STATES = {"NOT_INUSE": Busy.IDLE, "UNAVAILABLE": Busy.IDLE, "UNKNOWN": Busy.IDLE, "INVALID": Busy.IDLE,
           "INUSE": Busy.IN_USE, "BUSY": Busy.IN_USE, "ONHOLD": Busy.IN_USE, "RINGING": Busy.RINGING,
           "RINGINUSE": Busy.IN_USE}


def busy_of(device_state: str) -> Busy:
    return _STATES.get(device_state.strip().upper(), Busy.IDLE)


def combined(views: Iterable[Busy]) -> Busy:
    """The busiest view of all nodes: in use anywhere is in use everywhere."""
    return max(views, key=_RANK.__getitem__, default=Busy.IDLE)


@dataclass(frozen=True, slots=True)
class Roster:
    """An operator's log-in and pause, as the newest change on any node left them."""

    operator: str
    queues: Mapping[str, int]  # queue -> penalty; empty: logged out
    paused: bool = False
    reason: str = ""
    version: int = 0
    node: str = ""  # where the change was made
    changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Member:
    """The operator in one queue of this node's Asterisk."""

    queue: str
    penalty: int
    paused: bool
    reason: str
    state_interface: str
    since: datetime | None = None  # Asterisk's LoginTime / LastPause, whichever is later (QueueStatus)


def node_is_newer(roster: Roster | None, members: Mapping[str, Member]) -> bool:
    """At a (re)connect, this node's Asterisk may hold a log-in or pause made while its engine was away
    (``siaga112 operator`` talks to Asterisk itself). When its members differ from the roster and Asterisk
    says they changed after the roster did, they are the operator's newest word: published, not undone.
    (A log-out leaves no time behind: the roster's member is added back. The rarer mistake, and the safer
    one for a 112 floor: an operator too many rather than one too few.)"""
    if not members:
        return False
    if roster is None or roster.changed_at is None:
        return True
    return any(m.since is not None and m.since > roster.changed_at for m in members.values())


@dataclass(frozen=True, slots=True)
class Action:
    """An AMI action (name, headers) bringing this node's Asterisk to the roster."""

    name: str
    headers: tuple[tuple[str, str], ...]

    def expects(self) -> tuple[str, str, str]:
        """The queue member event this action causes: (event, operator interface, queue)."""
        h = dict(self.headers)
        event = {"QueueAdd": "QueueMemberAdded", "QueueRemove": "QueueMemberRemoved",
                 "QueuePause": "QueueMemberPause"}[self.name]
        return event, h.get("Interface", ""), h.get("Queue", "")


def roster_actions(roster: Roster, members: Mapping[str, Member], interface: str) -> list[Action]:
    """What this node must do so that its queues hold ``roster``: members added (with the shared state
    interface), removed, paused or resumed. Nothing when they already agree."""
    out: list[Action] = []
    wanted = roster.queues
    for queue in sorted(set(members) - set(wanted)):
        out.append(Action("QueueRemove", (("Queue", queue), ("Interface", interface))))
    for queue in sorted(wanted):
        member = members.get(queue)
        if member is None:
            out.append(Action("QueueAdd", (
                ("Queue", queue), ("Interface", interface), ("MemberName", roster.operator),
                ("Penalty", str(wanted[queue])), ("Paused", "true" if roster.paused else "false"),
                ("Reason", roster.reason if roster.paused else ""),
                ("StateInterface", state_interface(roster.operator)))))
        elif member.paused != roster.paused or (roster.paused and member.reason != roster.reason):
            out.append(Action("QueuePause", (
                ("Queue", queue), ("Interface", interface), ("Paused", "true" if roster.paused else "false"),
                ("Reason", roster.reason if roster.paused else ""))))
    return out
