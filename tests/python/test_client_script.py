"""`examples/daily_triage.py`, a client written only against BRIEF §2's tool names and result shapes, run
unchanged against the lab (after a plain `portcullis lab traffic`) and against the pfRest emulator (whose
firewall log holds a repeated attacker), over stdio and Streamable HTTP."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from harness import REPO, HttpServer
from test_pfsense import API_KEY, control, emulator  # noqa: F401 - the emulator fixture

SCRIPT = REPO / "examples" / "daily_triage.py"
ADMIN = "security:\n  principal: admin\n  rate_limits: {sensitive: 1000, admin: 1000}\n"


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    print(done.stdout)
    print(done.stderr, file=sys.stderr)
    return done


def cli(binary: str, config: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--config", str(config), "--data-dir", str(data), *args],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )


def blocked(binary: str, config: Path, data: Path) -> dict[str, dict]:
    out = cli(binary, config, data, "call", "list_blocks", "--json")
    assert out.returncode == 0, out.stderr
    return {b["ip_address"]: b for b in json.loads(out.stdout)["data"]}


def repeated_attackers(binary: str, config: Path, data: Path, timeframe: str) -> set[str]:
    out = cli(binary, config, data, "call", "analyze_threats", f"timeframe={timeframe}", "--json")
    assert out.returncode == 0, out.stderr
    return {t["source_ip"] for t in json.loads(out.stdout)["data"] if t["type"] == "repeated_attack"}


def assert_blocked_for_a_day(blocks: dict[str, dict], addresses: set[str]) -> None:
    now = datetime.now(timezone.utc)
    for ip in addresses:
        assert ip in blocks, f"{ip} was not blocked: {sorted(blocks)}"
        expires = datetime.fromisoformat(blocks[ip]["expires_at"].replace("Z", "+00:00"))
        assert timedelta(hours=23) < expires - now <= timedelta(hours=24), blocks[ip]


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_daily_triage_on_the_lab_after_lab_traffic(portcullis_bin: str, tmp_path: Path, transport: str):
    config, data = tmp_path / "admin.yaml", tmp_path / "data"
    config.write_text(ADMIN)
    traffic = cli(portcullis_bin, config, data, "lab", "traffic")
    assert traffic.returncode == 0, traffic.stderr
    expected = repeated_attackers(portcullis_bin, config, data, "1h")
    assert expected, "the default scenario has a repeated attacker active in the last hour"

    if transport == "stdio":
        server_cmd = shlex.join([portcullis_bin, "--config", str(config), "--data-dir", str(data), "serve"])
        done = run_script("--stdio", server_cmd)
    else:
        server = HttpServer(
            [portcullis_bin, "--config", str(config), "--data-dir", str(data), "serve", "--http", "127.0.0.1:0"],
            tmp_path / "http.log",
        ).start()
        try:
            done = run_script("--url", server.url)
        finally:
            server.stop()
    assert done.returncode == 0, done.stderr
    assert f"Blocking {len(expected)} repeated attacker(s) for 24h" in done.stdout
    assert "Security report, last 24h:" in done.stdout
    assert_blocked_for_a_day(blocked(portcullis_bin, config, data), expected)


def attack_lines(source: str, hours: int, per_hour: int) -> list[str]:
    """Real filterlog lines (BSD syslog form, the emulator's wan device em0): `source` probing SSH, blocked,
    `per_hour` times in each of the last `hours` hours."""
    now = datetime.now(timezone.utc)
    lines = []
    for h in range(hours, 0, -1):
        for i in range(per_hour):
            t = now - timedelta(hours=h - 1, minutes=50 - i % 50, seconds=i % 60)
            stamp = t.strftime("%b %d %H:%M:%S").replace(" 0", "  ", 1) if t.day < 10 else t.strftime("%b %d %H:%M:%S")
            lines.append(
                f"<134>{stamp} filterlog[72237]: 5,,,1000000103,em0,match,block,in,4,0x0,,63,{1000 + i},0,DF,6,tcp,60,"
                f"{source},198.51.100.2,{40000 + i},22,0,S,1891286705,,64240,,mss;sackOK;TS;nop;wscale"
            )
    return lines


def test_daily_triage_on_pfsense(portcullis_bin: str, tmp_path: Path, emulator: HttpServer):  # noqa: F811
    control(emulator, "firewall_log", {"lines": attack_lines("198.51.100.66", hours=4, per_hour=20)})
    config, data = tmp_path / "pfsense.yaml", tmp_path / "data"
    config.write_text(
        "targets:\n"
        f"  fw: {{kind: pfsense, protocol: http, host: 127.0.0.1, port: {emulator.port}, api_key: {API_KEY}, timeout: 5}}\n"
        "default_target: fw\n" + ADMIN
    )
    server_cmd = shlex.join([portcullis_bin, "--config", str(config), "--data-dir", str(data), "serve"])
    done = run_script("--stdio", server_cmd)
    assert done.returncode == 0, done.stderr
    assert "Blocking 1 repeated attacker(s) for 24h" in done.stdout
    assert "198.51.100.66" in done.stdout
    assert_blocked_for_a_day(blocked(portcullis_bin, config, data), {"198.51.100.66"})
    state = control(emulator, "state")
    assert "198.51.100.66" in json.dumps(state), "the block is on the (emulated) firewall itself"
