"""Errors of the AMI layer. Third-party exceptions are translated to these at the boundary."""

from __future__ import annotations


class AmiError(Exception):
    """Base of every AMI-layer error."""


class ProtocolError(AmiError):
    """The peer sent something that is not valid AMI (garbage, oversized frame, wrong banner)."""


class ConnectionLost(AmiError):
    """The connection closed or stopped answering (half-open) before the operation finished."""


class LoginFailed(AmiError):
    """Asterisk refused the credentials."""


class ActionFailed(AmiError):
    """Asterisk answered an action with ``Response: Error``; ``message`` is Asterisk's own text."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"AMI action {action} failed: {message}")
        self.action = action
        self.message = message


class ActionTimeout(AmiError):
    """No response to an action within its timeout."""


class OutcomeUnknown(AmiError):
    """A state-changing action was in flight when the connection dropped.

    It is never re-sent automatically (an Originate or Redirect could run twice): re-query the state.
    """
