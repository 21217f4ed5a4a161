//! Firewall logs on nftables: rules with logging carry `log prefix "pc:<rule id>:<action>:<in|out>: "`, the
//! kernel writes one line per logged packet (`IN=lan0 OUT=wan0 SRC=… DST=… PROTO=TCP SPT=… DPT=…`), and this
//! module turns those lines into pfSense filterlog lines (RFC 3339 collector form), so that
//! `query_firewall_logs` and everything downstream parse nftables logs with the same parser as pfSense logs.
//!
//! The kernel log is read with `dmesg --time-format iso` (wall-clock times). Lines logged inside a network
//! namespace other than the host's reach it only with `sysctl net.netfilter.nf_log_all_netns=1`.

use std::collections::HashMap;

/// The log prefix of an nft rule: the kernel log line starts with it, so the line names its rule.
pub fn log_prefix(rule_id: &str, action: &str, inbound: bool) -> String {
    format!("pc:{rule_id}:{action}:{}: ", if inbound { "in" } else { "out" })
}

/// One kernel log line of a Portcullis rule as a filterlog line, or `None` for any other kernel line.
pub fn filterlog_line(kernel_line: &str, hostname: &str) -> Option<String> {
    let (time, message) = kernel_line.split_once(' ')?;
    // dmesg writes `2026-11-21T16:20:01,123456+00:00`; RFC 3339 wants a dot.
    let time = time.replacen(',', ".", 1);
    chrono::DateTime::parse_from_rfc3339(&time).ok()?;
    let rest = message.trim_start().strip_prefix("pc:")?;
    let mut head = rest.splitn(4, ':');
    let (tracker, action, direction, packet) = (head.next()?, head.next()?, head.next()?, head.next()?);
    tracker.parse::<u64>().ok()?;
    if !matches!(action, "pass" | "block" | "reject") || !matches!(direction, "in" | "out") {
        return None;
    }
    let packet = Packet::parse(packet);
    let interface = packet.get(if direction == "in" { "IN" } else { "OUT" }).filter(|d| !d.is_empty())?;
    let body = packet.csv(tracker, interface, action, direction)?;
    Some(format!("{time} {hostname} filterlog[0] {body}"))
}

/// The KEY=VALUE fields and bare flags of a kernel packet log line. Keys after `PROTO=` describe the transport
/// header (UDP has its own `LEN=`).
struct Packet<'a> {
    ip: HashMap<&'a str, &'a str>,
    transport: HashMap<&'a str, &'a str>,
    flags: Vec<&'a str>,
}

impl<'a> Packet<'a> {
    fn parse(text: &'a str) -> Self {
        let mut p = Packet { ip: HashMap::new(), transport: HashMap::new(), flags: Vec::new() };
        let mut after_proto = false;
        for token in text.split_whitespace() {
            match token.split_once('=') {
                Some(("PROTO", v)) => {
                    p.ip.insert("PROTO", v);
                    after_proto = true;
                }
                Some((k, v)) if after_proto => {
                    p.transport.insert(k, v);
                }
                Some((k, v)) => {
                    p.ip.insert(k, v);
                }
                None => p.flags.push(token),
            }
        }
        p
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.ip.get(key).copied()
    }

    fn tcp_flags(&self) -> String {
        [("SYN", 'S'), ("ACK", 'A'), ("FIN", 'F'), ("RST", 'R'), ("PSH", 'P'), ("URG", 'U')]
            .into_iter()
            .filter(|(name, _)| self.flags.contains(name))
            .map(|(_, c)| c)
            .collect()
    }

    fn csv(&self, tracker: &str, interface: &str, action: &str, direction: &str) -> Option<String> {
        let src: std::net::IpAddr = self.get("SRC")?.parse().ok()?;
        let dst: std::net::IpAddr = self.get("DST")?.parse().ok()?;
        let length: u32 = self.get("LEN")?.parse().ok()?;
        let (number, name) = match self.get("PROTO")? {
            "TCP" => (6, "tcp"),
            "UDP" => (17, "udp"),
            "ICMP" => (1, "icmp"),
            "ICMPv6" => (58, "ipv6-icmp"),
            "SCTP" => (132, "sctp"),
            other => (other.parse::<u8>().ok()?, "other"),
        };
        let head = format!("0,,,{tracker},{interface},match,{action},{direction}");
        let ip = if src.is_ipv4() {
            let flags = if self.flags.contains(&"DF") { "DF" } else { "none" };
            format!(
                "4,{},,{},{},0,{flags},{number},{name},{length},{src},{dst}",
                self.get("TOS").unwrap_or("0x0"),
                self.get("TTL").unwrap_or("0"),
                self.get("ID").unwrap_or("0"),
            )
        } else {
            format!(
                "6,{},{:#x},{},{name},{number},{length},{src},{dst}",
                self.get("TC").map_or("0x0".to_string(), |tc| format!("{:#x}", tc.parse::<u8>().unwrap_or(0))),
                self.get("FLOWLBL").and_then(|f| f.parse::<u32>().ok()).unwrap_or(0),
                self.get("HOPLIMIT").unwrap_or("0"),
            )
        };
        let t = |k: &str| self.transport.get(k).copied().unwrap_or("");
        let transport = match number {
            6 => format!("{},{},0,{},,,{},{},", t("SPT"), t("DPT"), self.tcp_flags(), t("WINDOW"), t("URGP")),
            17 | 132 => {
                let data = t("LEN").parse::<u32>().map_or(String::new(), |l| l.saturating_sub(8).to_string());
                format!("{},{},{data}", t("SPT"), t("DPT"))
            }
            1 => match t("TYPE") {
                "8" => format!("request,{},{}", t("ID"), t("SEQ")),
                "0" => format!("reply,{},{}", t("ID"), t("SEQ")),
                _ => format!("datalength={}", length.saturating_sub(28)),
            },
            _ => format!("datalength={}", length.saturating_sub(if src.is_ipv4() { 20 } else { 40 })),
        };
        Some(format!("{head},{ip},{transport}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "2026-11-21T16:20:01,123456+00:00 pc:17952767540:block:in: IN=lan0 OUT=wan0 \
        MAC=aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:08:00 SRC=10.77.1.3 DST=10.77.2.2 LEN=60 TOS=0x00 PREC=0x00 TTL=63 \
        ID=54321 DF PROTO=TCP SPT=40000 DPT=8080 WINDOW=64240 RES=0x00 SYN URGP=0";
    const UDP: &str = "2026-11-21T16:20:02,5+00:00 pc:17952767541:pass:out: IN= OUT=wan0 SRC=10.77.2.1 \
        DST=10.77.2.2 LEN=76 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=123 DPT=123 LEN=56";
    const PING: &str = "2026-11-21T16:20:03,000001+00:00 pc:17952767542:reject:in: IN=lan0 OUT=wan0 SRC=10.77.1.2 \
        DST=10.77.2.2 LEN=84 TOS=0x00 PREC=0x00 TTL=63 ID=7 DF PROTO=ICMP TYPE=8 CODE=0 ID=42 SEQ=1";
    const V6: &str = "2026-11-21T16:20:04,000001+00:00 pc:17952767543:block:in: IN=lan0 OUT= SRC=2001:db8::2 \
        DST=2001:db8::1 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=12345 PROTO=TCP SPT=5555 DPT=22 WINDOW=100 RES=0x00 SYN URGP=0";

    #[test]
    fn kernel_lines_become_filterlog_lines_the_pfsense_parser_reads() {
        let cases = [
            (TCP, "block", "in", "lan0", 6, "10.77.1.3", Some(8080)),
            (UDP, "pass", "out", "wan0", 17, "10.77.2.1", Some(123)),
            (PING, "reject", "in", "lan0", 1, "10.77.1.2", None),
            (V6, "block", "in", "lan0", 6, "2001:db8::2", Some(22)),
        ];
        for (line, action, direction, interface, proto, src, port) in cases {
            let converted = filterlog_line(line, "router").unwrap_or_else(|| panic!("not converted: {line}"));
            let e = portcullis_logs::parse_line(&converted).unwrap_or_else(|err| panic!("{err}: {converted}"));
            assert_eq!(e.action.as_str(), action, "{converted}");
            assert_eq!(e.direction.as_str(), direction);
            assert_eq!(e.interface, interface);
            assert_eq!(e.protocol_id, proto);
            assert_eq!(e.src.to_string(), src);
            assert_eq!(e.dst_port(), port, "{converted}");
            assert!(e.tracker.is_some());
        }
        let e = filterlog_line(TCP, "router").unwrap();
        let entry = portcullis_logs::parse_line(&e).unwrap();
        assert_eq!(entry.tracker, Some(17952767540));
        assert!(entry.to_record().timestamp.is_some(), "{e}");
    }

    #[test]
    fn other_kernel_lines_are_ignored() {
        for line in [
            "2026-11-21T13:07:03,245105+00:00 EXT4-fs (vda): mounted filesystem",
            "2026-11-21T13:07:03,245105+00:00 pc:notanid:block:in: IN=lan0 SRC=1.2.3.4 DST=1.2.3.5 LEN=1 PROTO=TCP",
            "garbage",
        ] {
            assert_eq!(filterlog_line(line, "h"), None, "{line}");
        }
    }
}
