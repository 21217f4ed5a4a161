#!/usr/bin/env python3
"""Extract the part of the pfRest native schema that the emulator implements.

Usage: extract-schema.py /path/to/native-schema-v2.10.0.json [output.json]

The output (default: ../schema/subset.json next to this script) is committed and embedded in the emulator with
`include_str!`. It keeps, per endpoint, the fields the emulator needs (url, model, singular/plural, methods, auth
restrictions, required package) and, per model, the field attributes used for request checking (type, required,
default, choices, nullability, many/min/max, read-only, editable, unique, lengths, conditions, field class).
Help texts and privileges are dropped to keep the file small. Re-run when the target pfRest version changes.
"""

import json
import sys
from pathlib import Path

# Endpoints the emulator implements (every one is answered with emulated state).
ENDPOINTS = [
    "/api/v2/auth/jwt",
    "/api/v2/system/restapi/version",
    "/api/v2/firewall/rule",
    "/api/v2/firewall/rules",
    "/api/v2/firewall/alias",
    "/api/v2/firewall/aliases",
    "/api/v2/firewall/apply",
    "/api/v2/firewall/traffic_shaper/limiter",
    "/api/v2/firewall/traffic_shaper/limiters",
    "/api/v2/status/system",
    "/api/v2/status/interfaces",
    "/api/v2/status/gateways",
    "/api/v2/status/openvpn/servers",
    "/api/v2/status/openvpn/clients",
    "/api/v2/status/ipsec/sas",
    "/api/v2/status/wireguard/tunnels",
    "/api/v2/status/wireguard/peers",
    "/api/v2/status/logs/firewall",
    "/api/v2/status/dhcp_server/leases",
    "/api/v2/interfaces",
    "/api/v2/diagnostics/arp_table",
    "/api/v2/firewall/states",
    "/api/v2/diagnostics/command_prompt",
    "/api/v2/diagnostics/table",
    "/api/v2/diagnostics/tables",
    # VPN users (WAVE2-FACTS §4).
    "/api/v2/system/packages",
    "/api/v2/system/certificate_authorities",
    "/api/v2/system/certificate_authority",
    "/api/v2/system/certificates",
    "/api/v2/system/certificate",
    "/api/v2/system/certificate/generate",
    "/api/v2/user",
    "/api/v2/users",
    "/api/v2/vpn/openvpn/server",
    "/api/v2/vpn/openvpn/servers",
    "/api/v2/vpn/openvpn/cso",
    "/api/v2/vpn/openvpn/csos",
    "/api/v2/vpn/openvpn/client_export",
    "/api/v2/vpn/wireguard/tunnel",
    "/api/v2/vpn/wireguard/tunnels",
    "/api/v2/vpn/wireguard/peer",
    "/api/v2/vpn/wireguard/peers",
    "/api/v2/vpn/wireguard/apply",
]

ENDPOINT_KEYS = ["url", "model_class", "many", "request_method_options", "requires_auth", "auth_methods", "deprecated"]
MODEL_KEYS = [
    "class", "id_type", "parent_model_class", "many", "many_minimum", "many_maximum", "packages",
    "unique_together_fields", "always_apply", "subsystem",
]
FIELD_KEYS = [
    "class", "type", "required", "default", "choices", "unique", "allow_empty", "allow_null", "editable",
    "read_only", "write_only", "sensitive", "many", "many_minimum", "many_maximum", "minimum", "maximum",
    "minimum_length", "maximum_length", "nested_model_class", "foreign_model_class", "foreign_model_field",
    "conditions",
]


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    source = json.loads(Path(sys.argv[1]).read_text())
    out_path = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parent.parent / "schema" / "subset.json"

    endpoints = {}
    wanted_models = []
    for url in ENDPOINTS:
        ep = source["endpoints"][url]
        endpoints[url] = {k: ep[k] for k in ENDPOINT_KEYS}
        if ep["model_class"] not in wanted_models:
            wanted_models.append(ep["model_class"])

    # Pull in nested models (e.g. IPsecSAStatus.child_sas -> IPsecChildSAStatus) transitively.
    models = {}
    queue = list(wanted_models)
    while queue:
        name = queue.pop(0)
        if name in models:
            continue
        model = source["models"][name]
        fields_src = model["fields"] if isinstance(model["fields"], dict) else {}
        fields = []  # a list keeps the model's field order (pfRest validates fields in this order)
        for fname, f in fields_src.items():
            entry = {"name": fname}
            entry.update({k: f[k] for k in FIELD_KEYS})
            fields.append(entry)
            nested = f.get("nested_model_class")
            if nested and nested not in models:
                queue.append(nested)
        out = {k: model[k] for k in MODEL_KEYS}
        out["fields"] = fields
        models[name] = out

    subset = {
        "source": "pfRest native schema " + source["version"] + " (shared/pfrest/native-schema-v2.10.0.json)",
        "version": source["version"],
        "endpoints": endpoints,
        "models": dict(sorted(models.items())),
        # Every endpoint path of the full schema, so the emulator can tell "exists on a real pfRest but is not
        # emulated" (JSON error + recorded violation) from "unknown path" (nginx HTML 404).
        "all_endpoint_paths": sorted(source["endpoints"].keys()),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(subset, indent=1, sort_keys=False) + "\n")
    print(f"wrote {out_path} ({out_path.stat().st_size} bytes, {len(endpoints)} endpoints, {len(models)} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
