"""Headless Chromium for the page tests (imported as `from browser import ...`).

Debian's `chromium` and `chromium-driver` (apt-get install chromium chromium-driver), driven by
Selenium with both paths given explicitly, so Selenium Manager never looks for, or downloads, a
driver. Where they are missing the tests skip with a message, unless MLPCLI_REQUIRE_BROWSER=1
(CI sets it): then they fail, so a missing install cannot pass as green.

Chromium's own background connections (updates, sync, field trials) are switched off by flags, so
the only requests the performance log can show are the page's.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

MISSING = "Chromium and chromedriver not found (apt-get install chromium chromium-driver)"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
WINDOW = (1280, 1600)
PHONE = (390, 844)


def _find(*names: str) -> str | None:
    for name in names:
        for candidate in (f"/usr/bin/{name}", shutil.which(name)):
            if candidate and os.access(candidate, os.X_OK):
                return candidate
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("MLPCLI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}; MLPCLI_REQUIRE_BROWSER=1 requires the browser tests to run")
    pytest.skip(reason)


@dataclass
class Rendered:
    """What the browser made of one page."""

    url: str
    requests: list[str]  # every URL the page asked for, its own included
    images: list[dict[str, Any]]  # per <img>: complete, naturalWidth, alt
    ids: set[str]  # every element id of the page
    scripts: int  # document.scripts.length
    text: str  # document.body.innerText
    screenshot: bytes  # PNG of the window
    phone_scroll: tuple[int, int]  # scrollWidth and innerWidth at PHONE's width
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def foreign_requests(self) -> list[str]:
        return [u for u in self.requests if u != self.url and not u.startswith("data:")]


class Browser:
    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def render(self, path: Path, shots: str | None = None) -> Rendered:
        """Open a page file and read it back once it loaded. With `shots`, the screenshots go
        to $MLPCLI_SCREENSHOTS/<shots>.png (and -phone.png)."""
        driver = self.driver
        url = Path(path).resolve().as_uri()
        driver.set_window_size(*WINDOW)
        driver.get_log("performance")  # empties the log of earlier pages
        # Under the "normal" page load strategy get() returns after the load event, which waits
        # for every image: there is nothing left to wait for.
        driver.get(url)
        requests = [
            message["params"]["request"]["url"]
            for entry in driver.get_log("performance")
            if (message := json.loads(entry["message"])["message"])["method"]
            == "Network.requestWillBeSent"
        ]
        requests += driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        images = driver.execute_script(
            "return Array.from(document.images).map(i => "
            "({complete: i.complete, naturalWidth: i.naturalWidth, alt: i.alt}))"
        )
        ids = set(
            driver.execute_script(
                "return Array.from(document.querySelectorAll('[id]')).map(e => e.id)"
            )
        )
        scripts = driver.execute_script("return document.scripts.length")
        text = driver.execute_script("return document.body.innerText")
        screenshot = driver.get_screenshot_as_png()
        phone = self.phone_width()
        phone_shot = driver.get_screenshot_as_png()
        self.desktop_width()
        if shots and os.environ.get("MLPCLI_SCREENSHOTS"):
            folder = Path(os.environ["MLPCLI_SCREENSHOTS"])
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{shots}.png").write_bytes(screenshot)
            (folder / f"{shots}-phone.png").write_bytes(phone_shot)
        return Rendered(url, requests, images, ids, scripts, text, screenshot, phone)

    def phone_width(self) -> tuple[int, int]:
        """The page as a phone shows it; returns (scrollWidth, innerWidth)."""
        width, height = PHONE
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
        )
        return tuple(
            self.driver.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth]"
            )
        )

    def desktop_width(self) -> None:
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    def full_page_png(self) -> bytes:
        """A screenshot of the whole page, beyond the window."""
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        return base64.b64decode(shot["data"])


@contextmanager
def open_chromium() -> Iterator[Browser]:
    """A headless Chromium, quit on leaving; skips (or fails, see above) where there is none."""
    browser_path, driver_path = _find("chromium", "chromium-browser"), _find("chromedriver")
    if not (browser_path and driver_path):
        _unavailable(MISSING)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[dev]')")
    profile = tempfile.mkdtemp(prefix="mlpcli-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    options.page_load_strategy = "normal"  # get() returns after the load event: render needs it
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(executable_path=driver_path)
    driver = None
    try:
        driver = webdriver.Chrome(service=service, options=options)
        yield Browser(driver)
    finally:
        try:
            if driver is not None:
                driver.quit()
        finally:
            service.stop()  # its own chromedriver process, if quit did not end it
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Chromium for a test module, quit at its end."""
    with open_chromium() as browser:
        yield browser
