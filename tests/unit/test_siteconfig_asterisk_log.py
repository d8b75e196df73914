"""What Asterisk refused on reload, read from its log. The lines below were written by the lab's Asterisk 22
(messages.log, kept in tests/unit/siteconfig/asterisk_log/) when its files were edited by hand and
reloaded; the lab test (tests/integration/test_config_apply.py) applies a misspelt option for real."""

from __future__ import annotations

from pathlib import Path

from callflow.siteconfig import pbx_config_dir
from callflow.siteconfig._asterisk_log import MESSAGES_LOG, LogWatch, default_asterisk_log, refusals

LOGS = Path(__file__).parent / "siteconfig" / "asterisk_log"

PJSIP_RELOAD = (LOGS / "pjsip_reload.log").read_text()
OTHER_RELOADS = (LOGS / "other_reloads.log").read_text()
BENIGN = (LOGS / "benign.log").read_text()


def test_retained_endpoint_names_the_option_and_quotes_asterisk() -> None:
    found = refusals(PJSIP_RELOAD)
    assert [(r.kind, r.name, r.options, r.retained) for r in found] == [
        ("endpoint", "op1", ["direct_meda"], True), ("endpoint", "op3", ["allow"], True)]
    text = found[0].describe()
    assert text.startswith("Asterisk refused endpoint op1 (option direct_meda); it keeps running its "
                           "previous definition")
    assert ("\"[2026-12-04 20:25:03.858] ERROR[24251] config_options.c: Could not find option suitable for "
            "category 'op1' named 'direct_meda' at line 100 of\"") in text
    assert "Retaining existing configuration for object of type 'endpoint' with id 'op1'" in text
    assert "nosuchcodec" in found[1].describe()


def test_queue_dial_plan_and_manager_refusals() -> None:
    found = refusals(OTHER_RELOADS)
    assert [(r.kind, r.name, r.options) for r in found] == [
        ("queue", "emergency", ["foo_bar"]), ("", "", []), ("manager user", "siaga112", [])]
    assert "No '=' (equal sign) in line 26" in found[1].describe()
    assert "Invalid IP address: garbage" in found[2].describe()


def test_notices_benign_warnings_and_calls_are_not_refusals() -> None:
    assert refusals(BENIGN) == []


def test_a_new_object_refused_without_retaining() -> None:
    text = "\n".join(PJSIP_RELOAD.splitlines()[:2])
    (found,) = refusals(text)
    assert (found.name, found.retained) == ("op1", False)
    assert "keeps running" not in found.describe()


def test_logger_conf_writes_what_apply_reads() -> None:
    lines = (pbx_config_dir() / "logger.conf").read_text().splitlines()
    assert f"{MESSAGES_LOG} => notice,warning,error" in lines


def test_default_log_follows_asterisk_conf(tmp_path: Path) -> None:
    assert default_asterisk_log(tmp_path) == Path("/var/log/asterisk") / MESSAGES_LOG
    (tmp_path / "asterisk.conf").write_text("[directories]\nastetcdir => /etc/asterisk\n"
                                            "astlogdir => /srv/pbx/log ; ours\n")
    assert default_asterisk_log(tmp_path) == Path("/srv/pbx/log/messages.log")


async def test_log_watch_reads_from_the_mark_and_after_rotation(tmp_path: Path) -> None:
    log = tmp_path / MESSAGES_LOG
    log.write_text("old line\n")
    watch = LogWatch(log)
    watch.mark()
    with log.open("a") as fh:
        fh.write("new line\n")
    assert await watch.read_new(settle=0.05) == "new line\n"
    watch.mark()
    log.rename(tmp_path / "messages.log.1")
    log.write_text("after rotation\n")
    assert await watch.read_new(settle=0.05) == "after rotation\n"
