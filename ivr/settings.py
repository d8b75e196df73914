"""Settings of the IVR component (``[ivr]`` in the engine's settings file, ``SIAGA112_IVR__*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class IvrSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    tree: Path | None = Field(default=None, description="IVR tree TOML; default pbx-config/ivr.toml")
    host: str = "127.0.0.1"
    port: int = Field(default=4573, description="FastAGI port (with --lab: the lab's FastAGI port)")
    sounds_dir: Path | None = Field(default=None, description="host path of Asterisk's sounds dir where "
                                    "prompts are installed (with --lab: the lab's)")
    header_timeout_s: float = Field(default=5.0, gt=0, description="a peer must send its request by then")
    command_timeout_s: float = Field(default=5.0, gt=0)
    max_sessions: int = Field(default=500, ge=1, description="more concurrent calls fail safe at once")
    isolation: Literal["process", "thread", "inline"] = Field(
        default="process", description="process: a child of the engine (see ivr/process.py for why); "
        "thread: an event loop in a thread of the engine; inline: on the engine's own loop")
    switch_interval_s: float = Field(default=0.0005, gt=0, le=0.005, description="with isolation = "
                                     "thread: the interpreter's thread switch interval (Python's 5 ms)")
    missed_keys: bool = Field(default=True, description="give a key the caller pressed while no menu "
                              "listened (Asterisk drops it, AMI reports it) back to the next menu "
                              "(ivr/keys.py)")
