//! Ingest rate through the UDP syslog listener without loss, beside a baseline measured in the same run: a bare
//! UDP socket that only counts datagrams. For each offered rate the sender paces filterlog lines over loopback for
//! two seconds; the figure is how many arrived (baseline) or were parsed and stored (listener).
//!
//! Run: `cargo bench -p portcullis-logstore --bench syslog_ingest`

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use portcullis_logstore::syslog::Listener;
use portcullis_logstore::{LogStore, Retention};
use tokio_util::sync::CancellationToken;

const SECONDS: u64 = 2;

fn line(i: u64) -> String {
    format!(
        "<134>Nov 21 10:00:{:02} filterlog[72237]: 5,,,1000000103,em0,match,block,in,4,0x0,,64,{},0,DF,6,tcp,60,198.18.{}.{},198.51.100.2,{},22,0,S,1,,64240,,mss;sackOK;TS;nop;wscale",
        i % 60,
        i % 65536,
        (i >> 8) % 256,
        i % 256,
        1024 + i % 60000
    )
}

/// Sends `rate` lines per second for `SECONDS`, paced per line (a sender that cannot keep up sends as fast as it
/// can); returns the lines sent and the rate achieved.
fn send(target: std::net::SocketAddr, rate: u64) -> (u64, f64) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("sender");
    let lines: Vec<String> = (0..rate * SECONDS).map(line).collect();
    let start = Instant::now();
    let mut sent = 0u64;
    for (i, l) in lines.iter().enumerate() {
        let due = Duration::from_secs_f64(i as f64 / rate as f64);
        while start.elapsed() < due {
            std::hint::spin_loop();
        }
        if socket.send_to(l.as_bytes(), target).is_ok() {
            sent += 1;
        }
    }
    (sent, sent as f64 / start.elapsed().as_secs_f64())
}

fn wait_for(counter: &AtomicU64, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    while counter.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    counter.load(Ordering::Relaxed)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    println!(
        "{:>12} | {:>28} | {:>28} | {:>10}",
        "offered/s", "baseline: bare socket", "listener: parsed and stored", "sent/s"
    );
    for rate in [25_000u64, 50_000, 100_000, 200_000, 400_000] {
        // Baseline: a bare socket (same receive buffer as the listener's) that counts datagrams.
        let bare = {
            let _guard = runtime.enter();
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).expect("socket");
            let _ = s.set_recv_buffer_size(8 << 20);
            s.bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().expect("addr").into()).expect("bind");
            s.set_nonblocking(true).expect("nonblocking");
            tokio::net::UdpSocket::from_std(s.into()).expect("tokio socket")
        };
        let bare_addr = bare.local_addr().expect("addr");
        let counted = Arc::new(AtomicU64::new(0));
        let c = counted.clone();
        let stop = CancellationToken::new();
        let s = stop.clone();
        runtime.spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                tokio::select! {
                    r = bare.recv_from(&mut buf) => { if r.is_ok() { c.fetch_add(1, Ordering::Relaxed); } }
                    () = s.cancelled() => return,
                }
            }
        });
        let (sent, _) = send(bare_addr, rate);
        let got_bare = wait_for(&counted, sent);
        stop.cancel();

        // The listener, storing into a fresh store.
        let dir = tempfile::tempdir().expect("tmp");
        let store = LogStore::open(dir.path(), Retention::default()).expect("store");
        let listener =
            runtime.block_on(Listener::bind(Some("127.0.0.1:0".parse().expect("addr")), None)).expect("bind");
        let addr = listener.udp_addr().expect("udp");
        let stats = listener.stats();
        let stop = CancellationToken::new();
        let task = runtime.spawn(listener.run(store.clone(), stop.clone()));
        let (sent_l, achieved) = send(addr, rate);
        let stored = {
            let deadline = Instant::now() + Duration::from_secs(5);
            while stats.stored.load(Ordering::Relaxed) < sent_l && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            stats.stored.load(Ordering::Relaxed)
        };
        stop.cancel();
        let _ = runtime.block_on(task);
        let pct = |got: u64, sent: u64| 100.0 * got as f64 / sent.max(1) as f64;
        println!(
            "{rate:>12} | {:>14} of {:>8} {:>5.1}% | {:>14} of {:>8} {:>5.1}% | {:>10.0}",
            got_bare,
            sent,
            pct(got_bare, sent),
            stored,
            sent_l,
            pct(stored, sent_l),
            achieved
        );
    }
}
