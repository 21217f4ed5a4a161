//! A bounded TCP connection generator and a counting listener, each inside a network namespace the test made:
//! sockets are created by a thread that entered the namespace (a socket stays in the namespace it was made in),
//! so nothing here can reach beyond the test's own links.

#![allow(dead_code)] // shared by tests and the bench, which use different parts

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use portcullis_nftables::netlink::in_namespace;
use rustix::net::{AddressFamily, SocketType, sockopt};

/// How one connection attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// A TCP reset (connection refused).
    Refused,
    /// No answer within the attempt's time (a dropped SYN).
    TimedOut,
    Other,
}

/// One connect from `source` to `dest`, in namespace `ns`, giving up after `timeout` (shorter than the first SYN
/// retransmission, so one attempt is one SYN). The connected stream is returned to be held or dropped.
pub fn connect(ns: &str, source: IpAddr, dest: SocketAddr, timeout: Duration) -> (Outcome, Option<TcpStream>) {
    let made = in_namespace(ns, || {
        let family = if source.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
        let fd = rustix::net::socket(family, SocketType::STREAM, None)?;
        rustix::net::bind(&fd, &SocketAddr::new(source, 0))?;
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, Some(timeout))?;
        Ok(fd)
    });
    let fd = match made {
        Ok(fd) => fd,
        Err(_) => return (Outcome::Other, None),
    };
    match rustix::net::connect(&fd, &dest) {
        Ok(()) => (Outcome::Accepted, Some(TcpStream::from(fd))),
        Err(rustix::io::Errno::CONNREFUSED) => (Outcome::Refused, None),
        Err(rustix::io::Errno::INPROGRESS | rustix::io::Errno::TIMEDOUT | rustix::io::Errno::AGAIN) => {
            (Outcome::TimedOut, None)
        }
        Err(_) => (Outcome::Other, None),
    }
}

/// What a run of attempts came to.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub attempted: usize,
    pub accepted: usize,
    pub refused: usize,
    pub timed_out: usize,
    pub other: usize,
    /// The slowest accepted connect.
    pub worst_connect: Duration,
    pub total_connect: Duration,
}

impl Tally {
    pub fn mean_connect(&self) -> Duration {
        if self.accepted == 0 { Duration::ZERO } else { self.total_connect / self.accepted as u32 }
    }
}

/// New connections from `source` at `per_second` for `duration` (at most `per_second × duration` attempts), each
/// closed as soon as it is made.
pub fn run_at(ns: &str, source: IpAddr, dest: SocketAddr, per_second: u32, duration: Duration) -> Tally {
    let interval = Duration::from_secs(1) / per_second;
    let count = (duration.as_secs_f64() * f64::from(per_second)).round() as usize;
    let start = Instant::now();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut attempts: Vec<JoinHandle<()>> = Vec::with_capacity(count);
    for n in 0..count {
        let due = start + interval * n as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (ns, tally) = (ns.to_string(), tally.clone());
        attempts.push(std::thread::spawn(move || {
            let began = Instant::now();
            let (outcome, _stream) = connect(&ns, source, dest, Duration::from_millis(600));
            let took = began.elapsed();
            let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
            t.attempted += 1;
            match outcome {
                Outcome::Accepted => {
                    t.accepted += 1;
                    t.total_connect += took;
                    t.worst_connect = t.worst_connect.max(took);
                }
                Outcome::Refused => t.refused += 1,
                Outcome::TimedOut => t.timed_out += 1,
                Outcome::Other => t.other += 1,
            }
        }));
    }
    for a in attempts {
        let _ = a.join();
    }
    *tally.lock().unwrap_or_else(|p| p.into_inner())
}

/// A listener in a namespace that accepts every connection and holds it open until it stops, counting them (and,
/// when draining, the bytes they bring).
pub struct Listener {
    pub accepted: Arc<AtomicUsize>,
    pub received: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    pub fn start(ns: &str, addr: SocketAddr) -> Self {
        Self::listen(ns, addr, false)
    }

    /// A listener that reads everything each connection sends.
    pub fn draining(ns: &str, addr: SocketAddr) -> Self {
        Self::listen(ns, addr, true)
    }

    fn listen(ns: &str, addr: SocketAddr, drain: bool) -> Self {
        let listener = in_namespace(ns, || {
            let l = TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .unwrap_or_else(|e| panic!("listener on {addr} in {ns}: {e}"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt, bytes) = (accepted.clone(), stop.clone(), received.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !halt.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) if drain => {
                        count.fetch_add(1, Ordering::Relaxed);
                        let bytes = bytes.clone();
                        std::thread::spawn(move || {
                            use std::io::Read;
                            let mut stream = stream;
                            let _ = stream.set_nonblocking(false);
                            let mut buf = vec![0u8; 64 * 1024];
                            while let Ok(n) = stream.read(&mut buf) {
                                if n == 0 {
                                    break;
                                }
                                bytes.fetch_add(n as u64, Ordering::Relaxed);
                            }
                        });
                    }
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        held.push(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Listener { accepted, received, stop, thread: Some(thread) }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection from `source` that sends as fast as it can for `duration`; the bytes the socket took.
pub fn send_for(ns: &str, source: IpAddr, dest: SocketAddr, duration: Duration) -> u64 {
    use std::io::Write;
    let (outcome, stream) = connect(ns, source, dest, Duration::from_secs(1));
    let Some(mut stream) = stream.filter(|_| outcome == Outcome::Accepted) else { return 0 };
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let chunk = vec![0x5au8; 16 * 1024];
    let (start, mut sent) = (Instant::now(), 0u64);
    while start.elapsed() < duration {
        match stream.write(&chunk) {
            Ok(n) => sent += n as u64,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    sent
}
