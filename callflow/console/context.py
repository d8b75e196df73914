"""Everything the console's routes need, built once per engine process and kept on the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from zoneinfo import ZoneInfo

from callflow.ami.client import Clock
from callflow.console.accounts import AccountStore
from callflow.console.audit import AuditLog
from callflow.console.hub import EventHub
from callflow.console.providers import Providers
from callflow.console.throttle import LoginThrottle


@dataclass
class ConsoleContext:
    accounts: AccountStore
    audit: AuditLog
    hub: EventHub
    providers: Providers
    throttle: LoginThrottle
    clock: Clock
    keepalive_s: float = 15.0
    timezone: tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Makassar"))  # the centre's "today"
