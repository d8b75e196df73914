"""What is inside a recording file: duration, whether Asterisk has closed it, and its loudness.

Pure standard library (``wave`` and ``array``): no audioop (gone in Python 3.13), no numpy.
"""

from __future__ import annotations

import hashlib
import math
import struct
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class FileFacts:
    size: int
    sha256: str
    duration_s: float | None  # None when the format carries no duration we can read


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def wav_closed(path: Path) -> bool:
    """Asterisk writes the RIFF sizes when it closes a WAV: a header that matches the file size means
    the writer is done with it."""
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
        size = path.stat().st_size
    except OSError:
        return False
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    riff_size: int = struct.unpack("<I", head[4:8])[0]
    return riff_size + 8 == size


def wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate())


def wav_rms(path: Path) -> float:
    """Root mean square of 16-bit samples (0 = digital silence, 32767 = full scale)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: {wav.getsampwidth() * 8}-bit samples; expected 16-bit")
        samples = array("h")
        samples.frombytes(wav.readframes(wav.getnframes()))
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def file_facts(path: Path) -> FileFacts:
    """Size, hash and (for WAV) duration. Blocking: call through ``asyncio.to_thread``."""
    digest = sha256_of(path)
    duration = wav_duration(path) if path.suffix.lower() == ".wav" else None
    return FileFacts(size=path.stat().st_size, sha256=digest, duration_s=duration)
