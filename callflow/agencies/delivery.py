"""Delivering hand-offs to agencies' own systems: the rules, without I/O or clock.

Each message is one EIDO document (callflow/agencies/eido.py) POSTed as JSON to the agency's endpoint,
signed with HMAC-SHA256 under the agency's own secret: the receiver recomputes
``hex(HMAC-SHA256(secret, timestamp + "." + body))`` and compares it with the ``X-Siaga112-Signature``
header (``sha256=<hex>``); the timestamp (``X-Siaga112-Timestamp``, Unix seconds) lets it refuse replays.
A 2xx answer delivers the message; anything else (another status, no answer, a refused connection) is
retried after :data:`RETRY_DELAYS`, and after the last one the message is marked failed (visible to
supervisors; a newer message about the same report still goes out).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

SIGNATURE_HEADER = "X-Siaga112-Signature"
TIMESTAMP_HEADER = "X-Siaga112-Timestamp"
DELIVERY_HEADER = "X-Siaga112-Delivery"
# wait before attempt 2, 3, ...: quick first retries for a receiver that restarts, then spaced out
RETRY_DELAYS: tuple[timedelta, ...] = (timedelta(seconds=5), timedelta(seconds=30), timedelta(minutes=2),
                                       timedelta(minutes=10), timedelta(minutes=30), timedelta(hours=2))


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt refused


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Siaga112-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: bytes, timestamp: int, body: bytes, sent: str) -> bool:
    """What a receiver does (the tests' receiver does exactly this)."""
    return hmac.compare_digest(signature(secret, timestamp, body), sent)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an attempt means for its message: the new state and, when pending, the next attempt's time."""

    state: DeliveryState
    next_attempt_at: datetime | None


def after_attempt(attempt: int, ok: bool, at: datetime,
                  delays: tuple[timedelta, ...] = RETRY_DELAYS) -> Outcome:
    """After attempt number ``attempt`` (1 = the first) made at ``at``."""
    if ok:
        return Outcome(DeliveryState.DELIVERED, None)
    if attempt > len(delays):
        return Outcome(DeliveryState.FAILED, None)
    return Outcome(DeliveryState.PENDING, at + delays[attempt - 1])


def accepted(status: int | None) -> bool:
    return status is not None and 200 <= status < 300
