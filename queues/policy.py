"""Who joins which queue with which penalty (built from the site file by callflow/policies.py).

The emergency queue's overflow (pbx-config/queuerules.conf) widens a waiting caller's ``QUEUE_MAX_PENALTY``
from 0 to 10 after ``overflow_s`` and to 20 after ``supervisors_s``. So at log-in an operator joins:

- each queue that lists them, with penalty 0;
- the emergency queue with penalty 10 when it does not list them and overflow is on (every logged-in
  operator is part of the wider group), or 20 when they are one of its ``supervisors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The penalty tiers: an operator's own queues, the emergency queue's overflow group, its supervisors.
# The site file's rendering (queuerules.conf's penaltychange lines) and the queue policy built from the
# site (callflow/policies.py) both use these.
PENALTY_OWN, PENALTY_OVERFLOW, PENALTY_SUPERVISOR = 0, 10, 20

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
    """Operators, their queue memberships and each queue's wrap-up (callflow.policies.queue_policy)."""

    operators: tuple[str, ...]
    members: dict[str, dict[str, int]] = field(default_factory=dict)  # operator -> queue -> penalty
    wrapup: dict[str, float] = field(default_factory=dict)  # queue -> seconds

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
