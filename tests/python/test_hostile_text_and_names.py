"""Hostile free text and managed names, through the official MCP Python SDK: invisible characters are refused
in every free-text field and reserved names cannot be taken for another purpose; nothing changes."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from harness import call, error, ok

pytestmark = pytest.mark.anyio

SCENARIO_TIMEOUT = 60.0

INVISIBLE = ["\u202ekcolb", "a\u2066b\u2069", "zero\u200bwidth", "\ufeffbom", "one\u2028two"]
RESERVED = ["PORTCULLIS_BLOCK", "portcullis_block_lan", "PORTCULLIS_GEO_CN", "Portcullis_Next"]


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_hostile_text_and_reserved_names_change_nothing(servers, data_dir: Path, transport: str):
    pc = servers(transport, data_dir)
    pc.start()
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            rules = ok(await call(s, "get_firewall_rules"))
            aliases = ok(await call(s, "list_aliases"))
            for text in INVISIBLE:
                block = {"ip_address": "203.0.113.5", "duration": "1h", "reason": text}
                err = error(await call(s, "block_ip_address", block))
                assert err["code"] == "validation_error" and err.get("field") == "reason", (text, err)
                assert "U+" in err["message"], err
                rule = {"interface": "dmz", "action": "block", "protocol": "tcp", "source": "any",
                        "destination": "any", "destination_port": 23, "description": text}
                err = error(await call(s, "create_firewall_rule", rule))
                assert err["code"] == "validation_error" and err.get("field") == "description", (text, err)
            for alias in RESERVED:
                grant = {"ip_address": "203.0.113.20", "duration": "1h", "reason": "vendor", "alias": alias}
                err = error(await call(s, "grant_access", grant))
                assert err["code"] == "validation_error" and err.get("field") == "alias", (alias, err)
                assert "reserved" in err["message"], err
            hijack = {"interface": "lan", "action": "pass", "protocol": "tcp", "source": "PORTCULLIS_BLOCK",
                      "destination": "any", "destination_port": 443, "description": "let the blocked in"}
            err = error(await call(s, "create_firewall_rule", hijack))
            assert err["code"] == "validation_error" and err.get("field") == "source", err
            assert ok(await call(s, "get_firewall_rules"))["data"] == rules["data"]
            assert ok(await call(s, "list_aliases")) == aliases
