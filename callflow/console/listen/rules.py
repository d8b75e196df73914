"""Supervisors listening in, as pure decisions: which live call an operator is on, the AMI actions that
put a supervisor's phone into ChanSpy on it (or switch its mode), and what ChanSpyStart/ChanSpyStop do to
a session. No I/O, no clock: :mod:`.service` sends the actions and stores the sessions.

The supervisor's phone is originated into the dial plan's ``siaga-listen`` context, which runs
``ChanSpy(${SIAGA_SPY_CHANNEL},${SIAGA_SPY_OPTIONS})`` on the operator's own channel of the call.
Options (app_chanspy): ``u`` the channel is named exactly (no prefix match), ``q`` no beep or name
announcement, ``E`` end when the spied call ends, ``S`` end at once if there is no such channel (the call
ended before the phone was answered), ``d`` DTMF switches the mode (4 listen, 5 whisper, 6 barge); then
the starting mode's own option: none to listen, ``w`` to whisper (the operator alone hears the
supervisor), ``B`` to barge (the operator and the caller hear). A switch from the wallboard is AMI
``PlayDTMF`` with ``Receive`` (as if the supervisor pressed the key): the phone does not ring again, and the
phone's ``DTMFEnd`` confirms it (a key the supervisor presses on the phone is recorded the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from callflow.calls.model import LISTEN_LINKEDID_PREFIX

LISTEN_CONTEXT = "siaga-listen"  # contract with pbx-config/extensions.conf
LISTEN_ID_PREFIX = LISTEN_LINKEDID_PREFIX  # the Originate's ChannelId: the phone's channel's Uniqueid
BASE_OPTIONS = "uqESd"


class ListenMode(StrEnum):
    LISTEN = "listen"  # the supervisor hears both sides, nobody hears the supervisor
    WHISPER = "whisper"  # the operator alone hears the supervisor
    BARGE = "barge"  # the operator and the caller hear the supervisor

    @property
    def options(self) -> str:
        return BASE_OPTIONS + {ListenMode.LISTEN: "", ListenMode.WHISPER: "w", ListenMode.BARGE: "B"}[self]

    @property
    def digit(self) -> str:
        """ChanSpy's ``d`` option: the key that switches to this mode."""
        return {ListenMode.LISTEN: "4", ListenMode.WHISPER: "5", ListenMode.BARGE: "6"}[self]

    @classmethod
    def of_digit(cls, digit: str) -> ListenMode | None:
        return next((m for m in cls if m.digit == digit), None)


@dataclass(frozen=True, slots=True)
class LiveCall:
    """An operator's call now: the call's Linkedid and the operator's own channel (AgentConnect's Dest)."""

    operator: str
    linkedid: str
    channel: str
    since: datetime


class ListenRefused(Exception):
    """Nothing was sent; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Originate:
    headers: dict[str, str | int]
    variables: dict[str, str]


def originate(call: LiveCall | None, operator: str, phone: str | None, mode: ListenMode, *, channel_id: str,
              supervisor: str, ring_timeout_s: int = 30) -> Originate:
    """The Originate that rings the supervisor's ``phone`` (an endpoint) into ChanSpy on ``call``."""
    if phone is None:
        raise ListenRefused("your account has no phone: a supervisor listens in on their own phone; give the "
                            "account one (`siaga112 console user add NAME --role supervisor --operator-id "
                            "ENDPOINT`)")
    if call is None:
        raise ListenRefused(f"operator {operator} is not on a call now: listen in while the wallboard shows "
                            "them on a call")
    if phone == call.operator:
        raise ListenRefused(f"your phone ({phone}) is the operator's own phone")
    return Originate(
        headers={"Channel": f"PJSIP/{phone}", "Context": LISTEN_CONTEXT, "Exten": "s", "Priority": 1,
                 "Timeout": ring_timeout_s * 1000, "Async": "true", "ChannelId": channel_id,
                 "CallerID": f'"{mode.value} {operator}" <112>'},
        variables={"SIAGA_SPY_CHANNEL": call.channel, "SIAGA_SPY_OPTIONS": mode.options,
                   "SIAGA_SPY_SUPERVISOR": supervisor})


class SessionState(StrEnum):
    RINGING = "ringing"  # the supervisor's phone is being rung
    ACTIVE = "active"  # ChanSpy runs on the call (ChanSpyStart seen)
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Session:
    id: int
    supervisor: str
    operator: str
    linkedid: str
    spyee: str  # the operator's channel
    mode: ListenMode
    phone_uniqueid: str  # the ChannelId given to the Originate
    requested_at: datetime
    state: SessionState = SessionState.RINGING
    phone_channel: str = ""  # the phone's channel name, from ChanSpyStart
    started_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str = ""


def spy_started(session: Session, phone_channel: str, at: datetime) -> Session:
    """ChanSpyStart: the session is active (again, after a mode switch)."""
    return replace(session, state=SessionState.ACTIVE, phone_channel=phone_channel,
                   started_at=session.started_at or at)


def spy_stopped(session: Session, at: datetime, reason: str, switching: bool) -> Session:
    """ChanSpyStop: a mode switch keeps the session (the next ChanSpyStart follows); else it ended."""
    if switching:
        return session
    return replace(session, state=SessionState.ENDED, ended_at=at, end_reason=reason)


def switch(session: Session | None, session_id: int, mode: ListenMode, by: str) -> dict[str, str | int]:
    """The ``PlayDTMF`` (received, as if pressed on the phone) that switches an active session to ``mode``."""
    if session is None or session.state is SessionState.ENDED:
        raise ListenRefused(f"listen-in session {session_id} has ended (or there is no such session): start "
                            "a new one from the wallboard")
    if session.supervisor != by:
        raise ListenRefused(f"listen-in session {session_id} is {session.supervisor}'s")
    if session.state is not SessionState.ACTIVE or not session.phone_channel:
        raise ListenRefused(f"listen-in session {session_id} has not started yet (your phone is ringing): "
                            "answer it first")
    if session.mode is mode:
        raise ListenRefused(f"listen-in session {session_id} is already in {mode.value} mode")
    return {"Channel": session.phone_channel, "Digit": mode.digit, "Duration": 120, "Receive": "true"}


def key_pressed(session: Session, digit: str) -> Session | None:
    """A key on the phone (``DTMFEnd`` received): the session in its new mode, or None if nothing changes."""
    mode = ListenMode.of_digit(digit)
    if mode is None or mode is session.mode or session.state is not SessionState.ACTIVE:
        return None
    return replace(session, mode=mode)


def note(session: Session, mode: ListenMode) -> dict[str, str]:
    """The ``UserEvent(SiagaListen, ...)`` headers that put a note on the call's record."""
    return {"UserEvent": "SiagaListen", "Supervisor": session.supervisor, "Operator": session.operator,
            "Mode": mode.value, "Session": str(session.id), "Linkedid": session.linkedid,
            "Uniqueid": session.linkedid}
