"""Leases the engine holds in the dial plan: a global variable that holds the Asterisk epoch second until
which the dial plan trusts a part of the running engine (the IVR gate, the recorder).

A flag the engine sets and clears stays set when the engine dies without clearing it (``kill -9``, a host
fault): the dial plan would go on trusting a process that is gone. A lease runs out by itself: its holder
renews it every :data:`RENEW_S`, and the dial plan compares it with ``${EPOCH}``, so within
:data:`LEASE_S` of the engine's last renewal the dial plan stops trusting it with nobody left to tell it.
The expiry is computed from Asterisk's own clock (``Getvar EPOCH``), so a skew between the engine's clock
and Asterisk's does not shorten or stretch it. ``0`` (the value in extensions.conf) is a lease never held.
Setvar and Getvar need only AMI's ``call`` class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from callflow.ami import AmiError, AmiMessage

LEASE_S = 6  # the dial plan trusts a holder this long after its last renewal
RENEW_S = 2.0  # how often a holder renews (three chances per lease)
NOT_HELD = "0"


class LeaseSession(Protocol):
    async def action(self, name: str, headers: Mapping[str, str | int] | None = None, *,
                     timeout: float | None = None,
                     variables: Mapping[str, str] | None = None) -> AmiMessage: ...


async def asterisk_epoch(session: LeaseSession) -> int:
    """Asterisk's clock, in whole seconds (what the dial plan's ``${EPOCH}`` reads)."""
    reply = await session.action("Getvar", {"Variable": "EPOCH"})
    value = reply.get("Value") or ""
    if not value.isdigit():
        raise AmiError(f"Getvar EPOCH answered {value!r}, not a number of seconds")
    return int(value)


async def grant(session: LeaseSession, variable: str) -> int:
    """Set (or renew) the lease in ``variable``; returns its expiry (Asterisk epoch seconds)."""
    until = await asterisk_epoch(session) + LEASE_S
    await session.action("Setvar", {"Variable": variable, "Value": str(until)})
    return until


async def revoke(session: LeaseSession, variable: str) -> None:
    """End the lease now (a holder that stops cleanly does not wait for it to run out)."""
    await session.action("Setvar", {"Variable": variable, "Value": NOT_HELD})
