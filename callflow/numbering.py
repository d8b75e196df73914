"""The site's numbering plan: which telephone numbers the engine may dial by itself (callbacks).

A number a caller presents is only a claim: dialled blindly, a callback can cost an international or a
premium-rate call (or reach a service the centre must not call). The plan is a list of regular
expressions, each matched against the whole number; the default is Indonesia's (a centre elsewhere sets
``[callbacks] dial_patterns`` in the site file). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

# Indonesia (ITU-T E.164 country code 62). Mobile numbers are 08 + operator digit 1-9 + 7-10 digits
# (0811..., 0852..., 0899...); 0800 (free phone) and 0809 (premium rate) are not mobiles and stay out.
# Fixed lines are 0 + area code (2-4 digits starting 2-7 or 9: 021 Jakarta, 0431 Manado, 0967 Jayapura)
# + subscriber number, 9-12 digits in all; a local fixed line without its area code is 5-8 digits not
# starting with 0 or 1 (1xx are service and premium short codes). The +62/62 forms are the same numbers
# as the telco may present them. Anything else (other country codes, 001/007/008 international
# prefixes, 0809 premium, short codes) is flagged for a supervisor instead.
INDONESIA_DIAL_PATTERNS: tuple[str, ...] = (
    r"08[1-9][0-9]{7,10}",  # mobile, national form
    r"\+?628[1-9][0-9]{7,10}",  # mobile, international form of a domestic number
    r"0[2-79][0-9]{7,10}",  # fixed line with area code
    r"\+?62[2-79][0-9]{7,10}",  # fixed line, international form of a domestic number
    r"[2-9][0-9]{4,7}",  # local fixed line, no area code
)


class NumberingPlanError(ValueError):
    """A pattern of the plan is not a valid regular expression; the message names it."""


@dataclass(frozen=True)
class NumberingPlan:
    """Numbers the engine may dial: those matching one of ``patterns`` in full."""

    patterns: tuple[str, ...] = INDONESIA_DIAL_PATTERNS
    _compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", compile_patterns(self.patterns))

    def allows(self, number: str) -> bool:
        return any(p.fullmatch(number) for p in self._compiled)


def compile_patterns(patterns: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise NumberingPlanError(f"dial pattern {pattern!r} is not a valid regular expression "
                                     f"({exc}); write it as Python's re module reads it") from exc
    return tuple(compiled)
