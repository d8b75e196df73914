"""Run the IVR tree on one call over an :class:`ivr.channel.AgiChannel`.

Each step goes into the AMI stream as ``UserEvent(SiagaIvr, Step, Node, Digit, ...)`` (contract in
pbx-config/README.md), so the call tracker sees it with Asterisk's own Timestamp. The session asks the
dial plan subroutine ``siaga-ivr-step`` (AGI ``GOSUB``) to emit the events and set the decision's
variables, one round trip per step: after the caller's key only one round trip stands between the key and
the queue. ``SIAGA_IVR_ACTION`` is set last (the commit point): a session that dies before it leaves the
dial plan to fail safe into the emergency queue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from ivr.channel import AgiChannel, CommandFailed
from ivr.rules import CheckedTree
from ivr.silence import PROBE_ANSWER, SPEECH_VAR, SPOKE_VAR, probe_due, speech_seconds
from ivr.tree import Action, ActionKind, Node, Step

log = structlog.get_logger("ivr.session")

QUEUE_OF = {ActionKind.EMERGENCY: "emergency", ActionKind.NONEMERGENCY: "nonemergency"}
STEP_CONTEXT = "siaga-ivr-step"  # pbx-config/extensions.conf


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
        self.keys = ""  # every key the caller pressed in this IVR (any key: not a silent caller)
        self.probed = False  # the silent-caller probe was played (once per call at most)
        self._entered = time.monotonic()

    def sound(self, prompt: str) -> str:
        base = f"{self.sounds}/siaga112" if self.sounds else "siaga112"
        return f"{base}/{self.tree.name}/{prompt}"

    @property
    def deadline_s(self) -> float:
        """The channel's own bound on this IVR: the tree's worst path plus a margin."""
        return self.checked.max_seconds + self.timing.margin_s

    async def run(self) -> Decision | None:
        """Walk the tree; return the decision, or None when the caller hung up."""
        name = self.tree.first
        self._entered = time.monotonic()
        # First step: replace the dial plan's short connect bound with the whole IVR's bound.
        await self._gosub("start", f"{self.deadline_s:.0f}", name, strict=True)
        log.info("ivr.step", step=Step.ENTERED.value, node=name)
        while True:
            outcome = await self._menu(name, self.tree.nodes[name])
            if outcome is None or isinstance(outcome, Decision):
                return outcome
            name = outcome

    async def _menu(self, name: str, node: Node) -> str | Decision | None:
        """One menu with its retries: the next node's name, the decision, or None (hung up)."""
        for attempt in range(node.retries + 1):
            last = attempt == node.retries
            digit = await self._get_digit(node)
            if digit is None:
                return None
            self.keys += digit
            if digit == "" and await self._probe_wanted(node, last):
                heard = await self._probe(name)
                if heard is None or isinstance(heard, Decision):
                    return heard
                digit = heard[:1]  # another key in the probe is the caller's answer to this menu
            if digit == "":
                if last:
                    return await self._decide(Step.TIMEOUT, name, "", node.no_input)
                await self._step(Step.TIMEOUT, name, "")
                continue
            choice = node.choices.get(digit)
            if choice is not None:
                if choice.goto is not None:
                    await self._step(Step.DIGIT, name, digit, choice.goto)
                    return choice.goto
                action = choice.as_action()
                assert action is not None  # noqa: S101 - a Choice is a goto or an action (validated)
                return await self._decide(Step.DIGIT, name, digit, action)
            if last:
                return await self._decide(Step.INVALID, name, digit, node.invalid)
            await self._step(Step.INVALID, name, digit)
            if node.invalid_prompt:
                await self.channel.command("STREAM FILE", self.sound(node.invalid_prompt), "",
                                           timeout=self._play_timeout(node.invalid_prompt, 0.0))
        return None  # unreachable: the last attempt returns above

    async def _probe_wanted(self, node: Node, last: bool) -> bool:
        """At a no-input where no input means the emergency queue: is this a silent caller due the probe?"""
        silent = self.tree.silent
        if silent is None or self.probed or self.keys or node.no_input.action is not ActionKind.EMERGENCY:
            return False
        spoke = await self._variable(SPOKE_VAR) == "1"
        return probe_due(spoke=spoke, keys=self.keys, probed=self.probed,
                         elapsed_s=time.monotonic() - self._entered, after_s=silent.after_s, last_chance=last)

    async def _probe(self, name: str) -> Decision | str | None:
        """Play the probe and wait for 5 twice: the decision (55), the keys heard otherwise ("" for
        none: the menu goes on as before), or None (hung up)."""
        silent = self.tree.silent
        assert silent is not None  # noqa: S101 - _probe_wanted checked it
        self.probed = True
        speech = speech_seconds(await self._variable(SPEECH_VAR))
        log.info("ivr.silent_probe", node=name, speech_s=speech)
        await self._gosub("silent", "silent", speech, "", name, strict=False)
        # AGI's GET DATA plays one file (no "a&b" list: Asterisk fails it as a missing file), so the
        # prompts before the last are STREAM FILE with every key as escape digit (a key ends the prompt
        # and counts), and GET DATA plays the last one and waits for the rest of the keys
        heard = ""
        for prompt in silent.prompts[:-1]:
            reply = await self.channel.command("STREAM FILE", self.sound(prompt), "0123456789*#",
                                               timeout=self._play_timeout(prompt, 0.0))
            if reply.result == "-1" or self.channel.hung_up:
                return None
            code = int(reply.result) if reply.result.isdigit() else 0
            if code > 0:
                heard = chr(code)
                break
        last = silent.prompts[-1]
        reply = await self.channel.command("GET DATA", self.sound(last), str(int(silent.wait_s * 1000)),
                                           str(len(PROBE_ANSWER) - len(heard)),
                                           timeout=self._play_timeout(last, silent.wait_s))
        if reply.result == "-1" or self.channel.hung_up:
            return None
        if reply.result.isdigit() or (reply.result and set(reply.result) <= set("*#")):
            heard += reply.result
        self.keys += heard
        if heard != PROBE_ANSWER:
            log.info("ivr.silent_probe_unanswered", node=name, keys=heard or None)
            return ""
        log.info("ivr.silent_caller", node=name, speech_s=speech)
        await self._gosub("silent", "silent_caller", speech, heard, name, strict=False)
        return await self._decide(Step.DIGIT, name, heard, Action(action=ActionKind.EMERGENCY))

    async def _variable(self, variable: str) -> str:
        """A channel variable's value ("" when unset or when Asterisk would not say)."""
        try:
            reply = await self.channel.command("GET VARIABLE", variable,
                                               timeout=self.timing.command_timeout_s)
        except CommandFailed:
            return ""
        return reply.data if reply.result == "1" else ""

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

    async def _step(self, step: Step, node: str, digit: str, entered: str = "") -> None:
        log.info("ivr.step", step=step.value, node=node, digit=digit, entered=entered or None)
        await self._gosub("step", step.value, node, digit, entered, strict=False)

    async def _decide(self, step: Step, node: str, digit: str, action: Action) -> Decision:
        category = action.category.value if action.category else ""
        queue = QUEUE_OF.get(action.action, "")
        log.info("ivr.step", step=step.value, node=node, digit=digit)
        log.info("ivr.step", step=Step.DECISION.value, node=node, action=action.action.value, queue=queue,
                 category=category)
        message = self.sound(action.message) if action.message else ""
        await self._gosub("decide", step.value, node, digit, action.action.value, queue, category,
                          action.operator or "", message, strict=True, last=True)
        return Decision(node, action)

    async def _gosub(self, exten: str, *args: str, strict: bool, last: bool = False) -> None:
        """Run ``siaga-ivr-step,<exten>,1(args)`` on the channel. ``strict``: a failure ends the session
        (no decision: the dial plan fails safe); otherwise it costs only visibility and is logged."""
        for arg in args:
            if "," in arg:
                raise ValueError(f"Gosub argument {arg!r} contains a comma")
        try:
            reply = await self.channel.command("GOSUB", STEP_CONTEXT, exten, "1", ",".join(args),
                                               timeout=self.timing.command_timeout_s, last=last)
            if reply.result == "-1":
                raise CommandFailed(f"GOSUB {exten}", reply)
        except CommandFailed as exc:
            if strict:
                raise
            log.warning("ivr.step_event_failed", step=exten, error=str(exc))
