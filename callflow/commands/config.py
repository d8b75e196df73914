"""``siaga112 config check | render | diff | apply | history | schema``: the site file, checked before it
is applied, applied atomically, verified, rolled back by itself when Asterisk does not take it."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
from pathlib import Path
from typing import Any

from callflow.ami import AmiEndpoint
from callflow.commands._config_cluster import (
    for_node,
    front_production,
    is_cluster_lab,
    on_each_node,
    render_cluster,
)
from callflow.lab import (
    LabError,
    cluster_status,
    front_files,
    is_cluster,
    keep_lab_secrets,
    lab_ami_after,
    lab_apply_target,
    lab_dir,
    load_secrets,
    status,
)
from callflow.siteconfig import (
    APPLY_KEY,
    DEFAULT_KEEP,
    DEFAULT_STATE_DIR,
    TREE_NAME,
    ApplyHistory,
    ApplyOutcome,
    ApplyReport,
    ApplyTarget,
    CheckContext,
    LoadedSite,
    LogWatch,
    SiteConfigError,
    applied_site_path,
    apply_files,
    check_site,
    default_asterisk_log,
    load_site,
    read_live,
    render_site,
    resolve_secrets,
    site_schema,
    tree_path,
    tree_text,
    unified_diff,
    write_files,
)
from ivr import site_check  # noqa: F401 - registers the IVR tree rules with `config check`

EXIT_PROBLEMS = 1
EXIT_ENVIRONMENT = 2  # no lab, no target: README, exit codes
EXIT_ROLLED_BACK = 2
EXIT_ROLLBACK_FAILED = 3


def register(sub: Any) -> None:
    p = sub.add_parser("config", help="the site file: check, render, diff, apply (verified, rolled back "
                                      "by itself on failure)")
    cfg = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    def with_target(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--lab", metavar="INSTANCE", help="a running lab (`siaga112 lab up`): its "
                                                              "ports, secrets and configuration directory")
        parser.add_argument("--etc", type=Path, metavar="DIR",
                            help="the live Asterisk configuration directory (production)")
        parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                            help=f"versions, apply history and the site last applied (with --etc; default "
                                 f"{DEFAULT_STATE_DIR})")
        parser.add_argument("--sounds-dir", type=Path, metavar="DIR",
                            help="where the IVR prompts are installed (host path; with --lab: the lab's)")
        parser.add_argument("--node", metavar="NAME",
                            help="with --etc, for a two-node site ([cluster]): which node this Asterisk is")
        parser.add_argument("--front", type=Path, metavar="DIR",
                            help="a two-node site's SIP front: Kamailio's configuration directory (instead "
                                 "of --etc)")

    p_check = cfg.add_parser("check", help="report every problem with file:line and a hint")
    p_check.add_argument("file", type=Path)
    p_check.add_argument("--lab", metavar="INSTANCE", help="take SIP/AMI secrets from this lab")
    p_check.set_defaults(handler=_check)
    p_render = cfg.add_parser("render", help="write the Asterisk .conf files (deterministic); a two-node "
                                             "site: DIR/<node>/ per node and DIR/kamailio/")
    p_render.add_argument("file", type=Path)
    p_render.add_argument("--out", type=Path, required=True, metavar="DIR")
    p_render.add_argument("--lab", metavar="INSTANCE", help="render as this lab runs it")
    p_render.set_defaults(handler=_render)
    p_diff = cfg.add_parser("diff", help="what would change against the configuration last applied")
    p_diff.add_argument("file", type=Path)
    with_target(p_diff)
    p_diff.set_defaults(handler=_diff)
    p_apply = cfg.add_parser("apply", help="write, reload only what changed, verify, roll back on failure")
    p_apply.add_argument("file", type=Path)
    with_target(p_apply)
    p_apply.add_argument("--keep", type=int, default=DEFAULT_KEEP, help="applied versions kept")
    p_apply.add_argument("--asterisk-log", type=Path, metavar="FILE",
                         help="with --etc: Asterisk's messages.log, read to see what Asterisk refused on "
                              "reload (default: messages.log in asterisk.conf's astlogdir, else "
                              "/var/log/asterisk)")
    p_apply.set_defaults(handler=_apply)
    p_hist = cfg.add_parser("history", help="past applies: who, when, the diff's hash, outcome")
    with_target(p_hist)
    p_hist.set_defaults(handler=_history)
    p_schema = cfg.add_parser("schema", help="the site file's JSON Schema (for editors)")
    p_schema.add_argument("--out", type=Path, metavar="FILE")
    p_schema.set_defaults(handler=_schema)


def _print_problems(problems: list[Any], verb: str) -> int:
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"siaga112 config {verb}: {len(problems)} problem(s); nothing was changed", file=sys.stderr)
    if any("environment variable" in str(p) and "is not set" in str(p) for p in problems):
        print("  (the site file names its secrets, never holds them: each secret_env must be set in the "
              "environment of the command, as on the server. To check the shipped pbx-config/site.toml "
              "on a development machine, take a lab's secrets: `siaga112 config check "
              "pbx-config/site.toml --lab INSTANCE`)", file=sys.stderr)
    return EXIT_PROBLEMS


def _lab_secrets(instance: str | None) -> dict[str, str]:
    if not instance:
        return {}
    if is_cluster(instance):  # a two-node lab: the secrets its front and nodes share
        return load_secrets(lab_dir(instance) / "secrets.json")
    st = status(instance)
    if not st.secrets_file or not Path(st.secrets_file).exists():
        raise LabError(f"lab {instance!r} has no secrets yet: start it with `siaga112 lab up --instance "
                       f"{instance}`")
    return load_secrets(Path(st.secrets_file))


def _checked(path: Path, lab: str | None) -> LoadedSite:
    loaded = load_site(path)
    problems = check_site(loaded, CheckContext(secret_overrides=_lab_secrets(lab)))
    if problems:
        raise SiteConfigError(problems)
    return loaded


def _check(args: argparse.Namespace) -> int:
    try:
        loaded = _checked(args.file, args.lab)
    except SiteConfigError as exc:
        return _print_problems(exc.problems, "check")
    except LabError as exc:
        print(f"siaga112 config check: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    print(f"{args.file}: OK ({loaded.site.centre.name}: {len(loaded.site.operators)} operators, entry "
          f"numbers {', '.join(loaded.site.entry.numbers)})")
    return 0


def _render(args: argparse.Namespace) -> int:
    try:
        if args.lab and is_cluster_lab(args):
            _checked(args.file, args.lab)
            written = []
            for name, instance in cluster_status(args.lab).node_instances.items():
                loaded, secrets, _ = lab_apply_target(status(instance), args.file)
                written += write_files(render_site(loaded, secrets), args.out / name)
            front, _, _ = front_files(args.lab, args.file)
            written += write_files(front, args.out / "kamailio")
        elif args.lab:
            _checked(args.file, args.lab)
            loaded, secrets, _ = lab_apply_target(status(args.lab), args.file)
            written = write_files(render_site(loaded, secrets), args.out)
        else:
            loaded = _checked(args.file, None)
            secrets = resolve_secrets(loaded)
            written = (render_cluster(loaded, secrets, args.out) if loaded.site.cluster
                       else write_files(render_site(loaded, secrets), args.out))
    except SiteConfigError as exc:
        return _print_problems(exc.problems, "render")
    except LabError as exc:
        print(f"siaga112 config render: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    print(f"rendered {len(written)} files from {args.file} into {args.out} (mode 0600: they hold secrets)")
    return 0


def _target(args: argparse.Namespace, *, check: bool
            ) -> tuple[LoadedSite, dict[str, str], ApplyTarget, AmiEndpoint]:
    if check:
        _checked(args.file, args.lab)
    if args.lab:
        st = status(args.lab)
        loaded, secrets, target = lab_apply_target(st, args.file, getattr(args, "keep", DEFAULT_KEEP))
        return loaded, secrets, target, lab_ami_after(st, secrets)
    if args.etc is None:
        raise LabError("say where to apply: --lab INSTANCE, or --etc DIR for a production Asterisk")
    loaded = load_site(args.file)
    secrets = resolve_secrets(loaded)
    loaded = for_node(loaded, args.node)
    ami = loaded.site.ami
    host = "127.0.0.1" if ami.bind.is_loopback or ami.bind.is_unspecified else str(ami.bind)
    # `config apply`'s own AMI user: the engine's cannot reload or verify (no `system`/`config` class)
    endpoint = AmiEndpoint(host, ami.port, ami.apply.username, secrets[APPLY_KEY])
    asterisk_log = None
    if check:  # applying: verification must be able to read what Asterisk refuses, or nothing is changed
        asterisk_log = getattr(args, "asterisk_log", None) or default_asterisk_log(args.etc)
        try:
            LogWatch(asterisk_log).mark()
        except OSError as exc:
            raise LabError(f"cannot read Asterisk's log {asterisk_log} ({exc.strerror}): `config apply` "
                           f"reads it to see any object Asterisk refuses or keeps in its old form on reload. "
                           f"Give --asterisk-log FILE (the messages.log of pbx-config/logger.conf) or run "
                           f"as a user who may read it. Nothing was changed.") from None
    target = ApplyTarget(etc_dir=args.etc, state_dir=args.state_dir, ami=endpoint,
                         keep=getattr(args, "keep", DEFAULT_KEEP), asterisk_log=asterisk_log)
    return loaded, secrets, target, endpoint


def _diff(args: argparse.Namespace) -> int:
    if is_cluster_lab(args):
        return on_each_node(args, _diff, "diff")
    if args.front is not None:
        return _front_production(args, "diff")
    try:
        loaded, secrets, target, _ = _target(args, check=False)
        files = render_site(loaded, secrets)
    except SiteConfigError as exc:
        return _print_problems(exc.problems, "diff")
    except LabError as exc:
        print(f"siaga112 config diff: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    diff = unified_diff(read_live(target.etc_dir, sorted(files)), files, secrets)
    tree_diff, note = _tree_diff(loaded, target.state_dir)
    diff += tree_diff
    print(diff if diff else f"no changes: {args.file} (and its IVR tree) renders to what is applied in "
          f"{target.etc_dir}", end="" if diff else "\n")
    if note:
        print(note)
    return 0


def _tree_diff(loaded: LoadedSite, state_dir: Path) -> tuple[str, str]:
    """(the IVR tree's diff against the one last applied, a note). The tree is part of the site:
    `config apply` keeps it beside the applied site file."""
    new = tree_text(loaded)
    if new is None:
        return "", ""
    stored = applied_site_path(state_dir).with_name(TREE_NAME)
    if not stored.is_file():
        return "", (f"(IVR tree: none applied to {state_dir} yet; `config apply` keeps "
                    f"{loaded.resolve(loaded.site.ivr.tree)} as the applied one)")
    old = stored.read_text(encoding="utf-8")
    return ("" if old == new else unified_diff({TREE_NAME: old}, {TREE_NAME: new}, {})), ""


def _front_production(args: argparse.Namespace, verb: str) -> int:
    try:
        loaded = _checked(args.file, None) if verb == "apply" else load_site(args.file)
    except SiteConfigError as exc:
        return _print_problems(exc.problems, verb)
    return front_production(args, loaded, verb)


def _apply(args: argparse.Namespace) -> int:
    if is_cluster_lab(args):
        return on_each_node(args, _apply, "apply")
    if args.front is not None:
        return _front_production(args, "apply")
    try:
        loaded, secrets, target, new_ami = _target(args, check=True)
        files = render_site(loaded, secrets)
    except SiteConfigError as exc:
        return _print_problems(exc.problems, "apply")
    except LabError as exc:
        print(f"siaga112 config apply: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    report = asyncio.run(apply_files(files, target, site_file=args.file.resolve(), site_text=loaded.text,
                                     secrets=secrets, new_ami=new_ami, site=loaded))
    code = _print_report(report, target)
    if report.ok:
        if args.lab:
            keep_lab_secrets(status(args.lab), secrets)
        code = max(code, _install_prompts(args, loaded, report))
    return code


def _install_prompts(args: argparse.Namespace, loaded: LoadedSite, report: ApplyReport) -> int:
    """Generate the prompts whose words changed (cached by text) where Asterisk plays them: the lab's
    sounds directory, or --sounds-dir. The running engine's IVR picks the new tree up by itself."""
    from ivr.prompts import PromptError, install  # noqa: PLC0415 - only an apply with a tree needs it
    from ivr.rules import TreeError, load_tree  # noqa: PLC0415

    path = tree_path(loaded)
    sounds = args.sounds_dir or (Path(status(args.lab).sounds_dir) if args.lab else None)
    if path is None or sounds is None:
        if report.tree_changed:
            print("NOTE: the IVR tree changed; install its prompts with `siaga112 ivr prompts --sounds-dir "
                  "DIR` (or give --sounds-dir to apply)")
        return 0
    try:
        tree = load_tree(path).tree
        before = {pid: _digest(sounds / "siaga112" / tree.name / f"{pid}.wav") for pid in tree.prompts}
        installed = install(tree, sounds)
    except (TreeError, PromptError, OSError) as exc:
        print(f"siaga112 config apply: the prompts of {path} could not be installed in {sounds}: {exc}; "
              "callers hear the previous audio. Fix it and run `siaga112 ivr prompts`", file=sys.stderr)
        return EXIT_PROBLEMS
    changed = [p.prompt_id for p in installed if before.get(p.prompt_id) != _digest(p.path)]
    generated = [p.prompt_id for p in installed if p.generated]
    print(f"IVR prompts in {sounds}: {', '.join(changed) or 'none'} changed (new words; generated now: "
          f"{', '.join(generated) or 'none, from the cache'}), {len(installed) - len(changed)} unchanged")
    return 0


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _print_report(report: ApplyReport, target: ApplyTarget) -> int:
    if report.outcome is ApplyOutcome.UNCHANGED:
        print(f"nothing to apply: {target.etc_dir} already has this configuration")
        return 0
    print(f"changed: {', '.join(report.changed)}; reloaded: {', '.join(report.modules) or '(none)'}")
    if report.restart_needed:
        print(f"NOTE: {', '.join(report.restart_needed)} take effect only after an Asterisk restart")
    if report.outcome is ApplyOutcome.APPLIED:
        print(f"applied and verified (version {report.version}, diff sha256 {report.diff_sha256[:12]})")
        return 0
    print("verification FAILED:", file=sys.stderr)
    for problem in report.problems:
        print(f"  - {problem}", file=sys.stderr)
    if report.outcome is ApplyOutcome.ROLLED_BACK:
        print("the previous configuration was restored, reloaded and verified: Asterisk runs what it ran "
              "before. Fix the site file and apply again.", file=sys.stderr)
        return EXIT_ROLLED_BACK
    print("ROLLBACK FAILED too: Asterisk may be running a broken configuration. Check it now "
          "(asterisk -rx 'pjsip show endpoints', 'dialplan show', 'queue show'):", file=sys.stderr)
    for problem in report.rollback_problems:
        print(f"  - {problem}", file=sys.stderr)
    return EXIT_ROLLBACK_FAILED


def _history(args: argparse.Namespace) -> int:
    state_dir = lab_dir(args.lab) / "config" if args.lab else args.state_dir
    history = ApplyHistory(state_dir)
    records = history.records()
    if not records:
        print(f"no applies recorded in {state_dir}")
    for rec in records:
        version = f" v{rec.version}" if rec.version else ""
        print(f"{rec.at}  {rec.who:<10} {rec.outcome:<16}{version}  diff {rec.diff_sha256[:12]}  "
              f"{', '.join(rec.changed) or '-'}")
    print(f"versions kept: {', '.join(str(v) for v in history.versions()) or '(none)'}")
    applied = applied_site_path(state_dir)
    print(f"site running: {applied} (with its IVR tree {applied.with_name(TREE_NAME)})" if applied.is_file()
          else "site running: none applied yet (the shipped pbx-config/site.toml)")
    return 0


def _schema(args: argparse.Namespace) -> int:
    text = site_schema()
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0
