//! The security report: one data structure, rendered as JSON (serde), Markdown or HTML with inline SVG charts
//! (blocked over time, top blocked sources, top blocked ports, actions by interface), with a section on the
//! Suricata alerts of the period ([`crate::ids::IdsSummary`]).

use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ids::IdsSummary;

/// Totals of the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Rules on the firewall.
    pub rules_total: usize,
    /// Enabled rules.
    pub rules_enabled: usize,
    /// Disabled (or paused) rules.
    pub rules_disabled: usize,
    /// Log lines in the period.
    pub log_lines: u64,
    /// Blocked and rejected lines.
    pub blocked: u64,
    /// Passed lines.
    pub allowed: u64,
    /// Bytes of all lines.
    pub total_bytes: u64,
    /// Inbound bytes.
    pub bytes_in: u64,
    /// Outbound bytes.
    pub bytes_out: u64,
}

/// Lines to one destination `protocol:port`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortEvents {
    /// `tcp:22`.
    pub port: String,
    /// Blocked and rejected lines.
    pub blocked: u64,
    /// Passed lines.
    pub allowed: u64,
}

/// A source with blocked lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockedSource {
    /// The address.
    pub ip: String,
    /// Blocked and rejected lines.
    pub blocked: u64,
    /// Distinct ports it was blocked on.
    pub distinct_ports: usize,
}

/// One bucket of the time series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimePoint {
    /// Bucket start.
    pub timestamp: DateTime<Utc>,
    /// Blocked and rejected lines.
    pub blocked: u64,
    /// Passed lines.
    pub allowed: u64,
}

/// Lines by action on one interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InterfaceActions {
    /// The interface name (or device).
    pub interface: String,
    /// Passed.
    pub pass: u64,
    /// Blocked.
    pub block: u64,
    /// Rejected.
    pub reject: u64,
}

/// A detected threat, as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportThreat {
    /// port_scan, brute_force, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// low, medium, high, critical.
    pub severity: String,
    /// The source.
    pub source_ip: String,
    /// Lines that make the finding.
    pub attempt_count: u64,
    /// 0–100.
    pub threat_score: u8,
    /// 1h, 24h, 7d.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommended_block: Option<String>,
}

/// Blocked lines from one country's addresses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountryBlocked {
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// Blocked and rejected lines.
    pub blocked: u64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The firewall target.
    pub target: String,
    /// As asked (`24h`, `7d`).
    pub timeframe: String,
    /// Start of the period.
    pub from: DateTime<Utc>,
    /// End of the period (when the report was made).
    pub generated_at: DateTime<Utc>,
    /// Totals.
    pub summary: Summary,
    /// Lines per destination `protocol:port`, most blocked first.
    pub security_events: Vec<PortEvents>,
    /// Sources with most blocked lines.
    pub top_blocked_ips: Vec<BlockedSource>,
    /// Blocked and allowed lines over time.
    pub blocked_over_time: Vec<TimePoint>,
    /// Lines by action per interface.
    pub actions_by_interface: Vec<InterfaceActions>,
    /// Detected threats, highest score first.
    pub threats: Vec<ReportThreat>,
    /// Source countries of blocked lines, most first (empty without a country database).
    pub top_blocked_countries: Vec<CountryBlocked>,
    /// The attribution the country data's licence asks for, when countries are shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub countries_attribution: Option<String>,
    /// What to do.
    pub recommendations: Vec<String>,
    /// The DDoS protections in force, one line each (what they limit, for whom).
    #[serde(default)]
    pub ddos_protections: Vec<String>,
    /// Suricata alerts of the period: counts by severity, top signatures and sources, sensors last heard from.
    pub ids_alerts: IdsSummary,
}

/// Recommendations from the report's numbers and the names of disabled rules.
pub fn recommendations(r: &Report, disabled_rules: &[String], is_blocked: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut named = std::collections::HashSet::new();
    let mut already_blocked = 0;
    // Threats come highest score first: a source with several findings is recommended once, for its worst one.
    for t in r.threats.iter().filter(|t| t.recommended_block.is_some()) {
        if !named.insert(t.source_ip.as_str()) {
            continue;
        }
        if is_blocked(&t.source_ip) {
            already_blocked += 1;
            continue;
        }
        out.push(format!(
            "Block {} for {} ({}, {} attempts, threat score {}).",
            t.source_ip,
            t.recommended_block.as_deref().unwrap_or("1h"),
            t.kind.replace('_', " "),
            t.attempt_count,
            t.threat_score
        ));
    }
    if already_blocked > 0 {
        out.push(format!("{already_blocked} source(s) that call for a block are blocked already."));
    }
    let ssh: u64 = r.security_events.iter().filter(|e| e.port == "tcp:22").map(|e| e.blocked).sum();
    if ssh >= 100 {
        out.push(format!(
            "Heavy SSH attack volume: {ssh} blocked attempts on tcp:22. Keep SSH closed to the internet and let \
             administrators in with grant_access for the time they need."
        ));
    }
    let rdp: u64 = r.security_events.iter().filter(|e| e.port == "tcp:3389").map(|e| e.blocked).sum();
    if rdp >= 50 {
        out.push(format!("{rdp} blocked RDP attempts on tcp:3389: make sure no rule exposes RDP."));
    }
    if !disabled_rules.is_empty() {
        out.push(format!(
            "{} disabled rule(s) to clean up: {}.",
            disabled_rules.len(),
            disabled_rules.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let ids = &r.ids_alerts;
    let critical = ids.with_severity(1);
    if critical > 0 {
        let top = ids.top_signatures.iter().find(|s| s.severity == 1);
        out.push(format!(
            "Suricata raised {critical} severity-1 alert(s){}: review the ids_alert threats and the hosts involved.",
            top.map(|s| format!(", most of them \"{}\" (sid {})", s.signature, s.signature_id)).unwrap_or_default()
        ));
    }
    if r.summary.log_lines == 0 {
        out.push("No log lines in this period: check that the firewall sends its logs (syslog) to Portcullis.".into());
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Markdown.
pub fn markdown(r: &Report) -> String {
    let s = &r.summary;
    let mut m = String::new();
    let _ = writeln!(m, "# Security report: {} ({})\n", r.target, r.timeframe);
    let _ = writeln!(m, "Period: {} to {}\n", r.from.to_rfc3339(), r.generated_at.to_rfc3339());
    let _ = writeln!(m, "## Summary\n");
    let _ = writeln!(m, "| | |\n|---|---|");
    let _ = writeln!(m, "| rules | {} ({} enabled, {} disabled) |", s.rules_total, s.rules_enabled, s.rules_disabled);
    let _ = writeln!(m, "| log lines | {} |", s.log_lines);
    let _ = writeln!(m, "| blocked | {} |", s.blocked);
    let _ = writeln!(m, "| allowed | {} |", s.allowed);
    let _ = writeln!(m, "| traffic | {} bytes ({} in, {} out) |\n", s.total_bytes, s.bytes_in, s.bytes_out);
    let _ = writeln!(m, "## Threats\n");
    if r.threats.is_empty() {
        let _ = writeln!(m, "None detected.\n");
    } else {
        let _ = writeln!(m, "| type | severity | source | attempts | score | block for |\n|---|---|---|---|---|---|");
        for t in &r.threats {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} |",
                t.kind,
                t.severity,
                t.source_ip,
                t.attempt_count,
                t.threat_score,
                t.recommended_block.as_deref().unwrap_or("-")
            );
        }
        m.push('\n');
    }
    ids_markdown(&mut m, &r.ids_alerts);
    let _ = writeln!(m, "## Security events by port\n\n| port | blocked | allowed |\n|---|---|---|");
    for e in &r.security_events {
        let _ = writeln!(m, "| {} | {} | {} |", e.port, e.blocked, e.allowed);
    }
    let _ = writeln!(m, "\n## Top blocked sources\n\n| source | blocked | distinct ports |\n|---|---|---|");
    for b in &r.top_blocked_ips {
        let _ = writeln!(m, "| {} | {} | {} |", b.ip, b.blocked, b.distinct_ports);
    }
    let _ = writeln!(m, "\n## Actions by interface\n\n| interface | pass | block | reject |\n|---|---|---|---|");
    for i in &r.actions_by_interface {
        let _ = writeln!(m, "| {} | {} | {} | {} |", i.interface, i.pass, i.block, i.reject);
    }
    if !r.ddos_protections.is_empty() {
        let _ = writeln!(m, "\n## DDoS protections in force\n");
        for p in &r.ddos_protections {
            let _ = writeln!(m, "- {p}");
        }
    }
    let _ = writeln!(m, "\n## Recommendations\n");
    for rec in &r.recommendations {
        let _ = writeln!(m, "- {rec}");
    }
    m
}

/// Text from outside (a signature, a sensor's name) as one Markdown table cell: no line breaks, `|` escaped.
fn md_cell(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '|' => "\\|".to_string(),
            c if c.is_control() => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The "Suricata alerts" section.
fn ids_markdown(m: &mut String, ids: &IdsSummary) {
    let _ = writeln!(m, "## Suricata alerts\n");
    if ids.alerts == 0 {
        let _ = writeln!(m, "None in this period.\n");
    } else {
        let by: Vec<String> = ids.by_severity.iter().map(|s| format!("{} {}", s.alerts, s.label)).collect();
        let _ = writeln!(m, "{} alerts: {}.\n", ids.alerts, by.join(", "));
        let _ = writeln!(m, "| sid | signature | category | severity | alerts | sources |\n|---|---|---|---|---|---|");
        for s in &ids.top_signatures {
            let _ = writeln!(
                m,
                "| {}:{} | {} | {} | {} | {} | {} |",
                s.gid,
                s.signature_id,
                md_cell(&s.signature),
                md_cell(s.category.as_deref().unwrap_or("-")),
                s.severity,
                s.alerts,
                s.sources
            );
        }
        let _ = writeln!(m, "\n| source | alerts | highest severity | signatures |\n|---|---|---|---|");
        for s in &ids.top_sources {
            let _ = writeln!(m, "| {} | {} | {} | {} |", s.ip, s.alerts, s.highest_severity, s.signatures);
        }
        m.push('\n');
    }
    for s in &ids.sensors {
        let _ = writeln!(
            m,
            "- sensor {} ({}): last event {}, {} events in this period",
            md_cell(s.sensor.as_deref().unwrap_or("unnamed")),
            md_cell(s.interface.as_deref().unwrap_or("no interface configured")),
            s.last_event.to_rfc3339(),
            s.events
        );
    }
    if !ids.sensors.is_empty() {
        m.push('\n');
    }
}

fn ids_html(h: &mut String, ids: &IdsSummary) {
    h.push_str("<h2>Suricata alerts</h2>");
    if ids.alerts == 0 {
        h.push_str("<p>None in this period.</p>");
    } else {
        let by: Vec<String> = ids.by_severity.iter().map(|s| format!("{} {}", s.alerts, s.label)).collect();
        let _ = write!(h, "<p>{} alerts: {}.</p>", ids.alerts, esc(&by.join(", ")));
        h.push_str("<table id=\"ids-signatures\"><tr><th>sid</th><th>signature</th><th>category</th><th>severity</th><th>alerts</th><th>sources</th></tr>");
        for s in &ids.top_signatures {
            let _ = write!(
                h,
                "<tr><td>{}:{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                s.gid,
                s.signature_id,
                esc(&s.signature),
                esc(s.category.as_deref().unwrap_or("-")),
                s.severity,
                s.alerts,
                s.sources
            );
        }
        h.push_str("</table><table id=\"ids-sources\"><tr><th>source</th><th>alerts</th><th>highest severity</th><th>signatures</th></tr>");
        for s in &ids.top_sources {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.ip),
                s.alerts,
                s.highest_severity,
                s.signatures
            );
        }
        h.push_str("</table>");
    }
    if !ids.sensors.is_empty() {
        h.push_str("<ul>");
        for s in &ids.sensors {
            let _ = write!(
                h,
                "<li>sensor {} ({}): last event {}, {} events in this period</li>",
                esc(s.sensor.as_deref().unwrap_or("unnamed")),
                esc(s.interface.as_deref().unwrap_or("no interface configured")),
                s.last_event.format("%Y-%m-%d %H:%M:%S UTC"),
                s.events
            );
        }
        h.push_str("</ul>");
    }
}

/// Chart colours (the HTML test looks for them in a screenshot).
pub mod colours {
    /// Blocked over time.
    pub const BLOCKED: &str = "#d62728";
    /// Allowed over time, and pass by interface.
    pub const ALLOWED: &str = "#2ca02c";
    /// Top blocked sources.
    pub const SOURCES: &str = "#ff7f0e";
    /// Top blocked ports.
    pub const PORTS: &str = "#1f77b4";
    /// Reject by interface.
    pub const REJECT: &str = "#9467bd";
}

const W: f64 = 560.0;
const H: f64 = 300.0;

fn svg_open(title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" \
         aria-label=\"{t}\"><text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">{t}</text>",
        t = esc(title)
    )
}

fn time_chart(points: &[TimePoint]) -> String {
    let mut s = svg_open("Blocked over time");
    let max = points.iter().map(|p| p.blocked.max(p.allowed)).max().unwrap_or(0).max(1) as f64;
    let (left, top, width, height) = (50.0, 35.0, W - 60.0, H - 70.0);
    let n = points.len().max(1) as f64;
    let bw = (width / n).max(1.0);
    for (i, p) in points.iter().enumerate() {
        let x = left + i as f64 * width / n;
        let hb = p.blocked as f64 / max * height;
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{hb:.1}\" fill=\"{}\"><title>{}: {} blocked</title></rect>",
            top + height - hb,
            (bw * 0.9).max(1.0),
            colours::BLOCKED,
            p.timestamp.to_rfc3339(),
            p.blocked
        );
    }
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!("{:.1},{:.1}", left + (i as f64 + 0.5) * width / n, top + height - p.allowed as f64 / max * height)
        })
        .collect();
    let _ = write!(
        s,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
        line.join(" "),
        colours::ALLOWED
    );
    let _ = write!(
        s,
        "<line x1=\"{left}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#333\"/><text x=\"5\" y=\"{t}\" font-size=\"11\">{max}</text>",
        b = top + height,
        r = left + width,
        t = top + 10.0
    );
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let _ = write!(
            s,
            "<text x=\"{left}\" y=\"{y}\" font-size=\"11\">{}</text><text x=\"{r}\" y=\"{y}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            first.timestamp.format("%m-%d %H:%M"),
            last.timestamp.format("%m-%d %H:%M"),
            y = top + height + 15.0,
            r = left + width
        );
    }
    let _ = write!(
        s,
        "<text x=\"{x}\" y=\"20\" font-size=\"11\" fill=\"{}\">■ blocked</text><text x=\"{x2}\" y=\"20\" font-size=\"11\" fill=\"{}\">― allowed</text></svg>",
        colours::BLOCKED,
        colours::ALLOWED,
        x = W - 160.0,
        x2 = W - 80.0
    );
    s
}

fn bar_chart(title: &str, rows: &[(String, u64)], colour: &str) -> String {
    let mut s = svg_open(title);
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1) as f64;
    let (left, top, width) = (130.0, 35.0, W - 200.0);
    let row_h = ((H - 45.0) / rows.len().max(1) as f64).min(26.0);
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = top + i as f64 * row_h;
        let w = (*v as f64 / max * width).max(1.0);
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text><rect x=\"{left}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{v}</text>",
            left - 6.0,
            y + row_h * 0.65,
            esc(label),
            row_h * 0.8,
            left + w + 4.0,
            y + row_h * 0.65
        );
    }
    if rows.is_empty() {
        let _ = write!(s, "<text x=\"{left}\" y=\"60\" font-size=\"12\">no blocked traffic</text>");
    }
    s.push_str("</svg>");
    s
}

fn interface_chart(rows: &[InterfaceActions]) -> String {
    let mut s = svg_open("Actions by interface");
    let max = rows.iter().map(|r| r.pass + r.block + r.reject).max().unwrap_or(0).max(1) as f64;
    let (left, top, width) = (90.0, 35.0, W - 160.0);
    let row_h = ((H - 70.0) / rows.len().max(1) as f64).min(40.0);
    for (i, r) in rows.iter().enumerate() {
        let y = top + i as f64 * row_h;
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + row_h * 0.6,
            esc(&r.interface)
        );
        let mut x = left;
        for (v, colour) in [(r.pass, colours::ALLOWED), (r.block, colours::BLOCKED), (r.reject, colours::REJECT)] {
            let w = v as f64 / max * width;
            if v > 0 {
                let _ = write!(
                    s,
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>",
                    w.max(1.0),
                    row_h * 0.75
                );
            }
            x += w;
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{} / {} / {}</text>",
            x + 4.0,
            y + row_h * 0.6,
            r.pass,
            r.block,
            r.reject
        );
    }
    let _ = write!(
        s,
        "<text x=\"10\" y=\"{y}\" font-size=\"11\" fill=\"{}\">■ pass</text><text x=\"70\" y=\"{y}\" font-size=\"11\" fill=\"{}\">■ block</text><text x=\"135\" y=\"{y}\" font-size=\"11\" fill=\"{}\">■ reject</text></svg>",
        colours::ALLOWED,
        colours::BLOCKED,
        colours::REJECT,
        y = H - 10.0
    );
    s
}

/// A standalone HTML page (no scripts, no external resources) with the summary, four SVG charts and tables.
pub fn html(r: &Report) -> String {
    let s = &r.summary;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Security report: {t}</title><style>\
         body{{font-family:sans-serif;margin:20px;color:#222;background:#fff}} .grid{{display:grid;grid-template-columns:repeat(2,580px);gap:12px}}\
         .card{{border:1px solid #ddd;border-radius:6px;padding:8px}} table{{border-collapse:collapse;margin:8px 0}}\
         td,th{{border:1px solid #ddd;padding:3px 8px;text-align:left}} .kpi{{display:inline-block;margin-right:24px}}\
         .kpi b{{font-size:22px;display:block}}</style></head><body>",
        t = esc(&r.target)
    );
    let _ = write!(
        h,
        "<h1>Security report: {} <small>({})</small></h1><p>{} to {}</p>",
        esc(&r.target),
        esc(&r.timeframe),
        r.from.format("%Y-%m-%d %H:%M UTC"),
        r.generated_at.format("%Y-%m-%d %H:%M UTC")
    );
    for (label, value) in [
        ("log lines", s.log_lines.to_string()),
        ("blocked", s.blocked.to_string()),
        ("allowed", s.allowed.to_string()),
        ("threats", r.threats.len().to_string()),
        ("rules", format!("{} ({} disabled)", s.rules_total, s.rules_disabled)),
    ] {
        let _ = write!(h, "<div class=\"kpi\"><b>{}</b>{label}</div>", esc(&value));
    }
    let sources: Vec<(String, u64)> = r.top_blocked_ips.iter().take(10).map(|b| (b.ip.clone(), b.blocked)).collect();
    let ports: Vec<(String, u64)> =
        r.security_events.iter().filter(|e| e.blocked > 0).take(10).map(|e| (e.port.clone(), e.blocked)).collect();
    let _ = write!(
        h,
        "<div class=\"grid\"><div class=\"card\" id=\"chart-time\">{}</div><div class=\"card\" id=\"chart-sources\">{}</div>\
         <div class=\"card\" id=\"chart-ports\">{}</div><div class=\"card\" id=\"chart-interfaces\">{}</div></div>",
        time_chart(&r.blocked_over_time),
        bar_chart("Top blocked sources", &sources, colours::SOURCES),
        bar_chart("Top blocked ports", &ports, colours::PORTS),
        interface_chart(&r.actions_by_interface)
    );
    if !r.top_blocked_countries.is_empty() {
        let countries: Vec<(String, u64)> =
            r.top_blocked_countries.iter().take(10).map(|c| (c.country.clone(), c.blocked)).collect();
        let _ = write!(
            h,
            "<div class=\"card\" id=\"chart-countries\">{}<p><small>{}</small></p></div>",
            bar_chart("Top blocked source countries", &countries, colours::SOURCES),
            esc(r.countries_attribution.as_deref().unwrap_or_default())
        );
    }
    h.push_str("<h2>Threats</h2><table><tr><th>type</th><th>severity</th><th>source</th><th>attempts</th><th>score</th><th>block for</th></tr>");
    for t in &r.threats {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.kind),
            esc(&t.severity),
            esc(&t.source_ip),
            t.attempt_count,
            t.threat_score,
            esc(t.recommended_block.as_deref().unwrap_or("-"))
        );
    }
    h.push_str("</table>");
    ids_html(&mut h, &r.ids_alerts);
    if !r.ddos_protections.is_empty() {
        h.push_str("<h2>DDoS protections in force</h2><ul>");
        for p in &r.ddos_protections {
            let _ = write!(h, "<li>{}</li>", esc(p));
        }
        h.push_str("</ul>");
    }
    h.push_str("<h2>Recommendations</h2><ul>");
    for rec in &r.recommendations {
        let _ = write!(h, "<li>{}</li>", esc(rec));
    }
    h.push_str("</ul></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Report {
            target: "lab<x>".into(),
            timeframe: "24h".into(),
            from: t,
            generated_at: t,
            summary: Summary { log_lines: 10, blocked: 400, allowed: 6, ..Default::default() },
            security_events: vec![PortEvents { port: "tcp:22".into(), blocked: 300, allowed: 0 }],
            top_blocked_ips: vec![BlockedSource { ip: "203.0.113.50".into(), blocked: 300, distinct_ports: 1 }],
            blocked_over_time: vec![TimePoint { timestamp: t, blocked: 4, allowed: 6 }],
            actions_by_interface: vec![InterfaceActions { interface: "wan".into(), pass: 0, block: 4, reject: 0 }],
            threats: vec![ReportThreat {
                kind: "brute_force".into(),
                severity: "high".into(),
                source_ip: "203.0.113.50".into(),
                attempt_count: 300,
                threat_score: 55,
                recommended_block: Some("24h".into()),
            }],
            top_blocked_countries: Vec::new(),
            countries_attribution: None,
            recommendations: Vec::new(),
            ddos_protections: Vec::new(),
            ids_alerts: IdsSummary::default(),
        }
    }

    #[test]
    fn recommendations_name_the_attacker_ssh_volume_and_disabled_rules() {
        let recs = recommendations(&report(), &["old test rule".into()], |_| false);
        assert!(recs[0].starts_with("Block 203.0.113.50 for 24h"), "{recs:?}");
        assert!(recs.iter().any(|r| r.starts_with("Heavy SSH attack volume: 300")));
        assert!(recs.iter().any(|r| r.contains("old test rule")));
    }

    #[test]
    fn each_source_is_recommended_once_and_not_when_it_is_blocked_already() {
        let mut r = report();
        let scan = ReportThreat { kind: "port_scan".into(), threat_score: 40, ..r.threats[0].clone() };
        let other = ReportThreat { source_ip: "198.51.100.4".into(), ..r.threats[0].clone() };
        r.threats.extend([scan, other]);
        let recs = recommendations(&r, &[], |_| false);
        let blocks: Vec<&String> = recs.iter().filter(|l| l.starts_with("Block ")).collect();
        assert_eq!(blocks.len(), 2, "{recs:?}");
        assert!(blocks[0].contains("brute force"), "the worst finding of a source is the one named: {recs:?}");
        let recs = recommendations(&r, &[], |ip| ip == "203.0.113.50");
        let blocks: Vec<&String> = recs.iter().filter(|l| l.starts_with("Block ")).collect();
        assert_eq!(blocks.len(), 1, "{recs:?}");
        assert!(blocks[0].starts_with("Block 198.51.100.4"), "{recs:?}");
        assert!(
            recs.iter().any(|l| l.starts_with("1 source(s) that call for a block are blocked already")),
            "{recs:?}"
        );
    }

    #[test]
    fn suricata_alerts_section_escapes_outside_text_and_severity_one_is_recommended() {
        use crate::ids::{AlertGroups, EventTotals, IdsAlert};
        let mut groups = AlertGroups::default();
        for (sev, sid) in [(1, 2024897), (1, 2024897), (3, 2100366)] {
            groups.add(&IdsAlert {
                ts_us: 1_700_000_000_000_000,
                gid: 1,
                signature_id: sid,
                rev: 1,
                signature: if sev == 1 { "ET TROJAN a|b <script>\nx" } else { "GPL ICMP_INFO PING" },
                category: None,
                severity: sev,
                action: crate::eve::AlertAction::Allowed,
                src_ip: "203.0.113.9".parse().ok(),
                src_port: None,
                dest_ip: None,
                dest_port: None,
                proto: None,
                in_iface: None,
                interface: Some("wan"),
                sensor: None,
                flow_id: None,
                community_id: None,
                app_proto: None,
            });
        }
        let mut r = report();
        r.ids_alerts = IdsSummary::new(&groups, &EventTotals::default(), 10);
        let md = markdown(&r);
        assert!(md.contains("## Suricata alerts\n\n3 alerts: 2 critical, 0 high, 1 medium."), "{md}");
        assert!(md.contains("| 1:2024897 | ET TROJAN a\\|b <script> x | - | 1 | 2 | 1 |"), "{md}");
        let h = html(&r);
        assert!(h.contains("ET TROJAN a|b &lt;script&gt;") && !h.contains("<script>"), "{h}");
        assert_eq!(h.matches("<svg").count(), 4, "the section is tables, not a fifth chart");
        let recs = recommendations(&r, &[], |_| false);
        assert!(recs.iter().any(|l| l.starts_with("Suricata raised 2 severity-1 alert(s), most of them")), "{recs:?}");
        let empty = markdown(&report());
        assert!(empty.contains("## Suricata alerts\n\nNone in this period."), "{empty}");
    }

    #[test]
    fn html_has_four_charts_escapes_text_and_loads_nothing() {
        let h = html(&report());
        assert_eq!(h.matches("<svg").count(), 4);
        for c in [colours::BLOCKED, colours::SOURCES, colours::PORTS, colours::ALLOWED] {
            assert!(h.contains(c), "{c}");
        }
        assert!(h.contains("lab&lt;x&gt;") && !h.contains("lab<x>"));
        assert!(!h.contains("<script") && !h.contains("http://") || h.contains("http://www.w3.org/2000/svg"));
        let md = markdown(&report());
        assert!(md.contains("| brute_force | high | 203.0.113.50 | 300 | 55 | 24h |"), "{md}");
    }
}
