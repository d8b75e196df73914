"""Silent callers: tell a caller who cannot speak from one who can, and offer them the "press 5 twice" probe.

Asterisk's ``TALK_DETECT`` (func_talkdetect, set on every call at IVR entry by pbx-config/extensions.conf)
reports a caller's speech on AMI only (``ChannelTalkingStart``/``Stop``); the IVR runs as a FastAGI session
that does not see AMI. So the engine marks the channel itself: on the caller's first speech it sets
``SIAGA_SPOKE=1`` and after each utterance ``SIAGA_SPEECH_MS`` (total milliseconds) with AMI ``Setvar``, and
the IVR reads them (AGI ``GET VARIABLE``) when a menu hears nothing. Keys are the IVR's own (and the keys
Asterisk dropped between commands are given back by ivr/keys.py), so any key means "not silent".

:class:`TalkWatch` and :func:`probe_due` decide (no I/O); :class:`SpeechMarks` is the engine component that
sends the actions; ivr/session.py plays the probe.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from callflow.ami import AmiError, EventItem
from callflow.ami.events import ChannelTalkingStart, ChannelTalkingStop, Hangup

if TYPE_CHECKING:
    from callflow.service import Engine

log = structlog.get_logger("ivr.silence")

SPOKE_VAR = "SIAGA_SPOKE"  # contract with ivr/session.py: "1" once the caller has spoken
SPEECH_VAR = "SIAGA_SPEECH_MS"  # total milliseconds of the caller's speech so far
PROBE_ANSWER = "55"  # "if you cannot speak, press 5 twice"
MAX_CALLS = 4096


@dataclass(frozen=True, slots=True)
class Mark:
    """Set ``variable`` to ``value`` on ``channel`` (the caller's, by name)."""

    channel: str
    uniqueid: str
    variable: str
    value: str


class TalkWatch:
    """Per call: whether the caller has spoken and for how long (milliseconds)."""

    def __init__(self) -> None:
        self._speech_ms: dict[str, int] = {}

    def feed(self, item: EventItem) -> Mark | None:
        if isinstance(item, ChannelTalkingStart) and item.chan is not None:
            if item.chan.uniqueid in self._speech_ms:
                return None  # spoken before: the mark is already set
            self._speech_ms[item.chan.uniqueid] = 0
            if len(self._speech_ms) > MAX_CALLS:
                del self._speech_ms[next(iter(self._speech_ms))]
            return Mark(item.chan.channel, item.chan.uniqueid, SPOKE_VAR, "1")
        if isinstance(item, ChannelTalkingStop) and item.chan is not None:
            total = self._speech_ms.get(item.chan.uniqueid, 0) + max(0, item.duration_ms)
            self._speech_ms[item.chan.uniqueid] = total
            return Mark(item.chan.channel, item.chan.uniqueid, SPEECH_VAR, str(total))
        if isinstance(item, Hangup) and item.chan is not None:
            self._speech_ms.pop(item.chan.uniqueid, None)
        return None

    def speech_ms(self, uniqueid: str) -> int | None:
        """Milliseconds spoken so far; None: never spoke."""
        return self._speech_ms.get(uniqueid)


def probe_due(*, spoke: bool, keys: str, probed: bool, elapsed_s: float, after_s: float,
              last_chance: bool) -> bool:
    """Whether the IVR plays the silent-caller probe now, at a menu's no-input on a path whose no-input
    ends in the emergency queue: never to a caller who spoke or pressed a key, once per call, when the
    caller has been silent ``after_s`` seconds in the IVR, or at the last no-input before the IVR decides
    (so every silent caller is offered it before the queue)."""
    if spoke or keys or probed:
        return False
    return elapsed_s >= after_s or last_chance


def speech_seconds(value: str) -> str:
    """``SIAGA_SPEECH_MS`` as seconds for the record ("0.0" when unset or not a number)."""
    try:
        return f"{max(0, int(value)) / 1000:.1f}"
    except ValueError:
        return "0.0"


class SpeechMarks:
    """Engine component: feeds :class:`TalkWatch` and sets the marks with AMI ``Setvar``."""

    name = "ivr-speech"

    def __init__(self) -> None:
        self.watch = TalkWatch()
        self._engine: Engine | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, engine: Engine) -> None:
        self._engine = engine
        await asyncio.Event().wait()  # nothing of its own to run: it acts on events

    async def handle(self, item: EventItem) -> None:
        mark = self.watch.feed(item)
        if mark is None or self._engine is None:
            return
        if mark.variable == SPOKE_VAR:
            log.info("ivr.talking", uniqueid=mark.uniqueid)
        task = asyncio.create_task(self._set(self._engine, mark))  # the next events must not wait
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settled(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks)

    async def _set(self, engine: Engine, mark: Mark) -> None:
        try:
            await engine.session.action("Setvar", {"Channel": mark.channel, "Variable": mark.variable,
                                                   "Value": mark.value})
        except (AmiError, TimeoutError) as exc:  # the caller hung up meanwhile, or the link is down
            log.info("ivr.speech_mark_lost", uniqueid=mark.uniqueid, variable=mark.variable, error=str(exc))
