"""Where each key of a TOML file is written: a small line scanner (not a parser).

``tomllib`` parses the file; it gives no positions, so this scanner walks the lines once and records the
line of every table header (``[a.b]``, ``[[a]]`` with its index) and every ``key =`` assignment, as the
same path pydantic reports in an error's ``loc`` (``("operators", 2, "secret_env")``). A value that is not
recorded (an item inside an array, a missing key) maps to its nearest recorded parent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Path = tuple[str | int, ...]

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r"\"(?:[^\"\\]|\\.)*\"|'[^']*'"
_KEY_PART = rf"(?:{_BARE}|{_QUOTED})"
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_TABLE = re.compile(rf"^\s*\[\s*({_DOTTED})\s*\]\s*(?:#.*)?$")
_ARRAY_TABLE = re.compile(rf"^\s*\[\[\s*({_DOTTED})\s*\]\]\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")
_PART = re.compile(_KEY_PART)
_STRINGS = re.compile(rf"{_QUOTED}")


def _split(dotted: str) -> tuple[str, ...]:
    parts = []
    for match in _PART.finditer(dotted):
        token = match.group(0)
        parts.append(token[1:-1] if token[0] in "\"'" else token)
    return tuple(parts)


class Positions:
    """Line numbers (1-based) of the keys of one TOML text."""

    def __init__(self, text: str) -> None:
        self._lines: dict[Path, int] = {}
        self._scan(text)

    def _scan(self, text: str) -> None:
        table: Path = ()
        aot_index: dict[tuple[str, ...], int] = {}
        depth = 0  # open brackets/braces of a value spanning lines
        in_multiline: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_multiline is not None:
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            if depth > 0:
                depth += _depth_change(line)
                continue
            if match := _ARRAY_TABLE.match(line):
                names = _split(match.group(1))
                aot_index[names] = aot_index.get(names, -1) + 1
                table = self._resolve(names, aot_index)
                self._lines.setdefault(table, number)
                continue
            if match := _TABLE.match(line):
                table = self._resolve(_split(match.group(1)), aot_index)
                self._lines.setdefault(table, number)
                continue
            if match := _ASSIGN.match(line):
                keys = _split(match.group(1))
                for i in range(1, len(keys) + 1):
                    self._lines.setdefault(table + keys[:i], number)
                rest = line[match.end():]
                for quote in ('"""', "'''"):
                    if rest.count(quote) % 2 == 1:
                        in_multiline = quote
                if in_multiline is None:
                    depth = max(0, _depth_change(rest))

    @staticmethod
    def _resolve(names: tuple[str, ...], aot_index: dict[tuple[str, ...], int]) -> Path:
        """A header's path with the current index inserted after every array-of-tables prefix."""
        path: list[str | int] = []
        for i, name in enumerate(names, start=1):
            path.append(name)
            if names[:i] in aot_index:
                path.append(aot_index[names[:i]])
        return tuple(path)

    def line(self, loc: Sequence[str | int]) -> int:
        """The line of ``loc`` or of its nearest recorded parent; 1 when nothing matches."""
        path = tuple(loc)
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return 1

    def has(self, loc: Sequence[str | int]) -> bool:
        return tuple(loc) in self._lines


def _depth_change(line: str) -> int:
    code = _STRINGS.sub("", line).split("#", 1)[0]
    return code.count("[") + code.count("{") - code.count("]") - code.count("}")
