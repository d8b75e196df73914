"""Call-tracking settings: ``[calls]`` in the settings file, ``SIAGA112_CALLS__...`` in the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class CallsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    short_abandon_s: float = Field(default=3.0, ge=0,
                                   description="unanswered calls left within this many s: short abandons")
    cdr_file: Path | None = Field(default=None, description="Asterisk's CDR file, read by gap recovery")
    queue_log_file: Path | None = Field(default=None, description="Asterisk's queue_log, for gap recovery")
    buffer_rows: int = Field(default=10_000, ge=100, description="journal rows held in memory, then spilled")
