"""Log analytics through the real binary: syslog over UDP and TCP on loopback found through MCP, and the HTML
security report of a `lab traffic` scenario rendered by headless Chromium."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import anyio
import pytest

from harness import call, ok, require_chromium

pytestmark = pytest.mark.anyio


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def filterlog(src: str, port: int, now: datetime, bsd: bool) -> str:
    body = (f"5,,,1000000103,em0,match,block,in,4,0x0,,64,1234,0,DF,6,tcp,60,{src},198.51.100.2,"
            f"40000,{port},0,S,1,,64240,,mss;sackOK;TS;nop;wscale")
    if bsd:
        return f"<134>{now.strftime('%b')} {now.day:>2} {now.strftime('%H:%M:%S')} filterlog[123]: {body}"
    return f"<134>1 {now.isoformat()} fw.example filterlog 123 - - {body}"


async def test_syslog_over_udp_and_tcp_is_found_through_mcp(servers, data_dir: Path, tmp_path: Path):
    udp_port, tcp_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    config = tmp_path / "syslog.yaml"
    config.write_text(
        "security:\n  principal: admin\n"
        f"logs:\n  syslog_udp: 127.0.0.1:{udp_port}\n  syslog_tcp: 127.0.0.1:{tcp_port}\n"
    )
    pc = servers("http", data_dir, config=config)
    pc.start()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    udp_lines = [filterlog(f"203.0.113.{i}", 22, now, bsd=True) for i in range(1, 6)]
    octet = [filterlog(f"198.18.0.{i}", 3389, now, bsd=False) for i in range(1, 4)]
    newline = [filterlog(f"198.18.1.{i}", 445, now, bsd=False) for i in range(1, 4)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        for line in udp_lines:
            u.sendto(line.encode(), ("127.0.0.1", udp_port))
        u.sendto(b"<13>Nov 21 10:00:00 host sshd[1]: not a filterlog line", ("127.0.0.1", udp_port))
    with socket.create_connection(("127.0.0.1", tcp_port), timeout=5) as t:
        t.sendall(b"".join(f"{len(m.encode())} {m}".encode() for m in octet))
    with socket.create_connection(("127.0.0.1", tcp_port), timeout=5) as t:
        t.sendall("".join(m + "\n" for m in newline).encode())

    async with pc.session() as session:
        with anyio.fail_after(20):
            while True:
                got = ok(await call(session, "query_firewall_logs", {"timeframe": "15m", "limit": 100}))
                if got["count"] >= 11:
                    break
                await anyio.sleep(0.2)
        sources = {e["src_ip"]: e for e in got["data"]}
        assert set(sources) == {f"203.0.113.{i}" for i in range(1, 6)} | {f"198.18.0.{i}" for i in range(1, 4)} | {
            f"198.18.1.{i}" for i in range(1, 4)}, sources
        e = sources["203.0.113.1"]
        assert (e["interface"], e["action"], e["dst_port"], e["rule_id"], e["protocol"]) == (
            "wan", "block", "22", "1000000103", "tcp"), e
        assert e["timestamp"].startswith(now.strftime("%Y-%m-%dT%H:%M:%S")), e
        only_tcp = ok(await call(session, "query_firewall_logs",
                                 {"timeframe": "15m", "destination_port": 3389, "source_ip": "198.18.0.0/24"}))
        assert only_tcp["count"] == 3, only_tcp
        stats = ok(await call(session, "get_traffic_stats", {"timeframe": "15m", "interface": "wan"}))
        assert stats["total_packets"] == 11 and stats["blocked"] == 11, stats


# -- the HTML report in a real browser -------------------------------------------------------------------------


def read_png(path: Path) -> tuple[int, int, list[bytes], int]:
    """Width, height and rows of RGB(A) bytes of an 8-bit, non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r) for r in rows], bpp


def count_colour(rows, bpp, width, region, rgb, tolerance=12) -> int:
    x0, y0, x1, y1 = region
    n = 0
    for y in range(y0, y1):
        row = rows[y]
        for x in range(x0, min(x1, width)):
            px = row[x * bpp:x * bpp + 3]
            if all(abs(px[i] - rgb[i]) <= tolerance for i in range(3)):
                n += 1
    return n


async def test_html_report_of_lab_traffic_renders_its_charts_in_chromium(servers, data_dir: Path, tmp_path: Path):
    browser = require_chromium()
    pc = servers("stdio", data_dir)
    traffic = pc.cli("lab", "traffic", "--seed", "3", timeout=120)
    assert traffic.returncode == 0, traffic.stderr
    async with pc.session() as session:
        threats = ok(await call(session, "analyze_threats", {"timeframe": "1h"}))
        kinds = {(t["type"], t["source_ip"]) for t in threats["data"]}
        assert ("brute_force", "203.0.113.50") in kinds and ("port_scan", "203.0.113.77") in kinds, kinds
        assert not any(ip.startswith("192.168.1.") for _, ip in kinds), kinds
        report = ok(await call(session, "generate_security_report", {"timeframe": "24h", "format": "html"}))
    page = tmp_path / "report.html"
    page.write_text(report["content"], encoding="utf-8")
    shot = tmp_path / "report.png"
    profile = tmp_path / "chromium-profile"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1240,1000", page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"no screenshot: {done.stderr[-2000:]}"
    width, height, rows, bpp = read_png(shot)
    assert (width, height) == (1240, 1000)
    distinct = {rows[y][x * bpp:x * bpp + 3] for y in range(0, height, 7) for x in range(0, width, 7)}
    assert len(distinct) > 20, "the screenshot is blank"
    # The charts' colours, each in its own quarter of the chart grid (two columns of 580 px from x=20, below
    # the title and the figures).
    left, right = (20, 620), (620, 1220)
    top, bottom = (120, 470), (440, 800)
    checks = {
        "blocked over time (red bars)": ((*(left[0], top[0]), *(left[1], top[1])), (0xD6, 0x27, 0x28)),
        "top sources (orange bars)": ((right[0], top[0], right[1], top[1]), (0xFF, 0x7F, 0x0E)),
        "top ports (blue bars)": ((left[0], bottom[0], left[1], bottom[1]), (0x1F, 0x77, 0xB4)),
        "actions by interface (green pass)": ((right[0], bottom[0], right[1], bottom[1]), (0x2C, 0xA0, 0x2C)),
    }
    for name, (region, rgb) in checks.items():
        assert count_colour(rows, bpp, width, region, rgb) > 200, f"{name}: colour not found in {region}"


async def test_automated_response_blocks_through_the_guardrails(servers, data_dir: Path, tmp_path: Path):
    config = tmp_path / "auto.yaml"
    config.write_text(
        "security:\n  principal: admin\n"
        "logs:\n  auto_response: {enabled: true, min_score: 50, every_seconds: 1, timeframe: 1h}\n"
    )
    pc = servers("http", data_dir, config=config)
    traffic = pc.cli("lab", "traffic", "--seed", "5", timeout=120)
    assert traffic.returncode == 0, traffic.stderr
    pc.start()
    async with pc.session() as session:
        with anyio.fail_after(30):
            while True:
                blocks = ok(await call(session, "list_blocks"))
                blocked = {b["ip_address"] for b in blocks["data"]}
                if "203.0.113.50" in blocked:
                    break
                await anyio.sleep(0.5)
        assert not any(ip.startswith("192.168.1.") for ip in blocked), blocked
        entry = next(b for b in blocks["data"] if b["ip_address"] == "203.0.113.50")
        assert entry["reason"].startswith("auto: brute force"), entry
    records = [r for r in pc.audit() if r.get("tool") == "block_ip_address"]
    assert records and all(r["principal"]["name"] == "portcullis-auto" for r in records), records
    assert all(r["transport"] == "system" and r["decision"] == "allowed" for r in records), records


async def test_followed_file_across_rotation_and_gz_import(servers, data_dir: Path, tmp_path: Path):
    log = tmp_path / "filter.log"
    config = tmp_path / "files.yaml"
    config.write_text(f"security:\n  principal: admin\nlogs:\n  files: [{log}]\n")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    log.write_text("".join(filterlog(f"203.0.113.{i}", 22, now, bsd=False) + "\n" for i in range(1, 4)))
    pc = servers("http", data_dir, config=config)
    pc.start()

    async def count(session) -> int:
        got = ok(await call(session, "query_firewall_logs", {"timeframe": "15m", "limit": 1000}))
        return got["count"]

    async with pc.session() as session:
        with anyio.fail_after(20):
            while await count(session) < 3:
                await anyio.sleep(0.2)
        with open(log, "a") as f:
            f.write(filterlog("203.0.113.4", 22, now, bsd=False) + "\n")
        log.rename(tmp_path / "filter.log.0")
        log.write_text(filterlog("203.0.113.5", 22, now, bsd=False) + "\n")
        with anyio.fail_after(20):
            while await count(session) < 5:
                await anyio.sleep(0.2)
        await anyio.sleep(1.5)
        assert await count(session) == 5, "nothing twice"
    import gzip
    archive = tmp_path / "filter.log.1.gz"
    with gzip.open(archive, "wt") as g:
        g.write("".join(filterlog(f"198.18.9.{i}", 445, now, bsd=False) + "\n" for i in range(1, 11)))
    imported = pc.cli("logs", "import", str(archive))
    assert imported.returncode == 0 and "stored 10 lines" in imported.stdout, imported
