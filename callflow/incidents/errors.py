"""Errors of the incident layer. Each message says what was wrong and what to do; raising one means
nothing was changed (every write runs in one transaction)."""

from __future__ import annotations


class IncidentError(Exception):
    """Base of every refusal by the incident service."""


class UnknownCategory(IncidentError, ValueError):
    pass


class UnknownDistrict(IncidentError, ValueError):
    pass


class IncidentNotFound(IncidentError, LookupError):
    pass


class IllegalTransition(IncidentError):
    """A status moving backwards (or to where it already is), or a change on a finished incident."""


class DispatchError(IncidentError):
    """Dispatch of a closed incident, arrival before dispatch, an unknown or busy unit, times out of order."""


class RegistryError(IncidentError):
    """The agency/unit file cannot be used; the message names the file and line."""
