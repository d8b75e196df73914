"""Run the IVR tree on one call over an :class:`ivr.channel.AgiChannel`.

Each step goes into the AMI stream as ``UserEvent(SiagaIvr, Step, Node, Digit, ...)`` (contract in
pbx-config/README.md), so the call tracker sees it with Asterisk's own Timestamp. The decision goes back
to the dial plan in channel variables, ``SIAGA_IVR_ACTION`` last (the commit point): a session that dies
before setting it leaves the dial plan to fail safe into the emergency queue.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from ivr.agi import user_event
from ivr.channel import AgiChannel, CommandFailed
from ivr.rules import CheckedTree
from ivr.tree import Action, ActionKind, Node, Step

log = structlog.get_logger("ivr.session")

QUEUE_OF = {ActionKind.EMERGENCY: "emergency", ActionKind.NONEMERGENCY: "nonemergency"}


@dataclass(frozen=True)
class Timing:
    command_timeout_s: float = 5.0  # any command but GET DATA
    slack_s: float = 5.0  # added to a GET DATA's own prompt + timeout before we give up on Asterisk
    margin_s: float = 5.0  # added to the tree's worst path for TIMEOUT(absolute) on the channel


@dataclass(frozen=True)
class Decision:
    node: str
    action: Action


class IvrSession:
    def __init__(self, checked: CheckedTree, channel: AgiChannel, *, sounds: str,
                 timing: Timing = Timing()) -> None:
        self.checked, self.tree = checked, checked.tree
        self.channel = channel
        self.sounds = sounds.rstrip("/")
        self.timing = timing

    def sound(self, prompt: str) -> str:
        base = f"{self.sounds}/siaga112" if self.sounds else "siaga112"
        return f"{base}/{self.tree.name}/{prompt}"

    @property
    def deadline_s(self) -> float:
        """The channel's own bound on this IVR: the tree's worst path plus a margin."""
        return self.checked.max_seconds + self.timing.margin_s

    async def run(self) -> Decision | None:
        """Walk the tree; return the decision, or None when the caller hung up."""
        # First command: replace the dial plan's short connect bound with the whole IVR's bound.
        await self._set("TIMEOUT(absolute)", f"{self.deadline_s:.0f}")
        name = self.tree.first
        while True:
            node = self.tree.nodes[name]
            await self._event(Step.ENTERED, name)
            outcome = await self._menu(name, node)
            if outcome is None:
                return None
            if isinstance(outcome, str):
                name = outcome
                continue
            await self._decide(name, outcome)
            return Decision(name, outcome)

    async def _menu(self, name: str, node: Node) -> str | Action | None:
        """One menu with its retries: the next node's name, an action, or None (hung up)."""
        for attempt in range(node.retries + 1):
            last = attempt == node.retries
            digit = await self._get_digit(node)
            if digit is None:
                return None
            if digit == "":
                await self._event(Step.TIMEOUT, name)
                if last:
                    return node.no_input
                continue
            choice = node.choices.get(digit)
            if choice is not None:
                await self._event(Step.DIGIT, name, digit)
                return choice.goto if choice.goto is not None else choice.as_action()
            await self._event(Step.INVALID, name, digit)
            if last:
                return node.invalid
            if node.invalid_prompt:
                await self.channel.command("STREAM FILE", self.sound(node.invalid_prompt), "",
                                           timeout=self._play_timeout(node.invalid_prompt, 0.0))
        return node.no_input  # unreachable: the last attempt returns above

    def _play_timeout(self, prompt: str, wait_s: float) -> float:
        return self.checked.durations[prompt] + wait_s + self.timing.slack_s

    async def _get_digit(self, node: Node) -> str | None:
        """Play the prompt (any key interrupts it: barge-in) and wait for one key. "" = no key."""
        reply = await self.channel.command(
            "GET DATA", self.sound(node.prompt), str(int(node.timeout_s * 1000)), "1",
            timeout=self._play_timeout(node.prompt, node.timeout_s))
        if reply.result == "-1" or self.channel.hung_up:
            return None
        return reply.result[:1]

    async def _decide(self, name: str, action: Action) -> None:
        if action.category is not None:
            await self._set("__SIAGA_CATEGORY", action.category.value)
        if action.operator is not None:
            await self._set("SIAGA_IVR_OPERATOR", action.operator)
        if action.message is not None:
            await self._set("SIAGA_IVR_MESSAGE", self.sound(action.message))
        await self._set("SIAGA_IVR_ACTION", action.action.value)
        headers = {"Action": action.action.value, "Queue": QUEUE_OF.get(action.action, ""),
                   "Category": action.category.value if action.category else ""}
        await self._event(Step.DECISION, name, "", **headers)

    async def _set(self, variable: str, value: str) -> None:
        await self.channel.command("SET VARIABLE", variable, value, timeout=self.timing.command_timeout_s)

    async def _event(self, step: Step, node: str, digit: str = "", **extra: str) -> None:
        log.info("ivr.step", step=step.value, node=node, digit=digit, **extra)
        app, body = user_event("SiagaIvr", {"Step": step.value, "Node": node, "Digit": digit, **extra})
        try:
            await self.channel.command("EXEC", app, body, timeout=self.timing.command_timeout_s)
        except CommandFailed as exc:  # visibility must never cost the caller the route
            log.warning("ivr.step_event_failed", step=step.value, node=node, error=str(exc))
