"""A registering operator softphone (lab op5/op6) built on pyVoIP: answers, plays a tone, stays on the line
until the far end hangs up. pyVoIP is threaded (not asyncio): its call callback runs on its own thread
and must not return before the call ends."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

from pyVoIP.VoIP import CallState, PhoneStatus, VoIPCall, VoIPPhone

from callflow.lab import LabStatus, load_secrets
from callflow.lab.sipp import free_udp_port


def tone(hz: float, seconds: float, amplitude: int = 40) -> bytes:
    """8 kHz, 8-bit unsigned linear PCM: what pyVoIP's write_audio takes."""
    return bytes(int(128 + amplitude * math.sin(2 * math.pi * hz * n / 8000))
                 for n in range(int(8000 * seconds)))


class PyVoipOperator:
    def __init__(self, lab: LabStatus, name: str = "op5", *, tone_hz: float = 1000.0,
                 max_call_s: float = 60.0) -> None:
        self.name = name
        secret = load_secrets(Path(lab.secrets_file))[name]
        rtp = free_udp_port()
        self.phone = VoIPPhone(lab.sip["host"], int(lab.sip["port"]), name, secret, myIP="127.0.0.1",
                               callCallback=self._on_call, sipPort=free_udp_port(), rtpPortLow=rtp,
                               rtpPortHigh=rtp)
        self.audio = tone(tone_hz, max_call_s)
        self.max_call_s = max_call_s
        self.answered = threading.Event()
        self.ended = threading.Event()
        self.error: BaseException | None = None

    def __enter__(self) -> PyVoipOperator:
        self.phone.start()
        if self.phone.get_status() != PhoneStatus.REGISTERED:
            self.phone.stop()
            raise RuntimeError(f"pyVoIP {self.name} did not register: {self.phone.get_status()}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.phone.stop()

    def _on_call(self, call: VoIPCall) -> None:
        try:
            call.answer()
            self.answered.set()
            call.write_audio(self.audio)
            deadline = time.monotonic() + self.max_call_s
            while call.state == CallState.ANSWERED and time.monotonic() < deadline:
                time.sleep(0.02)  # the phone's own thread; the caller's BYE ends the call
            if call.state == CallState.ANSWERED:
                call.hangup()
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test, not lost in pyVoIP's thread
            self.error = exc
        finally:
            self.ended.set()
