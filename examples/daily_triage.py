#!/usr/bin/env python3
"""Daily triage, written only against the tool names and result shapes of the product brief (BRIEF.md §2):

1. `analyze_threats {timeframe: "1h"}` and list what was found;
2. `block_ip_address {ip_address, duration: "24h", reason}` for every repeated attacker;
3. `generate_security_report {timeframe: "24h", format: "json"}`;
4. print the summary.

It talks to any MCP server that offers those tools, over stdio (it starts the server command) or Streamable
HTTP (with an optional bearer token):

    python examples/daily_triage.py --stdio "portcullis serve"
    python examples/daily_triage.py --url http://127.0.0.1:8787/mcp --token "$PORTCULLIS_TOKEN"

Exit status: 0 when every step succeeded (a block waiting for approval or confirmation counts as done, it is
the server's guardrails at work), 1 when a tool call failed, 2 on a usage or connection error.
Needs only the official `mcp` package from PyPI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

try:  # mcp >= 2 ships httpx2; mcp 1.x shipped httpx.
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

try:
    from mcp.client.streamable_http import streamable_http_client as http_transport
except ImportError:  # pragma: no cover - mcp 1.x name
    from mcp.client.streamable_http import streamablehttp_client as http_transport  # type: ignore


class ToolFailed(Exception):
    pass


@asynccontextmanager
async def connect(args: argparse.Namespace) -> AsyncIterator[ClientSession]:
    if args.stdio:
        argv = shlex.split(args.stdio)
        params = StdioServerParameters(command=argv[0], args=argv[1:])
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session
    else:
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        async with httpx.AsyncClient(headers=headers, trust_env=False, timeout=httpx.Timeout(60)) as client:
            async with http_transport(args.url, http_client=client) as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
                    yield session


async def call(session: ClientSession, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Calls a tool; returns its JSON result (structured content, or the JSON text for older servers)."""
    result = await session.call_tool(tool, arguments)
    text = next((c.text for c in result.content if getattr(c, "type", None) == "text"), "")
    if result.is_error:
        raise ToolFailed(f"{tool}: {text}")
    if isinstance(result.structured_content, dict):
        return result.structured_content
    return json.loads(text)


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """List-like results carry their rows under `data` (BRIEF §2)."""
    data = result.get("data", [])
    return data if isinstance(data, list) else []


async def triage(session: ClientSession, timeframe: str, block_for: str, report_timeframe: str) -> int:
    failures = 0
    threats = rows(await call(session, "analyze_threats", {"timeframe": timeframe}))
    print(f"Threats in the last {timeframe}: {len(threats)}")
    for t in threats:
        print(
            f"  {t.get('severity', '?'):>8}  {t.get('type', '?'):<24} {t.get('source_ip', '?'):<40}"
            f" {t.get('attempt_count', 0):>7} attempts  {t.get('recommendation', '')}"
        )

    attackers = sorted({t["source_ip"] for t in threats if t.get("type") == "repeated_attack" and t.get("source_ip")})
    print(f"\nBlocking {len(attackers)} repeated attacker(s) for {block_for}:")
    for ip in attackers:
        reason = f"repeated attacks in the last {timeframe} (daily triage)"
        try:
            done = await call(session, "block_ip_address", {"ip_address": ip, "duration": block_for, "reason": reason})
        except ToolFailed as e:
            failures += 1
            print(f"  {ip:<40} FAILED {e}")
            continue
        extra = done.get("expires_at") or done.get("confirm_by") or ""
        print(f"  {ip:<40} {done.get('status', '?'):<22} change {done.get('change_id', '-')} {extra}")

    report = await call(session, "generate_security_report", {"timeframe": report_timeframe, "format": "json"})
    print(f"\nSecurity report, last {report_timeframe}:")
    summary = report.get("summary", report)
    if isinstance(summary, dict):
        for key, value in summary.items():
            print(f"  {key:<24} {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    else:
        print(f"  {summary}")
    for rec in report.get("recommendations", [])[:10]:
        print(f"  - {rec if isinstance(rec, str) else json.dumps(rec)}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stdio", help='server command line, e.g. "portcullis serve"')
    where.add_argument("--url", help="Streamable HTTP endpoint, e.g. http://127.0.0.1:8787/mcp")
    parser.add_argument("--token", help="bearer token for --url")
    parser.add_argument("--timeframe", default="1h", help="window analysed for threats (default 1h)")
    parser.add_argument("--block-for", default="24h", help="block duration (default 24h)")
    parser.add_argument("--report-timeframe", default="24h", help="window of the report (default 24h)")
    args = parser.parse_args()

    async def run() -> int:
        async with connect(args) as session:
            return await triage(session, args.timeframe, args.block_for, args.report_timeframe)

    try:
        return asyncio.run(run())
    except ToolFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (OSError, ConnectionError) as e:
        print(f"error: cannot reach the server: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
