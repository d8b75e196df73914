"""Supervisors listening in (ChanSpy): rules (pure), store (its table), service (AMI and audit)."""

from callflow.console.listen.rules import ListenMode, Session, SessionState
from callflow.console.listen.service import ListenService
from callflow.console.listen.store import LISTEN_SCHEMA

__all__ = ["LISTEN_SCHEMA", "ListenMode", "ListenService", "Session", "SessionState"]
