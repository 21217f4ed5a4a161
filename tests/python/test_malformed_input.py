"""Malformed requests get a JSON-RPC error, on stdio and HTTP, within seconds, and the server keeps serving.

The official MCP client sends a call whose arguments nest 200 levels deep (deeper than the server's JSON decoder
goes) and gets an error instead of waiting forever; raw writes cover what no client would send: 10,000-deep
JSON, 100,000 keys, invalid UTF-8, truncated JSON, non-object JSON and batch arrays. Each is followed by a normal
request that must still work. The Host check covers every HTTP route."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from harness import STEP_TIMEOUT, call, httpx, ok

pytestmark = pytest.mark.anyio

ANSWER_WITHIN = 5.0


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def call_line(id_: int, arguments: str) -> bytes:
    return (
        '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"get_firewall_rules","arguments":%s}}'
        % (id_, arguments)
    ).encode()


# Each case: the bytes sent, the id the answer must carry (None: null), and the JSON-RPC error code.
CASES = [
    ("200 deep", call_line(101, '{"target":%s}' % nested(200)), 101, -32602),
    ("10,000 deep", call_line(102, '{"target":%s}' % nested(10_000)), 102, -32602),
    ("10,000 deep objects", call_line(103, '{"x":' * 10_000 + "1" + "}" * 10_000), 103, -32602),
    ("invalid UTF-8", call_line(104, '{"target":"XX"}').replace(b"XX", b"\xff\xfe"), 104, -32700),
    ("truncated", call_line(105, '{"target":"lab"}')[:60], 105, -32700),
    ("not JSON", b"hello there", None, -32700),
    ("a number", b"42", None, -32600),
    ("a string", b'"tools/list"', None, -32600),
    ("a batch", b'[{"jsonrpc":"2.0","id":106,"method":"ping"},{"jsonrpc":"2.0","id":107,"method":"ping"}]', None, -32600),
    ("wrong jsonrpc", b'{"jsonrpc":"1.0","id":108,"method":"ping"}', 108, -32600),
]


def test_the_invalid_utf8_case_really_is_invalid_utf8():
    data = dict((name, text) for name, text, _, _ in CASES)["invalid UTF-8"]
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")


# --------------------------------------------------------------------------
# the official client
# --------------------------------------------------------------------------


def _deep_dict(depth: int) -> dict:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value  # type: ignore[return-value]


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_a_200_deep_call_from_the_official_client_gets_an_error(servers, data_dir: Path, transport: str):
    p = servers(transport, data_dir)
    p.start()
    async with p.session() as s:
        started = time.monotonic()
        with anyio.fail_after(ANSWER_WITHIN):
            with pytest.raises(MCPError) as refused:
                await s.call_tool("get_firewall_rules", {"target": _deep_dict(200)})
        assert "nested deeper than 128" in str(refused.value), refused.value
        print(f"\n{transport}: a 200-deep call refused in {time.monotonic() - started:.3f} s")
        # The session goes on.
        assert ok(await call(s, "get_firewall_rules", {}))["count"] >= 1


# --------------------------------------------------------------------------
# raw stdio
# --------------------------------------------------------------------------


class RawStdio:
    def __init__(self, argv: list[str]):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lines: "queue.Queue[dict]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def answer(self, within: float = ANSWER_WITHIN) -> dict:
        """The next response (notifications, such as log messages, are skipped)."""
        deadline = time.monotonic() + within
        while True:
            try:
                message = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no answer within {within} s") from None
            if "id" in message:
                return message

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}


def test_raw_stdio_answers_every_malformed_request(portcullis_bin: str, data_dir: Path):
    raw = RawStdio([portcullis_bin, "--data-dir", str(data_dir), "serve"])
    try:
        raw.send(json.dumps(INITIALIZE).encode())
        assert raw.answer(STEP_TIMEOUT)["id"] == 1
        raw.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        wide = call_line(109, json.dumps({f"k{i}": i for i in range(100_000)}))
        for n, (name, data, id_, code) in enumerate([*CASES, ("100,000 keys", wide, 109, None)]):
            started = time.monotonic()
            raw.send(data)
            answer = raw.answer()
            elapsed = time.monotonic() - started
            assert answer["id"] == id_, (name, answer)
            if code is None:  # the wide call is well-formed JSON: the tool refuses its unknown arguments
                assert answer["result"]["isError"] is True, (name, answer)
                assert "validation_error" in json.dumps(answer), (name, answer)
            else:
                assert answer["error"]["code"] == code, (name, answer)
            print(f"stdio {name}: {answer.get('error', {}).get('code', 'tool error')} in {elapsed:.3f} s")
            # The server keeps serving.
            raw.send(json.dumps({"jsonrpc": "2.0", "id": 1000 + n, "method": "ping"}).encode())
            assert raw.answer() == {"jsonrpc": "2.0", "id": 1000 + n, "result": {}}, name
        # A malformed notification is not answered: the next answer is the ping's.
        raw.send(('{"jsonrpc":"2.0","method":"notifications/progress","params":%s}' % nested(300)).encode())
        raw.send(b'{"jsonrpc":"2.0","id":2000,"method":"ping"}')
        assert raw.answer()["id"] == 2000
    finally:
        raw.close()


# --------------------------------------------------------------------------
# raw HTTP
# --------------------------------------------------------------------------

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _json_body(r) -> dict:
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return json.loads(data[-1])
    return r.json()


async def test_raw_http_answers_every_malformed_request(servers, data_dir: Path):
    p = servers("http", data_dir)
    p.start()
    url = p.http.url
    with anyio.fail_after(120):
        async with httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(STEP_TIMEOUT)) as client:
            r = await client.post(url, json=INITIALIZE, headers=MCP_HEADERS)
            assert r.status_code == 200, r.text
            headers = dict(MCP_HEADERS)
            if "mcp-session-id" in r.headers:
                headers["Mcp-Session-Id"] = r.headers["mcp-session-id"]
            headers["MCP-Protocol-Version"] = "2025-06-18"
            r = await client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
            assert r.status_code in (200, 202), r.text
            for n, (name, data, id_, code) in enumerate(CASES):
                started = time.monotonic()
                r = await client.post(url, content=data, headers=headers)
                elapsed = time.monotonic() - started
                assert r.status_code == 400, (name, r.status_code, r.text)
                assert r.headers["content-type"].startswith("application/json"), (name, r.headers)
                answer = r.json()
                assert (answer["id"], answer["error"]["code"]) == (id_, code), (name, answer)
                assert elapsed < ANSWER_WITHIN, (name, elapsed)
                print(f"http {name}: {code} in {elapsed:.3f} s")
                r = await client.post(url, json={"jsonrpc": "2.0", "id": 1000 + n, "method": "ping"}, headers=headers)
                assert r.status_code == 200, (name, r.text)
                assert _json_body(r)["id"] == 1000 + n, (name, r.text)


async def test_every_http_route_checks_the_host_header(servers, data_dir: Path):
    p = servers("http", data_dir)
    p.start()
    base = p.http.base
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    with anyio.fail_after(60):
        async with httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(STEP_TIMEOUT), limits=no_reuse) as client:
            for path in ("/health", "/feeds/blocks.txt", "/feeds/grants.txt", "/mcp", "/no-such-route"):
                for host in ("evil.example", "evil.example:80", "localhost.evil.example", "127.0.0.1.nip.io"):
                    r = await client.get(f"{base}{path}", headers={"Host": host})
                    assert r.status_code == 403, (path, host, r.status_code, r.text)
            for host in ("localhost", f"127.0.0.1:{p.http.port}"):
                r = await client.get(f"{base}/health", headers={"Host": host})
                assert r.status_code == 200 and r.json()["status"] == "ok", (host, r.text)
