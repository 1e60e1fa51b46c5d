"""Browser fixtures: the dashboard served on 127.0.0.1 in a thread, driven by headless Chromium.

Skips with a clear reason when Chromium or chromedriver are missing (Debian: `apt-get install
chromium chromium-driver`). Server-side callback exceptions are recorded through Flask's
`got_request_exception` signal; browser console errors through `goog:loggingPrefs`; Dash's
front-end error popups through dev tools (`.dash-fe-error__title`).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import got_request_exception
from werkzeug.serving import make_server

from dashboards.app import create_app
from monitor.config import load_config
from tests.dashboards.conftest import seeded_sqlite, writable_seeded  # noqa: F401 - fixtures

# Screenshots go to a temporary folder; `MONITOR_SCREENSHOTS=docs/screenshots` refreshes the
# README's images (a test run never dirties the work tree by itself).
SCREENSHOTS = Path(os.environ.get("MONITOR_SCREENSHOTS") or Path(tempfile.gettempdir()) / "classifier-monitor-screenshots")
CHROMIUM = os.environ.get("MONITOR_CHROMIUM", shutil.which("chromium") or shutil.which("chromium-browser")
                          or shutil.which("google-chrome") or "")
CHROMEDRIVER = os.environ.get("MONITOR_CHROMEDRIVER", shutil.which("chromedriver") or "")
CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update",
               "--window-size=1400,1000", "--hide-scrollbars", "--force-device-scale-factor=1"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CHROMIUM and CHROMEDRIVER:
        return
    if os.environ.get("MONITOR_REQUIRE_BROWSER"):
        raise pytest.UsageError("MONITOR_REQUIRE_BROWSER is set but Chromium/chromedriver are not on PATH")
    skip = pytest.mark.skip(reason="browser tests need Chromium and chromedriver on PATH "
                                   "(Debian: apt-get install chromium chromium-driver)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveApp:
    url: str
    server_errors: list[str] = field(default_factory=list)


@pytest.fixture
def serve_dashboard() -> Iterator[Callable[[Path], LiveApp]]:
    """serve_dashboard(config_path) -> LiveApp running until the test ends."""
    servers: list[Any] = []
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    def start(config_path: Path) -> LiveApp:
        app = create_app(load_config(config_path))
        app.enable_dev_tools(debug=True, dev_tools_ui=True, dev_tools_hot_reload=False,
                             dev_tools_disable_version_check=True, dev_tools_serve_dev_bundles=False)
        port = _free_port()
        live = LiveApp(f"http://127.0.0.1:{port}")

        def record(_sender: Any, exception: BaseException, **_extra: Any) -> None:
            live.server_errors.append(f"{type(exception).__name__}: {exception}")

        got_request_exception.connect(record, app.server, weak=False)
        server = make_server("127.0.0.1", port, app.server, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, app))
        return live

    yield start
    for server, app in servers:
        server.shutdown()
        app.server.extensions["monitor"].engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in CHROME_ARGS:
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_until(condition: Callable[[], Any], *, timeout: float = 60, message: str = "condition") -> Any:
    """Poll `condition` until it returns a truthy value; fail with `message` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - elements come and go while Dash renders
            last_error = error
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last error: {last_error})")
