"""What the official Python MCP client spends checking Portcullis' results against their output schemas.

Drives `portcullis serve` (the lab) over stdio with whichever `mcp` this interpreter has installed, and prints,
per tool, the median time of the client's own result validation beside the median MCP ping round trip measured
in the same run (the baseline). Run with two interpreters to compare client versions:
`scripts/bench-client-validation` does it for `mcp` 1.30 and 2.3.

    PORTCULLIS_BIN=target/debug/portcullis python benches/client_validation.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

REPO = Path(__file__).resolve().parents[1]

ROUNDS = int(os.environ.get("ROUNDS", "200"))
# Rate limits high enough for the bench's own calls; everything else as shipped.
CONFIG = "security:\n  principal: admin\n  rate_limits: {default: 100000, sensitive: 100000, admin: 100000}\n"


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def timed(action, rounds: int = ROUNDS) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await action()
        samples.append(time.perf_counter() - started)
    return median_ms(samples)


def validator_of(session):
    """The client's own check of one result: `validate_tool_result` (2.x) or `_validate_tool_result` (1.x)."""
    return getattr(session, "validate_tool_result", None) or getattr(session, "_validate_tool_result")


async def seed_rules(session, total: int) -> None:
    listed = await session.call_tool("get_firewall_rules", {})
    have = listed.structuredContent["count"] if hasattr(listed, "structuredContent") else listed.structured_content["count"]
    for n in range(total - have):
        await session.call_tool("create_firewall_rule", {
            "interface": "dmz", "action": "block", "protocol": "tcp", "source": "any", "destination": "any",
            "destination_port": 1000 + n, "description": f"bench {n}"})


async def main() -> None:
    binary = os.environ.get("PORTCULLIS_BIN", str(REPO / "target" / "debug" / "portcullis"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "data").mkdir()
        config = folder / "portcullis.yaml"
        config.write_text(CONFIG)
        params = StdioServerParameters(
            command=binary, args=["--data-dir", str(folder / "data"), "--config", str(config), "serve"]
        )
        with open(folder / "stderr.log", "w", encoding="utf-8") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as s:
                await s.initialize()
                await measure(s)


async def measure(s) -> None:
    await s.list_tools()
    await seed_rules(s, 20)
    validate = validator_of(s)
    block = {"ip_address": "203.0.113.9", "duration": "1h", "reason": "bench", "dry_run": True}
    calls = {
        "get_firewall_rules (20 rules)": ("get_firewall_rules", {}),
        "block_ip_address (change result)": ("block_ip_address", block),
    }
    ping = await timed(s.send_ping)
    print(f"mcp {version('mcp')}: ping round trip (baseline) median {ping:.3f} ms")
    for label, (name, args) in calls.items():
        result = await s.call_tool(name, args)
        check = await timed(lambda n=name, r=result: validate(n, r))
        whole = await timed(lambda n=name, a=args: s.call_tool(n, a), rounds=ROUNDS // 4)
        print(f"mcp {version('mcp')}: {label}: validation median {check:.3f} ms, "
              f"whole call {whole:.3f} ms, ping {ping:.3f} ms")


if __name__ == "__main__":
    asyncio.run(main())
