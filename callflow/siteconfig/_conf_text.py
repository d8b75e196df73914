"""What a site-file value may contain in the Asterisk file it lands in, and how it is written there.

Asterisk's configuration parser (``main/config.c``, used for every ``.conf`` file we render) reads a file
line by line: a line starting with ``[`` opens a section, ``#include``/``#exec`` at a line's start pull in
other files, ``;`` starts a comment anywhere (``;--`` a block comment) unless written ``\\;``, which it
reads as a literal ``;``. Every value we render follows ``key =`` on its own line, so:

- a line break (or any control character) is refused everywhere: it is the only way a value could start
  a line of its own, i.e. open an ``[intruder]`` section or an ``#include``. Asterisk has no line
  continuation, so there is nothing to escape it to;
- ``[`` and ``]`` inside a value are therefore literal and allowed (a SIP URI to an IPv6 host needs them);
- ``;`` is escaped as ``\\;``, not refused, in option values: SIP URIs need it (``sip:host;transport=tcp``,
  Asterisk's own pjsip.conf sample writes ``outbound_proxy = sip:proxy\\;lr``) and password managers
  generate it; Asterisk reads the escaped form back exactly (an unescaped ``;`` made Asterisk keep "Ab"
  of a secret "Ab;...");
- a path (``paths.*``, TLS files) is refused unless it uses plain path characters: ``paths.sounds`` is
  substituted by the dial plan into application arguments, where ``,`` ``(`` ``)`` ``$`` ``[`` ``\\`` and
  ``;`` are syntax at a second level that no single escape covers, and no directory needs them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the model imports this module's patterns; the site is only an argument here
    from callflow.siteconfig._load import LoadedSite
    from callflow.siteconfig._problems import Problem

# Control characters (Unicode Cc: line feed, carriage return, tab, NUL...) and the line and paragraph
# separators. The model's patterns use these, so the JSON Schema tells editors the same rule.
CONTROL_CHARACTERS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
ONE_LINE = rf"^[^{CONTROL_CHARACTERS}]*$"
PLAIN_PATH = r"^/[A-Za-z0-9._+/-]*$"
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")
_PATH = re.compile(PLAIN_PATH)
# Keys the renderer writes itself for each operator's endpoint: a second line with one of them would
# silently replace ours (``auth = x`` would leave the endpoint without its own authentication).
RENDERED_ENDPOINT_KEYS = frozenset({"type", "auth", "aors", "callerid"})


class Placement(StrEnum):
    OPTION = "option"  # the value of a `key = value` line: one line, `;` escaped
    PATH = "path"  # a directory or file Asterisk opens; the sounds directory also reaches the dial plan


def conf_escape(value: str) -> str:
    """``value`` as written after ``key =`` in an Asterisk ``.conf`` file (see the module's notes)."""
    return value.replace(";", "\\;")


def control_character(value: str) -> str:
    """A description of the first line break or control character in ``value`` ("" when none)."""
    if (found := _CONTROL.search(value)) is None:
        return ""
    char = found.group(0)
    names = {"\n": "a line break (LF)", "\r": "a line break (CR)", "\t": "a tab",
             "\u2028": "a line separator (U+2028)", "\u2029": "a paragraph separator (U+2029)"}
    return names.get(char, f"a control character (U+{ord(char):04X})")


def value_problem(value: str, placement: Placement, file: str) -> tuple[str, str]:
    """(what is wrong, what to do) for ``value`` rendered into ``file`` at ``placement``; ("", "") if fine."""
    if found := control_character(value):
        return (f"contains {found}: Asterisk would read what follows as a new line of {file} (a new "
                f"option or [section] nobody wrote)",
                "write the value on one line, without control characters")
    if placement is Placement.PATH and not _PATH.match(value):
        bad = sorted({c for c in value if not re.match(r"[A-Za-z0-9._+/-]", c)})
        shown = " ".join(repr(c) for c in bad) or "no leading /"
        return (f"is not a plain absolute path ({shown}): {file} and the dial plan read such characters as "
                f"syntax (`;` comment, `,` argument separator, `$`/`[` expressions)",
                "use an absolute path of letters, digits and . _ - + / only")
    return "", ""


def _site_values(loaded: LoadedSite) -> Iterator[tuple[tuple[str | int, ...], str, Placement, str]]:
    """Every free-text value the templates may render: (where in the site file, value, placement, file)."""
    site = loaded.site
    yield ("centre", "name"), site.centre.name, Placement.OPTION, "the rendered files"
    for i, op in enumerate(site.operators):
        yield ("operators", i, "display_name"), op.display_name, Placement.OPTION, "pjsip.conf"
        if op.contact is not None:
            yield ("operators", i, "contact"), op.contact, Placement.OPTION, "pjsip.conf"
        for key, value in op.pjsip_options.items():
            yield ("operators", i, "pjsip_options", key), value, Placement.OPTION, "pjsip.conf"
    yield ("callbacks", "trunk_contact"), site.callbacks.trunk_contact, Placement.OPTION, "pjsip.conf"
    yield ("paths", "sounds"), site.paths.sounds, Placement.PATH, "extensions.conf"
    yield ("paths", "moh"), site.paths.moh, Placement.PATH, "musiconhold.conf"
    yield ("paths", "recordings"), site.paths.recordings, Placement.PATH, "the recordings' file names"
    for key in ("tls_cert_file", "tls_key_file"):
        path = getattr(site.ami, key)
        if path is not None:
            yield ("ami", key), str(path), Placement.PATH, "manager.conf"


def rendered_value_problems(loaded: LoadedSite) -> list[Problem]:
    """Every site-file value that cannot be written safely into the Asterisk file it lands in (secrets
    are checked where they are read, :mod:`._secrets`, so their values are never shown)."""
    problems = []
    for loc, value, placement, file in _site_values(loaded):
        what, hint = value_problem(value, placement, file)
        if what:
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
            problems.append(loaded.problem(loc, f"`{where}` {what}", hint))
    for i, op in enumerate(loaded.site.operators):
        for key in sorted(RENDERED_ENDPOINT_KEYS & set(op.pjsip_options)):
            problems.append(loaded.problem(
                ("operators", i, "pjsip_options", key),
                f"pjsip_options of {op.name} sets `{key}`, which siaga112 writes itself: a second `{key}` "
                f"line would replace it",
                "remove it: display_name sets the caller id; authentication is always the operator's own"))
    return problems
