"""End-to-end tests of `portcullis` through the official MCP Python SDK, HTTP and the CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import pytest

from harness import STEP_TIMEOUT, call, error, httpx, ok, read_audit

pytestmark = pytest.mark.anyio

TRANSPORTS = ["stdio", "http"]

READ_TOOLS = {
    "get_firewall_rules",
    "get_ddos_protection",
    "list_blocks",
    "get_system_status",
    "simulate_packet",
    "lint_rules",
    "get_audit_log",
    "verify_audit_log",
    "get_vpn_status",
    "list_pending_changes",
    "list_grants",
    "query_firewall_logs",
    "get_active_alarms",
    "list_aliases",
    "get_traffic_stats",
    "analyze_threats",
    "generate_security_report",
    "get_dashboard_data",
    "lookup_country",
    "list_geo_blocks",
    "list_mirrors",
    "list_devices",
    "get_online_devices",
    "get_offline_devices",
    "get_bandwidth_usage",
    "list_vpn_users",
}
STATE_CHANGING_TOOLS = {
    "create_firewall_rule",
    "configure_ddos_protection",
    "modify_firewall_rule",
    "delete_firewall_rule",
    "pause_rule",
    "resume_rule",
    "block_ip_address",
    "unblock_ip_address",
    "block_domain",
    "unblock_domain",
    "confirm_change",
    "rollback_change",
    "grant_access",
    "revoke_access",
    "set_egress_policy",
    "create_geo_block",
    "delete_geo_block",
    "refresh_geo_blocks",
    "mirror_traffic",
    "stop_mirror",
    "enable_traffic_analysis",
    "create_vpn_user",
    "delete_vpn_user",
}
# Every tool the server lists: each one either only reads or changes state.
EXPECTED_TOOLS = READ_TOOLS | STATE_CHANGING_TOOLS
RULE_EDITING = {"create_firewall_rule", "modify_firewall_rule", "delete_firewall_rule"}
# Admin-level tools: the host's egress policy and VPN users (system category) and DDoS protection (security category).
ADMIN_SYSTEM = {"set_egress_policy", "configure_ddos_protection", "create_vpn_user", "delete_vpn_user"}

SCENARIO_TIMEOUT = 60.0

WAN_SSH_FROM = {
    "interface": "wan",
    "direction": "in",
    "protocol": "tcp",
    "destination": "198.51.100.2",
    "destination_port": 22,
}


def _blocks_by_ip(listing: dict) -> dict[str, dict]:
    return {row["ip_address"]: row for row in listing["data"]}


async def _listed_tools(session):
    with anyio.fail_after(STEP_TIMEOUT):
        return (await session.list_tools()).tools


def _started_with_config(servers, transport: str, data_dir: Path, folder: Path, yaml: str):
    """A server on `data_dir` with `yaml` as its config file in `folder`, started (HTTP) or ready for sessions
    (stdio)."""
    config = folder / "portcullis.yaml"
    config.write_text(yaml)
    pc = servers(transport, data_dir, config=config)
    pc.start()
    return pc


# --------------------------------------------------------------------------
# 1. the main flow, with a restart in the middle
# --------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_flow(servers, data_dir: Path, transport: str):
    pc = servers(transport, data_dir)
    pc.start()
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            # -- the catalogue
            tools = await _listed_tools(s)
            by_name = {t.name: t for t in tools}
            assert set(by_name) == EXPECTED_TOOLS
            assert len(tools) == len(EXPECTED_TOOLS), "duplicate tool names"
            for t in tools:
                assert isinstance(t.input_schema, dict) and t.input_schema.get("type") == "object", t.name
                assert isinstance(t.output_schema, dict) and t.output_schema.get("type") == "object", t.name
                assert t.description, t.name
                hint = t.annotations.read_only_hint if t.annotations else None
                if t.name in READ_TOOLS:
                    assert hint is True, f"{t.name} should be annotated readOnlyHint: true"
                else:
                    assert hint is not True, f"{t.name} changes state but claims readOnlyHint"

            # -- fresh rule set
            rules = ok(await call(s, "get_firewall_rules"))
            assert rules["count"] == 3 == len(rules["data"])
            first = rules["data"][0]
            assert first["managed"] == "anti_lockout", first
            assert first["interface"] == "lan"
            descriptions = [r["description"] for r in rules["data"]]
            assert descriptions[1:] == ["Default allow LAN to any rule", "Default allow LAN IPv6 to any rule"]

            status = ok(await call(s, "get_system_status"))
            for key in ("cpu_usage", "memory_usage", "uptime"):
                assert isinstance(status.get(key), (int, float)), (key, status)
            assert ok(await call(s, "lint_rules"))["data"] == []

            # -- block, see it, simulate it
            blocked = ok(
                await call(
                    s,
                    "block_ip_address",
                    {"ip_address": "203.0.113.7", "duration": "1h", "reason": "port scan from test_flow"},
                )
            )
            assert blocked["status"] == "applied", blocked
            assert blocked["verified"] is True, blocked
            assert blocked["change_id"] and blocked["expires_at"], blocked
            assert isinstance(blocked["risk_score"], (int, float)), blocked

            rows = _blocks_by_ip(ok(await call(s, "list_blocks")))
            assert set(rows) == {"203.0.113.7"}, rows
            row = rows["203.0.113.7"]
            assert row["interface"] == "all", row
            assert 3500 <= row["remaining_seconds"] <= 3600, row
            assert row["permanent"] is False, row
            assert row["reason"] == "port scan from test_flow", row

            sim = ok(await call(s, "simulate_packet", {**WAN_SSH_FROM, "source": "203.0.113.7"}))
            assert sim["verdict"] == "block", sim
            assert sim["rule"]["kind"] == "rule", sim
            assert sim["rule"]["managed"] == "block_list", sim

            # -- unblock; the packet now falls through to the implicit default deny
            ok(await call(s, "unblock_ip_address", {"ip_address": "203.0.113.7"}))
            assert _blocks_by_ip(ok(await call(s, "list_blocks"))) == {}
            sim = ok(await call(s, "simulate_packet", {**WAN_SSH_FROM, "source": "203.0.113.7"}))
            assert sim["rule"]["kind"] == "default_deny", sim
            assert sim["verdict"] in ("block", "reject"), sim

            blocked = ok(
                await call(
                    s,
                    "block_ip_address",
                    {"ip_address": "203.0.113.8", "duration": "1h", "reason": "second address"},
                )
            )
            assert blocked["status"] == "applied", blocked

        # -- stop the server and start a new one on the same data directory
        pc.restart()
        async with pc.session() as s:
            rows = _blocks_by_ip(ok(await call(s, "list_blocks")))
            assert "203.0.113.7" not in rows, rows
            assert set(rows) == {"203.0.113.8"}, rows
            assert rows["203.0.113.8"]["reason"] == "second address"
            assert 3000 <= rows["203.0.113.8"]["remaining_seconds"] <= 3600, rows

            rules = ok(await call(s, "get_firewall_rules"))
            managed = [r for r in rules["data"] if r.get("managed") == "block_list"]
            assert managed, f"managed block rules lost across restart: {rules['data']}"
            assert {r["interface"] for r in managed} >= {"wan"}, managed
            assert any(r.get("managed") == "anti_lockout" for r in rules["data"]), rules["data"]
            descriptions = {r["description"] for r in rules["data"]}
            assert {"Default allow LAN to any rule", "Default allow LAN IPv6 to any rule"} <= descriptions

            sim = ok(await call(s, "simulate_packet", {**WAN_SSH_FROM, "source": "203.0.113.8"}))
            assert sim["verdict"] == "block" and sim["rule"]["managed"] == "block_list", sim

    audit = read_audit(data_dir)
    assert {r["transport"] for r in audit} == {transport}, audit
    assert [r["tool"] for r in audit].count("block_ip_address") == 2
    assert all(r["decision"] == "allowed" and r["outcome"] == "ok" for r in audit), audit


# --------------------------------------------------------------------------
# 2. invalid inputs are refused, change nothing, and are audited as denied
# --------------------------------------------------------------------------

def _wan_https_rule(**changes) -> dict:
    """A valid create_firewall_rule argument set (pass TCP 443 on wan), with `changes` applied."""
    return {
        "interface": "wan",
        "action": "pass",
        "protocol": "tcp",
        "source": "any",
        "destination": "any",
        "destination_port": 443,
        **changes,
    }


INVALID_CALLS = [
    ("block_ip_address", {"ip_address": "300.1.1.1", "duration": "1h", "reason": "bad ip"}, "ip_address"),
    ("block_ip_address", {"ip_address": "10.0.0.0/33", "duration": "1h", "reason": "bad cidr"}, "ip_address"),
    (
        "create_firewall_rule",
        _wan_https_rule(destination_port=70000, description="port out of range"),
        "destination_port",
    ),
    ("create_firewall_rule", _wan_https_rule(interface="opt9", description="no such interface"), "interface"),
    ("modify_firewall_rule", {"rule_id": "999999", "enabled": False}, "rule_id"),
    ("create_firewall_rule", _wan_https_rule(description="evil\x1b[31mred"), "description"),
    ("block_ip_address", {"ip_address": "203.0.113.9", "duration": "-1h", "reason": "negative"}, "duration"),
]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_invalid_inputs(servers, data_dir: Path, transport: str):
    pc = servers(transport, data_dir)
    pc.start()
    calls: list[str] = []
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:

            async def tool(name, args=None):
                calls.append(name)
                return await call(s, name, args)

            rules_before = ok(await tool("get_firewall_rules"))
            blocks_before = ok(await tool("list_blocks"))

            for name, args, field in INVALID_CALLS:
                err = error(await tool(name, args))
                assert err["code"] == "validation_error", (name, args, err)
                assert err.get("field") == field, (name, args, err)

            assert ok(await tool("get_firewall_rules")) == rules_before
            assert ok(await tool("list_blocks")) == blocks_before

            # Read the audit trail while the server is still running (WAL readers).
            audit = read_audit(data_dir)

    pc.stop()
    assert [r["tool"] for r in audit] == calls, "expected exactly one audit record per tool call"
    assert read_audit(data_dir) == audit, "audit changed after the server stopped"
    for rec in audit:
        assert rec["transport"] == transport, rec
        assert isinstance(rec.get("principal"), dict) and rec["principal"].get("name"), rec
    invalid = audit[2 : 2 + len(INVALID_CALLS)]
    for rec, (name, args, _field) in zip(invalid, INVALID_CALLS):
        assert rec["tool"] == name, rec
        assert rec["decision"] == "denied", rec
        assert rec["outcome"] == "validation_error", rec
    for rec in audit[:2] + audit[2 + len(INVALID_CALLS) :]:
        assert rec["decision"] == "allowed" and rec["outcome"] == "ok", rec

    verify = pc.cli("audit", "verify")
    assert verify.returncode == 0, verify.stderr
    report = json.loads(verify.stdout)
    assert report["ok"] is True, report
    assert report["records"] >= len(calls), report


# --------------------------------------------------------------------------
# 3. every listed tool goes through the audited pipeline
# --------------------------------------------------------------------------


async def test_every_listed_tool_goes_through_the_pipeline(servers, data_dir: Path):
    pc = servers("stdio", data_dir)
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            with anyio.fail_after(STEP_TIMEOUT):
                tools = (await s.list_tools()).tools
            assert tools, "no tools listed"
            for t in tools:
                before = read_audit(data_dir) if (data_dir / "portcullis.sqlite").exists() else []
                result = await call(s, t.name, {})
                after = read_audit(data_dir)
                assert len(after) == len(before) + 1, (
                    f"{t.name} with {{}} added {len(after) - len(before)} audit records "
                    f"(is_error={result.is_error}); every tool must go through the audited pipeline"
                )
                rec = after[-1]
                assert rec["tool"] == t.name, rec
                assert rec["transport"] == "stdio", rec
                assert rec["decision"] in ("allowed", "denied"), rec
                if result.is_error:
                    assert rec["decision"] == "denied" or rec["outcome"] != "ok", (t.name, rec)
                    error(result)
                else:
                    await _conforms_to_its_whole_schema(s, t.name, ok(result))


async def _conforms_to_its_whole_schema(session, tool: str, result: dict) -> None:
    """The output schema clients check is an outline; the whole result type is a resource, and every result must
    satisfy it."""
    import jsonschema

    with anyio.fail_after(STEP_TIMEOUT):
        read = await session.read_resource(f"portcullis://schemas/{tool}")
    schema = json.loads(read.contents[0].text)
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(result), key=str)
    assert not errors, (tool, [e.message for e in errors[:3]])


MISSPELT_DRY_RUN = ["dryRun", "dry-run", "dryrun"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_unknown_arguments_are_refused_on_every_change_tool(servers, data_dir: Path, transport: str):
    """A misspelt dry_run (or any key a tool does not take) is refused, naming it and the closest argument, and the
    firewall is exactly as before; every input schema says so too."""
    pc = servers(transport, data_dir)
    pc.start()
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            tools = await _listed_tools(s)
            for t in tools:
                assert t.input_schema.get("additionalProperties") is False, t.name
            changes = [t.name for t in tools if not (t.annotations and t.annotations.read_only_hint)]
            assert "block_ip_address" in changes and "create_firewall_rule" in changes, changes
            rules_before = ok(await call(s, "get_firewall_rules"))
            aliases_before = ok(await call(s, "list_aliases"))
            for name in changes:
                for key in MISSPELT_DRY_RUN:
                    err = error(await call(s, name, {key: True}))
                    assert err["code"] == "validation_error" and err.get("field") == key, (name, key, err)
                    assert "did you mean `dry_run`" in err["message"], (name, key, err)
                err = error(await call(s, name, {"frobnicate": 1}))
                assert err["code"] == "validation_error" and err.get("field") == "frobnicate", (name, err)
            assert ok(await call(s, "get_firewall_rules")) == rules_before
            assert ok(await call(s, "list_aliases")) == aliases_before


def test_cli_refuses_an_unknown_argument_before_planning(servers, data_dir: Path):
    pc = servers("stdio", data_dir)
    r = pc.cli("call", "block_ip_address", "ip_address=192.0.2.56", "duration=1h", "reason=cli", "dryrun=true")
    assert r.returncode != 0, r.stdout + r.stderr
    assert "dryrun" in r.stdout + r.stderr and "dry_run" in r.stdout + r.stderr, r.stdout + r.stderr
    listed = pc.cli("call", "list_blocks", "--json")
    assert json.loads(listed.stdout)["count"] == 0, listed.stdout
    refused = read_audit(data_dir)[0]
    assert refused["tool"] == "block_ip_address" and refused["outcome"] == "validation_error", refused


async def test_http_calls_record_the_client_address(servers, data_dir: Path):
    """The HTTP peer reaches the call's context: it is in the audit record, and set_egress_policy keeps it reachable."""
    pc = servers("http", data_dir)
    pc.start()
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            ok(await call(s, "list_blocks"))
    rec = read_audit(data_dir)[-1]
    assert rec["tool"] == "list_blocks" and rec["transport"] == "http", rec
    assert str(rec.get("peer", "")).startswith("127.0.0.1:"), rec


# --------------------------------------------------------------------------
# 4. security.allowed_operations
# --------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_allowed_operations_enforced(servers, data_dir: Path, tmp_path: Path, transport: str):
    pc = _started_with_config(servers, transport, data_dir, tmp_path, "security:\n  allowed_operations: [read_rules, read_blocks]\n")
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            err = error(
                await call(
                    s,
                    "block_ip_address",
                    {"ip_address": "192.0.2.10", "duration": "1h", "reason": "should be refused"},
                )
            )
            assert err["code"] == "policy_denied", err
            assert ok(await call(s, "get_firewall_rules"))["count"] == 3
            assert ok(await call(s, "list_blocks"))["data"] == []

    audit = read_audit(data_dir)
    assert [r["tool"] for r in audit] == ["block_ip_address", "get_firewall_rules", "list_blocks"]
    denial = audit[0]
    assert denial["decision"] == "denied" and denial["outcome"] == "policy_denied", denial
    assert denial["arguments"]["ip_address"] == "192.0.2.10", denial
    assert all(r["decision"] == "allowed" for r in audit[1:]), audit


# --------------------------------------------------------------------------
# 5. HTTP: Origin check, health, and no unauthenticated non-loopback bind
# --------------------------------------------------------------------------

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "origin-test", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_http_refuses_bad_origin(servers, data_dir: Path):
    pc = servers("http", data_dir)
    pc.start()
    base = pc.http.base
    with anyio.fail_after(SCENARIO_TIMEOUT):
        # A refused request is answered before its body is read, so the server closes that connection; each
        # probe gets its own connection instead of racing that close on a pooled one.
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(STEP_TIMEOUT), limits=no_reuse) as client:
            r = await client.post(
                f"{base}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Origin": "http://evil.example"}
            )
            assert r.status_code == 403, (r.status_code, r.text)

            r = await client.get(f"{base}/health")
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "ok", r.text

            # Look-alike origins and a foreign Host (DNS rebinding) are refused too.
            for origin in ("http://localhost.evil.example", "http://127.0.0.1.evil.example", "null"):
                r = await client.post(f"{base}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Origin": origin})
                assert r.status_code == 403, (origin, r.status_code, r.text)
            r = await client.post(f"{base}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Host": "evil.example"})
            assert r.status_code == 403, ("Host: evil.example", r.status_code, r.text)

            # Controls: no Origin, or the server's own origin, is served.
            r = await client.post(f"{base}/mcp", json=INITIALIZE, headers=MCP_HEADERS)
            assert r.status_code == 200, (r.status_code, r.text)
            r = await client.post(f"{base}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Origin": base})
            assert r.status_code == 200, (r.status_code, r.text)


def test_http_refuses_wildcard_bind_without_tokens(portcullis_bin: str, data_dir: Path):
    try:
        proc = subprocess.run(
            [portcullis_bin, "--data-dir", str(data_dir), "serve", "--http", "0.0.0.0:0"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=15,
        )
    except subprocess.TimeoutExpired as e:  # run() has killed it
        pytest.fail(f"serve --http 0.0.0.0:0 without tokens kept running: {e.stderr!r}")
    assert proc.returncode != 0, proc.stderr
    assert "token" in proc.stderr.lower(), proc.stderr


# --------------------------------------------------------------------------
# 6. the CLI shares the pipeline and the store
# --------------------------------------------------------------------------


def test_cli_shares_the_pipeline(servers, data_dir: Path):
    pc = servers("stdio", data_dir)
    r = pc.cli("call", "block_ip_address", "ip_address=192.0.2.55", "duration=30m", "reason=cli", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    blocked = json.loads(r.stdout)
    assert blocked["status"] == "applied", blocked

    r = pc.cli("call", "list_blocks", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = _blocks_by_ip(json.loads(r.stdout))
    assert set(rows) == {"192.0.2.55"}, rows
    assert rows["192.0.2.55"]["reason"] == "cli"
    assert 1700 <= rows["192.0.2.55"]["remaining_seconds"] <= 1800, rows

    audit = read_audit(data_dir)
    assert [r["tool"] for r in audit] == ["block_ip_address", "list_blocks"], audit
    assert all(r["transport"] == "cli" for r in audit), audit
    assert audit[0]["decision"] == "allowed" and audit[0]["outcome"] == "ok", audit[0]
    assert audit[0]["arguments"]["ip_address"] == "192.0.2.55", audit[0]


async def test_cli_and_mcp_see_the_same_store(servers, data_dir: Path):
    """A block made over the CLI is visible to an MCP client on the same data directory."""
    pc = servers("stdio", data_dir)
    r = pc.cli("call", "block_ip_address", "ip_address=192.0.2.56", "duration=30m", "reason=cli", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            rows = _blocks_by_ip(ok(await call(s, "list_blocks")))
    assert set(rows) == {"192.0.2.56"}, rows
    assert [r["transport"] for r in read_audit(data_dir)] == ["cli", "stdio"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_operator_does_not_see_or_call_rule_editing_tools(servers, data_dir: Path, tmp_path: Path, transport: str):
    pc = _started_with_config(servers, transport, data_dir, tmp_path, "security:\n  principal: operator\n")
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as session:
            names = {t.name for t in (await session.list_tools()).tools}
            assert names == EXPECTED_TOOLS - RULE_EDITING - ADMIN_SYSTEM, names
            result = await call(
                session,
                "create_firewall_rule",
                {"interface": "lan", "action": "pass", "protocol": "tcp", "source": "lan",
                 "destination": "any", "destination_port": 443, "description": "web"},
            )
            assert error(result)["code"] == "authorization_failed"
            blocked = ok(await call(session, "block_ip_address",
                                    {"ip_address": "203.0.113.40", "duration": "1h", "reason": "operator"}))
            assert blocked["status"] == "applied"
    pc.stop()
    denied = [r for r in read_audit(data_dir) if r["tool"] == "create_firewall_rule"]
    assert denied and denied[0]["decision"] == "denied" and denied[0]["principal"]["role"] == "operator"


async def test_high_risk_change_waits_for_a_person(servers, data_dir: Path):
    pc = servers("stdio", data_dir)
    pc.start()
    wide_open = {"interface": "lan", "action": "pass", "protocol": "any", "source": "any",
                 "destination": "any", "description": "open everything"}
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as session:
            first = error(await call(session, "create_firewall_rule", wide_open))
            assert first["code"] == "approval_required", first
            approval = first["approval_id"]
            insisting = error(await call(session, "create_firewall_rule", {**wide_open, "confirm": True}))
            assert insisting["code"] == "validation_error" and insisting.get("field") == "confirm", \
                "the model cannot approve by insisting: an argument the tool does not take is refused"

            listed = pc.cli("approvals")
            assert approval in listed.stdout, listed.stdout
            granted = pc.cli("approve", approval, "--yes")
            assert granted.returncode == 0, granted.stdout + granted.stderr

            applied = ok(await call(session, "create_firewall_rule", wide_open))
            assert applied["status"] == "applied" and applied["approval_id"] == approval
            # With the rule gone again the same call opens the same flows, and its approval is spent.
            ok(await call(session, "delete_firewall_rule", {"rule_id": applied["rule"]["rule_id"]}))
            again = error(await call(session, "create_firewall_rule", wide_open))
            assert again["code"] == "approval_required", "approvals are single-use"
    tools = [r["tool"] for r in read_audit(data_dir)]
    assert "approve" in tools


async def test_four_eyes_approval_needs_another_principal(servers, data_dir: Path, tmp_path: Path):
    """With approvals.distinct_approver the principal who asked cannot approve, not even through its own client's
    prompt; another principal at the CLI can, and the audit trail names both."""
    pc = _started_with_config(servers, "stdio", data_dir, tmp_path, "security:\n  principal: admin\napprovals:\n  distinct_approver: true\n")
    wide_open = {"interface": "lan", "action": "pass", "protocol": "any", "source": "any",
                 "destination": "any", "description": "open everything"}

    async def person(context, params):
        raise AssertionError("the asking principal's own client must not be asked to approve")

    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session(elicitation_callback=person) as session:
            first = error(await call(session, "create_firewall_rule", wide_open))
            assert first["code"] == "approval_required" and "four eyes" in first.get("hint", ""), first
            approval = first["approval_id"]

            own = pc.cli("approve", approval, "--yes")
            assert own.returncode != 0 and "four eyes" in own.stderr, own.stdout + own.stderr
            still = error(await call(session, "create_firewall_rule", wide_open))
            assert still["code"] == "approval_required", still

            other = pc.cli("approve", still["approval_id"], "--yes", env={"PORTCULLIS_PRINCIPAL": "alice"})
            assert other.returncode == 0, other.stdout + other.stderr
            applied = ok(await call(session, "create_firewall_rule", wide_open))
            assert applied["status"] == "applied", applied
    approvals = [r for r in read_audit(data_dir) if r["tool"] == "approve"]
    assert [(r["decision"], r["principal"]["name"]) for r in approvals] == [("denied", "admin"), ("allowed", "alice")]
    assert all(r["arguments"]["for_principal"] == "admin" for r in approvals), approvals


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_person_approves_through_mcp_elicitation(servers, data_dir: Path, transport: str):
    """A client that supports elicitation shows the approval to its user; the model never answers it."""
    from mcp import types

    asked: list[str] = []
    answers = [True, False]

    async def person(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": answers[len(asked) - 1]})

    pc = servers(transport, data_dir)
    pc.start()
    wide_open = {"interface": "lan", "action": "pass", "protocol": "any", "source": "any",
                 "destination": "any", "description": "open everything"}
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session(elicitation_callback=person) as session:
            applied = ok(await call(session, "create_firewall_rule", wide_open))
            assert applied["status"] == "applied" and applied["approval_id"], applied
            assert "risk" in asked[0] and "lan" in asked[0], asked
            # The same again on LAN would open nothing now; on the DMZ, where nothing passes yet, it opens everything.
            again = {**wide_open, "interface": "dmz", "description": "again"}
            declined = error(await call(session, "create_firewall_rule", again))
            assert declined["code"] == "approval_required" and "declined" in declined["message"], declined
            rules = ok(await call(session, "get_firewall_rules"))
            assert [r["description"] for r in rules["data"]].count("open everything") == 1
            assert all(r["description"] != "again" for r in rules["data"])
    assert len(asked) == 2


async def test_unconfirmed_change_is_reverted_after_sigkill(servers, data_dir: Path):
    """Commit-confirmed: the server is killed during the window; its next start reverts the change first."""
    pc = servers("http", data_dir)
    pc.start()
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as session:
            kept = ok(await call(session, "block_ip_address",
                                 {"ip_address": "203.0.113.60", "duration": "1h", "reason": "kept", "confirm_within": "3s"}))
            ok(await call(session, "confirm_change", {"change_id": kept["change_id"]}))
            pending = ok(await call(session, "block_ip_address",
                                    {"ip_address": "203.0.113.61", "duration": "1h", "reason": "unconfirmed",
                                     "confirm_within": "3s"}))
            assert pending["status"] == "pending_confirmation", pending
            listed = ok(await call(session, "list_pending_changes"))
            assert [c["change_id"] for c in listed["data"]] == [pending["change_id"]], listed
    pc.kill()
    await anyio.sleep(3.5)
    pc.start()
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as session:
            blocks = ok(await call(session, "list_blocks"))
            assert sorted(b["ip_address"] for b in blocks["data"]) == ["203.0.113.60"], blocks
            assert ok(await call(session, "list_pending_changes"))["count"] == 0
    rollbacks = [r for r in read_audit(data_dir) if r["tool"] == "rollback_change"]
    assert rollbacks and rollbacks[0]["principal"]["name"] == "portcullis", rollbacks
    assert rollbacks[0]["change_id"] == pending["change_id"]


async def test_short_block_expires_even_across_a_restart(servers, data_dir: Path):
    pc = servers("http", data_dir)
    pc.start()
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as session:
            ok(await call(session, "block_ip_address", {"ip_address": "203.0.113.90", "duration": "2s", "reason": "short"}))
            assert [b["ip_address"] for b in ok(await call(session, "list_blocks"))["data"]] == ["203.0.113.90"]
    pc.stop()
    await anyio.sleep(2.5)
    pc.start()
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as session:
            assert ok(await call(session, "list_blocks"))["count"] == 0
            verdict = ok(await call(session, "simulate_packet",
                                    {"interface": "wan", "direction": "in", "protocol": "tcp", "source": "203.0.113.90",
                                     "destination": "198.51.100.2", "destination_port": 22}))
            assert verdict["rule"]["kind"] == "default_deny", verdict
            await anyio.sleep(1.5)  # the sweeper runs every second and removes the entry itself
    expiries = [r for r in read_audit(data_dir) if r["tool"] == "expire"]
    assert expiries and expiries[-1]["outcome"] == "ok", expiries


def test_block_list_feed_is_plain_text_behind_a_token(servers, data_dir: Path, tmp_path: Path):
    import hashlib

    token = "feed-secret-token-0123456789"
    config = tmp_path / "feed.yaml"
    config.write_text(
        "security:\n  principal: admin\n  principals: {edge-router: {role: viewer}}\n"
        f"http:\n  tokens: [{{principal: edge-router, sha256: {hashlib.sha256(token.encode()).hexdigest()}}}]\n"
    )
    pc = servers("http", data_dir, config=config)
    r = pc.cli("call", "block_ip_address", "ip_address=198.51.100.99", "duration=1h", "reason=feed", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    pc.start()
    base = pc.http.base
    with httpx.Client(trust_env=False, timeout=10) as client:
        assert client.get(f"{base}/feeds/blocks.txt").status_code == 401
        assert client.get(f"{base}/feeds/blocks.txt", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok_r = client.get(f"{base}/feeds/blocks.txt", headers={"Authorization": f"Bearer {token}"})
        assert ok_r.status_code == 200 and ok_r.headers["content-type"].startswith("text/plain"), ok_r.text
        assert ok_r.text == "198.51.100.99\n", ok_r.text
        assert client.get(f"{base}/feeds/other.txt", headers={"Authorization": f"Bearer {token}"}).status_code == 404
    pulls = [r for r in read_audit(data_dir) if r.get("origin") == "feed blocks.txt"]
    assert pulls and pulls[0]["principal"]["name"] == "edge-router", pulls
