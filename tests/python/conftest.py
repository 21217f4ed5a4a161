"""pytest fixtures for the portcullis end-to-end tests (helpers live in harness.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import DEFAULT_BIN, Portcullis


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def portcullis_bin() -> str:
    path = Path(os.environ.get("PORTCULLIS_BIN", str(DEFAULT_BIN)))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"portcullis binary not found at {path}: run `cargo build -p portcullis` "
            "or set PORTCULLIS_BIN",
            pytrace=False,
        )
    return str(path)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def servers(portcullis_bin: str, tmp_path: Path):
    """Factory for `Portcullis` handles; every HTTP server started is stopped at teardown."""
    made: list[Portcullis] = []

    def make(transport: str, data_dir: Path, config: Path | None = None) -> Portcullis:
        # The flows exercise every tool, so they run as an explicitly configured admin; tests about other
        # principals pass their own config.
        if config is None:
            config = tmp_path / "admin.yaml"
            config.write_text("security:\n  principal: admin\n")
        p = Portcullis(portcullis_bin, transport, data_dir, config, tmp_path)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()
