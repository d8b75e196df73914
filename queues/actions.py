"""Operator commands over AMI: log in, log out, pause, resume (QueueAdd / QueueRemove / QueuePause).

Used by ``siaga112 operator`` and the console provider. They only ask Asterisk; the engine's state table
changes when Asterisk's events confirm the change, so an action Asterisk refuses leaves it unchanged and
the refusal (Asterisk's own text) is raised as :class:`OperatorActionError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from callflow.ami.codec import AmiMessage
from callflow.ami.errors import ActionFailed, AmiError
from queues.policy import QueuePolicy, interface


class ActionSender(Protocol):
    async def action(self, name: str, headers: Mapping[str, str | int] | None = None, *,
                     timeout: float | None = None,
                     variables: Mapping[str, str] | None = None) -> AmiMessage: ...


class OperatorActionError(Exception):
    """Asterisk refused (or could not be asked); the message says what, for whom, and what to do."""


@dataclass(frozen=True)
class ActionResult:
    operator: str
    done: list[str]
    notes: list[str]


async def login(ami: ActionSender, policy: QueuePolicy, name: str, *,
                state_interface: str | None = None) -> ActionResult:
    """Add ``name`` to their queues. ``state_interface``: the device state the queues ask before ringing
    them, when not the phone itself (two nodes: ``Custom:siaga-<name>``, kept by queues/mirror)."""
    queues = policy.memberships(name)
    if not queues:
        raise OperatorActionError(f"operator {name} is in no queue in the site file: add them to "
                                  "[queues.emergency] or [queues.nonemergency] operators")
    done, notes = [], []
    for queue, penalty in sorted(queues.items()):
        try:
            headers: dict[str, str | int] = {"Queue": queue, "Interface": interface(name), "MemberName": name,
                                             "Penalty": penalty, "Paused": "false"}
            if state_interface:
                headers["StateInterface"] = state_interface
            await ami.action("QueueAdd", headers)
            done.append(f"{queue} (penalty {penalty})")
        except ActionFailed as exc:
            if "already" in exc.message.lower():
                notes.append(f"already in {queue}")
                continue
            raise OperatorActionError(_refused("QueueAdd", name, queue, exc)) from exc
        except AmiError as exc:
            raise OperatorActionError(_unreachable(name, exc)) from exc
    return ActionResult(name, done, notes)


async def logout(ami: ActionSender, policy: QueuePolicy, name: str) -> ActionResult:
    queues = policy.memberships(name)
    done, notes = [], []
    for queue in sorted(queues):
        try:
            await ami.action("QueueRemove", {"Queue": queue, "Interface": interface(name)})
            done.append(queue)
        except ActionFailed as exc:
            if "not there" in exc.message.lower() or "not found" in exc.message.lower():
                notes.append(f"not in {queue}")
                continue
            raise OperatorActionError(_refused("QueueRemove", name, queue, exc)) from exc
        except AmiError as exc:
            raise OperatorActionError(_unreachable(name, exc)) from exc
    if not done:
        raise OperatorActionError(f"operator {name} is not logged in (in no queue); nothing to log out")
    return ActionResult(name, done, notes)


async def set_paused(ami: ActionSender, policy: QueuePolicy, name: str, paused: bool,
                     reason: str = "") -> ActionResult:
    policy.memberships(name)  # unknown operator -> UnknownOperator
    if paused and not reason.strip():
        raise OperatorActionError(f"a pause needs a reason (e.g. break, briefing): "
                                  f"siaga112 operator pause {name} --reason break")
    headers: dict[str, str | int] = {"Interface": interface(name), "Paused": "true" if paused else "false"}
    if paused:
        headers["Reason"] = " ".join(reason.split())
    try:
        await ami.action("QueuePause", headers)
    except ActionFailed as exc:
        raise OperatorActionError(_refused("QueuePause", name, "all queues", exc)) from exc
    except AmiError as exc:
        raise OperatorActionError(_unreachable(name, exc)) from exc
    return ActionResult(name, ["paused" if paused else "resumed"], [])


def _refused(action: str, name: str, queue: str, exc: ActionFailed) -> str:
    hint = ("log the operator in first: siaga112 operator login " + name
            if "not found" in exc.message.lower() or "not there" in exc.message.lower()
            else "check `siaga112 operator list` and Asterisk's log")
    return f"Asterisk refused {action} for operator {name} ({queue}): {exc.message}; {hint}"


def _unreachable(name: str, exc: AmiError) -> str:
    return (f"could not reach Asterisk for operator {name}: {exc}; is Asterisk running and the AMI "
            "address right (--lab INSTANCE or the settings file)?")
