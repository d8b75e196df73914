"""Read a site file: TOML syntax, then the pydantic model; every error mapped to file:line with a hint."""

from __future__ import annotations

import re
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from callflow.siteconfig._conf_text import PLAIN_PATH, Placement, value_problem
from callflow.siteconfig._model import Site, toml_type
from callflow.siteconfig._positions import Positions
from callflow.siteconfig._problems import Problem, SiteConfigError

_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")
EXAMPLE = "pbx-config/site.toml"


@dataclass(frozen=True)
class LoadedSite:
    """A valid site model and where its keys are written (for problems found by later checks)."""

    site: Site
    path: Path
    text: str
    positions: Positions

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def resolve(self, path: Path) -> Path:
        """A path from the site file (IVR tree, secret file): relative ones are relative to the file."""
        return path if path.is_absolute() else self.base_dir / path

    def problem(self, loc: tuple[str | int, ...], message: str, hint: str = "") -> Problem:
        return Problem(str(self.path), self.positions.line(loc), message, hint)


def load_site(path: Path) -> LoadedSite:
    """Load and validate ``path``. Raises :class:`SiteConfigError` listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SiteConfigError([Problem(str(path), 1, f"cannot read the site file: {exc}",
                                       f"check the path and permissions; an example is {EXAMPLE}")]) from None
    return parse_site(text, path)


def parse_site(text: str, path: Path) -> LoadedSite:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_AT.search(str(exc))
        line = int(match.group(1)) if match else 1
        message = _TOML_AT.sub("", str(exc)).strip()
        hint = "fix the syntax on this line (quotes, brackets, `key = value`)"
        raise SiteConfigError([Problem(str(path), line, f"TOML syntax error: {message}", hint)]) from None
    positions = Positions(text)
    try:
        site = Site.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(err, path, positions) for err in exc.errors()]
        raise SiteConfigError(sorted(problems, key=lambda p: p.line)) from None
    return LoadedSite(site, path, text, positions)


def _problem(err: Any, path: Path, positions: Positions) -> Problem:
    loc: tuple[str | int, ...] = tuple(err["loc"])
    where = ".".join(str(part) for part in loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        hint = f"known keys here: {', '.join(known)}; check the spelling"
        if any(word in str(loc[-1]).lower() for word in ("secret", "password", "pass")):
            hint = ("secrets are never written in the site file: name an environment variable "
                    "(secret_env) or a file (secret_file) instead")
        return Problem(str(path), positions.line(loc), f"unknown key `{loc[-1]}` in {_parent(loc)}", hint)
    if kind == "missing":
        return Problem(str(path), positions.line(loc), f"missing key `{where}`",
                       f"add `{loc[-1]} = ...` here (see {EXAMPLE} for a documented example)")
    if kind in _TYPES:
        expected, example = _TYPES[kind]
        key = next((str(part) for part in reversed(loc) if isinstance(part, str)), "key")
        return Problem(str(path), positions.line(loc), f"`{where}`: expected {expected}, got "
                                                       f"{toml_type(err['input'])}",
                       f"write {example.format(key=key)}")
    if kind == "string_pattern_mismatch" and isinstance(err["input"], str):
        placement = Placement.PATH if err["ctx"]["pattern"] == PLAIN_PATH else Placement.OPTION
        file = _RENDERED_INTO.get(str(loc[0]), "Asterisk's files")
        what, hint = value_problem(err["input"], placement, file)
        if what:  # the one-line and plain-path rules: said as config check says them after loading
            return Problem(str(path), positions.line(loc), f"`{_dotted(loc)}` {what}", hint)
    message = str(err["msg"]).removeprefix("Value error, ")
    hint = f"see the comment on this key in {EXAMPLE} for what is allowed"
    if message.startswith("expected a quoted string"):
        hint = f'write the value in double quotes (see {EXAMPLE} for an example of this key)'
    return Problem(str(path), positions.line(loc), f"`{where}`: {message}", hint)


# Which rendered file a section's values land in (for the one-line rule's message).
_RENDERED_INTO = {"operators": "pjsip.conf", "callbacks": "pjsip.conf", "paths": "extensions.conf",
                  "centre": "the rendered files"}


def _dotted(loc: tuple[str | int, ...]) -> str:
    """``operators[1].pjsip_options.direct_media``: a site-file key as an admin reads it."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


# pydantic's strict type errors: what the key takes and how to write it in TOML.
_TYPES = {
    "int_type": ("an integer", "a whole number without quotes, e.g. `{key} = 10`"),
    "float_type": ("a number", "a number without quotes, e.g. `{key} = 30` or `{key} = 0.5`"),
    "bool_type": ("true or false", "true or false without quotes, e.g. `{key} = true`"),
    "string_type": ("a quoted string", 'the value in double quotes, e.g. `{key} = "..."`'),
    "list_type": ("a list", 'a list in brackets, e.g. `{key} = ["..."]`'),
    "dict_type": ("a table", "a table, e.g. `[{key}]` with its keys below it, or `{key} = {{ ... }}`"),
    "model_type": ("a table", "a table, e.g. `[{key}]` with its keys below it"),
}


def _parent(loc: tuple[str | int, ...]) -> str:
    parts: list[str] = []
    for part in loc[:-1]:
        if isinstance(part, int):
            parts[-1] = f"[[{parts[-1]}]] number {part + 1}"
        else:
            parts.append(part)
    if not parts:
        return "the top level"
    return parts[0] if len(parts) == 1 and parts[0].startswith("[[") else f"[{'.'.join(parts)}]"


def _known_keys(loc: tuple[str | int, ...]) -> list[str]:
    """Field names of the model at ``loc`` (walking lists and optionals), for an unknown-key hint."""
    model: Any = Site
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return []
        model = _unwrap(model.model_fields[part].annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin in (list, typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
        elif origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation
