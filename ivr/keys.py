"""Keys a caller pressed while the IVR was not listening, given back to the next menu.

Why: Asterisk's AGI loop reads the caller's frames between two AGI commands and drops them, so a key
pressed before the first menu starts (the IVR still connecting) or between two menus never reaches the
IVR. Normally that window is a few milliseconds; on a saturated machine (the surge benchmark at 100
calls/s) it grew past the moment callers press 1, and they were asked again or hung up unclassified.

Asterisk reports it all on AMI, in its own order for the channel: every AGI command between
``AGIExecStart`` and ``AGIExecEnd``, every key as ``DTMFEnd``. A key received while the channel sits in
the IVR's AGI (dial plan contexts ``siaga-ivr``/``siaga-ivr-step``) with no command running was dropped.
When the channel's next ``GET DATA`` starts, the engine plays that key back *into* the channel (AMI
``PlayDTMF`` with ``Receive``: Asterisk takes it as received), so the menu hears it as if pressed during
its prompt.

One key per menu, oldest first; keys pressed during a menu were heard by it, and the caller's keys during
other commands (the "invalid" message) are ignored as before. A key played back that lands after its menu
ended (Asterisk reports it again) goes to the next menu. Everything ends with the decision or the hang-up.

:class:`KeyRelay` decides (no I/O); :class:`MissedKeys` is the engine component that sends the actions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from callflow.ami import AmiError, EventItem
from callflow.ami.events import AGIExecEnd, AGIExecStart, DTMFEnd, Hangup, UserEvent

if TYPE_CHECKING:
    from callflow.service import Engine

log = structlog.get_logger("ivr.keys")

# Where the channel is while the IVR's AGI runs (pbx-config/extensions.conf): the AGI() application's
# context, and, after the first step, the steps subroutine's (Asterisk's snapshot keeps the GOSUB's place).
IVR_CONTEXTS = frozenset({"siaga-ivr", "siaga-ivr-step"})
MAX_PENDING = 8  # keys kept per call (a menu needs one)
MAX_CALLS = 4096  # calls tracked at once; the oldest is dropped past this
KEYS = frozenset("0123456789*#")


@dataclass(frozen=True, slots=True)
class PlayBack:
    """Play ``digit`` back into ``channel`` as received, for the menu (GET DATA) that just started."""

    channel: str
    uniqueid: str
    digit: str
    command_id: str


@dataclass(slots=True)
class _Call:
    running: str = ""  # "menu" (GET DATA), "other" (any other AGI command), "" between commands
    pending: list[str] = field(default_factory=list)
    played: list[str] = field(default_factory=list)  # keys played back, their DTMFEnd not yet seen


class KeyRelay:
    """Per call: which AGI command is running, and the keys dropped between commands."""

    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}
        self.dropped_seen = 0  # keys found dropped (counted for tests and logs)

    def feed(self, item: EventItem) -> PlayBack | None:
        if isinstance(item, AGIExecStart) and item.chan is not None:
            call = self._call(item.chan.uniqueid)
            call.running = "menu" if item.command.upper().startswith("GET DATA") else "other"
            if call.running == "menu" and call.pending:
                digit = call.pending.pop(0)
                call.played.append(digit)
                return PlayBack(item.chan.channel, item.chan.uniqueid, digit, item.command_id)
        elif isinstance(item, AGIExecEnd) and item.chan is not None:
            known = self._calls.get(item.chan.uniqueid)
            if known is not None:
                known.running = ""
        elif isinstance(item, DTMFEnd) and item.chan is not None:
            self._key(item)
        elif isinstance(item, Hangup) and item.chan is not None:
            self._calls.pop(item.chan.uniqueid, None)
        elif (isinstance(item, UserEvent) and item.chan is not None and item.user_event == "SiagaIvr"
              and item.get_field("Step") == "decision"):
            self._calls.pop(item.chan.uniqueid, None)  # the IVR is done with this call
        return None

    def _key(self, ev: DTMFEnd) -> None:
        chan = ev.chan
        if (chan is None or ev.direction != "Received" or ev.digit not in KEYS
                or chan.context not in IVR_CONTEXTS):
            return
        call = self._call(chan.uniqueid)
        ours = ev.digit in call.played
        if ours:
            call.played.remove(ev.digit)
        if call.running == "menu" or (call.running == "other" and not ours):
            return  # a menu heard it, or a message ignores the caller's keys by design
        # dropped between commands, or one we played back that landed after its menu (in a message, or
        # between commands): the next menu gets it
        self.dropped_seen += 1
        if len(call.pending) < MAX_PENDING:
            call.pending.append(ev.digit)

    def _call(self, uniqueid: str) -> _Call:
        call = self._calls.get(uniqueid)
        if call is None:
            call = self._calls[uniqueid] = _Call()
            if len(self._calls) > MAX_CALLS:
                del self._calls[next(iter(self._calls))]
        return call

    def pending(self, uniqueid: str) -> list[str]:
        call = self._calls.get(uniqueid)
        return list(call.pending) if call else []

    def __len__(self) -> int:
        return len(self._calls)


class MissedKeys:
    """Engine component: feeds :class:`KeyRelay` and plays the keys back with AMI ``PlayDTMF``."""

    name = "ivr-keys"

    def __init__(self, *, duration_ms: int = 120) -> None:
        self.relay = KeyRelay()
        self.duration_ms = duration_ms
        self.played = 0
        self._engine: Engine | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, engine: Engine) -> None:
        self._engine = engine
        await asyncio.Event().wait()  # nothing of its own to run: it acts on events

    async def handle(self, item: EventItem) -> None:
        back = self.relay.feed(item)
        if back is None or self._engine is None:
            return
        # not awaited here: the engine's next events must not wait for Asterisk's answer
        task = asyncio.create_task(self._play(self._engine, back))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settled(self) -> None:
        """Wait for the play-backs under way (tests, and a clean stop)."""
        if self._tasks:
            await asyncio.gather(*self._tasks)

    async def _play(self, engine: Engine, back: PlayBack) -> None:
        try:
            await engine.session.action("PlayDTMF", {"Channel": back.channel, "Digit": back.digit,
                                                     "Duration": self.duration_ms, "Receive": "true"})
        except (AmiError, TimeoutError) as exc:  # refused, link lost (outcome unknown), no answer
            log.warning("ivr.missed_key_lost", uniqueid=back.uniqueid, digit=back.digit, error=str(exc),
                        hint="the menu plays on; the caller is asked again")
            return
        self.played += 1
        log.info("ivr.missed_key_played", uniqueid=back.uniqueid, digit=back.digit,
                 agi_command_id=back.command_id)
