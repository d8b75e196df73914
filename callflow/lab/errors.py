"""Errors of the lab. Each message says what was wrong, where, and what to do."""

from __future__ import annotations


class LabError(Exception):
    """The lab could not do what was asked; the message is meant for the user as it stands."""
