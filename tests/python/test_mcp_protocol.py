"""MCP beyond tools, with the official Python client over stdio and Streamable HTTP: resources and templates,
prompts, completions, log notifications at the level the client sets, progress, and cancellation of a long call
(the time from `notifications/cancelled` to the end of the server's work is measured and printed)."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path

import anyio
import pytest
from mcp import types
from mcp.shared.exceptions import MCPError

from harness import STEP_TIMEOUT, HttpServer, call, httpx, ok, read_audit

pytestmark = [
    pytest.mark.anyio,
    # Logging and resources/subscribe are what clients negotiating 2025-11-25 use; the SDK warns that the
    # 2026-07-28 protocol replaces them.
    pytest.mark.filterwarnings("ignore:The logging capability is deprecated"),
    pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed"),
]

TRANSPORTS = ["stdio", "http"]


def _json(result: types.ReadResourceResult) -> dict:
    assert len(result.contents) == 1, result
    content = result.contents[0]
    assert content.mime_type == "application/json", content
    return json.loads(content.text)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_resources_read_through_the_pipeline(servers, data_dir: Path, transport: str):
    p = servers(transport, data_dir)
    p.start()
    async with p.session() as s:
        with anyio.fail_after(STEP_TIMEOUT):
            listed = {r.uri: r for r in (await s.list_resources()).resources}
            templates = {t.uri_template for t in (await s.list_resource_templates()).resource_templates}
        for uri in ["rules", "aliases", "blocks", "grants", "audit/tail", "report/latest", "targets"]:
            assert f"portcullis://{uri}" in listed, listed.keys()
        assert all(r.mime_type and r.description for r in listed.values())
        assert not any(u.startswith("test://") for u in listed), "conformance fixtures are not in production"
        assert "portcullis://rules/{rule_id}" in templates and "portcullis://targets/{target}/blocks" in templates

        ok(await call(s, "block_ip_address", {"ip_address": "203.0.113.7", "duration": "1h", "reason": "scan"}))
        rules = ok(await call(s, "get_firewall_rules", {}))
        with anyio.fail_after(STEP_TIMEOUT):
            as_resource = _json(await s.read_resource("portcullis://rules"))
            blocks = _json(await s.read_resource("portcullis://targets/lab/blocks"))
            aliases = _json(await s.read_resource("portcullis://aliases"))
            some_rule = rules["data"][0]["rule_id"]
            one = _json(await s.read_resource(f"portcullis://rules/{some_rule}"))
            tail = _json(await s.read_resource("portcullis://audit/tail"))
            report = await s.read_resource("portcullis://report/latest")
        assert as_resource["data"] == rules["data"], "the resource is the tool's result"
        assert [b["ip_address"] for b in blocks["data"]] == ["203.0.113.7"]
        assert any(a["managed"] == "block_list" and a["entry_count"] == 1 for a in aliases["data"]), aliases
        assert [r["rule_id"] for r in one["data"]] == [some_rule]
        assert tail["data"][0]["record"]["tool"] == "get_firewall_rules", "newest first: the read just before"
        assert report.contents[0].mime_type == "text/markdown"
        text = report.contents[0].text
        assert text.startswith("# Security report: lab (24h)") and "| blocked | 0 |" in text, text[:400]
        assert any(r["tool"] == "generate_security_report" for r in read_audit(data_dir)), "read through the pipeline"

        with anyio.fail_after(STEP_TIMEOUT):
            with pytest.raises(MCPError) as missing:
                await s.read_resource("portcullis://nothing-here")
            with pytest.raises(MCPError) as bad_target:
                await s.read_resource("portcullis://targets/nope/rules")
        assert "not_found" in str(missing.value)
        assert "target" in str(bad_target.value), "the error names the field"

    audit = read_audit(data_dir)
    reads = [r for r in audit if r["tool"] in ("get_firewall_rules", "list_blocks", "list_aliases", "get_audit_log")]
    assert len(reads) >= 7, "every resource read is an audited tool call"
    assert all(r["principal"]["name"] == "admin" for r in reads), reads[-1]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_prompts_and_completions(servers, data_dir: Path, transport: str):
    p = servers(transport, data_dir)
    p.start()
    async with p.session() as s:
        ok(await call(s, "block_ip_address", {"ip_address": "198.51.100.23", "duration": "1h", "reason": "x"}))
        with anyio.fail_after(STEP_TIMEOUT):
            prompts = {pr.name: pr for pr in (await s.list_prompts()).prompts}
        assert {"investigate_address", "weekly_security_report", "rule_cleanup_review"} <= set(prompts)
        assert [a.name for a in prompts["investigate_address"].arguments if a.required] == ["address"]

        with anyio.fail_after(STEP_TIMEOUT):
            triage = await s.get_prompt("investigate_address", {"address": "198.51.100.23"})
            weekly = await s.get_prompt("weekly_security_report", {})
            cleanup = await s.get_prompt("rule_cleanup_review", {"interface": "lan"})
        text = "\n".join(m.content.text for m in triage.messages)
        assert "Investigate 198.51.100.23" in text
        assert "query_firewall_logs" in text and '"ip_address": "198.51.100.23"' in text, "carries live data"
        assert "lint_rules" in "\n".join(m.content.text for m in weekly.messages)
        assert "Rule findings" in "\n".join(m.content.text for m in cleanup.messages)

        with anyio.fail_after(STEP_TIMEOUT):
            with pytest.raises(MCPError) as missing:
                await s.get_prompt("investigate_address", {})
            with pytest.raises(MCPError) as invalid:
                await s.get_prompt("investigate_address", {"address": "not-an-ip"})
        assert "address" in str(missing.value) and "address" in str(invalid.value)

        template = types.ResourceTemplateReference(uri="portcullis://interfaces/{interface}/rules")
        rule_template = types.ResourceTemplateReference(uri="portcullis://rules/{rule_id}")
        prompt = types.PromptReference(name="investigate_address")
        with anyio.fail_after(STEP_TIMEOUT):
            interfaces = (await s.complete(template, {"name": "interface", "value": "l"})).completion.values
            rule_ids = (await s.complete(rule_template, {"name": "rule_id", "value": ""})).completion.values
            targets = (await s.complete(prompt, {"name": "target", "value": ""})).completion.values
            addresses = (await s.complete(prompt, {"name": "address", "value": "198."})).completion.values
        rules = ok(await call(s, "get_firewall_rules", {}))
        assert interfaces == ["lan"]
        assert sorted(rule_ids) == sorted(r["rule_id"] for r in rules["data"])
        assert targets == ["lab"]
        assert addresses == ["198.51.100.23"], "blocked addresses complete the address argument"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_log_notifications_follow_the_level_the_client_sets(servers, data_dir: Path, transport: str):
    p = servers(transport, data_dir)
    p.start()
    received: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        received.append(params)

    async def settle(count: int) -> None:
        with anyio.fail_after(STEP_TIMEOUT):
            while len(received) < count:
                await anyio.sleep(0.02)

    async with p.session(logging_callback=on_log) as s:
        # The configured level (info) keeps reads quiet and reports changes and refusals.
        ok(await call(s, "list_blocks", {}))
        ok(await call(s, "block_ip_address", {"ip_address": "203.0.113.60", "duration": "1h", "reason": "log"}))
        await settle(1)
        assert received[-1].level == "notice" and received[-1].data["tool"] == "block_ip_address", received
        assert received[-1].data["outcome"] == "applied" and received[-1].data["change_id"]

        with anyio.fail_after(STEP_TIMEOUT):
            await s.set_logging_level("debug")
        ok(await call(s, "list_blocks", {}))
        await settle(2)
        assert received[-1].level == "debug" and received[-1].data["tool"] == "list_blocks", received
        await call(s, "block_ip_address", {"ip_address": "bad", "duration": "1h", "reason": "x"})
        await settle(3)
        assert received[-1].level == "warning" and received[-1].data["outcome"] == "validation_error"

        with anyio.fail_after(STEP_TIMEOUT):
            await s.set_logging_level("error")
        ok(await call(s, "list_blocks", {}))
        await call(s, "block_ip_address", {"ip_address": "bad", "duration": "1h", "reason": "x"})
        ok(await call(s, "block_ip_address", {"ip_address": "203.0.113.61", "duration": "1h", "reason": "log"}))
        await anyio.sleep(0.3)
        assert len(received) == 3, f"nothing below error is sent after setLevel(error): {received[3:]}"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_progress_of_a_change(servers, data_dir: Path, transport: str):
    p = servers(transport, data_dir)
    p.start()
    steps: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append((progress, total, message))

    async with p.session() as s:
        with anyio.fail_after(STEP_TIMEOUT):
            result = await s.call_tool(
                "block_ip_address",
                {"ip_address": "203.0.113.50", "duration": "1h", "reason": "progress"},
                progress_callback=on_progress,
            )
        ok(result)
        with anyio.fail_after(STEP_TIMEOUT):
            while len(steps) < 4:
                await anyio.sleep(0.02)
    assert [s[0] for s in steps] == [0, 1, 2, 3] and all(s[1] == 3 for s in steps), steps
    assert steps[-1][2] == "applied and verified"

    steps.clear()
    async with p.session() as s:
        with anyio.fail_after(STEP_TIMEOUT):
            ok(await s.call_tool("query_firewall_logs", {"timeframe": "7d"}, progress_callback=on_progress))
            while len(steps) < 3:
                await anyio.sleep(0.02)
    assert [(s[0], s[1]) for s in steps] == [(0, 2), (1, 2), (2, 2)], steps
    assert steps[1][2] == "querying the log store", steps

    steps.clear()
    async with p.session() as s:
        with anyio.fail_after(STEP_TIMEOUT):
            args = {"timeframe": "24h", "format": "html"}
            ok(await s.call_tool("generate_security_report", args, progress_callback=on_progress))
            while len(steps) < 3:
                await anyio.sleep(0.02)
    assert [(s[0], s[1], s[2]) for s in steps] == [
        (0, 2, "reading the firewall log"), (1, 2, "querying the log store"), (2, 2, "done")
    ], steps


# --------------------------------------------------------------------------
# cancellation of a long call
# --------------------------------------------------------------------------

API_KEY = "emulator-test-key-0123456789"
SLOW_MS = 4000


@pytest.fixture
def slow_pfsense(portcullis_bin: str, tmp_path: Path):
    """The pfRest emulator answering every request after SLOW_MS, and a config for it."""
    binary = os.environ.get("PFREST_EMULATOR_BIN") or str(Path(portcullis_bin).with_name("pfrest-emulator"))
    server = HttpServer([binary, "--port", "0", "--api-key", API_KEY], tmp_path / "emulator.log").start()
    config = tmp_path / "pf.yaml"
    config.write_text(
        "targets:\n"
        f"  fw: {{kind: pfsense, protocol: http, host: 127.0.0.1, port: {server.port}, api_key: {API_KEY}, timeout: 30}}\n"
        "security:\n  principal: admin\n"
    )
    yield server, config
    server.stop()


def _set_latency(emulator: HttpServer, ms: int) -> None:
    with httpx.Client(trust_env=False, timeout=10) as client:
        client.post(f"http://127.0.0.1:{emulator.port}/__emulator/faults", json={"latency_ms": ms}).raise_for_status()


LONG_CALLS = {
    "query_firewall_logs": {"timeframe": "30d", "limit": 1000},
    "generate_security_report": {"timeframe": "30d", "format": "html"},
}


@pytest.mark.parametrize("tool", sorted(LONG_CALLS))
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancelling_a_long_call_stops_its_work(servers, data_dir: Path, slow_pfsense, transport: str, tool: str):
    emulator, config = slow_pfsense
    p = servers(transport, data_dir, config)
    p.start()
    async with p.session() as s:
        ok(await call(s, "get_system_status", {}))  # connected while the emulator is fast
        _set_latency(emulator, SLOW_MS)
        started = anyio.Event()
        async with anyio.create_task_group() as tg:

            async def long_call() -> None:
                started.set()
                # A read over the slow firewall (a report pulls the firewall's log first): several API round
                # trips of SLOW_MS each.
                await s.call_tool(tool, LONG_CALLS[tool])

            tg.start_soon(long_call)
            await started.wait()
            await anyio.sleep(0.5)
            cancelled_at = time.time()
            tg.cancel_scope.cancel()  # the client sends notifications/cancelled for the abandoned request

        with anyio.fail_after(STEP_TIMEOUT):
            while not any(r["tool"] == tool for r in read_audit(data_dir)):
                await anyio.sleep(0.01)
        _set_latency(emulator, 0)
        ok(await call(s, "get_system_status", {}))  # the session is still usable

    record = next(r for r in read_audit(data_dir) if r["tool"] == tool)
    assert record["outcome"] == "cancelled", record
    ended_at = datetime.fromisoformat(record["time"].replace("Z", "+00:00")).timestamp()
    stop_ms = (ended_at - cancelled_at) * 1000
    print(f"\n{tool}: cancel-to-stop over {transport}: {stop_ms:.1f} ms (the call ran {record['duration_us'] / 1000:.0f} ms)")
    assert record["duration_us"] < SLOW_MS * 1000, "the call ended before its first slow round trip finished"


async def test_a_cancelled_change_is_not_applied(servers, data_dir: Path, slow_pfsense):
    """Cancelled while it reads the slow firewall (before applying): the change is not made, and says so."""
    emulator, config = slow_pfsense
    p = servers("stdio", data_dir, config)
    async with p.session() as s:
        ok(await call(s, "get_system_status", {}))
        _set_latency(emulator, SLOW_MS)
        async with anyio.create_task_group() as tg:

            async def change() -> None:
                await s.call_tool("block_ip_address", {"ip_address": "203.0.113.99", "duration": "1h", "reason": "c"})

            tg.start_soon(change)
            await anyio.sleep(0.5)
            tg.cancel_scope.cancel()
        with anyio.fail_after(STEP_TIMEOUT):
            while not any(r["tool"] == "block_ip_address" for r in read_audit(data_dir)):
                await anyio.sleep(0.01)
        _set_latency(emulator, 0)
        blocks = ok(await call(s, "list_blocks", {}))
    record = next(r for r in read_audit(data_dir) if r["tool"] == "block_ip_address")
    assert record["outcome"] == "cancelled", record
    assert blocks["data"] == [], "nothing was blocked"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_subscribed_resources_are_announced_after_a_change(servers, data_dir: Path, transport: str):
    p = servers(transport, data_dir)
    p.start()
    updated: list[str] = []

    async def on_message(message) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))

    async with p.session(message_handler=on_message) as s:
        with anyio.fail_after(STEP_TIMEOUT):
            await s.subscribe_resource("portcullis://blocks")
            await s.subscribe_resource("portcullis://grants")
        ok(await call(s, "list_blocks", {}))
        await anyio.sleep(0.2)
        assert updated == [], "a read changes nothing"
        ok(await call(s, "block_ip_address", {"ip_address": "203.0.113.70", "duration": "1h", "reason": "sub"}))
        with anyio.fail_after(STEP_TIMEOUT):
            while len(updated) < 2:
                await anyio.sleep(0.02)
        assert sorted(updated) == ["portcullis://blocks", "portcullis://grants"]
        with anyio.fail_after(STEP_TIMEOUT):
            await s.unsubscribe_resource("portcullis://grants")
        ok(await call(s, "block_ip_address", {"ip_address": "203.0.113.71", "duration": "1h", "reason": "sub"}))
        with anyio.fail_after(STEP_TIMEOUT):
            while len(updated) < 3:
                await anyio.sleep(0.02)
        await anyio.sleep(0.2)
        assert updated[2:] == ["portcullis://blocks"], updated


def test_ctrl_c_cancels_a_cli_call_the_same_way(servers, data_dir: Path, slow_pfsense):
    import signal
    import subprocess

    emulator, config = slow_pfsense
    p = servers("stdio", data_dir, config)
    _set_latency(emulator, SLOW_MS)
    proc = subprocess.Popen(
        [p.binary, *p.global_args, "call", "query_firewall_logs", "timeframe=30d"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=STEP_TIMEOUT)
    assert proc.returncode == 1, stderr
    assert "error [cancelled]" in stderr, stderr
    record = next(r for r in read_audit(data_dir) if r["tool"] == "query_firewall_logs")
    assert record["outcome"] == "cancelled" and record["transport"] == "cli", record


async def test_a_change_by_another_session_is_announced(servers, data_dir: Path):
    p = servers("http", data_dir)
    p.start()
    updated: list[str] = []

    async def on_message(message) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))

    async with p.session(message_handler=on_message) as watcher, p.session() as other:
        with anyio.fail_after(STEP_TIMEOUT):
            await watcher.subscribe_resource("portcullis://targets/lab/blocks")
            await watcher.subscribe_resource("portcullis://targets/elsewhere/blocks")
        ok(await call(other, "block_ip_address", {"ip_address": "203.0.113.80", "duration": "1h", "reason": "x"}))
        with anyio.fail_after(STEP_TIMEOUT):
            while not updated:
                await anyio.sleep(0.02)
        await anyio.sleep(0.2)
    assert updated == ["portcullis://targets/lab/blocks"], "only resources that read the changed target"
