"""Everything the console's routes need, built once per engine process and kept on the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from ipaddress import IPv4Network, IPv6Network
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from callflow.ami.client import Clock
from callflow.centre import CENTRE_TIMEZONE
from callflow.console.accounts import AccountStore
from callflow.console.audit import AuditLog
from callflow.console.hub import EventHub
from callflow.console.limits import LOOPBACK_NAMES
from callflow.console.providers import Providers
from callflow.console.throttle import LoginThrottle
from callflow.console_settings import ConsoleSettings

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
    web: ConsoleSettings = field(default_factory=ConsoleSettings)  # limits, proxies, session checks
    host_names: frozenset[str] = LOOPBACK_NAMES  # Host headers answered (limits.host_names)
    timezone: tzinfo = field(default_factory=lambda: ZoneInfo(CENTRE_TIMEZONE))  # the centre's "today"

    @property
    def trusted_proxies(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return tuple(self.web.trusted_proxies)


def start_of_day(at: datetime, zone: tzinfo) -> datetime:
    """Midnight of ``at``'s day on the centre's clock (Manado: Asia/Makassar, UTC+8), as a UTC instant."""
    local = at.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
