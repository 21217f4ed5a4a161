"""A change's effect on traffic, through the official MCP Python SDK on the lab: the README's SMTP example, a
witness packet `simulate_packet` confirms, and a widening scored above the same rule as a block."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from harness import call, error, ok

pytestmark = pytest.mark.anyio

SCENARIO_TIMEOUT = 60.0

# The README's example, without its position: it lands under the default allow rules.
NO_DIRECT_SMTP = {
    "interface": "lan",
    "action": "block",
    "protocol": "tcp",
    "source": "any",
    "destination": "any",
    "destination_port": 25,
    "description": "No direct SMTP",
}


def _rule_ids(rules: dict, *descriptions: str) -> list[str]:
    by_description = {r["description"]: r["rule_id"] for r in rules["data"]}
    return [by_description[d] for d in descriptions]


async def _simulated(session, witness: dict) -> dict:
    return ok(await call(session, "simulate_packet", witness))


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_the_readme_smtp_rule_reports_its_effect(servers, data_dir: Path, transport: str):
    pc = servers(transport, data_dir)
    pc.start()
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            before = ok(await call(s, "get_firewall_rules"))
            shadowing = _rule_ids(before, "Default allow LAN to any rule", "Default allow LAN IPv6 to any rule")

            planned = ok(await call(s, "create_firewall_rule", {**NO_DIRECT_SMTP, "dry_run": True}))
            effect = planned["effect"]
            assert effect["verdict"] == "no_effect" and effect["complete"], effect
            assert set(shadowing) <= set(effect["decided_by"]), (shadowing, effect)
            assert any("no effect on traffic" in w and shadowing[0] in w for w in planned["warnings"]), planned

            # Asked for for real, it is refused: the caller meant a change and would get none.
            refused = error(await call(s, "create_firewall_rule", NO_DIRECT_SMTP))
            assert refused["code"] == "validation_error" and refused.get("field") == "allow_no_effect", refused
            assert all(rule_id in refused["message"] for rule_id in shadowing), refused
            assert ok(await call(s, "get_firewall_rules"))["data"] == before["data"], "nothing changed"

            # Above the allow rules it narrows, and every witness is blocked by it now.
            applied = ok(await call(s, "create_firewall_rule", {**NO_DIRECT_SMTP, "position": 1}))
            effect = applied["effect"]
            assert applied["status"] == "applied" and effect["verdict"] == "narrows", applied
            assert effect["changes"], effect
            families = set()
            for change in effect["changes"]:
                assert (change["before"], change["after"]) == ("pass", "block"), change
                witness = change["witness"]
                assert witness["destination_port"] == 25, witness
                simulated = await _simulated(s, witness)
                assert simulated["verdict"] == "block", (witness, simulated)
                assert simulated["rule"]["rule_id"] == applied["rule"]["rule_id"], (witness, simulated)
                families.add(":" in witness["source"])
            assert families == {False, True}, "IPv4 and IPv6 flows both change"

            # Removing it again restores what the witness packets did before.
            ok(await call(s, "delete_firewall_rule", {"rule_id": applied["rule"]["rule_id"]}))
            simulated = await _simulated(s, effect["changes"][0]["witness"])
            assert simulated["verdict"] == "pass" and simulated["rule"]["rule_id"] in shadowing, simulated


async def test_a_pass_rule_on_wan_widens_and_scores_above_the_same_block(servers, data_dir: Path):
    pc = servers("stdio", data_dir)
    pc.start()
    web = {"interface": "wan", "protocol": "tcp", "source": "203.0.113.0/24", "destination": "any",
           "destination_port": 8443, "description": "partner web", "dry_run": True}
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            opened = ok(await call(s, "create_firewall_rule", {**web, "action": "pass"}))
            closed = ok(await call(s, "create_firewall_rule", {**web, "action": "block"}))
    assert opened["effect"]["verdict"] == "widens", opened
    witness = opened["effect"]["changes"][0]["witness"]
    assert witness["interface"] == "wan" and witness["destination_port"] == 8443, witness
    # WAN blocks everything unasked already: the block changes nothing.
    assert closed["effect"]["verdict"] == "no_effect", closed
    assert opened["risk_score"] > closed["risk_score"], (opened["risk_score"], closed["risk_score"])
    assert any("widens" in w for w in opened["warnings"]), opened["warnings"]


async def test_a_one_hour_block_does_not_cut_short_a_week(servers, data_dir: Path):
    from datetime import datetime, timedelta, timezone

    pc = servers("stdio", data_dir)
    pc.start()
    ip = "203.0.113.77"
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            ok(await call(s, "block_ip_address", {"ip_address": ip, "duration": "7d", "reason": "person: ssh"}))
            again = ok(await call(s, "block_ip_address", {"ip_address": ip, "duration": "1h", "reason": "auto: scan"}))
            assert any("longer block is kept" in w for w in again["warnings"]), again["warnings"]
            listed = {b["ip_address"]: b for b in ok(await call(s, "list_blocks"))["data"]}
            replaced = ok(await call(s, "block_ip_address",
                                     {"ip_address": ip, "duration": "1h", "reason": "shorter", "replace": True}))
            relisted = {b["ip_address"]: b for b in ok(await call(s, "list_blocks"))["data"]}
    expires = datetime.fromisoformat(listed[ip]["expires_at"].replace("Z", "+00:00"))
    left = expires - datetime.now(timezone.utc)
    assert timedelta(days=6, hours=23) < left <= timedelta(days=7), left
    assert listed[ip]["reason"] == "person: ssh", listed[ip]
    assert replaced["status"] == "applied"
    shortened = datetime.fromisoformat(relisted[ip]["expires_at"].replace("Z", "+00:00"))
    assert shortened - datetime.now(timezone.utc) <= timedelta(hours=1), relisted[ip]
