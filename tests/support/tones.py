"""Is a known tone in a recording? Goertzel power at one frequency against neighbouring frequencies."""

from __future__ import annotations

import math
import wave
from array import array
from pathlib import Path


def _samples(path: Path) -> tuple[array[int], int]:
    with wave.open(str(path), "rb") as wav:
        data = array("h")
        data.frombytes(wav.readframes(wav.getnframes()))
        return data, wav.getframerate()


def goertzel(samples: array[int], rate: int, hz: float) -> float:
    coeff = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def tone_prominence(path: Path, hz: float, *, others: tuple[float, ...] = (700.0, 1300.0, 1700.0)) -> float:
    """Power at ``hz`` divided by the strongest of ``others`` (>> 1 when the tone is there)."""
    samples, rate = _samples(path)
    return goertzel(samples, rate, hz) / max(goertzel(samples, rate, f) for f in others)
