"""The product against a pfSense target: the real binary, configured with a pfSense target that points at the
pfRest emulator process, driven with the official MCP client over stdio and HTTP, and with the CLI."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import anyio
import pytest

from harness import HttpServer, call, error, httpx, ok, read_audit

pytestmark = pytest.mark.anyio

SCENARIO_TIMEOUT = 90.0
API_KEY = "emulator-test-key-0123456789"


@pytest.fixture
def emulator(portcullis_bin: str, tmp_path: Path):
    binary = os.environ.get("PFREST_EMULATOR_BIN") or str(Path(portcullis_bin).with_name("pfrest-emulator"))
    server = HttpServer([binary, "--port", "0", "--api-key", API_KEY], tmp_path / "emulator.log").start()
    yield server
    server.stop()


def control(emulator: HttpServer, path: str, body: dict | None = None):
    url = f"http://127.0.0.1:{emulator.port}/__emulator/{path}"
    with httpx.Client(trust_env=False, timeout=10) as client:
        r = client.post(url, json=body) if body is not None else client.get(url)
    r.raise_for_status()
    return r.json() if r.content else None


@pytest.fixture
def pf_config(emulator: HttpServer, tmp_path: Path) -> Path:
    config = tmp_path / "pfsense.yaml"
    config.write_text(
        "targets:\n"
        f"  fw: {{kind: pfsense, protocol: http, host: 127.0.0.1, port: {emulator.port}, api_key: {API_KEY}, timeout: 5}}\n"
        "default_target: fw\n"
        "security:\n  principal: admin\n  rate_limits: {sensitive: 1000, admin: 1000}\n"
    )
    return config


def only_fault(emulator: HttpServer, faults: dict) -> None:
    """Clear every fault switch of the emulator, then turn on just `faults`."""
    control(emulator, "faults", {"reset": True})
    control(emulator, "faults", faults)


# Each fault switch of the emulator and the error code a call that meets it must end with.
FAULT_CASES = [
    ({"html_404_everything": True}, "pfrest_not_installed"),
    ({"wrong_credentials": True}, "authentication_failed"),
    ({"fail_next_n": 20, "fail_status": 500}, "unexpected_response"),
    ({"garbage_next_n": 20}, "unexpected_response"),
    ({"drop_next_n": 20}, "unexpected_response"),
]


def blocks(result) -> list[str]:
    return sorted(b["ip_address"] for b in ok(result)["data"])


SSH_FROM = {"interface": "wan", "direction": "in", "protocol": "tcp", "destination": "198.51.100.2", "destination_port": 22}


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_foundation_flow_on_pfsense(servers, data_dir: Path, pf_config: Path, emulator, transport: str):
    pc = servers(transport, data_dir, config=pf_config)
    pc.start()
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as session:
            names = {t.name for t in (await session.list_tools()).tools}
            assert {"get_firewall_rules", "block_ip_address", "query_firewall_logs"} <= names
            rules = ok(await call(session, "get_firewall_rules"))
            assert rules["target"] == "fw" and rules["count"] >= 1, rules

            blocked = ok(await call(session, "block_ip_address",
                                    {"ip_address": "203.0.113.7", "duration": "1h", "reason": "ssh brute force"}))
            assert blocked["status"] == "applied" and blocked["verified"] is True, blocked
            assert blocks(await call(session, "list_blocks")) == ["203.0.113.7"]
            verdict = ok(await call(session, "simulate_packet", {**SSH_FROM, "source": "203.0.113.7"}))
            assert verdict["verdict"] == "block" and verdict["rule"]["managed"] == "block_list", verdict
            ok(await call(session, "unblock_ip_address", {"ip_address": "203.0.113.7"}))
            verdict = ok(await call(session, "simulate_packet", {**SSH_FROM, "source": "203.0.113.7"}))
            assert verdict["verdict"] == "block" and verdict["rule"]["kind"] == "default_deny", verdict
            ok(await call(session, "block_ip_address", {"ip_address": "203.0.113.8", "duration": "1h", "reason": "scan"}))
    pc.stop()
    pc.start()
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as session:
            assert blocks(await call(session, "list_blocks")) == ["203.0.113.8"], "state lives on the firewall"
    state = control(emulator, "state")
    assert any(a["name"] == "PORTCULLIS_BLOCK" for a in state["aliases"]), state["aliases"]
    assert control(emulator, "violations") == [], "every request matched the pfRest schema"


async def test_rules_blocks_grants_logs_and_status_on_pfsense(servers, data_dir: Path, pf_config: Path, emulator):
    pc = servers("stdio", data_dir, config=pf_config)
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as session:
            created = ok(await call(session, "create_firewall_rule",
                                    {"interface": "lan", "action": "block", "protocol": "tcp", "source": "lan",
                                     "destination": "any", "destination_port": "25", "position": 0,
                                     "description": "No direct SMTP"}))
            rule_id = created["rule"]["rule_id"]
            assert created["status"] == "applied" and rule_id.isdigit(), created
            paused = ok(await call(session, "pause_rule", {"rule_id": rule_id, "minutes": 30}))
            assert paused["rule"]["status"] == "paused", paused
            resumed = ok(await call(session, "resume_rule", {"rule_id": rule_id}))
            assert resumed["rule"]["status"] == "enabled", resumed

            for ip, duration in [("198.51.100.201", "30m"), ("198.51.100.202", "24h"), ("198.51.100.203", "7d")]:
                ok(await call(session, "block_ip_address", {"ip_address": ip, "duration": duration, "reason": "wave"}))
            rows = {b["ip_address"]: b["remaining_seconds"] for b in ok(await call(session, "list_blocks"))["data"]}
            assert 1700 < rows["198.51.100.201"] <= 1800 and 86000 < rows["198.51.100.202"] <= 86400, rows
            assert 604000 < rows["198.51.100.203"] <= 604800, rows

            granted = ok(await call(session, "grant_access",
                                    {"ip_address": "203.0.113.50", "duration": "2h", "reason": "contractor",
                                     "interface": "wan", "port": 22, "destination": "any"}))
            assert granted["status"] == "applied", granted
            inside = ok(await call(session, "simulate_packet", {**SSH_FROM, "source": "203.0.113.50"}))
            assert inside["verdict"] == "pass", inside

            logs = ok(await call(session, "query_firewall_logs", {"timeframe": "3650d", "limit": 20}))
            assert logs["count"] > 0 and logs["lines_read"] > 0, logs
            entry = logs["data"][0]
            assert {"timestamp", "interface", "action", "src_ip", "dst_ip", "protocol", "length"} <= set(entry), entry
            blocked_only = ok(await call(session, "query_firewall_logs", {"timeframe": "3650d", "action": "block"}))
            assert all(e["action"] == "block" for e in blocked_only["data"]), blocked_only

            status = ok(await call(session, "get_system_status"))
            assert status["target"] == "fw" and status["backend"] == "pfsense", status
            assert isinstance(status["cpu_usage"], (int, float)) and isinstance(status["uptime"], int), status
            vpn = ok(await call(session, "get_vpn_status"))
            assert isinstance(vpn["connections"], list) and isinstance(vpn["users"], list), vpn
            assert vpn["connections"], "the emulator has OpenVPN/IPsec/WireGuard status to report"
    assert control(emulator, "violations") == []


async def test_fault_switches_give_their_error_codes(servers, data_dir: Path, pf_config: Path, emulator):
    pc = servers("stdio", data_dir, config=pf_config)
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as session:
            before = control(emulator, "state")
            for faults, code in FAULT_CASES:
                only_fault(emulator, faults)
                err = error(await call(session, "block_ip_address",
                                       {"ip_address": "203.0.113.99", "duration": "1h", "reason": "fault"}))
                assert err["code"] == code, (faults, err)
                assert "hint" in err, err
            control(emulator, "faults", {"reset": True})
            assert control(emulator, "state")["aliases"] == before["aliases"], "nothing changed"

            # A config lock is retried: the change lands once, whole.
            control(emulator, "faults", {"config_locked_next_n": 2})
            locked = ok(await call(session, "block_ip_address",
                                   {"ip_address": "203.0.113.98", "duration": "1h", "reason": "locked"}))
            assert locked["status"] == "applied" and locked["verified"], locked
            control(emulator, "faults", {"reset": True})

    # The CLI reports the same code through the same pipeline.
    control(emulator, "faults", {"html_404_everything": True})
    r = pc.cli("call", "get_firewall_rules", "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    assert json.loads(r.stdout)["error"]["code"] == "pfrest_not_installed", r.stdout
    control(emulator, "faults", {"reset": True})
    audit = read_audit(data_dir)
    assert any(rec["outcome"] == "pfrest_not_installed" and rec["transport"] == "cli" for rec in audit), audit


async def test_concurrent_blocks_both_land(servers, data_dir: Path, pf_config: Path, emulator):
    """The device loses one of two unserialised writes (the emulator does too); one writer per target saves both."""
    control(emulator, "faults", {"lost_updates": True, "write_latency_ms": 150})
    pc = servers("http", data_dir, config=pf_config)
    pc.start()

    async def block(ip: str):
        async with pc.session() as session:
            return ok(await call(session, "block_ip_address", {"ip_address": ip, "duration": "1h", "reason": "race"}))

    with anyio.fail_after(SCENARIO_TIMEOUT):
        results = {}

        async def run(ip: str):
            results[ip] = await block(ip)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "203.0.113.71")
            tg.start_soon(run, "203.0.113.72")
        assert all(r["status"] == "applied" for r in results.values()), results
        async with pc.session() as session:
            assert blocks(await call(session, "list_blocks")) == ["203.0.113.71", "203.0.113.72"]
    alias = next(a for a in control(emulator, "state")["aliases"] if a["name"] == "PORTCULLIS_BLOCK")
    assert len(alias["address"]) == 2, alias


async def test_safe_change_on_pfsense(servers, data_dir: Path, emulator, tmp_path: Path):
    """Lockout prevention, confirm-or-rollback and expiry against the pfSense target."""
    config = tmp_path / "pfsense-safe.yaml"
    config.write_text(
        "targets:\n"
        f"  fw: {{kind: pfsense, protocol: http, host: 127.0.0.1, port: {emulator.port}, api_key: {API_KEY}, timeout: 5}}\n"
        "default_target: fw\n"
        "security:\n  principal: admin\n  rate_limits: {sensitive: 1000, admin: 1000}\n"
        "  management_flows: [{name: admin desk to the GUI, interface: lan, source: 192.168.1.10, "
        "destination: 192.168.1.1, port: 443}]\n"
    )
    pc = servers("http", data_dir, config=config)
    pc.start()
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as session:
            cut = error(await call(session, "create_firewall_rule",
                                   {"interface": "lan", "action": "block", "protocol": "tcp", "source": "any",
                                    "destination": "any", "destination_port": 443, "position": 0,
                                    "description": "No HTTPS"}))
            assert cut["code"] == "lockout_prevented" and "admin desk to the GUI" in cut["message"], cut

            # The first block creates the block list and its rules (pfSense needs a second between new rules).
            kept = ok(await call(session, "block_ip_address",
                                 {"ip_address": "203.0.113.80", "duration": "1h", "reason": "kept", "confirm_within": "30s"}))
            ok(await call(session, "confirm_change", {"change_id": kept["change_id"]}))
            ok(await call(session, "block_ip_address",
                          {"ip_address": "203.0.113.81", "duration": "1h", "reason": "unconfirmed", "confirm_within": "3s"}))
            ok(await call(session, "block_ip_address", {"ip_address": "203.0.113.82", "duration": "3s", "reason": "short"}))
    pc.kill()
    await anyio.sleep(3.5)
    pc.start()
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as session:
            assert blocks(await call(session, "list_blocks")) == ["203.0.113.80"]
            await anyio.sleep(1.5)
    alias = next(a for a in control(emulator, "state")["aliases"] if a["name"] == "PORTCULLIS_BLOCK")
    assert alias["address"] == ["203.0.113.80/32"], "the unconfirmed block was undone and the expired one removed"
    assert control(emulator, "violations") == []


async def test_hand_removed_entry_is_reported_as_drift(servers, data_dir: Path, pf_config: Path, emulator):
    pc = servers("stdio", data_dir, config=pf_config)
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as session:
            assert ok(await call(session, "get_active_alarms"))["count"] == 0
            for ip in ("203.0.113.41", "203.0.113.42"):
                ok(await call(session, "block_ip_address", {"ip_address": ip, "duration": "1h", "reason": "drift"}))

            # An administrator removes one entry in the pfSense GUI (here: the same pfRest call it makes).
            headers = {"X-API-Key": API_KEY}
            base = f"http://127.0.0.1:{emulator.port}/api/v2"
            async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
                found = (await client.get(f"{base}/firewall/aliases", params={"name": "PORTCULLIS_BLOCK"}, headers=headers)).json()
                alias = found["data"][0]
                keep = [i for i, a in enumerate(alias["address"]) if not a.startswith("203.0.113.41")]
                body = {"id": alias["id"], "address": [alias["address"][i] for i in keep],
                        "detail": [alias["detail"][i] for i in keep], "apply": True}
                r = await client.patch(f"{base}/firewall/alias", json=body, headers=headers)
                assert r.status_code == 200, r.text

            alarms = ok(await call(session, "get_active_alarms"))
            drift = [a for a in alarms["data"] if a["type"] == "drift"]
            assert drift and "203.0.113.41" in drift[0]["message"] and "removed by hand" in drift[0]["message"], alarms


def test_every_fault_switch_gives_its_code_through_the_cli(servers, data_dir: Path, emulator, tmp_path: Path):
    """Each fault of the emulator, seen by a person at the CLI: the documented code, and the firewall unchanged."""
    config = tmp_path / "pfsense-fast.yaml"
    config.write_text(
        "targets:\n"
        f"  fw: {{kind: pfsense, protocol: http, host: 127.0.0.1, port: {emulator.port}, api_key: {API_KEY}, timeout: 1}}\n"
        "default_target: fw\nsecurity:\n  principal: admin\n  rate_limits: {sensitive: 1000, admin: 1000}\n"
    )
    pc = servers("stdio", data_dir, config=config)
    # The CLI config's 1 s timeout lets a slow device show up as its own code too.
    cases = [*FAULT_CASES, ({"latency_ms": 1500}, "timeout")]
    before = control(emulator, "state")["aliases"]
    for faults, code in cases:
        only_fault(emulator, faults)
        r = pc.cli("call", "block_ip_address", "ip_address=203.0.113.97", "duration=1h", "reason=fault", "--json",
                   timeout=60)
        assert r.returncode == 1, (faults, r.stdout, r.stderr)
        assert json.loads(r.stdout)["error"]["code"] == code, (faults, r.stdout)
    control(emulator, "faults", {"reset": True})
    assert control(emulator, "state")["aliases"] == before, "no fault left a change behind"


@pytest.mark.parametrize("version", ["v2.10.0", "v2.7.6"])
async def test_a_burst_between_two_log_questions_is_read_to_its_oldest_line(
    servers, portcullis_bin: str, data_dir: Path, tmp_path: Path, version: str
):
    """12,000 lines arrive between two questions (more than one 5,000-line page): the pull pages back to the
    previous pull, so the burst's oldest line is found and no gap is reported, with either pfRest paging."""
    binary = os.environ.get("PFREST_EMULATOR_BIN") or str(Path(portcullis_bin).with_name("pfrest-emulator"))
    emu = HttpServer([binary, "--port", "0", "--api-key", API_KEY, "--version", version],
                     tmp_path / "emulator.log").start()
    try:
        config = tmp_path / "pfsense.yaml"
        config.write_text(
            "targets:\n"
            f"  fw: {{kind: pfsense, protocol: http, host: 127.0.0.1, port: {emu.port}, api_key: {API_KEY}, timeout: 5}}\n"
            "default_target: fw\n"
            "security:\n  principal: admin\n"
        )
        pc = servers("stdio", data_dir, config=config)
        with anyio.fail_after(SCENARIO_TIMEOUT):
            async with pc.session() as session:
                ok(await call(session, "query_firewall_logs", {"timeframe": "1h"}))
                now = datetime.now(timezone.utc).isoformat()
                line = ("<134>1 {now} pfSense.home.arpa filterlog 72237 - - 5,,,1000000103,em0,match,block,in,4,0x0,,"
                        "64,1,0,DF,6,tcp,60,{src},203.0.113.2,{port},22,0,S,1,,64240,,mss")
                deep = line.format(now=now, src="192.0.2.99", port=40000)
                burst = [deep] + [line.format(now=now, src="192.0.2.45", port=10000 + i) for i in range(11_999)]
                assert control(emu, "firewall_log", {"lines": burst})["lines"] >= 12_000
                found = ok(await call(session, "query_firewall_logs", {"timeframe": "1h", "source_ip": "192.0.2.99"}))
                assert found["count"] == 1 and "log_gap" not in found, found
                assert found["data"][0]["src_port"] == 40000, found
                stats = ok(await call(session, "get_traffic_stats", {"timeframe": "1h"}))
                assert stats["blocked"] >= 12_000 and "log_gap" not in stats, stats
    finally:
        emu.stop()


async def test_the_customers_device_tools_return_rows_over_mcp(servers, data_dir: Path, pf_config: Path, emulator):
    """`get_online_devices`, `get_offline_devices` and `list_devices` (issue 22) from the emulator's ARP table and
    DHCP leases, with vendors from the IEEE registry."""
    pc = servers("stdio", data_dir, config=pf_config)
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as session:
            online = ok(await call(session, "get_online_devices"))
            assert isinstance(online["data"], list) and online["count"] == len(online["data"]) > 0, online
            laptop = next(d for d in online["data"] if d["address"] == "192.168.1.20")
            assert laptop["mac"] == "00:1b:21:3a:4f:5c" and laptop["vendor"] == "Intel Corporate", laptop
            assert laptop["status"] == "online" and laptop["interface"] == "lan", laptop
            offline = ok(await call(session, "get_offline_devices"))
            printer = next(d for d in offline["data"] if d["address"] == "192.168.1.30")
            assert printer["hostname"] == "printer" and printer["status"] == "offline", printer
            every = ok(await call(session, "list_devices", {"status": "all"}))
            assert every["count"] == online["count"] + offline["count"], every
            usage = ok(await call(session, "get_bandwidth_usage", {"timeframe": "24h"}))
            assert usage["data"] and usage["data"][0]["address"] == "192.168.1.20", usage
            assert "states" in usage["source"] and usage["complete"] is False, usage
    assert control(emulator, "violations") == []


def emulator_api(emulator: HttpServer, method: str, path: str, body: dict | None = None) -> dict:
    """A request to the emulator's pfRest API itself, as an administrator in the pfSense GUI would make it."""
    url = f"http://127.0.0.1:{emulator.port}{path}"
    with httpx.Client(trust_env=False, timeout=10, headers={"X-API-Key": API_KEY}) as client:
        r = client.request(method, url, json=body)
    r.raise_for_status()
    return r.json()["data"]


async def test_the_customers_vpn_user_call_on_pfsense(servers, data_dir: Path, pf_config: Path, emulator):
    """BRIEF's `create_vpn_user {"username": "remote_user", "certificate": "user_cert.crt", "static_ip":
    "10.0.1.100"}` on pfSense over MCP: the user holds the named certificate, an override gives it the address, and
    the exported configuration and the password arrive once; neither is anywhere in the data directory."""
    ca = emulator_api(emulator, "GET", "/api/v2/system/certificate_authorities")[0]["refid"]
    emulator_api(emulator, "POST", "/api/v2/system/certificate/generate",
                 {"descr": "user_cert.crt", "caref": ca, "keytype": "RSA", "keylen": 2048, "digest_alg": "sha256",
                  "dn_commonname": "remote_user", "type": "user"})
    before = control(emulator, "state")["vpn"]
    pc = servers("stdio", data_dir, config=pf_config)
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            made = ok(await call(s, "create_vpn_user",
                                 {"username": "remote_user", "certificate": "user_cert.crt", "static_ip": "10.0.1.100"}))
            assert made["status"] == "applied" and made["verified"] is True, made
            client_config, password = made["client_config"], made["password"]
            private_key = client_config.split("<key>\n", 1)[1].split("</key>", 1)[0].strip()
            assert private_key and "no copy" in made["secret_notice"], made
            csos = control(emulator, "state")["vpn"]["csos"]
            assert [(c["common_name"], c["tunnel_network"]) for c in csos] == [("remote_user", "10.0.1.100/24")], csos
            taken = error(await call(s, "create_vpn_user", {"username": "second", "type": "openvpn", "static_ip": "10.0.1.100"}))
            assert taken["field"] == "static_ip", taken
            status = ok(await call(s, "get_vpn_status", {"type": "openvpn"}))
            assert [c["name"] for c in status["connections"] if c["kind"] == "openvpn"], status
            listed = ok(await call(s, "list_vpn_users"))
            assert [u["username"] for u in listed["users"]] == ["remote_user"], listed
            assert password not in str(listed)
            gone = ok(await call(s, "delete_vpn_user", {"username": "remote_user"}))
            assert gone["verified"] is True, gone
    assert control(emulator, "state")["vpn"] == before, "user and override gone, the named certificate kept"
    for path in data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert password.encode() not in content, f"{path} holds the password"
            assert private_key.encode() not in content, f"{path} holds the private key"
    assert control(emulator, "violations") == []
