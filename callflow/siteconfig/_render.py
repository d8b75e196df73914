"""Render the site file into Asterisk's ``.conf`` files.

The files in ``pbx-config/`` are templates: ``{{NAME}}`` placeholders take values from the site file
(Asterisk's own ``${...}`` passes through untouched). Only lists in the site file become generated blocks
(``{{OPERATORS_PJSIP}}``, ``{{ENTRY_NUMBERS}}``); everything else is a value. The output is deterministic
(same site file and templates, same bytes) and each file starts with a header naming its sources.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from callflow.ami.privileges import APPLY_READ, APPLY_WRITE, ENGINE_READ, ENGINE_WRITE, classes, reasons
from callflow.siteconfig._conf_text import conf_escape, control_character, rendered_value_problems
from callflow.siteconfig._load import LoadedSite
from callflow.siteconfig._model import Queue, Site
from callflow.siteconfig._problems import Problem, SiteConfigError
from callflow.siteconfig._secrets import secret_slots
from queues.policy import PENALTY_OVERFLOW, PENALTY_SUPERVISOR  # the tiers queuerules.conf widens to

_PLACEHOLDER = re.compile(r"\{\{([A-Z0-9_]+)\}\}")
HEADER_END = "; (end of the siaga112 header)\n"


def pbx_config_dir() -> Path:
    """The template directory: ``SIAGA112_PBX_CONFIG`` or the repository's ``pbx-config/``."""
    explicit = os.environ.get("SIAGA112_PBX_CONFIG")
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parents[2] / "pbx-config"


def substitute(text: str, values: Mapping[str, str], source: str) -> str:
    """Replace every ``{{NAME}}``; an unknown one raises :class:`SiteConfigError` naming file:line."""
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            line = text.count("\n", 0, match.start()) + 1
            raise SiteConfigError([Problem(source, line, f"unknown placeholder {{{{{key}}}}}",
                                           f"known: {', '.join(sorted(values))}")])
        return values[key]

    return _PLACEHOLDER.sub(replace, text)


def operators_block(site: Site, secrets: Mapping[str, str]) -> str:
    """Each operator's endpoint, auth and aor. Free text is escaped for pjsip.conf (:func:`conf_escape`);
    names and extensions are safe by their patterns (:mod:`._model`)."""
    parts = []
    for op in site.operators:
        options = "".join(f"{key} = {conf_escape(value)}\n"
                          for key, value in sorted(op.pjsip_options.items()))
        contact = f"contact = {conf_escape(op.contact)}\n" if op.contact else ""
        password = conf_escape(secrets[op.name])
        parts.append(
            f"[{op.name}](operator-endpoint)\nauth = {op.name}\naors = {op.name}\n"
            f'callerid = "{conf_escape(op.display_name)}" <{op.extension}>\n{options}\n'
            f"[{op.name}](operator-auth)\nusername = {op.name}\npassword = {password}\n\n"
            f"[{op.name}](operator-aor)\n{contact}"
        )
    return "\n".join(parts)


def entry_numbers_block(site: Site) -> str:
    # First the caller id, which the caller wrote (siaga-untrusted-caller in extensions.conf).
    return "\n".join(f"exten => {number},1,Gosub(siaga-untrusted-caller,s,1)\n"
                     f" same => n,Set(__SIAGA_DIALED=${{EXTEN}})\n same => n,Goto(siaga-entry,s,1)"
                     for number in site.entry.numbers)


def operator_extensions_block(site: Site) -> str:
    return "\n".join(f"exten => {op.extension},1,Dial(PJSIP/{op.name},30)\n same => n,Hangup()"
                     for op in site.operators)


def _queue_values(prefix: str, queue: Queue) -> dict[str, str]:
    return {
        f"{prefix}_WEIGHT": str(queue.weight),
        f"{prefix}_SERVICELEVEL": str(queue.servicelevel_s),
        f"{prefix}_STRATEGY": queue.strategy,
        f"{prefix}_TIMEOUT": str(queue.ring_timeout_s),
        f"{prefix}_RETRY": str(queue.retry_s),
        f"{prefix}_WRAPUP": str(queue.wrapup_s),
        f"{prefix}_ANNOUNCE": "yes" if queue.announce_position else "no",
        f"{prefix}_ANNOUNCE_FREQUENCY": str(queue.announce_frequency_s if queue.announce_position else 0),
    }


def overflow_rules_block(queue: Queue) -> str:
    """The emergency queue's ``penaltychange`` lines: widen QUEUE_MAX_PENALTY over the wait."""
    lines = []
    if queue.overflow_s:
        lines.append(f"; after {queue.overflow_s} s: every logged-in operator")
        lines.append(f"penaltychange => {queue.overflow_s},{PENALTY_OVERFLOW}")
    if queue.supervisors_s:
        lines.append(f"; after {queue.supervisors_s} s: supervisors")
        lines.append(f"penaltychange => {queue.supervisors_s},{PENALTY_SUPERVISOR}")
    if not lines:
        lines.append("; overflow off (site file: [queues.emergency] overflow_s = 0, supervisors_s = 0)")
    return "\n".join(lines)


def _ami_tls(site: Site) -> str:
    ami = site.ami
    if not ami.tls:
        return "tlsenable = no"
    return (f"tlsenable = yes\ntlsbindaddr = {ami.bind}:{ami.tls_port}\n"
            f"tlscertfile = {ami.tls_cert_file}\ntlsprivatekey = {ami.tls_key_file}")


def template_values(site: Site, secrets: Mapping[str, str]) -> dict[str, str]:
    """Every placeholder a template may use. Add new ones here (and document them in site.toml), with the
    value checked in :mod:`._conf_text` and escaped for where it lands."""
    return {
        "CENTRE_NAME": conf_escape(site.centre.name),
        "AMI_BIND": str(site.ami.bind),
        "AMI_PORT": str(site.ami.port),
        "AMI_USER": site.ami.username,
        "AMI_SECRET": conf_escape(secrets["ami"]),
        "AMI_PERMIT": "\n".join(f"permit = {net.with_netmask}" for net in site.ami.permit),
        "AMI_READ": classes(ENGINE_READ),
        "AMI_WRITE": classes(ENGINE_WRITE),
        "AMI_READ_WHY": reasons("read", ENGINE_READ),
        "AMI_WRITE_WHY": reasons("write", ENGINE_WRITE),
        "AMI_APPLY_USER": site.ami.apply.username,
        "AMI_APPLY_SECRET": conf_escape(secrets["ami_apply"]),
        "AMI_APPLY_READ": classes(APPLY_READ),
        "AMI_APPLY_WRITE": classes(APPLY_WRITE),
        "AMI_APPLY_WRITE_WHY": reasons("write", APPLY_WRITE),
        "AMI_TLS": _ami_tls(site),
        "SIP_BIND": str(site.sip.bind),
        "SIP_PORT": str(site.sip.port),
        "INGRESS_MATCH": ",".join(str(net) for net in site.sip.ingress_networks),
        "AGI_HOST": str(site.fastagi.host),
        "AGI_PORT": str(site.fastagi.port),
        "RTP_START": str(site.sip.rtp_start),
        "RTP_END": str(site.sip.rtp_end),
        "MOH_DIR": site.paths.moh,
        "SOUNDS_DIR": site.paths.sounds,
        "RECORDINGS_DIR": site.paths.recordings,
        "RECORD_EMERGENCY_FROM": site.recording.emergency_from.value,
        "RECORD_NONEMERGENCY": "yes" if site.recording.nonemergency else "no",
        "CALLBACK_TRUNK_CONTACT": conf_escape(site.callbacks.trunk_contact),
        "CALLBACK_CALLER_ID": site.callbacks.caller_id,
        "OPERATORS_PJSIP": operators_block(site, secrets),
        "ENTRY_NUMBERS": entry_numbers_block(site),
        "OPERATOR_EXTENSIONS": operator_extensions_block(site),
        **_queue_values("QUEUE_EMERGENCY", site.queues.emergency),
        **_queue_values("QUEUE_NONEMERGENCY", site.queues.nonemergency),
        "QUEUE_EMERGENCY_OVERFLOW_RULES": overflow_rules_block(site.queues.emergency),
        "RENDER_NOTE": "generated; do not edit the rendered copy by hand",
    }


def header(source_name: str, template: str) -> str:
    return (
        "; ---------------------------------------------------------------------------------------------\n"
        f"; Rendered by siaga112 from site file {source_name} and template {template}.\n"
        "; DO NOT EDIT BY HAND: change the site file, then `siaga112 config check` and `config apply`.\n"
        + HEADER_END
    )


def body(rendered: str) -> str:
    """A rendered file without its header (what Asterisk acts on)."""
    _, sep, rest = rendered.partition(HEADER_END)
    return rest if sep else rendered


def render_site(loaded: LoadedSite, secrets: Mapping[str, str], template_dir: Path | None = None
                ) -> dict[str, str]:
    """File name -> rendered text, for every ``*.conf`` template, sorted by name."""
    source_dir = template_dir or pbx_config_dir()
    templates = sorted(source_dir.glob("*.conf"))
    if not templates:
        raise SiteConfigError([Problem(str(source_dir), 1, f"no *.conf templates in {source_dir}",
                                       "is SIAGA112_PBX_CONFIG right?")])
    _refuse_unsafe_values(loaded, secrets)
    values = template_values(loaded.site, secrets)
    out: dict[str, str] = {}
    for template in templates:
        text = substitute(template.read_text(encoding="utf-8"), values, str(template))
        out[template.name] = header(loaded.path.name, f"{source_dir.name}/{template.name}") + text
    return out


def _refuse_unsafe_values(loaded: LoadedSite, secrets: Mapping[str, str]) -> None:
    """The same rules as ``config check``, again here: no caller renders a value unchecked (the lab
    renders without running the checks)."""
    problems = rendered_value_problems(loaded)
    for slot in secret_slots(loaded):
        if (found := control_character(secrets.get(slot.key, ""))):
            problems.append(loaded.problem(slot.loc, f"secret for {slot.key} contains {found}",
                                           "a secret is one line of printable characters"))
    if problems:
        raise SiteConfigError(problems)


def write_files(files: Mapping[str, str], out_dir: Path) -> list[Path]:
    """Write each file atomically (temporary file, fsync, rename), mode 0600: they hold secrets."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sorted(files.items()):
        target = out_dir / name
        tmp = out_dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        tmp.replace(target)
        written.append(target)
    dir_fd = os.open(out_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return written
