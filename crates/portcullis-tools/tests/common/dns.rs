//! A real DNS server for the tests: dnsmasq on a loopback port of its own, answering for `.test` from a hosts
//! file with a TTL of 2 s (names not in it: NXDOMAIN). Included by path (`#[path = "common/dns.rs"]`).
//!
//! dnsmasq runs under a shell that waits on the test's pipe, so it stops when the test process ends, even when
//! the server is kept in a static and never dropped.

use std::io::Write;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Dns {
    child: Child,
    _alive: ChildStdin,
    hosts: PathBuf,
    pid_file: PathBuf,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Dns {
    pub fn start(hosts: &str) -> Dns {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("hosts");
        let pid_file = dir.path().join("dnsmasq.pid");
        std::fs::write(&file, hosts).expect("hosts file");
        let port = UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free port").port();
        let dnsmasq = format!(
            "dnsmasq --keep-in-foreground --port={port} --listen-address=127.0.0.1 --bind-interfaces --no-resolv \
             --no-hosts --addn-hosts={} --local=/test/ --local-ttl=2 --user=root --pid-file={}",
            file.display(),
            pid_file.display()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("{dnsmasq} & pid=$!; read _; kill $pid"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh runs");
        let alive = child.stdin.take().expect("a pipe to the shell");
        let dns = Dns { child, _alive: alive, hosts: file, pid_file, port, _dir: dir };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() || dns.pid().is_none() {
            assert!(started.elapsed() < Duration::from_secs(5), "dnsmasq did not start (apt-get install dnsmasq-base)");
            std::thread::sleep(Duration::from_millis(20));
        }
        dns
    }

    fn pid(&self) -> Option<String> {
        std::fs::read_to_string(&self.pid_file).ok().map(|p| p.trim().to_string()).filter(|p| !p.is_empty())
    }

    /// New records, read by dnsmasq on SIGHUP.
    #[allow(dead_code)] // not every test changes its zone
    pub fn serve(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).expect("hosts file");
        let pid = self.pid().expect("dnsmasq's pid");
        assert!(Command::new("kill").args(["-HUP", &pid]).status().expect("kill runs").success());
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self._alive.write_all(b"\n");
        let _ = self.child.wait();
    }
}
