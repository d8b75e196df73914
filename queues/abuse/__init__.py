"""Repeat-abuse flags on callers' numbers: never a block, only an order behind emergency callers."""

from queues.abuse.rules import DEFAULT_FLAG_HOURS, REPEAT_ABUSE, AbuseFlag, flag_expiry, flag_in_force
from queues.abuse.store import ABUSE_SCHEMA

__all__ = ["ABUSE_SCHEMA", "DEFAULT_FLAG_HOURS", "REPEAT_ABUSE", "AbuseFlag", "flag_expiry", "flag_in_force"]
