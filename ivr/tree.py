"""The IVR tree as data: prompts, menu nodes, choices and actions (pydantic models of ``ivr.toml``).

Shape checks (digits, known categories, a choice is either a menu or an action) live here; the safety
rules that need the whole tree (emergency first, fail-safe no-input/invalid, bounded duration) live in
:mod:`ivr.rules`, which builds these models from a file and names file:line when it refuses one.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

DIGITS = frozenset("0123456789*#")
_NAME = re.compile(r"^[a-z0-9_-]{1,40}$")


class ActionKind(StrEnum):
    EMERGENCY = "emergency"  # the emergency queue
    NONEMERGENCY = "nonemergency"  # the non-emergency queue, with a category hint
    OPERATOR = "operator"  # ring one operator directly (emergency queue if unanswered)
    MESSAGE = "message"  # play a message and hang up (information lines)


class Category(StrEnum):
    """The 7 non-emergency report types of Manado Siaga 112 (shared/DOMAIN.md)."""

    ILLEGAL_BUILDING = "illegal_building"
    STREET_LIGHTING = "street_lighting"
    TELECOM_POLE = "telecom_pole"
    FALLEN_TREE = "fallen_tree"
    ELECTRICITY = "electricity"
    CLEAN_WATER = "clean_water"
    GARBAGE = "garbage"


class Step(StrEnum):
    """``Step`` header of the ``SiagaIvr`` user event (pbx-config/README.md)."""

    ENTERED = "entered"
    DIGIT = "digit"
    TIMEOUT = "timeout"
    INVALID = "invalid"
    DECISION = "decision"


class Action(BaseModel):
    """What the IVR decides. ``category`` only with nonemergency; ``operator`` (an endpoint such as
    ``op1``) only with operator; ``message`` (a prompt id) only with message."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    action: ActionKind
    category: Category | None = None
    operator: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,40}$")
    message: str | None = None

    @model_validator(mode="after")
    def _fields_fit_action(self) -> Self:
        kind = self.action
        if (self.category is not None) != (kind is ActionKind.NONEMERGENCY):
            raise ValueError("'category' is required with action 'nonemergency' and allowed only there "
                             f"(one of: {', '.join(c.value for c in Category)})")
        if (self.operator is not None) != (kind is ActionKind.OPERATOR):
            raise ValueError("'operator' (e.g. \"op1\") is required with action 'operator' and allowed "
                             "only there")
        if (self.message is not None) != (kind is ActionKind.MESSAGE):
            raise ValueError("'message' (a prompt id) is required with action 'message' and allowed only "
                             "there")
        return self


class Choice(BaseModel):
    """One key of a menu: ``goto`` another node, or an action (``action = ...`` and its fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    goto: str | None = None
    action: ActionKind | None = None
    category: Category | None = None
    operator: str | None = None
    message: str | None = None

    @model_validator(mode="after")
    def _menu_or_action(self) -> Self:
        if (self.goto is None) == (self.action is None):
            raise ValueError("a choice has exactly one of 'goto = \"node\"' or 'action = \"...\"'")
        if self.goto is not None and any(v is not None for v in (self.category, self.operator,
                                                                  self.message)):
            raise ValueError("a 'goto' choice takes no action fields")
        self.as_action()  # validates the action's fields now, at load time
        return self

    def as_action(self) -> Action | None:
        if self.action is None:
            return None
        return Action(action=self.action, category=self.category, operator=self.operator,
                      message=self.message)


class Prompt(BaseModel):
    """A prompt's words (admins edit these) and the language/voice they are spoken in."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    language: str = Field(pattern=r"^[a-z]{2,3}$")
    text: str = Field(min_length=1, max_length=2000)


class Node(BaseModel):
    """A menu: play ``prompt`` (keys barge in), wait ``timeout_s`` for one key; ``retries`` re-prompts
    after no input or an invalid key (``invalid_prompt`` first), then ``no_input`` / ``invalid``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    prompt: str
    choices: dict[str, Choice] = Field(min_length=1)
    timeout_s: float = Field(default=4.0, gt=0, le=30)
    retries: int = Field(default=1, ge=0, le=5)
    invalid_prompt: str | None = None
    no_input: Action = Action(action=ActionKind.EMERGENCY)
    invalid: Action = Action(action=ActionKind.EMERGENCY)
    variant_of: str | None = Field(
        default=None, description="this menu is another language's version of that first-level menu")

    @model_validator(mode="after")
    def _digits(self) -> Self:
        bad = [d for d in self.choices if len(d) != 1 or d not in DIGITS]
        if bad:
            raise ValueError(f"choice keys must be one of 0-9 * # (got {', '.join(map(repr, bad))})")
        return self


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_path_seconds: float = Field(default=60.0, gt=0, le=600)


class Silent(BaseModel):
    """The silent-caller probe (ivr/silence.py): after ``after_s`` seconds in the IVR without speech or a
    key, at a menu's no-input on a path whose no-input is emergency, play ``prompts`` (in order) and wait
    ``wait_s`` for 5 twice. 55: the emergency queue, marked silent_caller; another key answers the menu;
    no key: the menu goes on as before (no input still ends in the emergency queue; the IVR never hangs
    up by itself)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    after_s: float = Field(default=10.0, gt=0, le=120)
    prompts: list[str] = Field(min_length=1, max_length=4)
    wait_s: float = Field(default=6.0, gt=0, le=30)


class Tree(BaseModel):
    """The whole IVR. ``first`` is the menu every call starts in."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")
    first: str
    voices: dict[str, str] = Field(default_factory=lambda: {"id": "id", "en": "en"})
    speed_wpm: int = Field(default=165, ge=80, le=400)
    limits: Limits = Limits()
    prompts: dict[str, Prompt]
    nodes: dict[str, Node] = Field(min_length=1)
    silent: Silent | None = None

    @model_validator(mode="after")
    def _silent_prompts(self) -> Self:
        missing = [p for p in (self.silent.prompts if self.silent else []) if p not in self.prompts]
        if missing:
            raise ValueError(f"[silent] prompts {', '.join(map(repr, missing))} are not defined: add "
                             "[prompts.<id>] for each")
        return self

    @model_validator(mode="after")
    def _names(self) -> Self:
        # names travel in UserEvent headers and sound file names: keep them plain
        bad = [n for n in [*self.nodes, *self.prompts] if not _NAME.match(n)]
        if bad:
            raise ValueError("node and prompt names use a-z, 0-9, _ and - only "
                             f"(got {', '.join(map(repr, bad))})")
        return self
