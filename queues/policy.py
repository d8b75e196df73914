"""Who joins which queue with which penalty: the site file's queue lists, read once.

The emergency queue's overflow (pbx-config/queuerules.conf) widens a waiting caller's ``QUEUE_MAX_PENALTY``
from 0 to 10 after ``overflow_s`` and to 20 after ``supervisors_s``. So at log-in an operator joins:

- each queue that lists them, with penalty 0;
- the emergency queue with penalty 10 when it does not list them and overflow is on (every logged-in
  operator is part of the wider group), or 20 when they are one of its ``supervisors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callflow.siteconfig._model import Site
from callflow.siteconfig._render import PENALTY_OVERFLOW, PENALTY_OWN, PENALTY_SUPERVISOR

QUEUES = ("emergency", "nonemergency")
EMERGENCY = "emergency"
OVERFLOW_TIERS = {PENALTY_OVERFLOW: "operators", PENALTY_SUPERVISOR: "supervisors"}


class UnknownOperator(LookupError):
    """A name the site file does not list; the message names it and lists the known ones."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown operator {name!r}: the site file lists "
                         f"{', '.join(known) or '(no operators)'}; use one of those names or add it under "
                         "[[operators]] in the site file")


@dataclass(frozen=True)
class QueuePolicy:
    operators: tuple[str, ...]
    members: dict[str, dict[str, int]] = field(default_factory=dict)  # operator -> queue -> penalty
    wrapup: dict[str, float] = field(default_factory=dict)  # queue -> seconds

    @classmethod
    def from_site(cls, site: Site) -> QueuePolicy:
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
        return cls(operators=tuple(op.name for op in site.operators), members=members,
                   wrapup={q: float(queue.wrapup_s) for q, queue in queues.items()})

    def memberships(self, name: str) -> dict[str, int]:
        """Queue -> penalty for ``name``; raises :class:`UnknownOperator`."""
        if name not in self.members:
            raise UnknownOperator(name, sorted(self.operators))
        return dict(self.members[name])


def interface(name: str) -> str:
    return f"PJSIP/{name}"


def operator_of(interface_or_name: str) -> str:
    """``PJSIP/op1`` -> ``op1`` (a member name without technology is returned as is)."""
    return interface_or_name.split("/", 1)[1] if "/" in interface_or_name else interface_or_name
