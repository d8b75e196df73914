"""Keys a caller pressed while the IVR was not listening, from Asterisk's own DTMF events.

Why: between two AGI commands (and before the first ``GET DATA``) Asterisk's AGI loop reads the caller's
frames and drops them; a key pressed then never reaches the IVR. Normally that window is a few
milliseconds, but on a saturated machine (the surge benchmark at 80 calls/s) it grew past the moment
callers press 1, and those callers were asked again, or hung up unclassified. Asterisk still reports
every key on AMI (``DTMFEnd``, ``Direction: Received``) with its own timestamp, so the engine hands those
to the IVR, and the session takes a key it did not hear from here.

The rule (``KeyLedger``): keys are ordered by Asterisk's timestamp. A key the session heard through
``GET DATA`` is matched to its own AMI copy (the first one of that digit stamped after the command was
sent, arriving now or later) and everything up to it is spent; a key stamped after the last spent one
and not a copy of a heard key is one the session missed. Same host, same clock: AMI is loopback only.

No I/O here; thread-safe (with ``isolation = "thread"`` the engine's loop adds, the IVR's loop takes).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

MAX_CHANNELS = 4096  # calls with keys remembered at once; the oldest is dropped past this
MAX_KEYS = 32  # keys remembered per call (an IVR needs a few)
VALID = frozenset("0123456789*#ABCD")


@dataclass(frozen=True, slots=True)
class Key:
    digit: str
    at: float  # Asterisk's Timestamp of the DTMFEnd, epoch seconds


class KeyBuffer:
    """Received keys per channel (by Uniqueid), bounded in channels and keys."""

    def __init__(self, max_channels: int = MAX_CHANNELS, max_keys: int = MAX_KEYS) -> None:
        self._keys: OrderedDict[str, list[Key]] = OrderedDict()
        self._lock = threading.Lock()
        self.max_channels, self.max_keys = max_channels, max_keys

    def add(self, uniqueid: str, digit: str, at: float) -> None:
        if not uniqueid or digit not in VALID:
            return
        with self._lock:
            keys = self._keys.get(uniqueid)
            if keys is None:
                keys = self._keys[uniqueid] = []
                while len(self._keys) > self.max_channels:
                    self._keys.popitem(last=False)
            if len(keys) < self.max_keys:
                keys.append(Key(digit, at))
                keys.sort(key=lambda k: k.at)  # AMI order is Asterisk's order; sort anyway (a few items)

    def keys(self, uniqueid: str) -> list[Key]:
        with self._lock:
            return list(self._keys.get(uniqueid, ()))

    def forget(self, uniqueid: str) -> None:
        with self._lock:
            self._keys.pop(uniqueid, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)


class KeyLedger:
    """One session's account of its channel's keys: which it heard, which it has spent."""

    def __init__(self, buffer: KeyBuffer, uniqueid: str) -> None:
        self.buffer, self.uniqueid = buffer, uniqueid
        self.spent_until = float("-inf")  # every key stamped at or before this is accounted for
        self._heard: list[tuple[str, float]] = []  # keys GET DATA returned, AMI copy not matched yet

    def heard(self, digit: str, sent_at: float) -> None:
        """``GET DATA`` sent at ``sent_at`` returned ``digit``: its AMI copy (now or later) is spent."""
        self._heard.append((digit, sent_at))
        self._settle()

    def missed(self) -> Key | None:
        """The earliest key pressed that the session has not heard nor taken; taking it spends it."""
        self._settle()
        if self._heard:  # a heard key's copy has not arrived yet: keys after it cannot be ordered
            return None
        for key in self.buffer.keys(self.uniqueid):
            if key.at > self.spent_until:
                self.spent_until = key.at
                return key
        return None

    def _settle(self) -> None:
        """Match heard keys to their AMI copies, in order."""
        while self._heard:
            digit, sent_at = self._heard[0]
            copy = next((k for k in self.buffer.keys(self.uniqueid)
                         if k.at > self.spent_until and k.at >= sent_at and k.digit == digit), None)
            if copy is None:
                return
            self.spent_until = copy.at
            self._heard.pop(0)


# -- the engine -> IVR child pipe (``isolation = "process"``): one key per line ------------------------
def key_line(uniqueid: str, digit: str, at: float) -> bytes:
    return f"{uniqueid} {digit} {at:.6f}\n".encode("ascii", "replace")


def read_key_line(line: bytes, buffer: KeyBuffer) -> bool:
    """Add the key a line names; False (nothing added) for a line that is not one."""
    parts = line.decode("ascii", "replace").split()
    if len(parts) != 3 or parts[1] not in VALID:
        return False
    try:
        at = float(parts[2])
    except ValueError:
        return False
    buffer.add(parts[0], parts[1], at)
    return True
