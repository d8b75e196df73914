"""Who may do what on the console."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OPERATOR = "operator"  # takes calls: own state, screen pop, incidents, callbacks
    SUPERVISOR = "supervisor"  # watches: wallboard, reports, exports, recordings
    ADMIN = "admin"  # runs the system: accounts, wallboard; no recordings or exports
    AGENCY = "agency"  # an agency's desk: only the reports handed to its own agency (callflow/agencies)


# Route groups name their roles explicitly (no implicit hierarchy): recordings and exports stay with
# supervisors, as the centre's privacy rule requires.
# ANY_ROLE is the centre's own staff: an agency account sees no calls, queues, operators or live stream.
ANY_ROLE = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.ADMIN})
AGENCIES = frozenset({Role.AGENCY})
OPERATORS = frozenset({Role.OPERATOR})
FLOOR = frozenset({Role.OPERATOR, Role.SUPERVISOR})  # people who handle incidents and callbacks
WATCHERS = frozenset({Role.SUPERVISOR, Role.ADMIN})  # wallboard and operator overview
SUPERVISORS = frozenset({Role.SUPERVISOR})  # recordings, exports, reports
