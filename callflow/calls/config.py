"""Call-tracking settings: ``[calls]`` in the settings file, ``SIAGA112_CALLS__...`` in the environment.

The short-abandon threshold is not here: it is the site file's ``[calls] short_abandon_s`` (one setting,
one default)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class CallsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cdr_file: Path | None = Field(default=None, description="Asterisk's CDR file, read by gap recovery")
    queue_log_file: Path | None = Field(default=None, description="Asterisk's queue_log, for gap recovery")
    buffer_rows: int = Field(default=10_000, ge=100, description="journal rows held in memory, then spilled")
