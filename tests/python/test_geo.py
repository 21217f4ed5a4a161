"""Geo blocks through the official MCP client, as the customer's script calls them (BRIEF: `create_geo_block
{"countries": ["CN", "RU"], "interfaces": ["wan"], "description": ...}`), over stdio and HTTP, with the test
country database of tests/fixtures/geoip configured as `geoip.database`."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from harness import call, error, ok

pytestmark = pytest.mark.anyio

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "geoip" / "dbip-layout.mmdb"


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_the_customers_geo_block_over_mcp(servers, data_dir: Path, tmp_path: Path, transport: str):
    config = tmp_path / "portcullis.yaml"
    config.write_text(f"geoip: {{database: {FIXTURE}}}\nsecurity: {{principal: admin}}\n")
    pc = servers(transport, data_dir, config=config)
    pc.start()
    with anyio.fail_after(60):
        async with pc.session() as s:
            found = ok(await call(s, "lookup_country", {"ip_address": "198.51.100.7"}))
            assert found["country"] == "RU" and "DB-IP" in found["source"]["attribution"], found
            made = ok(
                await call(
                    s,
                    "create_geo_block",
                    {"countries": ["CN", "RU"], "interfaces": ["wan"],
                     "description": "Block traffic from high-risk countries"},
                )
            )
            assert made["status"] == "applied" and made["verified"] is True, made
            listed = ok(await call(s, "list_geo_blocks"))
            assert listed["count"] == 1 and listed["data"][0]["countries"] == ["CN", "RU"], listed
            refused = error(await call(s, "create_geo_block", {"countries": ["XX"], "interfaces": ["wan"],
                                                             "description": "x"}))
            assert refused["field"] == "countries[0]", refused
            gone = ok(await call(s, "delete_geo_block", {"geo_block_id": listed["data"][0]["geo_block_id"]}))
            assert gone["status"] == "applied", gone
            assert ok(await call(s, "list_geo_blocks"))["count"] == 0
