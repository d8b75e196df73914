"""The console's web server settings (``[console]`` in the engine's settings file): a leaf module, so the
console and :mod:`callflow.settings` both import it without importing each other."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork


class ConsoleSettings(BaseModel):
    """The console's web server (``[console]`` in the settings file); README "Console security"."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    allowed_hosts: tuple[str, ...] = Field(
        default=(), description="Host header names accepted besides localhost, 127.0.0.1, ::1 and the "
                                "--http bind address (the names browsers use, e.g. the reverse proxy's); "
                                "any other Host is refused with 421 (DNS rebinding)")
    trusted_proxies: tuple[IPvAnyNetwork, ...] = Field(
        default=(), description="peers whose X-Forwarded-For names the client (your reverse proxy); from "
                                "any other peer the header is ignored")
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024,
                                description="largest request body; larger ones get 413 before parsing")
    login_max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024,
                                      description="largest body of POST /api/auth/login")
    max_connections: int = Field(default=200, ge=8, le=10000,
                                 description="open connections; beyond it new requests get 503")
    request_timeout_s: float = Field(default=10.0, gt=0, le=300,
                                     description="a request's headers and body must arrive within this")
    keepalive_timeout_s: int = Field(default=5, ge=1, le=300,
                                       description="an idle keep-alive connection is closed after this")
    session_check_s: float = Field(default=2.0, gt=0, le=60,
                                   description="an open event stream re-checks its session this often "
                                               "(a disabled account's stream ends within it)")
