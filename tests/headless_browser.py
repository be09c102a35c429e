"""Headless Debian Chromium driven over the DevTools Protocol (aiohttp websocket)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from deepaas_server import free_port, stop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]


def start_browser(profile: Path) -> Iterator[str]:
    """Yield the DevTools websocket URL of a fresh headless page; stop Chromium after."""
    if CHROMIUM is None:
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    port = free_port()
    proc = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--remote-debugging-port={port}",
         f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                pages = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                yield next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
                break
            except (requests.ConnectionError, StopIteration):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("headless chromium did not start")
                time.sleep(0.3)
    finally:
        stop(proc)


class Page:
    """The few DevTools Protocol calls the tests need; events are kept in ``events``."""

    def __init__(self, ws) -> None:
        self.ws, self.last_id, self.events = ws, 0, []

    async def call(self, method: str, **params):
        self.last_id += 1
        await self.ws.send_json({"id": self.last_id, "method": method, "params": params})
        while True:  # keep events until our answer arrives
            msg = await self.ws.receive_json()
            if msg.get("id") == self.last_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]
            if "method" in msg:
                self.events.append(msg)

    async def js(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                                 awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {expression}")


async def in_page(ws_url: str, body):
    """Run ``await body(page)`` on the browser's page at ``ws_url``; its result."""
    import aiohttp

    async with aiohttp.ClientSession() as session, session.ws_connect(
            ws_url, max_msg_size=0) as ws:
        return await body(Page(ws))


async def open_report(page: Page, url: str, width: int = 1600, height: int = 1000) -> None:
    """Load a report at a window size (the default headless window is narrower than its
    table) and wait for its script's first render."""
    await page.call("Runtime.enable")
    await page.call("Page.enable")
    await page.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                    deviceScaleFactor=1, mobile=False)
    await page.call("Page.navigate", url=url)
    await page.wait_for("document.readyState === 'complete' && "
                        "!!document.getElementById('review-count').textContent")
