"""Rules across the site file's sections. ``check_site`` runs every registered check and returns every
problem (never stops at the first). Other packages plug their own rules in with :func:`register_check`
(the IVR tree loader validates the tree the site file names; the recordings policy its own section)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from callflow.siteconfig._conf_text import rendered_value_problems
from callflow.siteconfig._load import LoadedSite
from callflow.siteconfig._model import EMERGENCY_CATEGORIES, NONEMERGENCY_CATEGORIES, ServiceClass
from callflow.siteconfig._problems import Problem
from callflow.siteconfig._secrets import secret_problems


@dataclass(frozen=True)
class CheckContext:
    """What a check may need beyond the file: secrets a deployment supplies (the lab's)."""

    secret_overrides: Mapping[str, str] = field(default_factory=dict)


Check = Callable[[LoadedSite, CheckContext], Iterable[Problem]]
_CHECKS: list[Check] = []


def register_check(check: Check) -> Check:
    """Add a check to the pipeline (usable as a decorator). Registering the same function twice is a no-op."""
    if check not in _CHECKS:
        _CHECKS.append(check)
    return check


def registered_checks() -> list[Check]:
    return list(_CHECKS)


def check_site(loaded: LoadedSite, context: CheckContext | None = None) -> list[Problem]:
    ctx = context or CheckContext()
    problems: list[Problem] = []
    for check in _CHECKS:
        problems.extend(check(loaded, ctx))
    return sorted(problems, key=lambda p: (p.line, p.message))


@register_check
def check_entry_numbers(loaded: LoadedSite, ctx: CheckContext) -> Iterable[Problem]:
    numbers = loaded.site.entry.numbers
    if "112" not in numbers:
        yield loaded.problem(("entry", "numbers"), "112 is not among the entry numbers",
                             'add "112": citizens must always reach the centre on 112')
    for number, count in Counter(numbers).items():
        if count > 1:
            yield loaded.problem(("entry", "numbers"), f"entry number {number} is listed {count} times",
                                 "list each number once")


@register_check
def check_operators(loaded: LoadedSite, ctx: CheckContext) -> Iterable[Problem]:
    site = loaded.site
    seen_names: dict[str, int] = {}
    seen_ext: dict[str, int] = {}
    entry = set(site.entry.numbers)
    for i, op in enumerate(site.operators):
        if op.name in seen_names:
            yield loaded.problem(("operators", i, "name"), f"duplicate operator name {op.name}",
                                 f"the first {op.name} is on line "
                                 f"{loaded.positions.line(('operators', seen_names[op.name]))}; rename one")
        seen_names.setdefault(op.name, i)
        if op.extension in seen_ext:
            first = site.operators[seen_ext[op.extension]].name
            yield loaded.problem(("operators", i, "extension"),
                                 f"duplicate extension {op.extension} ({op.name} and {first})",
                                 "give each operator its own extension")
        elif op.extension in entry:
            yield loaded.problem(("operators", i, "extension"),
                                 f"extension {op.extension} of {op.name} is also an entry number",
                                 "choose an extension that is not an entry number")
        seen_ext.setdefault(op.extension, i)
        if op.name in {"citizen-ingress", "transport-udp"}:
            yield loaded.problem(("operators", i, "name"), f"operator name {op.name} is reserved",
                                 "choose another name, e.g. op7")


@register_check
def check_queues(loaded: LoadedSite, ctx: CheckContext) -> Iterable[Problem]:
    site = loaded.site
    names = {op.name for op in site.operators}
    for cls in ServiceClass:
        queue = getattr(site.queues, cls.value)
        for j, member in enumerate(queue.operators):
            loc = ("queues", cls.value, "operators", j)
            op = site.operator(member)
            if op is None:
                yield loaded.problem(loc, f"queue {cls.value} names unknown operator {member}",
                                     f"define it under [[operators]] or remove it; known: "
                                     f"{', '.join(sorted(names)) or '(none)'}")
            elif cls not in op.classes:
                yield loaded.problem(loc, f"operator {member} is in queue {cls.value} but does not serve "
                                          f"{cls.value} calls",
                                     f"add \"{cls.value}\" to {member}'s classes or remove it from the queue")
    if site.queues.emergency.weight <= site.queues.nonemergency.weight:
        yield loaded.problem(("queues", "emergency", "weight"),
                             "the emergency queue's weight is not above the non-emergency queue's",
                             "emergency callers must be offered first: give emergency the higher weight")
    if not site.queues.emergency.operators:
        yield loaded.problem(("queues", "emergency"), "no operator may serve the emergency queue",
                             "list at least one operator in queues.emergency.operators")
    non = site.queues.nonemergency
    for key in ("overflow_s", "supervisors_s", "supervisors"):
        if getattr(non, key):
            yield loaded.problem(("queues", "nonemergency", key),
                                 f"{key} applies to the emergency queue only",
                                 "move it to [queues.emergency] or remove it from [queues.nonemergency]")
    emergency = site.queues.emergency
    for j, member in enumerate(emergency.supervisors):
        if site.operator(member) is None:
            yield loaded.problem(("queues", "emergency", "supervisors", j),
                                 f"queue emergency names unknown supervisor {member}",
                                 f"define it under [[operators]] or remove it; known: "
                                 f"{', '.join(sorted(names)) or '(none)'}")
    if emergency.supervisors and not emergency.supervisors_s:
        yield loaded.problem(("queues", "emergency", "supervisors_s"),
                             "supervisors are listed but supervisors_s is 0: they are never offered a call",
                             "set supervisors_s (seconds of waiting before supervisors are offered)")
    if emergency.overflow_s and emergency.supervisors_s and emergency.supervisors_s <= emergency.overflow_s:
        yield loaded.problem(("queues", "emergency", "supervisors_s"),
                             "supervisors_s is not after overflow_s",
                             "supervisors are the last resort: make supervisors_s larger than overflow_s")


@register_check
def check_categories(loaded: LoadedSite, ctx: CheckContext) -> Iterable[Problem]:
    known = {ServiceClass.EMERGENCY: EMERGENCY_CATEGORIES, ServiceClass.NONEMERGENCY: NONEMERGENCY_CATEGORIES}
    for cls, allowed in known.items():
        for j, category in enumerate(getattr(loaded.site.categories, cls.value)):
            if category in allowed:
                continue
            other = NONEMERGENCY_CATEGORIES if cls is ServiceClass.EMERGENCY else EMERGENCY_CATEGORIES
            hint = (f"{category} is a {'non-emergency' if cls is ServiceClass.EMERGENCY else 'emergency'} "
                    f"category: move it" if category in other else f"known: {', '.join(allowed)}")
            yield loaded.problem(("categories", cls.value, j), f"unknown {cls.value} category {category!r}",
                                 hint)


@register_check
def check_ami(loaded: LoadedSite, ctx: CheckContext) -> Iterable[Problem]:
    ami = loaded.site.ami
    if not ami.bind.is_loopback and not ami.tls:
        yield loaded.problem(("ami", "bind"), f"AMI bound to {ami.bind} (not loopback) without TLS",
                             "keep bind = \"127.0.0.1\", or set tls = true with tls_cert_file and "
                             "tls_key_file")
    if ami.tls and (ami.tls_cert_file is None or ami.tls_key_file is None):
        yield loaded.problem(("ami", "tls"), "AMI TLS is on but tls_cert_file or tls_key_file is missing",
                             "give both files (PEM)")
    for j, net in enumerate(ami.permit):
        if not net.is_loopback and ami.bind.is_loopback:
            yield loaded.problem(("ami", "permit", j), f"AMI permits {net} but listens on loopback only",
                                 "remove the network, or bind the AMI to an address it can be reached on")


@register_check
def check_sip(loaded: LoadedSite, ctx: CheckContext) -> Iterable[Problem]:
    sip = loaded.site.sip
    if sip.rtp_start >= sip.rtp_end:
        yield loaded.problem(("sip", "rtp_start"), "rtp_start is not below rtp_end",
                             "give a range, e.g. rtp_start = 10000, rtp_end = 20000")
    ports = [("sip.port", sip.port, ("sip", "port")), ("ami.port", loaded.site.ami.port, ("ami", "port")),
             ("fastagi.port", loaded.site.fastagi.port, ("fastagi", "port"))]
    for i, (name, port, loc) in enumerate(ports):
        for other, other_port, _ in ports[i + 1:]:
            if port == other_port:
                yield loaded.problem(loc, f"{name} and {other} are both {port}",
                                     "give each service its own port")


@register_check
def check_ivr(loaded: LoadedSite, ctx: CheckContext) -> Iterable[Problem]:
    ivr = loaded.site.ivr
    if ivr.fallback != ServiceClass.EMERGENCY.value:
        yield loaded.problem(("ivr", "fallback"), f"the IVR has no emergency fallback (fallback = "
                                                  f"{ivr.fallback!r})",
                             'set fallback = "emergency": a caller who times out, presses a wrong key or '
                             "meets a failed IVR must reach the emergency queue")
    if ivr.enabled:
        tree = loaded.resolve(ivr.tree)
        if not tree.is_file():
            yield loaded.problem(("ivr", "tree"), f"the IVR tree {tree} does not exist",
                                 "create it (the IVR tree file) or fix the path; set enabled = false only if "
                                 "this centre runs without an IVR")


@register_check
def check_secrets(loaded: LoadedSite, ctx: CheckContext) -> Iterable[Problem]:
    return secret_problems(loaded, ctx.secret_overrides)


@register_check
def check_rendered_values(loaded: LoadedSite, ctx: CheckContext) -> Iterable[Problem]:
    return rendered_value_problems(loaded)
