"""Requests Portcullis sends to pfRest per tool call, and the time a call takes when every request costs what it
costs on a small appliance. Drives `portcullis serve` over stdio with the official Python MCP client against the
pfRest emulator with a per-request latency (LATENCY_MS, default 100), and prints per call the requests by route
and the time, the first call of each tool (cache cold) beside a repeat (warm), and a ping in the same run as the
baseline. The targets of issue 16 are printed beside the figures.

    cargo build -p portcullis -p portcullis-pfrest-emulator
    PORTCULLIS_BIN=target/debug/portcullis .venv/bin/python benches/pfsense_round_trips.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "python"))

from harness import HttpServer, Portcullis, httpx  # noqa: E402

LATENCY_MS = int(os.environ.get("LATENCY_MS", "100"))
API_KEY = "bench-key-0123456789abcdef"
TARGETS = {"get_firewall_rules": 1, "query_firewall_logs": 1, "block_ip_address": 4, "bulk": 5}
BULK = 1000


def control(emulator: HttpServer, path: str, body=None, method: str = "POST"):
    with httpx.Client(trust_env=False, timeout=30) as client:
        url = f"{emulator.base}/__emulator/{path}"
        r = client.request(method, url, json=body) if body is not None or method != "GET" else client.get(url)
    r.raise_for_status()
    return r.json() if r.content else None


async def measure(session, emulator: HttpServer, name: str, args: dict) -> tuple[int, float, dict[str, int]]:
    control(emulator, "requests", method="DELETE")
    started = time.perf_counter()
    result = await session.call_tool(name, args)
    elapsed = time.perf_counter() - started
    if result.isError if hasattr(result, "isError") else result.is_error:
        raise SystemExit(f"{name} failed: {result.content}")
    routes = control(emulator, "requests/counts", method="GET")
    return sum(routes.values()), elapsed * 1000, routes


async def main() -> None:
    binary = os.environ.get("PORTCULLIS_BIN", str(REPO / "target" / "debug" / "portcullis"))
    emulator_bin = os.environ.get("PFREST_EMULATOR_BIN", str(Path(binary).with_name("pfrest-emulator")))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        emulator = HttpServer([emulator_bin, "--port", "0", "--api-key", API_KEY], folder / "emulator.log").start()
        try:
            config = folder / "portcullis.yaml"
            config.write_text(
                "targets:\n"
                f"  fw: {{kind: pfsense, protocol: http, host: 127.0.0.1, port: {emulator.port}, "
                f"api_key: {API_KEY}, timeout: 30}}\n"
                "default_target: fw\n"
                "security:\n  principal: admin\n  rate_limits: {default: 100000, sensitive: 100000, admin: 100000}\n"
            )
            (folder / "data").mkdir()
            pc = Portcullis(binary, "stdio", folder / "data", config, folder)
            async with pc.session() as s:
                control(emulator, "faults", {"latency_ms": LATENCY_MS})
                started = time.perf_counter()
                await s.send_ping()
                ping = (time.perf_counter() - started) * 1000
                print(f"pfRest latency {LATENCY_MS} ms per request; MCP ping (baseline) {ping:.1f} ms")
                calls = [
                    ("get_firewall_rules", {}),
                    ("query_firewall_logs", {"timeframe": "1h", "limit": 20}),
                    ("block_ip_address", {"ip_address": "203.0.113.50", "duration": "1h", "reason": "bench"}),
                ]
                for name, args in calls:
                    for run in ("cold", "warm"):
                        if name == "block_ip_address" and run == "warm":
                            args = {**args, "ip_address": "203.0.113.51"}
                        count, ms, routes = await measure(s, emulator, name, args)
                        target = TARGETS.get(name)
                        print(f"{name} ({run}): {count} requests, {ms:.0f} ms (target <= {target} requests); {routes}")
                addresses = [f"2001:db8:16::{i:x}" for i in range(1, BULK + 1)]
                args = {"ip_addresses": addresses, "duration": "1h", "reason": "bench bulk"}
                count, ms, routes = await measure(s, emulator, "block_ip_address", args)
                print(
                    f"{BULK:,} addresses in one block_ip_address: {count} requests, {ms:.0f} ms "
                    f"(target <= {TARGETS['bulk']} requests, < 1000 ms); {routes}"
                )
        finally:
            emulator.stop()


if __name__ == "__main__":
    asyncio.run(main())
