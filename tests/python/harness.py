"""Harness (shared by the tests and conftest.py) for driving the `portcullis` binary from Python.

The server is exercised only through public interfaces: the official MCP
Python SDK (stdio and Streamable HTTP transports), plain HTTP, the CLI, and
the SQLite store it leaves in its data directory. Every test gets its own
data directory; every server process a test starts is stopped by a finalizer.
All network traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import anyio
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

try:  # mcp >= 2 ships httpx2; mcp 1.x shipped httpx.
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

try:
    from mcp.client.streamable_http import streamable_http_client as _http_transport
except ImportError:  # pragma: no cover - mcp 1.x name
    from mcp.client.streamable_http import streamablehttp_client as _http_transport  # type: ignore

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO / "target" / "debug" / "portcullis"

# Per-await budget, and the budget for a whole scenario.
STEP_TIMEOUT = 20.0
START_TIMEOUT = 15.0

LISTENING_RE = re.compile(r"(?:portcullis: listening on (http://127\.0\.0\.1:(\d+)/mcp)|pfrest-emulator listening on (http://127\.0\.0\.1:(\d+)))")


# --------------------------------------------------------------------------
# server handles
# --------------------------------------------------------------------------


class HttpServer:
    """`portcullis serve --http 127.0.0.1:0` as a subprocess."""

    def __init__(self, argv: Sequence[str], log_path: Path):
        self.argv = list(argv)
        self.log_path = log_path
        self.lines: list[str] = []
        self.url: str | None = None
        self.port: int | None = None
        self._ready = threading.Event()
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> "HttpServer":
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        # Drain stderr for the whole life of the process so logging never blocks it.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"HTTP server did not report its address (rc={self.proc.returncode}):\n"
                    + "".join(self.lines)
                )
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with open(self.log_path, "a", encoding="utf-8") as log:
            for line in self.proc.stderr:
                self.lines.append(line)
                log.write(line)
                log.flush()
                m = LISTENING_RE.search(line)
                if m and not self._ready.is_set():
                    url, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
                    self.url, self.port = url, int(port)
                    self._ready.set()

    @property
    def base(self) -> str:
        assert self.port is not None
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()


@asynccontextmanager
async def _initialized_session(
    read, write, elicitation_callback, client_options: dict[str, Any]
) -> AsyncIterator[ClientSession]:
    """An MCP client session over the given streams, initialized within STEP_TIMEOUT."""
    async with ClientSession(
        read,
        write,
        read_timeout_seconds=STEP_TIMEOUT,
        elicitation_callback=elicitation_callback,
        **client_options,
    ) as s:
        with anyio.fail_after(STEP_TIMEOUT):
            await s.initialize()
        yield s


class Portcullis:
    """One data directory served over one transport; can be stopped and started again."""

    def __init__(
        self,
        binary: str,
        transport: str,
        data_dir: Path,
        config: Path | None,
        log_dir: Path,
    ):
        assert transport in ("stdio", "http"), transport
        self.binary = binary
        self.transport = transport
        self.data_dir = data_dir
        self.config = config
        self.log_dir = log_dir
        self.http: HttpServer | None = None
        self.starts = 0

    @property
    def global_args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        if self.config is not None:
            args += ["--config", str(self.config)]
        return args

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Start the HTTP server (stdio servers are spawned per session)."""
        self.starts += 1
        if self.transport == "http":
            assert self.http is None, "already running"
            argv = [self.binary, *self.global_args, "serve", "--http", "127.0.0.1:0"]
            self.http = HttpServer(argv, self.log_dir / f"http-{self.starts}.log").start()

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
            self.http = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the HTTP server: no shutdown code runs, as in a crash."""
        assert self.http is not None and self.http.proc is not None
        self.http.proc.kill()
        self.http.proc.wait(timeout=10)
        self.http.stop()
        self.http = None

    # -- MCP sessions ----------------------------------------------------------

    @asynccontextmanager
    async def session(self, elicitation_callback=None, **client_options: Any) -> AsyncIterator[ClientSession]:
        """An initialized MCP client session to this server.

        For stdio, entering spawns `portcullis serve` and leaving stops it.
        For HTTP, the server must have been `start()`ed.
        """
        if self.transport == "stdio":
            self.starts += 1
            params = StdioServerParameters(
                command=self.binary, args=[*self.global_args, "serve"], cwd=str(self.log_dir)
            )
            with open(self.log_dir / f"stdio-{self.starts}.log", "w", encoding="utf-8") as errlog:
                async with stdio_client(params, errlog=errlog) as (read, write):
                    async with _initialized_session(read, write, elicitation_callback, client_options) as s:
                        yield s
        else:
            assert self.http is not None and self.http.url, "HTTP server not started"
            async with httpx.AsyncClient(
                trust_env=False, timeout=httpx.Timeout(STEP_TIMEOUT)
            ) as client:
                async with _http_transport(self.http.url, http_client=client) as streams:
                    read, write = streams[0], streams[1]
                    async with _initialized_session(read, write, elicitation_callback, client_options) as s:
                        yield s

    # -- CLI -------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 30, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *self.global_args, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **env} if env else None,
        )

    def audit(self) -> list[dict[str, Any]]:
        return read_audit(self.data_dir)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


async def call(session: ClientSession, name: str, args: dict[str, Any] | None = None):
    with anyio.fail_after(STEP_TIMEOUT):
        return await session.call_tool(name, args if args is not None else {})


def _text(result) -> str:
    texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    assert len(texts) == 1, f"expected exactly one text content item, got {result.content!r}"
    return texts[0]


def ok(result) -> dict[str, Any]:
    """A successful tool result: structuredContent is an object equal to the JSON text."""
    assert not result.is_error, f"tool call failed: {_text(result)}"
    data = json.loads(_text(result))
    assert isinstance(result.structured_content, dict), "successful result lacks structuredContent"
    assert result.structured_content == data, "structuredContent differs from the text content"
    return data


def error(result) -> dict[str, Any]:
    """A failed tool result: isError with `{"error": {...}}` as text; returns the inner object."""
    assert result.is_error, f"expected an error result, got {result!r}"
    body = json.loads(_text(result))
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err.get("code"), str) and isinstance(err.get("message"), str), err
    return err


def read_audit(data_dir: Path) -> list[dict[str, Any]]:
    """The audit records in sequence order (read-only; safe while the server runs: WAL)."""
    db = data_dir / "portcullis.sqlite"
    assert db.exists(), f"no store at {db}"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute("SELECT seq, record FROM audit ORDER BY seq").fetchall()
    finally:
        con.close()
    seqs = [r[0] for r in rows]
    assert seqs == sorted(set(seqs)), f"audit seq not strictly increasing: {seqs}"
    return [json.loads(r[1]) for r in rows]


def require_chromium() -> str:
    """The headless Chromium a browser test drives: required in CI (scripts/test installs it), skipped elsewhere."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("chromium is required in CI (scripts/test installs it)")
    pytest.skip("chromium not installed")
