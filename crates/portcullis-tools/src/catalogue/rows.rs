//! The catalogue's rows: every tool declared once, in catalogue order — its `Decl` (metadata and access), its
//! argument and result types, and its route to the work a call is. The handlers the routes name live with their
//! subject (`reads`, `logs`, `analytics`, `changes`, `drift`, `egress`, `audit`); the result types in `views`.

use portcullis_core::domain::DomainName;
use portcullis_core::model::Timestamp;
use portcullis_core::plan::Intent;
use portcullis_guard::Category;

use crate::analytics::{Dashboard, DashboardResult, ReportResult, ThreatsResult, TrafficStatsResult};
use crate::args::*;
use crate::bandwidth::{BandwidthRead, BandwidthResult};
use crate::catalogue::{Decl, Tool, ToolDef, row};
use crate::ddos::{DdosProtectionResult, ProtectionRead, ProtectionRequest};
use crate::devices::{DeviceFilter, DeviceRead, DevicesResult};
use crate::mirror::{MirrorRead, MirrorRequest, MirrorsResult};
use crate::reads::{Status, Vpn};
use crate::views::*;
use crate::vpn::{VpnUserRequest, VpnUsersRead, VpnUsersResult};
use crate::work::Work;
use crate::{CallError, changes, egress, geo, logs, reads};

/// Every tool, in catalogue order.
pub(crate) fn rows() -> Vec<ToolDef> {
    vec![
        row::<GetFirewallRules>(),
        row::<CreateFirewallRule>(),
        row::<ModifyFirewallRule>(),
        row::<DeleteFirewallRule>(),
        row::<PauseRule>(),
        row::<ResumeRule>(),
        row::<BlockIpAddress>(),
        row::<BlockDomain>(),
        row::<ListDevices>(),
        row::<GetOnlineDevices>(),
        row::<GetOfflineDevices>(),
        row::<GetBandwidthUsage>(),
        row::<UnblockDomain>(),
        row::<UnblockIpAddress>(),
        row::<GrantAccess>(),
        row::<RevokeAccess>(),
        row::<ListGrants>(),
        row::<ListAliases>(),
        row::<ListBlocks>(),
        row::<GetSystemStatus>(),
        row::<GetVpnStatus>(),
        row::<CreateVpnUser>(),
        row::<DeleteVpnUser>(),
        row::<ListVpnUsers>(),
        row::<QueryFirewallLogs>(),
        row::<GetTrafficStats>(),
        row::<AnalyzeThreats>(),
        row::<GenerateSecurityReport>(),
        row::<GetDashboardData>(),
        row::<SimulatePacket>(),
        row::<LookupCountry>(),
        row::<CreateGeoBlock>(),
        row::<DeleteGeoBlock>(),
        row::<ListGeoBlocks>(),
        row::<RefreshGeoBlocks>(),
        row::<ConfigureDdosProtection>(),
        row::<GetDdosProtection>(),
        row::<MirrorTraffic>(),
        row::<StopMirror>(),
        row::<ListMirrors>(),
        row::<EnableTrafficAnalysis>(),
        row::<LintRules>(),
        row::<GetActiveAlarms>(),
        row::<ListPendingChanges>(),
        row::<SetEgressPolicy>(),
        row::<ConfirmChange>(),
        row::<RollbackChange>(),
        row::<GetAuditLog>(),
        row::<VerifyAuditLog>(),
    ]
}

pub(crate) struct GetFirewallRules;

impl Tool for GetFirewallRules {
    type Args = GetFirewallRulesArgs;
    type Output = RulesResult;
    const DECL: Decl = Decl::read("get_firewall_rules", "Firewall rules", "read_rules", Category::RuleManagement)
        .about(
            "List firewall rules in evaluation order with stable rule_id, interface, action, protocol, source, \
         destination, ports, description, enabled/paused state and position.",
        );

    fn route(a: GetFirewallRulesArgs, _now: Timestamp) -> Result<Work<RulesResult>, CallError> {
        Ok(Work::read(a.target.clone(), a))
    }
}

pub(crate) struct CreateFirewallRule;

impl Tool for CreateFirewallRule {
    type Args = CreateFirewallRuleArgs;
    type Output = ChangeResult;
    const DECL: Decl =
        Decl::change("create_firewall_rule", "Create a firewall rule", "create_rule", Category::RuleManagement)
            .not_idempotent()
            .about(
                "Create a rule on an interface. Returns the plan, risk score and the rule as read back from the \
         firewall. dry_run: true returns the exact plan and changes nothing.",
            );

    fn route(a: CreateFirewallRuleArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change(&a.change, create_intent(&a)?)
    }
}

pub(crate) struct ModifyFirewallRule;

impl Tool for ModifyFirewallRule {
    type Args = ModifyFirewallRuleArgs;
    type Output = ChangeResult;
    const DECL: Decl =
        Decl::change("modify_firewall_rule", "Modify a firewall rule", "modify_rule", Category::RuleManagement)
            .destructive()
            .about(
                "Change fields of a rule addressed by rule_id (enable/disable, description, action, addresses, \
         ports, position). Managed rules (anti-lockout, block lists) are refused.",
            );

    fn route(a: ModifyFirewallRuleArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change(&a.change, modify_intent(&a)?)
    }
}

pub(crate) struct DeleteFirewallRule;

impl Tool for DeleteFirewallRule {
    type Args = RuleIdArgs;
    type Output = ChangeResult;
    const DECL: Decl =
        Decl::change("delete_firewall_rule", "Delete a firewall rule", "delete_rule", Category::RuleManagement)
            .admin()
            .destructive()
            .about("Delete a rule by rule_id. The plan shows the rule as it was.");

    fn route(a: RuleIdArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change(&a.change, Intent::DeleteRule { rule_id: rule_id(&a.rule_id)? })
    }
}

pub(crate) struct PauseRule;

impl Tool for PauseRule {
    type Args = PauseRuleArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl::change("pause_rule", "Pause a rule", "pause_rule", Category::Security)
        .destructive()
        .about("Disable a rule for 1-1440 minutes (default 60); it resumes by itself.");

    fn route(a: PauseRuleArgs, now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        let until = now + pause_span(a.minutes)?;
        Work::change(&a.change, Intent::PauseRule { rule_id: rule_id(&a.rule_id)?, until })
    }
}

pub(crate) struct ResumeRule;

impl Tool for ResumeRule {
    type Args = RuleIdArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl::change("resume_rule", "Resume a paused rule", "resume_rule", Category::Security)
        .about("Re-enable a paused rule now.");

    fn route(a: RuleIdArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change(&a.change, Intent::ResumeRule { rule_id: rule_id(&a.rule_id)? })
    }
}

pub(crate) struct BlockIpAddress;

impl Tool for BlockIpAddress {
    type Args = BlockIpAddressArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl::change("block_ip_address", "Block an address", "block_ip", Category::Security).about(
        "Block an IPv4/IPv6 address or CIDR on one or every interface for a duration (30m, 1h, 24h, 7d or \
         permanent) with a reason. The block is an entry of a managed block-list alias and expires by itself; an \
         address already blocked for longer stays blocked that long unless replace: true.",
    );

    fn route(a: BlockIpAddressArgs, now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        let intent = Intent::Block {
            addresses: addresses(a.ip_address.as_deref(), a.ip_addresses.as_deref())?,
            interface: a.interface.as_deref().map(|i| interface_name("interface", i)).transpose()?,
            expires_at: lifetime(&a.duration)?.expires_at(now),
            reason: reason(&a.reason)?,
            replace: a.replace.unwrap_or(false),
        };
        Work::change(&a.change, intent)
    }
}

pub(crate) struct BlockDomain;

impl Tool for BlockDomain {
    type Args = BlockDomainArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl::change("block_domain", "Block a domain", "block_ip", Category::Security).about(
        "Block traffic to a domain name for a duration with a reason, on one or every interface: the addresses it \
         resolves to (A and AAAA) become entries of a managed domain block list, and the name is resolved again \
         at its TTL so the block follows it (addresses that leave the answer are unblocked). Refused for \
         wildcards, the firewall's own name and names resolving to a management or protected address.",
    );

    fn route(a: BlockDomainArgs, now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        let request = crate::domains::DomainBlockRequest {
            domain: DomainName::parse("domain", &a.domain)?,
            interface: a.interface.as_deref().map(|i| interface_name("interface", i)).transpose()?,
            expires_at: lifetime(&a.duration)?.expires_at(now),
            reason: reason(&a.reason)?,
        };
        Work::change_with(&a.change, request)
    }
}

pub(crate) struct UnblockDomain;

impl Tool for UnblockDomain {
    type Args = UnblockDomainArgs;
    type Output = ChangeResult;
    const DECL: Decl =
        Decl::change("unblock_domain", "Unblock a domain", "unblock_ip", Category::Security).destructive().about(
            "Remove a domain block (on one interface, or everywhere): every address it added, except those \
                another blocked name stands for.",
        );

    fn route(a: UnblockDomainArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        let request = crate::domains::DomainUnblockRequest {
            domain: DomainName::parse("domain", &a.domain)?,
            interface: a.interface.as_deref().map(|i| interface_name("interface", i)).transpose()?,
        };
        Work::change_with(&a.change, request)
    }
}

pub(crate) struct UnblockIpAddress;

impl Tool for UnblockIpAddress {
    type Args = UnblockIpAddressArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl::change("unblock_ip_address", "Unblock an address", "unblock_ip", Category::Security)
        .destructive()
        .about("Remove the block of an address or CIDR (on one interface, or everywhere).");

    fn route(a: UnblockIpAddressArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        let intent = Intent::Unblock {
            addresses: addresses(a.ip_address.as_deref(), a.ip_addresses.as_deref())?,
            interface: a.interface.as_deref().map(|i| interface_name("interface", i)).transpose()?,
        };
        Work::change(&a.change, intent)
    }
}

pub(crate) struct GrantAccess;

impl Tool for GrantAccess {
    type Args = GrantAccessArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl::change("grant_access", "Grant access", "grant_access", Category::Security).about(
        "Let an address or CIDR in for a while (knock to get in): an entry with expiry in a managed allow \
         alias that pass rules reference. With interface and port, the pass rule is created on first use.",
    );

    fn route(a: GrantAccessArgs, now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change(&a.change, grant_intent(&a, now)?)
    }
}

pub(crate) struct RevokeAccess;

impl Tool for RevokeAccess {
    type Args = RevokeAccessArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl::change("revoke_access", "Revoke access", "revoke_access", Category::Security)
        .destructive()
        .about("Remove a grant now (from one grant list, or all).");

    fn route(a: RevokeAccessArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        let intent = Intent::Revoke {
            addresses: addresses(a.ip_address.as_deref(), a.ip_addresses.as_deref())?,
            alias: alias_name(&a.alias)?,
        };
        Work::change(&a.change, intent)
    }
}

pub(crate) struct ListGrants;

impl Tool for ListGrants {
    type Args = ListGrantsArgs;
    type Output = GrantsResult;
    const DECL: Decl = Decl::read("list_grants", "Active grants", "read_grants", Category::Security)
        .about("Active grants with reason, expiry and the pass rules that let them in.");

    fn route(a: ListGrantsArgs, _now: Timestamp) -> Result<Work<GrantsResult>, CallError> {
        let alias = alias_name(&a.alias)?;
        Ok(Work::from_state(a.target, move |v| Ok(reads::grants(v.target, v.state, alias.as_deref(), v.now))))
    }
}

pub(crate) struct ListAliases;

impl Tool for ListAliases {
    type Args = ListAliasesArgs;
    type Output = AliasesResult;
    const DECL: Decl = Decl::read("list_aliases", "Aliases", "read_aliases", Category::RuleManagement).about(
        "Aliases (named address and port lists) with their kind and entry count; with name, one alias and its \
         live entries with reason and expiry.",
    );

    fn route(a: ListAliasesArgs, _now: Timestamp) -> Result<Work<AliasesResult>, CallError> {
        Ok(Work::from_state(a.target, move |v| Ok(reads::aliases(v.target, v.state, a.name.as_deref(), v.now)?)))
    }
}

pub(crate) struct ListBlocks;

impl Tool for ListBlocks {
    type Args = ListBlocksArgs;
    type Output = BlocksResult;
    const DECL: Decl = Decl::read("list_blocks", "Active blocks", "read_blocks", Category::Security).about(
        "List active blocks with interface, reason, creation and expiry time; with `limit`, one page at a time \
         (`next_cursor` gives the next), read only as far as the page reaches.",
    );

    fn route(a: ListBlocksArgs, _now: Timestamp) -> Result<Work<BlocksResult>, CallError> {
        if a.limit.is_some() || a.cursor.is_some() {
            let target = a.target.clone();
            return Ok(Work::read(target, reads::BlocksPage::new(a)?));
        }
        Ok(Work::read(a.target.clone(), reads::AllBlocks { interface: a.interface }))
    }
}

pub(crate) struct GetSystemStatus;

impl Tool for GetSystemStatus {
    type Args = TargetArg;
    type Output = SystemStatusResult;
    const DECL: Decl = Decl::read("get_system_status", "System status", "read_system", Category::System)
        .about("CPU and memory usage (percent), uptime (seconds), version, platform and health checks of a target.");

    fn route(a: TargetArg, _now: Timestamp) -> Result<Work<SystemStatusResult>, CallError> {
        Ok(Work::read(a.target, Status))
    }
}

pub(crate) struct GetVpnStatus;

impl Tool for GetVpnStatus {
    type Args = VpnStatusArgs;
    type Output = VpnStatusResult;
    const DECL: Decl = Decl::read("get_vpn_status", "VPN status", "read_vpn", Category::Network).about(
        "OpenVPN, IPsec and WireGuard servers and tunnels with their state and traffic, and the connected users \
         and peers. type: openvpn, ipsec or wireguard to narrow it.",
    );

    fn route(a: VpnStatusArgs, _now: Timestamp) -> Result<Work<VpnStatusResult>, CallError> {
        Ok(Work::read(a.target, Vpn(a.kind.as_deref().map(vpn_kind).transpose()?)))
    }
}

pub(crate) struct CreateVpnUser;

impl Tool for CreateVpnUser {
    type Args = CreateVpnUserArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl::change("create_vpn_user", "Create a VPN user", "manage_vpn_users", Category::System)
        .admin()
        .not_idempotent()
        .about(
            "Make a VPN user on the target's VPN server: username, static_ip (inside the server's tunnel network and \
             unused; the first free address when omitted), expires (30d, or a time; removed then). On a Linux target \
             this is a WireGuard peer of the configured interface: Portcullis makes the key pair and returns \
             client_config, holding the private key, once, in this answer (never stored). The address is put in the \
             grant list. type: wireguard or openvpn; certificate is OpenVPN's (pfSense).",
        );

    fn route(a: CreateVpnUserArgs, now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change_with(&a.change, VpnUserRequest::parse(&a, now)?)
    }
}

pub(crate) struct DeleteVpnUser;

impl Tool for DeleteVpnUser {
    type Args = DeleteVpnUserArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl::change("delete_vpn_user", "Delete a VPN user", "manage_vpn_users", Category::System)
        .admin()
        .destructive()
        .about(
            "Remove a VPN user and what its creation made (the peer, its address in the grant list), and nothing else.",
        );

    fn route(a: DeleteVpnUserArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        let username = portcullis_core::vpn::check_username("username", a.username.trim())?;
        Work::change(&a.change, Intent::DeleteVpnUser { username })
    }
}

pub(crate) struct ListVpnUsers;

impl Tool for ListVpnUsers {
    type Args = TargetArg;
    type Output = VpnUsersResult;
    const DECL: Decl = Decl::read("list_vpn_users", "VPN users", "read_vpn", Category::Network).about(
        "The VPN users Portcullis manages on the target: username, type, server, address, public key, created and \
         expiry. No secret is ever listed.",
    );

    fn route(a: TargetArg, _now: Timestamp) -> Result<Work<VpnUsersResult>, CallError> {
        Ok(Work::read(a.target, VpnUsersRead))
    }
}

pub(crate) struct QueryFirewallLogs;

impl Tool for QueryFirewallLogs {
    type Args = QueryLogsArgs;
    type Output = LogsResult;
    const DECL: Decl = Decl::read("query_firewall_logs", "Firewall logs", "read_logs", Category::Analytics).about(
        "Firewall log entries, newest first: timestamp, interface, action, direction, protocol, source and \
         destination with ports, the rule_id (tracker) that logged them, length. Filters: timeframe (15m, 1h, \
         24h, 7d), action, source_ip (address or CIDR), destination_ip, destination_port, protocol, interface.",
    );

    fn route(a: QueryLogsArgs, _now: Timestamp) -> Result<Work<LogsResult>, CallError> {
        Ok(Work::log_read(a.target.clone(), logs::LogsJob::new(a)))
    }
}

pub(crate) struct GetTrafficStats;

impl Tool for GetTrafficStats {
    type Args = TrafficStatsArgs;
    type Output = TrafficStatsResult;
    const DECL: Decl = Decl::read("get_traffic_stats", "Traffic statistics", "read_logs", Category::Analytics).about(
        "Traffic from the firewall log: total_bytes, total_packets, bytes_in/out, packets_in/out, bandwidth_util \
         (average bits/s) and data: [{timestamp, bytes, packets, connections, blocked}] per granularity bucket. \
         Filters: timeframe (1h, 24h, 7d), interface.",
    );

    fn route(a: TrafficStatsArgs, _now: Timestamp) -> Result<Work<TrafficStatsResult>, CallError> {
        Ok(Work::log_read(a.target.clone(), a))
    }
}

pub(crate) struct AnalyzeThreats;

impl Tool for AnalyzeThreats {
    type Args = AnalyzeThreatsArgs;
    type Output = ThreatsResult;
    const DECL: Decl = Decl::read("analyze_threats", "Analyze threats", "read_logs", Category::Analytics).about(
        "Detect threats in the firewall log of a timeframe: port scans, brute force on sensitive ports (22, \
         3389, 445, ...), repeated attacks, traffic volume above the hour-of-day baseline. Each has type, \
         severity, source_ip, attempt_count, an adaptive threat_score (0-100) with the block duration it calls \
         for (>=80 7d, >=50 24h, >=20 1h) and a recommendation.",
    );

    fn route(a: AnalyzeThreatsArgs, _now: Timestamp) -> Result<Work<ThreatsResult>, CallError> {
        Ok(Work::log_read(a.target.clone(), a))
    }
}

pub(crate) struct GenerateSecurityReport;

impl Tool for GenerateSecurityReport {
    type Args = ReportArgs;
    type Output = ReportResult;
    const DECL: Decl = Decl::read("generate_security_report", "Security report", "read_logs", Category::Analytics)
        .about(
            "A security report for a timeframe: summary (rules, log lines, blocked, allowed, traffic), security \
         events by protocol:port, top blocked IPs, threats and recommendations. format: json (default), \
         markdown, or html (standalone page with charts: blocked over time, top sources, top ports, actions by \
         interface).",
        );

    fn route(a: ReportArgs, _now: Timestamp) -> Result<Work<ReportResult>, CallError> {
        Ok(Work::log_read(a.target.clone(), a))
    }
}

pub(crate) struct GetDashboardData;

impl Tool for GetDashboardData {
    type Args = TargetArg;
    type Output = DashboardResult;
    const DECL: Decl = Decl::read("get_dashboard_data", "Dashboard", "read_logs", Category::Analytics).about(
        "One-call overview: system health, firewall status (rules, interfaces), the last hour's traffic, VPN, \
         active blocks and recent threats.",
    );

    fn route(a: TargetArg, _now: Timestamp) -> Result<Work<DashboardResult>, CallError> {
        Ok(Work::log_read(a.target, Dashboard))
    }
}

pub(crate) struct SimulatePacket;

impl Tool for SimulatePacket {
    type Args = SimulatePacketArgs;
    type Output = SimulateResult;
    const DECL: Decl = Decl::read("simulate_packet", "Simulate a packet", "read_rules", Category::RuleManagement)
        .about(
            "Decide a packet against the current rule set with pfSense first-match semantics and name the rule \
         that decides it (or the implicit default).",
        );

    fn route(a: SimulatePacketArgs, _now: Timestamp) -> Result<Work<SimulateResult>, CallError> {
        Ok(Work::from_state(a.target.clone(), move |v| Ok(reads::simulate(v.target, v.state, &a, v.now)?)))
    }
}

pub(crate) struct LookupCountry;

impl Tool for LookupCountry {
    type Args = LookupCountryArgs;
    type Output = CountryLookupResult;
    const DECL: Decl = Decl::read("lookup_country", "Country of an address", "read_geo", Category::Analytics).about(
        "The country (ISO 3166-1 alpha-2) an IP address is in, from the offline country database, with the \
         data's date and its attribution. Private and reserved addresses have none.",
    );

    fn route(a: LookupCountryArgs, _now: Timestamp) -> Result<Work<CountryLookupResult>, CallError> {
        Ok(Work::local_now(move |svc, _| svc.lookup_country(&a)))
    }
}

pub(crate) struct CreateGeoBlock;

impl Tool for CreateGeoBlock {
    type Args = CreateGeoBlockArgs;
    type Output = ChangeResult;
    const DECL: Decl =
        Decl::change("create_geo_block", "Block countries", "geo_block", Category::Security).not_idempotent().about(
            "Block every network of the named countries (ISO 3166-1 alpha-2) on the named interfaces, from the \
         offline country database: one list per country and family, one block rule per list. direction: in \
         (default, traffic from them), out or both; duration: 24h, 7d, ... or permanent (default). A country \
         holding a management host or the caller is refused.",
        );

    fn route(a: CreateGeoBlockArgs, now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change_with(&a.change, geo::GeoBlockRequest::parse(&a, now)?)
    }
}

pub(crate) struct DeleteGeoBlock;

impl Tool for DeleteGeoBlock {
    type Args = GeoBlockIdArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl::change("delete_geo_block", "Remove a geo block", "delete_geo_block", Category::Security)
        .destructive()
        .about("Remove a geo block by geo_block_id: its rules and its country lists, leaving the firewall as before.");

    fn route(a: GeoBlockIdArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        let id = portcullis_core::geo::GeoBlockId::parse("geo_block_id", &a.geo_block_id)?;
        Work::change(&a.change, Intent::DeleteGeoBlock { id })
    }
}

pub(crate) struct ListGeoBlocks;

impl Tool for ListGeoBlocks {
    type Args = TargetArg;
    type Output = GeoBlocksResult;
    const DECL: Decl = Decl::read("list_geo_blocks", "Geo blocks", "read_geo", Category::Security).about(
        "The geo blocks on the firewall: countries, interfaces, direction, prefix counts per country and family, \
         the data date of their entries and their expiry.",
    );

    fn route(a: TargetArg, _now: Timestamp) -> Result<Work<GeoBlocksResult>, CallError> {
        Ok(Work::from_state(a.target, |v| Ok(geo::list_geo_blocks(v))))
    }
}

pub(crate) struct RefreshGeoBlocks;

impl Tool for RefreshGeoBlocks {
    type Args = ChangeArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl::change("refresh_geo_blocks", "Refresh geo blocks", "geo_block", Category::Security).about(
        "Bring every live geo block of a target to the installed country database: prefixes that left a country \
             are removed and new ones added, as one change. `portcullis geoip install` runs it after an update.",
    );

    fn route(a: ChangeArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change_with(&a.change, geo::GeoRefreshRequest)
    }
}

pub(crate) struct ConfigureDdosProtection;

impl Tool for ConfigureDdosProtection {
    type Args = ConfigureDdosProtectionArgs;
    type Output = ChangeResult;
    const DECL: Decl =
        Decl::change("configure_ddos_protection", "DDoS protection", "ddos_protection", Category::Security)
            .admin()
            .about(
                "Limit new connections arriving on an interface: rate_limit (\"1000/s\", all sources together) with \
         burst_limit, per_source_rate (\"20/s\", per IPv4 address or IPv6 /64) with per_source_burst and \
         overload_block (how long a source over its rate stays blocked, e.g. 10m), max_connections_per_source, \
         syn_proxy, for ports/protocol (tcp by default; every port when ports is omitted). One protection per \
         interface and selector: a second call replaces it, enabled: false removes it. Management hosts, \
         protected ranges and the caller are exempt; a management flow it would limit is refused.",
            );

    fn route(a: ConfigureDdosProtectionArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change_with(&a.change, ProtectionRequest::parse(&a)?)
    }
}

pub(crate) struct GetDdosProtection;

impl Tool for GetDdosProtection {
    type Args = GetDdosProtectionArgs;
    type Output = DdosProtectionResult;
    const DECL: Decl = Decl::read("get_ddos_protection", "DDoS protection in force", "read_ddos", Category::Security)
        .about(
            "The DDoS protections in force (optionally of one interface), each with its live state: sources \
             blocked for overload with their expiry, what each limit dropped, and the host settings a SYN proxy \
             needs.",
        );

    fn route(a: GetDdosProtectionArgs, _now: Timestamp) -> Result<Work<DdosProtectionResult>, CallError> {
        Ok(Work::read(a.target, ProtectionRead { interface: a.interface }))
    }
}

pub(crate) struct MirrorTraffic;

impl Tool for MirrorTraffic {
    type Args = MirrorTrafficArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl::change("mirror_traffic", "Mirror traffic to a sensor", "mirror_traffic", Category::Mirroring)
        .rate(portcullis_guard::RateClass::Mirror)
        .not_idempotent()
        .about(
            "Copy chosen traffic of an interface to an IDS sensor named in configuration (mirroring.sensors) for a              limited time: interface, sensor, duration (stops by itself), reason, and what to copy — protocol,              source, destination, port (either end), source_port, destination_port, direction in|out|both              (default both: the replies too). rate_limit caps the packets copied per second. Everything on an              interface needs all: true, an admin and a person's approval. The original traffic is not changed;              the sensor's own interface and address are never copied. dry_run shows the exact statements.",
        );

    fn route(a: MirrorTrafficArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change_with(&a.change, MirrorRequest::parse(&a)?)
    }
}

pub(crate) struct StopMirror;

impl Tool for StopMirror {
    type Args = StopMirrorArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl::change("stop_mirror", "Stop a mirror", "mirror_traffic", Category::Mirroring)
        .rate(portcullis_guard::RateClass::Mirror)
        .destructive()
        .about("Stop a running mirror now (mirror_id from list_mirrors); the sensor receives nothing more.");

    fn route(a: StopMirrorArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Work::change(&a.change, crate::mirror::stop_intent(&a.mirror_id)?)
    }
}

pub(crate) struct ListDevices;

impl Tool for ListDevices {
    type Args = ListDevicesArgs;
    type Output = DevicesResult;
    const DECL: Decl = Decl::read("list_devices", "Devices on the network", "read_devices", Category::Device).about(
        "The devices on the target's networks (optionally online, offline, or of one interface): address, MAC, \
         vendor (IEEE OUI), hostname, interface, first and last seen, online while seen within devices.idle. From \
         the firewall's neighbour/ARP table and DHCP leases and configured lease files; devices seen before are \
         remembered, so offline ones are listed too.",
    );

    fn route(a: ListDevicesArgs, _now: Timestamp) -> Result<Work<DevicesResult>, CallError> {
        let read = DeviceRead { filter: DeviceFilter::parse(a.status.as_deref())?, interface: a.interface };
        Ok(Work::read(a.target, read))
    }
}

pub(crate) struct GetOnlineDevices;

impl Tool for GetOnlineDevices {
    type Args = DevicesArgs;
    type Output = DevicesResult;
    const DECL: Decl = Decl::read("get_online_devices", "Online devices", "read_devices", Category::Device)
        .about("The devices seen on the network within devices.idle (list_devices with status online).");

    fn route(a: DevicesArgs, _now: Timestamp) -> Result<Work<DevicesResult>, CallError> {
        Ok(Work::read(a.target, DeviceRead { filter: DeviceFilter::Online, interface: a.interface }))
    }
}

pub(crate) struct GetOfflineDevices;

impl Tool for GetOfflineDevices {
    type Args = DevicesArgs;
    type Output = DevicesResult;
    const DECL: Decl = Decl::read("get_offline_devices", "Offline devices", "read_devices", Category::Device)
        .about("The devices seen before but not within devices.idle (list_devices with status offline).");

    fn route(a: DevicesArgs, _now: Timestamp) -> Result<Work<DevicesResult>, CallError> {
        Ok(Work::read(a.target, DeviceRead { filter: DeviceFilter::Offline, interface: a.interface }))
    }
}

pub(crate) struct GetBandwidthUsage;

impl Tool for GetBandwidthUsage {
    type Args = BandwidthArgs;
    type Output = BandwidthResult;
    const DECL: Decl = Decl::read("get_bandwidth_usage", "Bandwidth per device", "read_logs", Category::Analytics)
        .about(
            "The devices that sent and received the most over a timeframe (1h, 24h, 7d), optionally of one \
             interface, top `limit` (default 10): bytes_in (received), bytes_out (sent), packets, with hostname \
             and MAC where known. `source` says where the figures come from (nftables: the kernel's per-address \
             counters, with accounting on; pfSense: pf's current states; lab: the firewall log), `misses` what \
             they leave out, `complete` whether they cover exactly the timeframe.",
        );

    fn route(a: BandwidthArgs, _now: Timestamp) -> Result<Work<BandwidthResult>, CallError> {
        let span = crate::analytics::span("timeframe", &a.timeframe)?;
        let limit = a.limit.unwrap_or(10);
        if limit == 0 || limit > 1000 {
            return Err(portcullis_core::FieldError::new("limit", format!("{limit} is not between 1 and 1000")).into());
        }
        let read = BandwidthRead { timeframe: a.timeframe, span, interface: a.interface, limit };
        Ok(Work::read(a.target, read))
    }
}

pub(crate) struct ListMirrors;

impl Tool for ListMirrors {
    type Args = ListMirrorsArgs;
    type Output = MirrorsResult;
    const DECL: Decl = Decl::read("list_mirrors", "Running mirrors", "read_mirrors", Category::Mirroring).about(
        "The traffic mirrors running (optionally of one interface): what each copies, to which sensor, its cap,          when it stops, and the packets and bytes copied so far from the firewall's counters.",
    );

    fn route(a: ListMirrorsArgs, _now: Timestamp) -> Result<Work<MirrorsResult>, CallError> {
        Ok(Work::read(a.target, MirrorRead { interface: a.interface }))
    }
}

pub(crate) struct EnableTrafficAnalysis;

impl Tool for EnableTrafficAnalysis {
    type Args = EnableTrafficAnalysisArgs;
    type Output = crate::analysis::TrafficAnalysisResult;
    const DECL: Decl =
        Decl::change("enable_traffic_analysis", "Traffic analysis", "mirror_traffic", Category::Mirroring)
            .rate(portcullis_guard::RateClass::Mirror)
            .not_idempotent()
            .about(
                "Turn on analysis of an interface and say honestly what is on ({supported, engine, mode, reason}).                  deep_packet_inspection: true copies all of its traffic to the interface's configured IDS sensor                  (through mirror_traffic: admin, a person's approval, expiry from duration) and reads the sensor's                  alerts; false: flow and rate analysis from the firewall's counters and logs. alert_threshold                  (\"5GB/h\", \"100000 packets/m\", \"50 alerts/h\") raises an alarm in get_active_alarms while it is                  crossed.",
            );

    fn route(
        a: EnableTrafficAnalysisArgs,
        _now: Timestamp,
    ) -> Result<Work<crate::analysis::TrafficAnalysisResult>, CallError> {
        Ok(Work::local(crate::analysis::AnalysisRequest::parse(&a)?))
    }
}

pub(crate) struct LintRules;

impl Tool for LintRules {
    type Args = InterfaceFilterArgs;
    type Output = LintResult;
    const DECL: Decl = Decl::read("lint_rules", "Lint the rule set", "read_rules", Category::RuleManagement)
        .about("Find shadowed, redundant, overly broad, disabled, long-disabled and paused rules.");

    fn route(a: InterfaceFilterArgs, _now: Timestamp) -> Result<Work<LintResult>, CallError> {
        Ok(Work::from_state(a.target, move |v| {
            Ok(reads::lint_rules(v.target, v.state, a.interface.as_deref(), &v.svc.exposed_interfaces, v.now)?)
        }))
    }
}

pub(crate) struct GetActiveAlarms;

impl Tool for GetActiveAlarms {
    type Args = AlarmsArgs;
    type Output = AlarmsResult;
    const DECL: Decl = Decl::read("get_active_alarms", "Active alarms", "read_alarms", Category::Security).about(
        "Alarms with type, severity and a recommendation: managed block and grant lists edited by hand on the \
         firewall (drift), bursts of denied calls, refused high-risk changes.",
    );

    fn route(a: AlarmsArgs, _now: Timestamp) -> Result<Work<AlarmsResult>, CallError> {
        Ok(Work::local(a))
    }
}

pub(crate) struct ListPendingChanges;

impl Tool for ListPendingChanges {
    type Args = NoArgs;
    type Output = PendingChangesResult;
    const DECL: Decl =
        Decl::read("list_pending_changes", "Changes awaiting confirmation", "read_changes", Category::Security).about(
            "Changes applied with a confirmation window (confirm_within) that are undone automatically unless \
         confirmed, with the time left.",
        );

    fn route(a: NoArgs, _now: Timestamp) -> Result<Work<PendingChangesResult>, CallError> {
        let NoArgs {} = a;
        Ok(Work::local_now(|svc, _| svc.pending_changes()))
    }
}

pub(crate) struct SetEgressPolicy;

impl Tool for SetEgressPolicy {
    type Args = SetEgressPolicyArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl::change(
        "set_egress_policy",
        "Egress policy of the Portcullis host",
        "set_egress_policy",
        Category::System,
    )
    .admin()
    .destructive()
    .about(
        "Limit what the host that runs Portcullis may start on an interface (an nftables target on that host): \
         the flows in allow, DNS to the resolvers of /etc/resolv.conf, the APIs of the configured firewalls \
         and the MCP clients (each switchable); everything else it sends is logged and dropped. Forwarded \
         traffic is not affected. Replaces a policy already there; enabled: false removes it. Refused if the \
         host could no longer reach a firewall API or the calling client.",
    );

    fn route(a: SetEgressPolicyArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        let ask = egress::EgressRequest {
            interface: interface_name("interface", &a.interface)?,
            enabled: a.enabled.unwrap_or(true),
            allow: egress_allow(a.allow.as_deref().unwrap_or_default())?,
            include_dns: a.include_dns.unwrap_or(true),
            include_firewall_apis: a.include_firewall_apis.unwrap_or(true),
            include_mcp_clients: a.include_mcp_clients.unwrap_or(true),
        };
        Work::change_with(&a.change, ask)
    }
}

pub(crate) struct ConfirmChange;

impl Tool for ConfirmChange {
    type Args = ChangeIdArgs;
    type Output = ChangeRecordView;
    const DECL: Decl = Decl::change("confirm_change", "Confirm a change", "confirm_change", Category::Security).about(
        "Keep a change that was applied with a confirmation window; without it the change is undone at confirm_by.",
    );

    fn route(a: ChangeIdArgs, _now: Timestamp) -> Result<Work<ChangeRecordView>, CallError> {
        let id = change_id(&a.change_id)?;
        Ok(Work::local_now(move |svc, trace| svc.confirm_change(&id, trace)))
    }
}

pub(crate) struct RollbackChange;

impl Tool for RollbackChange {
    type Args = ChangeIdArgs;
    type Output = ChangeResult;
    const DECL: Decl = Decl::change("rollback_change", "Roll back a change", "rollback_change", Category::Security)
        .destructive()
        .not_idempotent()
        .about(
            "Undo an applied change now: the undo plan restores the objects the change touched, verified by \
         read-back. dry_run: true shows the undo plan.",
        );

    fn route(a: ChangeIdArgs, _now: Timestamp) -> Result<Work<ChangeResult>, CallError> {
        Ok(Work::local(changes::Rollback { change_id: change_id(&a.change_id)?, dry_run: a.dry_run.unwrap_or(false) }))
    }
}

pub(crate) struct GetAuditLog;

impl Tool for GetAuditLog {
    type Args = AuditLogArgs;
    type Output = AuditLogResult;
    const DECL: Decl = Decl::read("get_audit_log", "Audit log", "read_audit", Category::System).about(
        "The audit trail, newest first: one record per call with principal, tool, redacted arguments, \
         decision, reason, risk score and outcome. Filters: tool, principal, decision, timeframe.",
    );

    fn route(a: AuditLogArgs, _now: Timestamp) -> Result<Work<AuditLogResult>, CallError> {
        Ok(Work::local_now(move |svc, _| svc.audit_log(&a)))
    }
}

pub(crate) struct VerifyAuditLog;

impl Tool for VerifyAuditLog {
    type Args = NoArgs;
    type Output = AuditVerifyResult;
    const DECL: Decl = Decl::read("verify_audit_log", "Verify the audit log", "read_audit", Category::System)
        .about("Check the audit trail's hash chain; reports the first edited, deleted or reordered record.");

    fn route(a: NoArgs, _now: Timestamp) -> Result<Work<AuditVerifyResult>, CallError> {
        let NoArgs {} = a;
        Ok(Work::local_now(|svc, _| svc.audit_verify()))
    }
}
