"""Wallboard thresholds: rules (pure), store (its table), service (reads figures, audits acks)."""

from callflow.console.thresholds.rules import Alert, ThresholdKind, ThresholdPolicy
from callflow.console.thresholds.service import ThresholdWatch
from callflow.console.thresholds.store import THRESHOLDS_SCHEMA

__all__ = ["THRESHOLDS_SCHEMA", "Alert", "ThresholdKind", "ThresholdPolicy", "ThresholdWatch"]
