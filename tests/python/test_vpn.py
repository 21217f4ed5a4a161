"""VPN users through the official MCP client on an nftables target whose WireGuard interface is a userspace
`wireguard-go` in a router network namespace this test makes (no route out). The customer's call (BRIEF:
`create_vpn_user {"username": "remote_user", "certificate": "user_cert.crt", "static_ip": "10.0.1.100"}`) names an
OpenVPN certificate, which a WireGuard server refuses naming the field; without it the user is made, its
`client_config` arrives once in the structured result, `list_vpn_users` and `get_vpn_status` show it, and
`delete_vpn_user` removes the peer. `get_vpn_status` answers on the lab too (no VPN there)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from harness import call, error, ok

pytestmark = pytest.mark.anyio

SCENARIO_TIMEOUT = 90.0
CUSTOMER_CALL = {"username": "remote_user", "certificate": "user_cert.crt", "static_ip": "10.0.1.100"}


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


@pytest.fixture
def wg_router():
    """A router namespace with a WireGuard interface (10.0.1.1/24) run by wireguard-go."""
    ns = f"pcvpn{os.getpid()}"
    dev = f"wgpy{os.getpid() % 100000}"
    run("ip", "netns", "add", ns)
    proc = None
    try:
        run("ip", "-n", ns, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p")
        run("ip", "-n", ns, "address", "add", "10.78.1.1/24", "dev", "lan0")
        run("ip", "-n", ns, "link", "set", "lan0", "up")
        env = {**os.environ, "WG_PROCESS_FOREGROUND": "1"}
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "wireguard-go", "-f", dev], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sock = Path(f"/var/run/wireguard/{dev}.sock")
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.02)
        assert sock.exists(), "wireguard-go made no socket (apt-get install wireguard-go wireguard-tools)"
        key = run("wg", "genkey").strip()
        run("ip", "netns", "exec", ns, "sh", "-c", f"echo {key} | wg set {dev} private-key /dev/stdin listen-port 51820")
        run("ip", "-n", ns, "address", "add", "10.0.1.1/24", "dev", dev)
        run("ip", "-n", ns, "link", "set", dev, "up")
        yield ns, dev
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)


async def test_vpn_users_over_mcp_on_a_wireguard_interface(servers, data_dir: Path, tmp_path: Path, wg_router):
    ns, dev = wg_router
    config = tmp_path / "vpn.yaml"
    config.write_text(
        "targets:\n"
        f"  router:\n    kind: nftables\n    netns: {ns}\n    interfaces: {{lan: lan0}}\n"
        f"    wireguard: {{interface: {dev}, address: 10.0.1.1/24, endpoint: '192.0.2.1:51820'}}\n"
        "default_target: router\n"
        "security:\n  principal: admin\n"
    )
    pc = servers("stdio", data_dir, config=config)
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            status = ok(await call(s, "get_vpn_status", {"type": "wireguard"}))
            assert [c["name"] for c in status["connections"]] == [dev], status

            refused = error(await call(s, "create_vpn_user", CUSTOMER_CALL))
            assert refused["field"] == "certificate", refused
            assert ok(await call(s, "list_vpn_users"))["count"] == 0

            made = ok(await call(s, "create_vpn_user", {k: v for k, v in CUSTOMER_CALL.items() if k != "certificate"}))
            assert made["status"] == "applied" and made["verified"] is True, made
            config_text = made["client_config"]
            assert "Address = 10.0.1.100/32" in config_text and "Endpoint = 192.0.2.1:51820" in config_text
            private_key = next(l.split(" = ", 1)[1] for l in config_text.splitlines() if l.startswith("PrivateKey"))

            listed = ok(await call(s, "list_vpn_users"))
            assert [u["username"] for u in listed["users"]] == ["remote_user"], listed
            assert private_key not in str(listed)
            peers = run("ip", "netns", "exec", ns, "wg", "show", dev, "allowed-ips")
            assert "10.0.1.100/32" in peers, peers

            again = error(await call(s, "create_vpn_user", {"username": "second", "static_ip": "10.0.1.100"}))
            assert again["field"] == "static_ip", again

            gone = ok(await call(s, "delete_vpn_user", {"username": "remote_user"}))
            assert gone["verified"] is True, gone
            assert run("ip", "netns", "exec", ns, "wg", "show", dev, "peers").strip() == ""
            audit = ok(await call(s, "get_audit_log", {"limit": 50}))
            assert private_key not in str(audit)

    for path in data_dir.rglob("*"):
        if path.is_file():
            assert private_key.encode() not in path.read_bytes(), f"{path} holds the private key"


async def test_get_vpn_status_answers_on_the_lab(servers, data_dir: Path):
    pc = servers("stdio", data_dir)
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            status = ok(await call(s, "get_vpn_status"))
            assert status["connections"] == [] and status["users"] == [], status
            refused = error(await call(s, "create_vpn_user", {"username": "u"}))
            assert refused["field"] == "target", refused
