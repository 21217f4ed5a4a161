//! Benchmarks of the MCP server over stdio, each printed beside a baseline from the same run:
//! - start-up: process start to the answer of `tools/list`, beside start-to-exit of `portcullis --version`;
//! - read tool round trip (`get_firewall_rules`), beside an MCP `ping` round trip on the same pipe;
//! - resident memory when idle after the calls, beside the same process right after the handshake.
//!
//! Run: `cargo bench -p portcullis --bench stdio`

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const STARTS: usize = 30;
const CALLS: usize = 3000;

struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Server {
    fn start(data_dir: &Path, config: &Path) -> Server {
        let mut child = Command::new(BIN)
            .args(["--config", &config.display().to_string(), "--data-dir", &data_dir.display().to_string(), "serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn portcullis");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Server { child, stdin, stdout, next_id: 1 }
    }

    /// Writes the message and its newline in one `write`, as MCP clients do; two writes would make the server
    /// wake up twice for one message and measure the wake-up instead of the work.
    fn send(&mut self, message: &str) {
        let mut line = String::with_capacity(message.len() + 1);
        line.push_str(message);
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).expect("write");
        self.stdin.flush().expect("flush");
    }

    /// Sends a request and reads until its response arrives.
    fn request(&mut self, method: &str, params: &str) -> String {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#));
        let wanted = format!(r#""id":{id}"#);
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).expect("read") == 0 {
                panic!("server closed stdout while waiting for {method}");
            }
            if line.contains(&wanted) {
                return line.clone();
            }
        }
    }

    fn handshake(&mut self) {
        self.request(
            "initialize",
            r#"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}"#,
        );
        self.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("portcullis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("bench.yaml");
    // The bench makes thousands of calls; the default limit of 100 per minute would refuse them.
    std::fs::write(&config, "security: {rate_limit: 1000000}\nlogging: {level: warn}\n").expect("config");
    let data = dir.join("data");

    // Warm the store once so that every measured start opens an existing store, like a real restart.
    let mut s = Server::start(&data, &config);
    s.handshake();
    s.stop();

    let mut version = Vec::new();
    let mut startup = Vec::new();
    let mut tools_list = String::new();
    for _ in 0..STARTS {
        let t = Instant::now();
        let status = Command::new(BIN).arg("--version").stdout(Stdio::null()).status().expect("version");
        assert!(status.success());
        version.push(t.elapsed());

        let t = Instant::now();
        let mut s = Server::start(&data, &config);
        s.handshake();
        let tools = s.request("tools/list", "{}");
        startup.push(t.elapsed());
        assert!(tools.contains("get_firewall_rules"), "tools/list answered");
        tools_list = tools;
        s.stop();
    }
    print_tools_list_size(&tools_list);
    println!("stdio/startup: process start → tools/list answer   median {}", millis(median(&mut startup)));
    println!("stdio/startup: baseline `portcullis --version`       median {}", millis(median(&mut version)));

    let mut s = Server::start(&data, &config);
    s.handshake();
    let rss_after_handshake = s.rss_kib();
    let call = r#"{"name":"get_firewall_rules","arguments":{}}"#;
    let mut ping = Vec::with_capacity(CALLS);
    let mut read = Vec::with_capacity(CALLS);
    for _ in 0..100 {
        s.request("tools/call", call);
        s.request("ping", "{}");
    }
    for _ in 0..CALLS {
        let t = Instant::now();
        s.request("ping", "{}");
        ping.push(t.elapsed());
        let t = Instant::now();
        let answer = s.request("tools/call", call);
        read.push(t.elapsed());
        assert!(answer.contains("structuredContent"), "read tool answered: {answer}");
    }
    println!(
        "stdio/read tool get_firewall_rules round trip       median {}  p99 {}",
        micros(median(&mut read)),
        micros(percentile(&mut read, 0.99))
    );
    println!(
        "stdio/baseline MCP ping round trip                  median {}  p99 {}",
        micros(median(&mut ping)),
        micros(percentile(&mut ping, 0.99))
    );
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "stdio/idle memory after {} calls: RSS {:.1} MiB (baseline: same process after handshake {:.1} MiB)",
        CALLS * 2 + 200,
        s.rss_kib() as f64 / 1024.0,
        rss_after_handshake as f64 / 1024.0
    );
    s.stop();
    let floor = pipe_echo_floor();
    println!("stdio/baseline OS pipe floor: `cat` echo round trip   median {}", micros(floor));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The cheapest possible round trip over a pipe pair on this machine: a line echoed by `cat`.
fn pipe_echo_floor() -> Duration {
    let mut cat = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn cat");
    let mut stdin = cat.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(cat.stdout.take().expect("stdout"));
    let line_bytes = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{}}\n".to_vec();
    let mut samples = Vec::with_capacity(CALLS);
    let mut line = String::new();
    for _ in 0..CALLS {
        let t = Instant::now();
        stdin.write_all(&line_bytes).expect("write");
        stdin.flush().expect("flush");
        line.clear();
        stdout.read_line(&mut line).expect("read");
        samples.push(t.elapsed());
    }
    drop(stdin);
    let _ = cat.wait();
    median(&mut samples)
}

/// What a model reads when it lists the tools: the `tools/list` answer's size, and how much of it each part is.
fn print_tools_list_size(answer: &str) {
    let value: serde_json::Value = serde_json::from_str(answer).expect("tools/list is JSON");
    let tools = value["result"]["tools"].as_array().cloned().unwrap_or_default();
    let part = |key: &str| -> usize {
        tools.iter().map(|t| t.get(key).map_or(0, |v| serde_json::to_string(v).map_or(0, |s| s.len()))).sum()
    };
    let kib = |bytes: usize| format!("{:.1} KiB", bytes as f64 / 1024.0);
    println!(
        "stdio/tools-list: {} tools, answer {} = output schemas {} + input schemas {} + descriptions {} + rest",
        tools.len(),
        kib(answer.trim_end().len()),
        kib(part("outputSchema")),
        kib(part("inputSchema")),
        kib(part("description")),
    );
}
