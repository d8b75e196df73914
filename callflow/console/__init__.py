"""The operator console and the wallboard: an HTTP API and two pages served inside the engine."""

from callflow.console.accounts import AccountError, AccountStore, Session, User
from callflow.console.app import create_app
from callflow.console.audit import AuditAction, AuditLog, AuditOutcome
from callflow.console.component import DEFAULT_ADDRESS, ConsoleComponent, ConsoleError, HttpAddress
from callflow.console.context import ConsoleContext
from callflow.console.hub import EventHub
from callflow.console.providers import Providers, ProviderUnavailable
from callflow.console.roles import Role
from callflow.console.schema import CONSOLE_SCHEMA

__all__ = [
    "CONSOLE_SCHEMA",
    "DEFAULT_ADDRESS",
    "AccountError",
    "AccountStore",
    "AuditAction",
    "AuditLog",
    "AuditOutcome",
    "ConsoleComponent",
    "ConsoleContext",
    "ConsoleError",
    "EventHub",
    "HttpAddress",
    "ProviderUnavailable",
    "Providers",
    "Role",
    "Session",
    "User",
    "create_app",
]
