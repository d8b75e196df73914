"""Everything the console's routes need, built once per engine process and kept on the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from callflow.ami.client import Clock
from callflow.console.accounts import AccountStore
from callflow.console.audit import AuditLog
from callflow.console.hub import EventHub
from callflow.console.providers import Providers
from callflow.console.throttle import LoginThrottle

if TYPE_CHECKING:
    from callflow.console.listen import ListenService
    from callflow.console.thresholds import ThresholdWatch


@dataclass
class ConsoleContext:
    accounts: AccountStore
    audit: AuditLog
    hub: EventHub
    providers: Providers
    throttle: LoginThrottle
    clock: Clock
    thresholds: ThresholdWatch | None = None  # set once the console's store is open
    listen: ListenService | None = None  # likewise
    keepalive_s: float = 15.0
    timezone: tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Makassar"))  # the centre's "today"


def start_of_day(at: datetime, zone: tzinfo) -> datetime:
    """Midnight of ``at``'s day on the centre's clock (Manado: Asia/Makassar, UTC+8), as a UTC instant."""
    local = at.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
