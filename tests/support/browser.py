"""Headless Chromium for the console's end-to-end tests: the driver, waits that survive re-renders,
screenshots (into ``artifacts/``), and the console's accounts made through the real CLI."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.conftest import IN_CI, REPO

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = REPO / "artifacts"
PASSWORD = "Manado-112-test"
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1700")


def add_user(database: Path | str, name: str, role: str, *extra: str) -> None:
    """Through the real CLI, password on stdin (never an argument); ``database`` a path or a URL."""
    done = subprocess.run([sys.executable, "-m", "callflow.cli", "console", "--database", str(database),
                           "user", "add", name, "--role", role, *extra, "--password-stdin"],
                          input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """Headless Chromium through chromedriver (Debian packages); fails in CI, skips elsewhere without."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        message = "Debian packages chromium and chromium-driver are needed (`make setup`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium look for a browser to download
    profile = tempfile.mkdtemp(prefix="siaga112-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*BROWSER_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


STALE = (StaleElementReferenceException,)  # the pages re-render rows when data changes


T = TypeVar("T")


def on_fresh(driver: object, css: str, act: Callable[[Any], T]) -> T:
    """``act`` on the element ``css`` finds, finding it again (at most 5 times) if the page re-rendered it
    meanwhile (the pages re-render rows when data changes)."""
    for attempt in range(5):
        try:
            return act(driver.find_element(By.CSS_SELECTOR, css))  # type: ignore[attr-defined]
        except StaleElementReferenceException:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def choose(driver: object, css: str, value: str) -> None:
    on_fresh(driver, css, lambda e: Select(e).select_by_value(value))


def click(driver: object, css: str) -> None:
    on_fresh(driver, css, lambda e: e.click())


def selected(driver: object, css: str) -> str:
    return on_fresh(driver, css, lambda e: str(Select(e).first_selected_option.get_attribute("value")))


def text(driver: object, css: str) -> str:
    return on_fresh(driver, css, lambda e: str(e.text))


def wait_text(driver: object, css: str, expected: str, timeout: float = 20) -> None:
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=STALE).until(
            lambda d: text(d, css) == expected)
    except Exception as exc:
        raise AssertionError(f"{css} never showed {expected!r} (shows {text(driver, css)!r})") from exc


def wait_contains(driver: object, css: str, part: str, timeout: float = 20) -> None:
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=STALE).until(
            lambda d: part in text(d, css))
    except Exception as exc:
        raise AssertionError(f"{css} never contained {part!r} (shows {text(driver, css)!r})") from exc


def log_in(driver: object, url: str, name: str, password: str = PASSWORD) -> None:
    driver.get(url)  # type: ignore[attr-defined]
    wait_visible(driver, "#login-form")
    driver.find_element(By.ID, "login-name").send_keys(name)  # type: ignore[attr-defined]
    driver.find_element(By.ID, "login-password").send_keys(password)  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()  # type: ignore[attr-defined]
    wait_text(driver, "#link", "live")  # logged in and the live stream is connected


def wait_visible(driver: object, css: str, timeout: float = 15) -> None:
    WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=STALE).until(
        lambda d: d.find_element(By.CSS_SELECTOR, css).is_displayed())


def wait_hidden(driver: object, css: str, timeout: float = 15) -> None:
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=STALE).until(
            lambda d: not d.find_element(By.CSS_SELECTOR, css).is_displayed())
    except Exception as exc:
        raise AssertionError(f"{css} still shown after {timeout} s: {text(driver, css)!r}") from exc


def displayed(driver: object, css: str) -> bool:
    return bool(driver.find_element(By.CSS_SELECTOR, css).is_displayed())  # type: ignore[attr-defined]


def screenshot(driver: object, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    return path


def style(driver: object, css: str, prop: str) -> str:
    return str(driver.execute_script(  # type: ignore[attr-defined]
        "return getComputedStyle(document.querySelector(arguments[0]))[arguments[1]]", css, prop))


def fits(driver: object, css: str) -> bool:
    """The select's chosen option is shown whole (its text and the arrow fit the box: nothing cut off)."""
    return bool(driver.execute_script(  # type: ignore[attr-defined]
        "const s = document.querySelector(arguments[0]); const st = getComputedStyle(s);"
        "const g = document.createElement('canvas').getContext('2d');"
        "g.font = `${st.fontWeight} ${st.fontSize} ${st.fontFamily}`;"
        "return g.measureText(s.options[s.selectedIndex].text).width + 28 <= s.clientWidth;", css))


GREEN = "rgb(34, 197, 94)"  # --green in style.css: success
GREY = "rgb(51, 65, 85)"  # the badge's neutral background (#334155)


def audit(database: Path, action: str) -> list[tuple[str, str, str, str]]:
    """The console_audit rows of ``action`` (read-only: the engine holds the file)."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        return [tuple(r) for r in conn.execute(
            "SELECT actor, target, outcome, detail FROM console_audit WHERE action = ? ORDER BY id",
            (action,))]
    finally:
        conn.close()
