"""SIP and AMI secrets: read from an environment variable or a secret file, never from the site file.

A deployment may supply secrets itself (the lab passes its per-instance secrets): those override the
site file's references, by key (``ami`` or an operator's name).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from callflow.siteconfig._conf_text import conf_escape, control_character
from callflow.siteconfig._load import LoadedSite
from callflow.siteconfig._model import SecretRef
from callflow.siteconfig._problems import Problem, SiteConfigError

MIN_SECRET_LENGTH = 16
APPLY_KEY = "ami_apply"  # `config apply`'s AMI user
MASK = "********"


@dataclass(frozen=True)
class SecretSlot:
    key: str  # "ami", "ami_apply" or the operator's name
    ref: SecretRef
    loc: tuple[str | int, ...]  # the section in the site file


def secret_slots(loaded: LoadedSite) -> list[SecretSlot]:
    site = loaded.site
    slots = [SecretSlot("ami", site.ami, ("ami",)), SecretSlot(APPLY_KEY, site.ami.apply, ("ami", "apply"))]
    slots += [SecretSlot(op.name, op, ("operators", i)) for i, op in enumerate(site.operators)]
    return slots


def _read(loaded: LoadedSite, slot: SecretSlot) -> tuple[str | None, Problem | None]:
    ref = slot.ref
    if ref.secret_env is not None:
        loc = (*slot.loc, "secret_env")
        value = os.environ.get(ref.secret_env)
        if not value:
            return None, loaded.problem(loc, f"secret for {slot.key}: environment variable "
                                             f"{ref.secret_env} is not set",
                                        f"export {ref.secret_env} (at least {MIN_SECRET_LENGTH} random "
                                        f"characters) in the environment that runs siaga112")
        return value.strip(), None
    assert ref.secret_file is not None  # noqa: S101 - SecretRef guarantees one source
    loc = (*slot.loc, "secret_file")
    path = loaded.resolve(ref.secret_file)
    try:
        mode = path.stat().st_mode
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        return None, loaded.problem(loc, f"secret for {slot.key}: cannot read secret file {path} "
                                         f"({exc.strerror})",
                                    f"create it with one random line of at least {MIN_SECRET_LENGTH} "
                                    f"characters, mode 0600")
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        return None, loaded.problem(loc, f"secret for {slot.key}: secret file {path} is readable by "
                                         f"every user (mode {stat.S_IMODE(mode):04o})",
                                    f"chmod 600 {path}")
    return value, None


def _weakness(value: str) -> str:
    if len(value) < MIN_SECRET_LENGTH:
        return f"only {len(value)} characters (at least {MIN_SECRET_LENGTH} needed)"
    if len(set(value)) < 6:
        return "too few distinct characters"
    return ""


def secret_problems(loaded: LoadedSite, overrides: Mapping[str, str] | None = None) -> list[Problem]:
    """Every missing, unreadable, exposed or weak secret."""
    _, problems = _resolve(loaded, overrides or {})
    return problems


def resolve_secrets(loaded: LoadedSite, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The secret of every slot; raises :class:`SiteConfigError` if any is missing or weak."""
    values, problems = _resolve(loaded, overrides or {})
    if problems:
        raise SiteConfigError(problems)
    return values


def _resolve(loaded: LoadedSite, overrides: Mapping[str, str]) -> tuple[dict[str, str], list[Problem]]:
    values: dict[str, str] = {}
    problems: list[Problem] = []
    for slot in secret_slots(loaded):
        if slot.key in overrides:
            value: str | None = overrides[slot.key]
        else:
            value, problem = _read(loaded, slot)
            if problem is not None:
                problems.append(problem)
                continue
        assert value is not None  # noqa: S101 - set on every path that reaches here
        source = slot.ref.secret_env or str(slot.ref.secret_file)
        field = "secret_env" if slot.ref.secret_env else "secret_file"
        if found := control_character(value):
            # Never the value: only which secret, where it comes from, and what is wrong with it.
            origin = ("supplied by the deployment" if slot.key in overrides else
                      f"environment variable {source}" if slot.ref.secret_env else
                      f"secret file {loaded.resolve(Path(source))}")
            what = ("has more than one line" if found.startswith("a line break") else f"contains {found}")
            where = "manager.conf" if slot.key in {"ami", APPLY_KEY} else "pjsip.conf"
            problems.append(loaded.problem(
                (*slot.loc, field), f"secret for {slot.key} ({origin}) {what}: Asterisk would read the rest "
                                    f"as new lines of {where}",
                "a secret is one line of printable characters; rewrite it (e.g. `python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(24))'`)"))
            continue
        weakness = _weakness(value)
        if weakness:
            problems.append(loaded.problem((*slot.loc, field), f"secret for {slot.key} ({source}) is weak: "
                                                               f"{weakness}",
                                           "generate one, e.g. `python3 -c 'import secrets; "
                                           "print(secrets.token_urlsafe(24))'`"))
            continue
        values[slot.key] = value
    if values.get(APPLY_KEY) and values.get(APPLY_KEY) == values.get("ami"):
        problems.append(loaded.problem(
            ("ami", "apply"), "the secret for `config apply`'s AMI user is the engine's: whoever reads the "
                              "engine's secret could reload and read every configuration",
            "give [ami.apply] its own secret (secret_env or secret_file)"))
        del values[APPLY_KEY]
    return values, problems


def mask(text: str, secrets: Mapping[str, str]) -> str:
    """``text`` with every secret value replaced by a mask (longest first, so no partial leaks), also as
    written in a ``.conf`` file (``;`` escaped)."""
    values = {v for v in secrets.values() if v} | {conf_escape(v) for v in secrets.values() if v}
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text
