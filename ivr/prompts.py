"""Prompts as real audio: espeak-ng speaks each prompt's text, sox makes it 8 kHz mono 16-bit WAV.

Generated files are cached by a hash of (voice, speed, text, generator version) in
``~/.cache/siaga112/prompts``, so only prompts whose words changed are spoken again. ``install`` copies
them to ``<sounds dir>/siaga112/<tree name>/<prompt id>.wav`` where the IVR plays them from, and returns
each prompt's measured length (the tree loader's duration rule uses it). Blocking: call from a thread.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

from callflow.lab import cache_dir
from ivr.tree import Prompt, Tree

GENERATOR_VERSION = "1"  # bump to regenerate every cached prompt
RATE = 8000


class PromptError(RuntimeError):
    """A prompt could not be generated or installed."""


@dataclass(frozen=True)
class InstalledPrompt:
    prompt_id: str
    path: Path
    seconds: float
    generated: bool  # False: taken from the cache


def prompt_cache_dir() -> Path:
    return cache_dir() / "prompts"


def voice_for(tree: Tree, prompt: Prompt) -> str:
    return tree.voices.get(prompt.language, prompt.language)


def prompt_key(tree: Tree, prompt: Prompt) -> str:
    material = "\0".join([GENERATOR_VERSION, voice_for(tree, prompt), str(tree.speed_wpm), prompt.text])
    return hashlib.sha256(material.encode()).hexdigest()[:24]


def tools_missing() -> list[str]:
    return [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / float(wav.getframerate())


def generate(tree: Tree, prompt: Prompt, cache: Path | None = None) -> tuple[Path, bool]:
    """The cached 8 kHz WAV for ``prompt`` (spoken now if not cached). Returns (path, generated)."""
    cache = cache or prompt_cache_dir()
    target = cache / f"{prompt_key(tree, prompt)}.wav"
    if target.exists():
        return target, False
    missing = tools_missing()
    if missing:
        raise PromptError(f"cannot generate prompts: {', '.join(missing)} not installed "
                          "(Debian packages espeak-ng and sox; `make setup` installs them)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="siaga112-prompt-") as tmp:
        spoken = Path(tmp) / "spoken.wav"
        out = Path(tmp) / "out.wav"
        _run(["espeak-ng", "-v", voice_for(tree, prompt), "-s", str(tree.speed_wpm), "-w", str(spoken),
              "--", prompt.text], "espeak-ng")
        _run(["sox", str(spoken), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer",
              str(out), "norm", "-3"], "sox")
        tmp_target = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(out, tmp_target)
        tmp_target.replace(target)
    return target, True


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise PromptError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()[:300]}")


def install(tree: Tree, sounds_dir: Path, cache: Path | None = None) -> list[InstalledPrompt]:
    """Generate (when changed) and install every prompt of ``tree`` under ``sounds_dir``."""
    target_dir = sounds_dir / "siaga112" / tree.name
    target_dir.mkdir(parents=True, exist_ok=True)
    installed = []
    for prompt_id, prompt in sorted(tree.prompts.items()):
        source, generated = generate(tree, prompt, cache)
        target = target_dir / f"{prompt_id}.wav"
        if not target.exists() or target.read_bytes() != source.read_bytes():
            tmp = target.with_suffix(".wav.tmp")
            shutil.copyfile(source, tmp)
            tmp.replace(target)
        installed.append(InstalledPrompt(prompt_id, target, wav_seconds(target), generated))
    return installed


def measured_durations(tree: Tree, cache: Path | None = None) -> dict[str, float]:
    """Lengths of the prompts already in the cache (no generation)."""
    cache = cache or prompt_cache_dir()
    out = {}
    for prompt_id, prompt in tree.prompts.items():
        path = cache / f"{prompt_key(tree, prompt)}.wav"
        if path.exists():
            out[prompt_id] = wav_seconds(path)
    return out
