"""Engine settings: a TOML file plus environment overrides (``SIAGA112_AMI__PORT=...``)."""

from __future__ import annotations

import json
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from callflow.calls.config import CallsSettings
from callflow.centre import CENTRE_TIMEZONE
from callflow.console_settings import ConsoleSettings
from callflow.store import StoreError, StoreLocation, parse_location
from ivr.settings import IvrSettings

_CONFIG_FILE: ContextVar[str | None] = ContextVar("siaga112_config_file", default=None)


class AmiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = 15038
    username: str = "siaga112"
    secret: SecretStr | None = None
    secret_file: Path | None = Field(default=None, description="JSON file with an 'ami' key, or a plain file")
    tls: bool = Field(default=False, description="AMI over TLS (the port is then Asterisk's tlsbindaddr "
                                                 "port; with --lab the lab's TLS listener)")
    tls_ca_file: Path | None = Field(default=None, description="certificate (self-signed) or CA to trust "
                                     "for Asterisk's TLS certificate; default: the system's CAs")
    ping_interval_s: float = 1.5  # with ping_timeout_s: a half-open AMI link is noticed within 4 s
    ping_timeout_s: float = 2.5
    action_timeout_s: float = 10.0

    def resolved_secret(self) -> str:
        if self.secret is not None:
            return self.secret.get_secret_value()
        if self.secret_file is not None:
            text = self.secret_file.read_text().strip()
            if text.startswith("{"):
                value = json.loads(text).get("ami")
                if isinstance(value, str):
                    return value
            return text
        raise ValueError("no AMI secret: set SIAGA112_AMI__SECRET, ami.secret_file in the settings file, "
                         "or use --lab to take the lab's")


class IncidentSettings(BaseModel):
    """Incidents, dispatch and reports (``[incidents]`` in the settings file)."""

    model_config = ConfigDict(extra="forbid")
    agencies_file: Path | None = None  # the agency/unit registry (TOML)
    response_target_min: float = 30.0  # dispatch -> on scene target
    timezone: str = CENTRE_TIMEZONE  # set by `serve` from the site file ([centre] timezone); not a setting


class CallbackSettings(BaseModel):
    """This engine's part in callbacks (``[callbacks]`` in the settings file; the policy itself is the site
    file's ``[callbacks]``)."""

    model_config = ConfigDict(extra="forbid")
    dial: bool = Field(default=True, description="false: keep callback tasks (flagged for a supervisor) but "
                                                 "dial nothing (benchmarks, tests sharing a lab database)")


class NodeSettings(BaseModel):
    """This engine's node (``[node]`` in the settings file): one engine per Asterisk node, both on one
    store (issue 20). Without a name the engine runs alone: no lease, no heartbeats."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", pattern=r"^([a-z0-9][a-z0-9-]{0,30})?$",
                      description="the node's name, as its Asterisk's systemname (asterisk.conf): journal "
                                  "rows and call records carry it, the lease and heartbeats use it")
    lease_s: float = Field(default=5.0, gt=0, description="the leader lease's length without a renewal")
    lease_renew_s: float = Field(default=1.0, gt=0, description="heartbeat and lease renewal interval")
    lost_after_s: float = Field(default=5.0, gt=0, description="a node whose heartbeat is older (or whose "
                                "Asterisk is unreachable for as long) is lost: the leader closes its calls")


class EngineSettings(BaseSettings):
    """Settings of ``siaga112 serve``. File: ``--config FILE`` or ``SIAGA112_CONFIG``."""

    # hide_input_in_errors: a refused value may be a secret (a database URL with a password in it)
    model_config = SettingsConfigDict(env_prefix="SIAGA112_", env_nested_delimiter="__", extra="forbid",
                                      hide_input_in_errors=True)

    ami: AmiSettings = AmiSettings()
    ivr: IvrSettings = IvrSettings()
    database: StoreLocation = Field(default=Path("var/siaga112.db"), description="the store: a SQLite "
                                    "file (the embedded default) or a postgresql:// URL (no password in it: "
                                    "libpq's PGPASSFILE, ~/.pgpass, service file or PGPASSWORD)")
    data_dir: Path | None = Field(default=None, description="the engine's own files (the journal's spill "
                                  "file, the default recordings root); default: the SQLite database's "
                                  "folder, or var/ with a PostgreSQL store")
    recordings_dir: Path | None = Field(default=None, description="recordings root; default: "
                                        "'recordings' in the data directory")
    incidents: IncidentSettings = IncidentSettings()
    calls: CallsSettings = CallsSettings()
    callbacks: CallbackSettings = CallbackSettings()
    node: NodeSettings = NodeSettings()
    console: ConsoleSettings = ConsoleSettings()
    site_file: Path | None = Field(default=None, description="the site file (siaga112 config); the "
                                   "engine's policies (recording, queues, callbacks) are built from it "
                                   "(callflow/policies.py). With --lab: pbx-config/site.toml")
    log_format: str = "auto"
    log_level: str = "info"

    @field_validator("database", mode="before")
    @classmethod
    def _store_location(cls, value: Any) -> StoreLocation:
        try:
            return parse_location(value)
        except StoreError as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _CONFIG_FILE.get() or os.environ.get("SIAGA112_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def data_dir(settings: EngineSettings) -> Path:
    """Where the engine keeps its own files: ``data_dir``, else the SQLite database's folder, else var/."""
    if settings.data_dir is not None:
        return settings.data_dir
    return settings.database.parent if isinstance(settings.database, Path) else Path("var")


def recordings_root(settings: EngineSettings) -> Path:
    return settings.recordings_dir or data_dir(settings) / "recordings"


def load_settings(config_file: Path | None = None, **overrides: Any) -> EngineSettings:
    if config_file is not None and not config_file.exists():
        raise FileNotFoundError(f"settings file {config_file} does not exist")
    # The file is handed to the settings sources through a context variable: loading settings never
    # changes the process environment.
    token = _CONFIG_FILE.set(str(config_file) if config_file is not None else None)
    try:
        return EngineSettings(**overrides)
    finally:
        _CONFIG_FILE.reset(token)
