"""The web dashboard, in headless Chromium driven over the DevTools protocol.

After a `lab traffic` run, the page is opened with a bearer token in its address's fragment. It shows the lab's
blocks and threats. A block made over MCP (the official client, with the same token) appears without a reload.
The data is refused without a token, and the page has no asset from elsewhere. The screenshot is kept in
`target/artifacts/dashboard.png`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import subprocess
import time
from pathlib import Path

import anyio

import pytest
import websockets

from harness import _http_transport, _initialized_session, call, httpx, ok, require_chromium

pytestmark = pytest.mark.anyio

TOKEN = "dashboard-secret-token-0123456789"
ARTIFACTS = Path(__file__).resolve().parents[2] / "target" / "artifacts"


class Page:
    """One tab of a headless Chromium, spoken to over its DevTools WebSocket."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0

    async def send(self, method: str, params: dict | None = None) -> dict:
        self.next_id += 1
        ident = self.next_id
        await self.ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(message["error"])
                return message.get("result", {})

    async def text(self, selector: str) -> str:
        result = await self.send("Runtime.evaluate", {
            "expression": f"(document.querySelector({json.dumps(selector)}) || {{innerText: ''}}).innerText",
            "returnByValue": True})
        return result["result"].get("value", "")

    async def wait_for(self, selector: str, needle: str, seconds: float = 20) -> str:
        deadline = time.monotonic() + seconds
        text = ""
        while time.monotonic() < deadline:
            text = await self.text(selector)
            if needle in text:
                return text
            await asyncio.sleep(0.2)
        raise AssertionError(f"{needle!r} not in {selector}: {text!r}")


async def open_browser(browser: str, profile: Path):
    proc = subprocess.Popen(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", "--window-size=1280,1600", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    for _ in range(200):
        if port_file.exists() and port_file.read_text().strip():
            break
        await asyncio.sleep(0.05)
    port = int(port_file.read_text().split()[0])
    async with httpx.AsyncClient(trust_env=False) as client:
        targets = (await client.get(f"http://127.0.0.1:{port}/json/list")).json()
    page_ws = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
    return proc, page_ws


async def test_dashboard_shows_the_lab_and_follows_a_new_block_without_reload(servers, data_dir: Path, tmp_path: Path):
    browser = require_chromium()
    config = tmp_path / "dashboard.yaml"
    config.write_text(
        "security:\n  principal: admin\n  principals: {soc: {role: admin}}\n"
        f"http:\n  tokens: [{{principal: soc, sha256: {hashlib.sha256(TOKEN.encode()).hexdigest()}}}]\n"
    )
    pc = servers("http", data_dir, config=config)
    assert pc.cli("lab", "traffic", "--seed", "3", timeout=120).returncode == 0
    blocked = pc.cli("call", "block_ip_address", "ip_address=203.0.113.50", "duration=1h", "reason=brute force", "--json")
    assert blocked.returncode == 0, blocked.stderr
    pc.start()
    base = pc.http.base
    with httpx.Client(trust_env=False, timeout=10) as client:
        assert client.get(f"{base}/dashboard/state").status_code == 401, "no data without a token"
        assert client.get(f"{base}/dashboard/state", headers={"Authorization": "Bearer wrong"}).status_code == 401
        page = client.get(f"{base}/dashboard")
        assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
        assert "http" not in page.text.replace("http-equiv", ""), "no asset from elsewhere"

    proc, page_ws = await open_browser(browser, tmp_path / "chromium")
    try:
        async with websockets.connect(page_ws, max_size=64 * 1024 * 1024) as ws:
            tab = Page(ws)
            await tab.send("Page.enable")
            await tab.send("Page.navigate", {"url": f"{base}/dashboard#token={TOKEN}"})
            await tab.wait_for("#blocks", "203.0.113.50")
            threats = await tab.wait_for("#threats", "brute_force")
            assert "203.0.113.77" in threats or "port_scan" in threats, threats
            assert "soc" in await tab.text("#who")
            address = (await tab.send("Runtime.evaluate", {"expression": "location.href", "returnByValue": True}))
            assert TOKEN not in address["result"]["value"], "the token leaves the address bar"

            # A block over MCP, with the same token: the open page shows it without a reload.
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(trust_env=False, timeout=30, headers=headers) as http:
                async with _http_transport(pc.http.url, http_client=http) as streams:
                    async with _initialized_session(streams[0], streams[1], None, {}) as session:
                        ok(await call(session, "block_ip_address",
                                      {"ip_address": "198.51.100.23", "duration": "2h", "reason": "seen on the dashboard"}))
            loads = (await tab.send("Runtime.evaluate", {
                "expression": "performance.getEntriesByType('navigation').length", "returnByValue": True}))
            await tab.wait_for("#blocks", "198.51.100.23")
            assert loads["result"]["value"] == 1, "no reload"
            shot = await tab.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "dashboard.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
    audit = [r for r in pc.audit() if r.get("origin") == "dashboard"]
    assert audit and all(r["principal"]["name"] == "soc" for r in audit), "the page's reads are audited as the token's"
