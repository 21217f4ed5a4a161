"""Traffic mirroring and analysis through the official MCP client, with the customer's exact call (BRIEF:
`enable_traffic_analysis {"interface": "wan", "deep_packet_inspection": true, "alert_threshold": "5GB/h"}`) against
a target with a sensor configured: copying everything on an interface waits for a person, then the copy runs to
the configured sensor with its expiry, `list_mirrors` shows it, and `stop_mirror` ends it. Sensors outside the
configuration, unbounded durations and copies of the sensor's own interface are refused naming the field."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from harness import call, error, ok

pytestmark = pytest.mark.anyio

SCENARIO_TIMEOUT = 60.0
CUSTOMER_CALL = {"interface": "wan", "deep_packet_inspection": True, "alert_threshold": "5GB/h"}
CONFIG = (
    "security:\n  principal: admin\n  rate_limits: {mirror: 100}\n"
    "mirroring:\n  max_duration: 12h\n  sensors:\n"
    "    suricata: {interface: dmz, serves: [wan], engine: suricata}\n"
)


async def test_the_customers_traffic_analysis_call_runs_once_a_person_approves(servers, data_dir: Path, tmp_path: Path):
    config = tmp_path / "portcullis.yaml"
    config.write_text(CONFIG)
    pc = servers("stdio", data_dir, config=config)
    with anyio.fail_after(SCENARIO_TIMEOUT):
        async with pc.session() as s:
            first = error(await call(s, "enable_traffic_analysis", CUSTOMER_CALL))
            assert first["code"] == "approval_required", first
            assert ok(await call(s, "list_mirrors"))["count"] == 0, "nothing is copied before a person says yes"
            granted = pc.cli("approve", first["approval_id"], "--yes")
            assert granted.returncode == 0, granted.stdout + granted.stderr

            on = ok(await call(s, "enable_traffic_analysis", CUSTOMER_CALL))
            assert (on["supported"], on["engine"], on["mode"], on["sensor"]) == (True, "suricata", "ids", "suricata"), on
            assert on["mirror"]["status"] == "applied", on
            assert on["alert_threshold"]["amount"] == 5_000_000_000, on

            listed = ok(await call(s, "list_mirrors"))
            assert listed["count"] == 1, listed
            mirror = listed["data"][0]
            assert mirror["interface"] == "wan" and mirror["selector"]["all"] is True, mirror
            assert mirror["sensor"]["name"] == "suricata" and 0 < mirror["remaining_seconds"] <= 3600, mirror

            for bad, field in (({"sensor": "198.51.100.9"}, "sensor"), ({"duration": "30d"}, "duration"),
                               ({"interface": "dmz"}, "interface"), ({"port": "80; reboot"}, "port")):
                args = {"interface": "lan", "sensor": "suricata", "reason": "web", "protocol": "tcp", "port": 80, **bad}
                refused = error(await call(s, "mirror_traffic", args))
                assert refused.get("field") == field, (bad, refused)
            assert ok(await call(s, "list_mirrors"))["count"] == 1, "nothing changed"

            stopped = ok(await call(s, "stop_mirror", {"mirror_id": mirror["mirror_id"]}))
            assert stopped["status"] == "applied", stopped
            assert ok(await call(s, "list_mirrors"))["count"] == 0
