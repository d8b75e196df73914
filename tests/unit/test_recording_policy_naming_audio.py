"""Recording policy defaults, file names from engine ids only, and what is read from a WAV file."""

from __future__ import annotations

import math
import struct
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from callflow.calls.model import CallClass
from callflow.policies import recording_policy
from callflow.siteconfig import Recording, Retention
from recordings import RecordFrom, RecordingPolicy
from recordings.audio import file_facts, sha256_of, wav_closed, wav_duration, wav_rms
from recordings.naming import announced_path, relative_path, safe_id

AT = datetime(2026, 11, 22, 8, 30, 15, 123456, tzinfo=UTC)


def test_policy_defaults_record_emergency_from_answer_only() -> None:
    """Without a site file the policy is the site model's defaults: the ones pbx-config/site.toml
    documents (emergency kept 365 days, non-emergency 90)."""
    policy = recording_policy()
    assert policy.records(CallClass.EMERGENCY)
    assert policy.records(CallClass.UNKNOWN)  # not yet classified: err on the side of the record
    assert not policy.records(CallClass.NONEMERGENCY)
    assert policy.emergency_from == RecordFrom.ANSWER
    assert not policy.starts_at_arrival
    assert policy.retention(CallClass.EMERGENCY) == timedelta(days=365)
    assert policy.retention(CallClass.NONEMERGENCY) == timedelta(days=90)
    assert policy.retention(CallClass.UNKNOWN) == timedelta(days=365)
    assert not policy.legal_hold
    assert policy.held_calls == frozenset()


def test_policy_from_site_config_merges_retention_and_rejects_nonsense() -> None:
    policy = recording_policy(Recording(emergency_from=RecordFrom.ARRIVAL, nonemergency=True,
                                        retention_days=Retention(nonemergency=30), legal_hold=True))
    assert policy.starts_at_arrival
    assert policy.records(CallClass.NONEMERGENCY)
    assert policy.retention(CallClass.NONEMERGENCY) == timedelta(days=30)
    assert policy.retention(CallClass.EMERGENCY) == timedelta(days=365)  # left out: the site's default
    assert policy.hold_reason("1.1") is not None
    with pytest.raises(ValidationError):
        Retention(emergency=0)
    with pytest.raises(ValidationError):
        RecordingPolicy.model_validate(policy.model_dump() | {"format": "../../x"})
    with pytest.raises(ValidationError):
        Recording.model_validate({"record_emergency": False})  # there is no such switch
    with pytest.raises(ValidationError, match="no entry for unknown"):  # no silent second set of defaults
        RecordingPolicy(emergency_from=RecordFrom.ANSWER, record_nonemergency=False,
                        retention_days={CallClass.EMERGENCY: 1, CallClass.NONEMERGENCY: 1},
                        legal_hold=False, held_calls=frozenset())


def test_file_name_is_date_dirs_plus_ids() -> None:
    rel = relative_path("1763800215.42", "1763800215.42", AT, "wav")
    assert rel == PurePosixPath("2026/11/22/1763800215_42-1763800215_42-083015123456.wav")
    with pytest.raises(ValueError, match="timezone-aware"):
        relative_path("1.1", "1.1", AT.replace(tzinfo=None), "wav")
    with pytest.raises(ValueError, match="nothing usable"):
        safe_id("../..")


@given(st.text(min_size=1, max_size=200), st.text(min_size=1, max_size=200))
def test_no_id_can_escape_the_root_or_inject_options(linkedid: str, uniqueid: str) -> None:
    try:
        rel = relative_path(linkedid, uniqueid, AT, "wav")
    except ValueError:
        return
    assert ".." not in rel.parts
    assert not rel.is_absolute()
    assert len(rel.parts) == 4
    stem = rel.name.removesuffix(".wav")
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in stem)


@given(st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60),
       st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),  # noqa: DTZ001 - naive bounds are hypothesis's API; the values get UTC
                    timezones=st.just(UTC)))
def test_the_dial_plans_name_is_accepted_only_for_its_own_channel(linkedid: str, uniqueid: str,
                                                                   at: datetime) -> None:
    """pbx-config/extensions.conf [siaga-record] names the file; the engine takes it only if it is what
    relative_path gives for that channel at the instant the name carries."""
    try:
        rel = relative_path(linkedid, uniqueid, at, "wav")
    except ValueError:
        return
    assert announced_path(str(rel), linkedid, uniqueid, "wav") == (rel, at)
    for wrong in (f"../{rel}", f"/{rel}", f"{rel},b", str(rel).replace(".wav", ".gsm")):
        with pytest.raises(ValueError, match="recording path"):
            announced_path(wrong, linkedid, uniqueid, "wav")
    with pytest.raises(ValueError, match="not the channel's"):
        announced_path(str(rel), linkedid + "9", uniqueid, "wav")


def _write_wav(path: Path, samples: list[int], rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(struct.pack(f"<{len(samples)}h", *samples))


def test_silence_tone_duration_and_hash(tmp_path: Path) -> None:
    silence, tone = tmp_path / "silence.wav", tmp_path / "tone.wav"
    _write_wav(silence, [0] * 16000)
    _write_wav(tone, [int(8000 * math.sin(2 * math.pi * 1000 * n / 8000)) for n in range(8000)])
    assert wav_rms(silence) == 0.0
    assert 5000 < wav_rms(tone) < 6000  # 8000 / sqrt(2)
    assert wav_duration(silence) == 2.0
    facts = file_facts(tone)
    assert facts.duration_s == 1.0
    assert facts.size == tone.stat().st_size
    assert facts.sha256 == sha256_of(tone)


def test_wav_closed_only_when_the_header_matches_the_size(tmp_path: Path) -> None:
    path = tmp_path / "r.wav"
    _write_wav(path, [1] * 800)
    assert wav_closed(path)
    with path.open("ab") as fh:  # Asterisk still writing: data past the header's sizes
        fh.write(b"\x00\x01" * 160)
    assert not wav_closed(path)
    (tmp_path / "empty.wav").write_bytes(b"")
    assert not wav_closed(tmp_path / "empty.wav")
    assert not wav_closed(tmp_path / "absent.wav")
