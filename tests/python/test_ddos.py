"""DDoS protection through the official MCP client, with the customer's exact call (BRIEF:
`configure_ddos_protection {"interface": "wan", "rate_limit": "1000/s", "burst_limit": "5000", "enabled": true}`):
on an nftables target (a router network namespace this test makes, with no route out) the kernel holds the limit;
on a pfSense target (the pfRest emulator) the fields pfRest cannot carry are answered `unsupported` field by field
and nothing changes, while `syn_proxy` is carried out on the protected pass rule."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import anyio
import pytest

from harness import call, error, ok
from test_pfsense import API_KEY, control, emulator  # noqa: F401 (the emulator fixture)

pytestmark = pytest.mark.anyio

SCENARIO_TIMEOUT = 90.0
CUSTOMER_CALL = {"interface": "wan", "rate_limit": "1000/s", "burst_limit": "5000", "enabled": True}


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


@pytest.fixture
def router():
    """A network namespace with two veth pairs kept inside it and no route anywhere: what the nftables target
    filters."""
    name = f"pcpy{os.getpid()}"
    run("ip", "netns", "add", name)
    try:
        for dev, addr in (("lan0", "10.78.1.1/24"), ("wan0", "10.78.2.1/24")):
            run("ip", "-n", name, "link", "add", dev, "type", "veth", "peer", "name", f"{dev}p")
            run("ip", "-n", name, "address", "add", addr, "dev", dev)
            run("ip", "-n", name, "link", "set", dev, "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def nft_table(netns: str) -> str:
    return run("ip", "netns", "exec", netns, "nft", "list", "table", "inet", "portcullis")


async def test_the_customers_call_on_nftables(servers, data_dir: Path, tmp_path: Path, router: str):
    config = tmp_path / "nft.yaml"
    config.write_text(
        "targets:\n"
        f"  router: {{kind: nftables, netns: {router}, interfaces: {{lan: lan0, wan: wan0}}}}\n"
        "default_target: router\n"
        "security:\n  principal: admin\n  management_hosts: [10.78.1.10]\n"
    )
    pc = servers("stdio", data_dir, config=config)
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            set_ = ok(await call(s, "configure_ddos_protection", CUSTOMER_CALL))
            assert set_["status"] == "applied" and set_["verified"] is True, set_
            table = nft_table(router)
            assert "limit rate over 1000/second burst 5000 packets" in table, table
            assert "10.78.1.10" in table, "the management host is exempt"
            listed = ok(await call(s, "get_ddos_protection"))
            assert listed["count"] == 1, listed
            p = listed["data"][0]
            assert p["protection_id"] == "wan/tcp" and p["live"]["live"] is True, p
            assert p["rate_limit"] == {"count": 1000, "unit": "second", "burst": 5000}, p
            assert {c["limit"] for c in p["live"]["dropped"]} == {"rate_limit"}, p

            # Hostile input: refused naming the field, nothing changed.
            for bad, field in (({"rate_limit": "0/s"}, "rate_limit"), ({"rate_limit": "1e99/s"}, "rate_limit"),
                               ({"rate_limit": "1000/fortnight"}, "rate_limit"), ({"burst_limit": "-1"}, "burst_limit"),
                               ({"interface": "dmz"}, "interface")):
                refused = error(await call(s, "configure_ddos_protection", {**CUSTOMER_CALL, **bad}))
                assert refused["field"] == field, (bad, refused)
            assert nft_table(router) == table

            removed = ok(await call(s, "configure_ddos_protection", {"interface": "wan", "enabled": False}))
            assert removed["status"] == "applied", removed
            assert "pd_" not in nft_table(router)
            assert ok(await call(s, "get_ddos_protection"))["count"] == 0


async def test_the_customers_call_on_pfsense_lists_what_pfrest_cannot_carry(servers, data_dir: Path, tmp_path: Path, emulator):
    config = tmp_path / "pfsense.yaml"
    config.write_text(
        "targets:\n"
        f"  fw: {{kind: pfsense, protocol: http, host: 127.0.0.1, port: {emulator.port}, api_key: {API_KEY}, timeout: 5}}\n"
        "default_target: fw\n"
        "security:\n  principal: admin\n  max_risk_score: 100\n  rate_limits: {sensitive: 1000, admin: 1000}\n"
    )
    pc = servers("stdio", data_dir, config=config)
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            before = control(emulator, "state")
            refused = error(await call(s, "configure_ddos_protection", CUSTOMER_CALL))
            assert refused["code"] == "unsupported" and refused["field"] == "rate_limit", refused
            assert "rate_limit" in refused["message"] and "Max." in refused["hint"], refused
            several = error(await call(s, "configure_ddos_protection",
                                       {"interface": "wan", "per_source_rate": "20/s", "overload_block": "10m",
                                        "max_connections_per_source": 50, "syn_proxy": True, "ports": 443}))
            for field in ("per_source_rate", "overload_block", "max_connections_per_source"):
                assert field in several["message"], several
            assert control(emulator, "state") == before, "nothing changed"

            ok(await call(s, "create_firewall_rule",
                          {"interface": "wan", "action": "pass", "protocol": "tcp", "source": "any",
                           "destination": "any", "destination_port": 443, "description": "HTTPS in"}))
            proxied = ok(await call(s, "configure_ddos_protection", {"interface": "wan", "ports": 443, "syn_proxy": True}))
            assert proxied["status"] == "applied" and proxied["verified"] is True, proxied
            rules = control(emulator, "state")
            assert "synproxy state" in json.dumps(rules), "the pass rule carries pf's SYN proxy"
            listed = ok(await call(s, "get_ddos_protection"))
            assert [p["protection_id"] for p in listed["data"]] == ["wan/tcp/443"], listed
            capped = ok(await call(s, "configure_ddos_protection",
                                   {"interface": "wan", "ports": 443, "syn_proxy": True, "per_source_bandwidth": "10Mbit/s"}))
            assert capped["status"] == "applied" and capped["verified"] is True, capped
            limiters = control(emulator, "state")["limiters"]
            assert [(l["mask"], l["bandwidth"][0]["bw"], l["bandwidth"][0]["bwscale"]) for l in limiters] == [("srcaddress", 10, "Mb")], limiters
            listed = ok(await call(s, "get_ddos_protection"))
            assert listed["data"][0]["per_source_bandwidth"] == {"bits_per_second": 10_000_000}, listed
            gone = ok(await call(s, "configure_ddos_protection", {"interface": "wan", "ports": 443, "enabled": False}))
            assert gone["status"] == "applied", gone
            after = control(emulator, "state")
            assert "synproxy state" not in json.dumps(after) and after["limiters"] == [], after["limiters"]
