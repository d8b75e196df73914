"""What Asterisk should show after loading a set of rendered files, read from the files themselves
(so the same code verifies an apply and the rollback that restores older files)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_SECTION = re.compile(r"^\[([^\]]+)\](?:\(([^)]*)\))?\s*(?:;.*)?$")
_OPTION = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=>?\s*(.*?)\s*$")

# Reload target for each file (AMI ``Reload`` ``Module:``). Files not listed need a restart.
RELOAD_MODULES: dict[str, str] = {
    "pjsip.conf": "res_pjsip.so",
    "extensions.conf": "pbx_config.so",
    "queues.conf": "app_queue.so",
    "queuerules.conf": "app_queue.so",
    "manager.conf": "manager",
    "logger.conf": "logger",
    "rtp.conf": "res_rtp_asterisk.so",
    "musiconhold.conf": "res_musiconhold.so",
    "features.conf": "features",
    "cdr.conf": "cdr",
    "cdr_custom.conf": "cdr_custom.so",
    "cdr_manager.conf": "cdr_manager.so",
    "indications.conf": "indications",
    "cel.conf": "cel",
    "acl.conf": "acl",
    "udptl.conf": "udptl",
    "ccss.conf": "ccss",
}


def module_for(file_name: str) -> str | None:
    return RELOAD_MODULES.get(file_name)


@dataclass
class Section:
    name: str
    templates: list[str]
    is_template: bool
    options: dict[str, str] = field(default_factory=dict)


_COMMENT = re.compile(r"(?<!\\);")


def uncommented(raw: str) -> str:
    """A line as Asterisk's parser reads it: cut at the first ``;`` not written ``\\;``, which is a
    literal ``;`` (see :mod:`._conf_text`)."""
    return _COMMENT.split(raw, maxsplit=1)[0].replace("\\;", ";")


def sections(text: str) -> list[Section]:
    out: list[Section] = []
    for raw in text.splitlines():
        line = uncommented(raw).rstrip()
        if not line.strip():
            continue
        if match := _SECTION.match(line.strip()):
            parts = [p.strip() for p in (match.group(2) or "").split(",") if p.strip()]
            out.append(Section(match.group(1), [p for p in parts if p != "!"], "!" in parts))
        elif out and (opt := _OPTION.match(line)):
            out[-1].options.setdefault(opt.group(1), opt.group(2))
    return out


@dataclass(frozen=True)
class QueueExpectation:
    weight: str
    strategy: str
    servicelevel: str


@dataclass(frozen=True)
class Expectation:
    endpoints: dict[str, str]  # endpoint -> expected caller id ("" when none)
    queues: dict[str, QueueExpectation]
    contexts: list[str]
    extensions: dict[str, list[str]]  # context -> extensions that must exist (entry numbers, operators)

    @classmethod
    def from_files(cls, files: Mapping[str, str]) -> Expectation:
        return cls(_endpoints(files.get("pjsip.conf", "")), _queues(files.get("queues.conf", "")),
                   _contexts(files.get("extensions.conf", "")),
                   _entry_extensions(files.get("extensions.conf", "")))


def _endpoints(text: str) -> dict[str, str]:
    all_sections = sections(text)
    templates = {s.name: s for s in all_sections if s.is_template}
    out: dict[str, str] = {}
    for sec in all_sections:
        if sec.is_template:
            continue
        merged: dict[str, str] = {}
        for name in sec.templates:
            merged.update(templates[name].options if name in templates else {})
        merged.update(sec.options)
        if merged.get("type") == "endpoint":
            out[sec.name] = merged.get("callerid", "")
    return out


def _queues(text: str) -> dict[str, QueueExpectation]:
    return {s.name: QueueExpectation(s.options.get("weight", "0"), s.options.get("strategy", "ringall"),
                                     s.options.get("servicelevel", "0"))
            for s in sections(text) if s.name != "general"}


def _contexts(text: str) -> list[str]:
    return sorted({s.name for s in sections(text) if s.name not in {"general", "globals"}})


_LISTED_CONTEXTS = frozenset({"from-citizens", "from-operators"})  # generated from site file lists


def _entry_extensions(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    context = ""
    for line in text.splitlines():
        if match := _SECTION.match(line.strip()):
            context = match.group(1)
        elif context in _LISTED_CONTEXTS and (m := re.match(r"^exten\s*=>\s*(\d+),1,", line)):
            out.setdefault(context, []).append(m.group(1))
    return out
