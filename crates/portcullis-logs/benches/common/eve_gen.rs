//! The generated eve.json lines of the eve benches (this crate's `eve` and portcullis-logstore's `eve_ingest`):
//! deterministic (a fixed xorshift seed), in Suricata 7's layout and field order, mixed like a sensor's day: 45%
//! flow, 25% dns, 10% alert, 8% tls, 6% http, 3% anomaly, 2% fileinfo, 1% drop, and a full `stats` event every
//! 1,000 lines; 10% of the flows are IPv6, offsets `+0100`, from 2026-11-30T13:00:00+0100 on.

/// xorshift64*: deterministic, and enough variety for addresses, ports and counters.
pub struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const SIGNATURES: &[(u32, u32, &str, &str, u8)] = &[
    (2001219, 20, "ET SCAN Potential SSH Scan", "Attempted Information Leak", 2),
    (
        2018358,
        10,
        "ET HUNTING GENERIC SUSPICIOUS POST to Dotted Quad with Fake Browser 1",
        "Potentially Bad Traffic",
        2,
    ),
    (2100366, 8, "GPL ICMP_INFO PING *NIX", "Misc activity", 3),
    (2210045, 2, "SURICATA STREAM Packet with invalid ack", "Generic Protocol Command Decode", 3),
    (2023753, 3, "ET SCAN MS Terminal Server Traffic on Non-standard Port", "Attempted Information Leak", 2),
    (2027865, 4, "ET INFO Observed DNS Query to .cloud TLD", "Potentially Bad Traffic", 2),
    (2013028, 7, "ET POLICY curl User-Agent Outbound", "Attempted Information Leak", 2),
    (2024897, 2, "ET USER_AGENTS Go HTTP Client User-Agent", "Network Trojan was detected", 1),
];

const NAMES: &[&str] =
    &["example.org", "www.example.com", "api.github.com", "time.cloudflare.com", "updates.example.net"];

pub struct Gen {
    pub rng: Rng,
    /// Microseconds since 2026-11-30T13:00:00+0100.
    pub clock: u64,
}

impl Gen {
    fn timestamp(&self, back_us: u64) -> String {
        let t = self.clock.saturating_sub(back_us);
        let (s, us) = (t / 1_000_000, t % 1_000_000);
        let (h, m, s) = (13 + s / 3600, (s / 60) % 60, s % 60);
        format!("2026-11-30T{h:02}:{m:02}:{s:02}.{us:06}+0100")
    }

    /// (src, dest) addresses, a client in the LAN and a server outside.
    fn addresses(&mut self) -> (String, String) {
        if self.rng.below(10) == 0 {
            let (a, b) = (self.rng.below(0xffff), self.rng.below(0xffff));
            (format!("2001:db8:10::{a:x}"), format!("2606:2800:220:1:248:1893:{b:x}:1946"))
        } else {
            let c = self.rng.below(250) + 2;
            let d = self.rng.next();
            (
                format!("10.20.0.{c}"),
                format!("{}.{}.{}.{}", 1 + d % 223, (d >> 8) % 256, (d >> 16) % 256, 1 + (d >> 24) % 254),
            )
        }
    }

    pub fn line(&mut self, n: usize) -> String {
        self.clock += 1 + self.rng.below(400);
        let ts = self.timestamp(0);
        let flow_id = self.rng.next() & 0x0007_ffff_ffff_ffff;
        if n % 1000 == 999 {
            let up = self.clock / 1_000_000;
            return format!(
                r#"{{"timestamp":"{ts}","event_type":"stats","stats":{{"uptime":{up},"capture":{{"kernel_packets":{k},"kernel_drops":0,"errors":0}},"decoder":{{"pkts":{k},"bytes":{b},"invalid":3,"ipv4":{k},"ipv6":1182,"ethernet":{k},"tcp":{t},"udp":{u},"icmpv4":9111,"icmpv6":324,"vlan":0,"avg_pkt_size":777,"max_pkt_size":1514}},"flow":{{"memcap":0,"tcp":40022,"udp":61230,"icmpv4":811,"icmpv6":20,"memuse":9184256}},"detect":{{"engines":[{{"id":0,"last_reload":"2026-11-30T13:00:00.000000+0100","rules_loaded":44571,"rules_failed":0,"rules_skipped":0}}],"alert":18,"alert_queue_overflow":0,"alerts_suppressed":0}},"app_layer":{{"flow":{{"http":1204,"tls":20331,"dns_udp":58211,"failed_tcp":402}},"tx":{{"http":1990,"tls":0,"dns_udp":116200}}}},"tcp":{{"sessions":40022,"syn":40511,"synack":40002,"rst":1203,"reassembly_gap":2,"memuse":4587520,"reassembly_memuse":1310720}}}}}}"#,
                k = up * 2250,
                b = up * 1_750_000,
                t = up * 1970,
                u = up * 270,
            );
        }
        let (src, dest) = self.addresses();
        let sport = 32768 + self.rng.below(28000);
        let roll = self.rng.below(100);
        match roll {
            0..45 => {
                let (proto, dport, app) = match self.rng.below(10) {
                    0..6 => ("TCP", 443, "tls"),
                    6..8 => ("UDP", 53, "dns"),
                    8 => ("TCP", 80, "http"),
                    _ => ("TCP", 22, "ssh"),
                };
                let (ps, pc) = (1 + self.rng.below(40), self.rng.below(60));
                let (bs, bc) = (ps * (60 + self.rng.below(500)), pc * (60 + self.rng.below(1400)));
                let age = self.rng.below(120);
                let start = self.timestamp(age * 1_000_000 + 30_000_000);
                let end = self.timestamp(30_000_000);
                let state = if proto == "TCP" { "closed" } else { "established" };
                let tcp = if proto == "TCP" {
                    r#","tcp":{"tcp_flags":"1b","tcp_flags_ts":"1b","tcp_flags_tc":"1b","syn":true,"fin":true,"psh":true,"ack":true,"state":"closed","ts_max_regions":1,"tc_max_regions":1}"#
                } else {
                    ""
                };
                format!(
                    r#"{{"timestamp":"{ts}","flow_id":{flow_id},"in_iface":"igb1","event_type":"flow","src_ip":"{src}","src_port":{sport},"dest_ip":"{dest}","dest_port":{dport},"proto":"{proto}","app_proto":"{app}","flow":{{"pkts_toserver":{ps},"pkts_toclient":{pc},"bytes_toserver":{bs},"bytes_toclient":{bc},"start":"{start}","end":"{end}","age":{age},"state":"{state}","reason":"timeout","alerted":false}}{tcp}}}"#
                )
            }
            45..70 => {
                let name = self.rng.pick(NAMES);
                let id = self.rng.below(65536);
                if self.rng.below(2) == 0 {
                    format!(
                        r#"{{"timestamp":"{ts}","flow_id":{flow_id},"in_iface":"igb1","event_type":"dns","src_ip":"{src}","src_port":{sport},"dest_ip":"10.20.0.53","dest_port":53,"proto":"UDP","pkt_src":"wire/pcap","dns":{{"type":"query","id":{id},"rrname":"{name}","rrtype":"A","tx_id":0,"opcode":0}}}}"#
                    )
                } else {
                    let ttl = self.rng.below(3600);
                    format!(
                        r#"{{"timestamp":"{ts}","flow_id":{flow_id},"in_iface":"igb1","event_type":"dns","src_ip":"10.20.0.53","src_port":53,"dest_ip":"{src}","dest_port":{sport},"proto":"UDP","pkt_src":"wire/pcap","dns":{{"version":2,"type":"answer","id":{id},"flags":"8180","qr":true,"rd":true,"ra":true,"opcode":0,"rrname":"{name}","rrtype":"A","rcode":"NOERROR","answers":[{{"rrname":"{name}","rrtype":"A","ttl":{ttl},"rdata":"{dest}"}}],"grouped":{{"A":["{dest}"]}}}}}}"#
                    )
                }
            }
            70..80 => {
                let (sid, rev, msg, cat, sev) = SIGNATURES[self.rng.below(SIGNATURES.len() as u64) as usize];
                let (ps, pc) = (1 + self.rng.below(10), self.rng.below(10));
                let start = self.timestamp(2_000_000);
                format!(
                    r#"{{"timestamp":"{ts}","flow_id":{flow_id},"in_iface":"igb1","event_type":"alert","src_ip":"{dest}","src_port":{sport},"dest_ip":"{src}","dest_port":22,"proto":"TCP","pkt_src":"wire/pcap","community_id":"1:Xy3mXk2vB4x1mU0jM6bQvQ0m9nE=","alert":{{"action":"allowed","gid":1,"signature_id":{sid},"rev":{rev},"signature":"{msg}","category":"{cat}","severity":{sev},"metadata":{{"created_at":["2010_07_30"],"signature_severity":["Informational"],"updated_at":["2019_07_26"]}}}},"direction":"to_server","flow":{{"pkts_toserver":{ps},"pkts_toclient":{pc},"bytes_toserver":{bs},"bytes_toclient":{bc},"start":"{start}","src_ip":"{dest}","dest_ip":"{src}","src_port":{sport},"dest_port":22}}}}"#,
                    bs = ps * 70,
                    bc = pc * 70,
                )
            }
            80..88 => {
                let name = self.rng.pick(NAMES);
                format!(
                    r#"{{"timestamp":"{ts}","flow_id":{flow_id},"in_iface":"igb1","event_type":"tls","src_ip":"{src}","src_port":{sport},"dest_ip":"{dest}","dest_port":443,"proto":"TCP","pkt_src":"wire/pcap","tls":{{"subject":"CN={name}","issuerdn":"C=US, O=Let's Encrypt, CN=R11","serial":"04:1F:7B:22:9C:11:0A:5E:33","fingerprint":"4d:a2:5a:6d:5e:f6:2c:5f:95:c7:bd:0a:73:ea:3c:17:7b:36:99:9d","sni":"{name}","version":"TLS 1.3","notbefore":"2026-10-01T00:00:00","notafter":"2026-12-30T23:59:59","ja3":{{"hash":"e7d705a3286e19ea42f587b344ee6865","string":"771,4865-4866-4867,0-23-65281-10-11-35-16-5-13-18-51-45-43-27,29-23-24,0"}}}}}}"#
                )
            }
            88..94 => {
                let name = self.rng.pick(NAMES);
                let status = [200, 200, 200, 301, 404][self.rng.below(5) as usize];
                let len = self.rng.below(20000);
                format!(
                    r#"{{"timestamp":"{ts}","flow_id":{flow_id},"in_iface":"igb1","event_type":"http","src_ip":"{src}","src_port":{sport},"dest_ip":"{dest}","dest_port":80,"proto":"TCP","pkt_src":"wire/pcap","tx_id":0,"http":{{"hostname":"{name}","url":"\/index.html?id={len}","http_user_agent":"Mozilla\/5.0 (X11; Linux x86_64; rv:128.0) Gecko\/20100101 Firefox\/128.0","http_content_type":"text\/html","http_method":"GET","protocol":"HTTP\/1.1","status":{status},"length":{len}}}}}"#
                )
            }
            94..97 => format!(
                r#"{{"timestamp":"{ts}","flow_id":{flow_id},"in_iface":"igb1","event_type":"anomaly","src_ip":"{src}","src_port":{sport},"dest_ip":"{dest}","dest_port":443,"proto":"TCP","app_proto":"tls","anomaly":{{"type":"applayer","event":"APPLAYER_DETECT_PROTOCOL_ONLY_ONE_DIRECTION","layer":"proto_detect"}}}}"#
            ),
            97..99 => format!(
                r#"{{"timestamp":"{ts}","flow_id":{flow_id},"in_iface":"igb1","event_type":"fileinfo","src_ip":"{dest}","src_port":80,"dest_ip":"{src}","dest_port":{sport},"proto":"TCP","http":{{"hostname":"example.org","url":"\/download\/file.bin","http_user_agent":"curl\/8.5.0","http_method":"GET","protocol":"HTTP\/1.1","status":200,"length":196}},"app_proto":"http","fileinfo":{{"filename":"\/download\/file.bin","gaps":false,"state":"CLOSED","md5":"c6d2e7b0f8e7b1a96d3c4a2b8e1f0a93","stored":false,"size":{size},"tx_id":0}}}}"#,
                size = self.rng.below(1 << 20),
            ),
            _ => format!(
                r#"{{"timestamp":"{ts}","flow_id":{flow_id},"in_iface":"igb1","event_type":"drop","src_ip":"{dest}","src_port":{sport},"dest_ip":"{src}","dest_port":3389,"proto":"TCP","pkt_src":"wire/pcap","drop":{{"len":60,"tos":0,"ttl":52,"ipid":{ipid},"tcpseq":{seq},"tcpack":0,"tcpwin":64240,"syn":true,"ack":false,"psh":false,"rst":false,"urg":false,"fin":false,"tcpres":0,"tcpurgp":0,"reason":"rules"}},"alert":{{"action":"blocked","gid":1,"signature_id":2023753,"rev":3,"signature":"ET SCAN MS Terminal Server Traffic on Non-standard Port","category":"Attempted Information Leak","severity":2}}}}"#,
                ipid = self.rng.below(65536),
                seq = self.rng.below(1 << 32),
            ),
        }
    }
}
