"""Recording file names, built only from ids and instants the engine controls.

Caller-controlled text (numbers, names, SIP headers) never reaches a path. Asterisk's ids are
``<epoch>.<seq>`` but are still reduced to ``[0-9A-Za-z_]``, so even a malformed id cannot climb out of
the recordings root or inject MixMonitor options.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import PurePosixPath

_UNSAFE = re.compile(r"[^0-9A-Za-z]")
_MAX_ID = 48


def safe_id(value: str) -> str:
    cleaned = _UNSAFE.sub("_", value)[:_MAX_ID]
    if not cleaned.strip("_"):
        raise ValueError(f"id {value!r} has nothing usable for a file name")
    return cleaned


def relative_path(linkedid: str, uniqueid: str, started: datetime, fmt: str) -> PurePosixPath:
    """``YYYY/MM/DD/<linkedid>-<uniqueid>-<HHMMSSffffff>.<fmt>`` (UTC date of the start)."""
    if started.tzinfo is None:
        raise ValueError("recording start time must be timezone-aware (UTC)")
    at = started.astimezone(UTC)
    if not re.fullmatch(r"[A-Za-z0-9]{1,8}", fmt):
        raise ValueError(f"recording format {fmt!r} is not a plain file extension")
    name = f"{safe_id(linkedid)}-{safe_id(uniqueid)}-{at:%H%M%S%f}.{fmt}"
    return PurePosixPath(f"{at:%Y}", f"{at:%m}", f"{at:%d}", name)


_ANNOUNCED = re.compile(r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/[0-9A-Za-z_]{1,48}-[0-9A-Za-z_]{1,48}-"
                        r"(?P<hms>\d{6})(?P<us>\d{6})\.[A-Za-z0-9]{1,8}")


def announced_path(text: str, linkedid: str, uniqueid: str, fmt: str) -> tuple[PurePosixPath, datetime]:
    """The relative path the dial plan named in its ``SiagaRecording`` event, and the instant it names,
    if it is exactly what :func:`relative_path` gives for this channel at that instant (anything else, a
    path climbing out of the root included, raises ``ValueError``: the dial plan and this module disagree)."""
    found = _ANNOUNCED.fullmatch(text)
    if found is None:
        raise ValueError(f"recording path {text!r} is not "
                         "YYYY/MM/DD/<linkedid>-<uniqueid>-<HHMMSSffffff>.<fmt>")
    stamp = f"{found['y']}{found['m']}{found['d']}{found['hms']}{found['us']}"
    at = datetime.strptime(stamp, "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)
    expected = relative_path(linkedid, uniqueid, at, fmt)
    if PurePosixPath(text) != expected:
        raise ValueError(f"recording path {text!r} is not the channel's: expected {str(expected)!r}")
    return expected, at
