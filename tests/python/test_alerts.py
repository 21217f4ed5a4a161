"""Alarms reach people: `portcullis serve` with three sinks, all on loopback:
- a webhook receiver (JSON);
- a local SMTP server (aiosmtpd);
- a webhook that accepts connections and never answers (a sink that is down).

After a `lab traffic` run, the threat round raises alarms for its attackers, and a report schedule sends the
security report every 3 s. A block is applied and a burst of
denied calls is made over MCP. The receiver and the mailbox get those alarms. The calls do not wait for the dead
sink: the call times are printed beside the calls of a server without sinks. The dead sink is tried again."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest
from aiosmtpd.controller import Controller

from harness import call, error, ok

pytestmark = pytest.mark.anyio

SCENARIO_TIMEOUT = 120.0


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"


def webhook_receiver() -> tuple[ThreadingHTTPServer, list[dict]]:
    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            got.append(json.loads(body))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def black_hole() -> tuple[socket.socket, list[int]]:
    """Accepts connections and never answers: a sink whose every delivery times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = [0]
    held: list[socket.socket] = []

    def run():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted[0] += 1
            held.append(conn)

    threading.Thread(target=run, daemon=True).start()
    return listener, accepted


async def timed_blocks(session, count: int, first: int) -> list[float]:
    times = []
    for i in range(count):
        started = time.perf_counter()
        ok(await call(session, "block_ip_address",
                      {"ip_address": f"198.51.100.{first + i}", "duration": "1h", "reason": "alarm test"}))
        times.append(time.perf_counter() - started)
    return times


async def test_alarms_of_a_lab_run_reach_a_webhook_and_a_mailbox_and_a_dead_sink_slows_no_call(
        servers, data_dir: Path, tmp_path: Path):
    receiver, hooks = webhook_receiver()
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    dead, dead_accepted = black_hole()
    try:
        plain = tmp_path / "plain.yaml"
        plain.write_text("security:\n  principal: admin\n")
        config = tmp_path / "alerts.yaml"
        config.write_text(
            "security:\n  principal: admin\n  denied_operations: [delete_rule]\n"
            "alerts:\n"
            "  threats: {min_score: 20, every_seconds: 1, timeframe: 2h, principal: admin}\n"
            "  sinks:\n"
            f"    - {{name: hook, webhook: {{url: 'http://127.0.0.1:{receiver.server_port}/alarms'}}, min_severity: info}}\n"
            f"    - {{name: mail, email: {{host: 127.0.0.1, port: {smtp.port}, starttls: false, "
            "from: portcullis@example.com, to: [soc@example.com]}, min_severity: medium}\n"
            f"    - {{name: dead, webhook: {{url: 'http://127.0.0.1:{dead.getsockname()[1]}/x'}}, min_severity: info}}\n"
            "  reports:\n"
            "    - {every: 3s, timeframe: 24h, format: html, to: [mail, hook]}\n"
        )
        baseline_data = tmp_path / "baseline-data"
        baseline_data.mkdir()
        baseline = servers("stdio", baseline_data, config=plain)
        with anyio.fail_after(SCENARIO_TIMEOUT):
            async with baseline.session() as s:
                without_sinks = await timed_blocks(s, 8, 10)

        pc = servers("stdio", data_dir, config=config)
        traffic = pc.cli("lab", "traffic", "--seed", "3", timeout=120)
        assert traffic.returncode == 0, traffic.stderr
        with anyio.fail_after(SCENARIO_TIMEOUT):
            async with pc.session() as s:
                with_sinks = await timed_blocks(s, 8, 10)
                for _ in range(6):
                    denied = error(await call(s, "delete_firewall_rule", {"rule_id": "1"}))
                    assert denied["code"] == "policy_denied", denied
                deadline = time.monotonic() + 60
                def kinds() -> set[str]:
                    return {a["kind"] for body in hooks for a in body.get("alarms", [])}
                while time.monotonic() < deadline and not {"change_applied", "denial_burst", "threat"} <= kinds():
                    await anyio.sleep(0.2)
                def reports() -> list[dict]:
                    return [body["report"] for body in hooks if "report" in body]
                def mailed_report() -> bool:
                    return any("Content-Disposition: attachment" in m for m in mailbox.messages)
                while time.monotonic() < deadline and not (
                        mailbox.messages and dead_accepted[0] >= 2 and reports() and mailed_report()):
                    await anyio.sleep(0.2)
        print(f"block_ip_address median: {statistics.median(without_sinks) * 1000:.1f} ms without sinks, "
              f"{statistics.median(with_sinks) * 1000:.1f} ms with a webhook, a mailbox and a sink that never "
              f"answers (max {max(with_sinks) * 1000:.1f} ms)")
        assert {"change_applied", "denial_burst", "threat"} <= kinds(), hooks
        threats = [a for body in hooks for a in body.get("alarms", []) if a["kind"] == "threat"]
        assert any("203.0.113.50" in a["message"] for a in threats), threats
        assert all(a["severity"] in ("medium", "high") for a in threats), threats
        mail = "\n".join(mailbox.messages)
        assert "denial_burst" in mail and "Subject: Portcullis" in mail, mail
        assert "change_applied" not in mail, "the mailbox takes medium and above"
        # The dead sink was tried, and again after its first try timed out; no call waited for it (a delivery
        # waits up to 10 s for an answer).
        assert dead_accepted[0] >= 2, dead_accepted
        # The scheduled report: whole to the JSON webhook, attached to the mail.
        report = reports()[0]
        assert report["format"] == "html" and "<html" in report["content"], report["summary"]
        assert "203.0.113.50" in report["content"] and "threats" in report["summary"], report["summary"]
        attached = next(m for m in mailbox.messages if "Content-Disposition: attachment" in m)
        assert "security-report-" in attached and "Subject: Portcullis security report" in attached, attached[:800]
        assert max(with_sinks) < 5.0, with_sinks
    finally:
        smtp.stop()
        receiver.shutdown()
        dead.close()
