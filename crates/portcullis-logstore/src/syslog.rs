//! The syslog listener: UDP datagrams and TCP streams (RFC 6587 octet counting or newline framing) carrying RFC
//! 3164 or RFC 5424 messages. filterlog messages are stored; anything else is counted as malformed and dropped.
//! Receiving never waits for the disk: lines go through a bounded queue to one writer that stores them in
//! batches.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::LogStore;

/// Lines queued between the sockets and the writer.
const QUEUE: usize = 200_000;
/// Lines stored per batch at most.
const BATCH: usize = 20_000;
/// The longest TCP frame accepted.
const MAX_FRAME: usize = 64 * 1024;

/// Counters of a running listener.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Messages received (datagram lines and TCP frames).
    pub received: AtomicU64,
    /// Lines stored.
    pub stored: AtomicU64,
    /// Messages that were not filterlog lines.
    pub malformed: AtomicU64,
    /// Store errors (lines lost).
    pub failed: AtomicU64,
}

/// Bound sockets, not yet serving.
pub struct Listener {
    udp: Option<UdpSocket>,
    tcp: Option<TcpListener>,
    stats: Arc<ListenerStats>,
}

impl Listener {
    /// Binds the sockets (port 0 picks a free port; see [`Listener::udp_addr`]).
    pub async fn bind(udp: Option<SocketAddr>, tcp: Option<SocketAddr>) -> std::io::Result<Self> {
        let udp = match udp {
            Some(a) => Some(bind_udp(a)?),
            None => None,
        };
        let tcp = match tcp {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        Ok(Self { udp, tcp, stats: Arc::default() })
    }

    /// The bound UDP address.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The bound TCP address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The counters, shared with the running listener.
    pub fn stats(&self) -> Arc<ListenerStats> {
        self.stats.clone()
    }

    /// Serves until `shutdown`, then stores what is queued.
    pub async fn run(self, store: Arc<LogStore>, shutdown: CancellationToken) {
        let (tx, rx) = mpsc::channel::<String>(QUEUE);
        let writer = tokio::spawn(write_batches(store, rx, self.stats.clone()));
        let mut tasks = Vec::new();
        if let Some(udp) = self.udp {
            tasks.push(tokio::spawn(serve_udp(udp, tx.clone(), self.stats.clone(), shutdown.clone())));
        }
        if let Some(tcp) = self.tcp {
            tasks.push(tokio::spawn(serve_tcp(tcp, tx.clone(), self.stats.clone(), shutdown.clone())));
        }
        drop(tx);
        for t in tasks {
            let _ = t.await;
        }
        let _ = writer.await;
    }
}

/// A UDP socket with a large receive buffer: bursts wait in the kernel instead of being dropped while the
/// receiver is busy (the kernel caps the size at `net.core.rmem_max`).
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(UDP_RECEIVE_BUFFER) {
        tracing::warn!("syslog udp: receive buffer not enlarged: {e}");
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Bytes of kernel receive buffer asked for on the UDP socket.
const UDP_RECEIVE_BUFFER: usize = 8 << 20;

async fn serve_udp(
    socket: UdpSocket,
    tx: mpsc::Sender<String>,
    stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let n = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, _)) => n,
                Err(e) => {
                    tracing::warn!("syslog udp: {e}");
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
        for line in text.split('\n').map(|l| l.trim_end_matches(['\r', '\0'])).filter(|l| !l.is_empty()) {
            stats.received.fetch_add(1, Ordering::Relaxed);
            if tx.send(line.to_string()).await.is_err() {
                return;
            }
        }
    }
}

async fn serve_tcp(
    listener: TcpListener,
    tx: mpsc::Sender<String>,
    stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("syslog tcp accept: {e}");
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        tokio::spawn(serve_stream(stream, tx.clone(), stats.clone(), shutdown.clone()));
    }
}

async fn serve_stream(
    mut stream: TcpStream,
    tx: mpsc::Sender<String>,
    stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 65536];
    loop {
        let n = tokio::select! {
            r = stream.read(&mut chunk) => match r {
                Ok(0) | Err(_) => 0,
                Ok(n) => n,
            },
            () = shutdown.cancelled() => 0,
        };
        if n == 0 {
            // The peer closed: a last newline-less frame still counts.
            if let Ok(Frame::Line(line)) = next_frame(&mut buf, true) {
                stats.received.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(line).await;
            }
            return;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        loop {
            match next_frame(&mut buf, false) {
                Ok(Frame::Line(line)) => {
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
                Ok(Frame::Skip) => {}
                Ok(Frame::NeedMore) => break,
                Err(()) => {
                    tracing::warn!("syslog tcp: frame longer than {MAX_FRAME} bytes; closing the connection");
                    return;
                }
            }
        }
    }
}

/// One framed message out of a TCP stream's buffer.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    Line(String),
    /// An empty line.
    Skip,
    NeedMore,
}

/// Takes the next frame from the front of `buf`: `<length> <message>` when the buffer starts with digits and a
/// space (RFC 6587 octet counting), else a line up to `\n` (non-transparent framing; a bare filterlog CSV body
/// starts with digits and a comma, so it is not mistaken for a length). `Err` for a frame over the limit.
fn next_frame(buf: &mut Vec<u8>, at_end: bool) -> Result<Frame, ()> {
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > 0 && buf.get(digits) == Some(&b' ') {
        let len: usize =
            std::str::from_utf8(buf.get(..digits).unwrap_or_default()).ok().and_then(|d| d.parse().ok()).ok_or(())?;
        if len > MAX_FRAME {
            return Err(());
        }
        let end = digits + 1 + len;
        if buf.len() < end {
            return Ok(Frame::NeedMore);
        }
        let line = String::from_utf8_lossy(buf.get(digits + 1..end).unwrap_or_default())
            .trim_end_matches(['\n', '\r', '\0'])
            .to_string();
        buf.drain(..end);
        return Ok(if line.is_empty() { Frame::Skip } else { Frame::Line(line) });
    }
    if digits > 0 && digits == buf.len() && !at_end {
        return Ok(Frame::NeedMore);
    }
    let end = match buf.iter().position(|b| *b == b'\n') {
        Some(i) => i,
        None if at_end && !buf.is_empty() => buf.len(),
        None if buf.len() > MAX_FRAME => return Err(()),
        None => return Ok(Frame::NeedMore),
    };
    let line = String::from_utf8_lossy(buf.get(..end).unwrap_or_default()).trim_end_matches(['\r', '\0']).to_string();
    buf.drain(..(end + 1).min(buf.len()));
    Ok(if line.is_empty() { Frame::Skip } else { Frame::Line(line) })
}

async fn write_batches(store: Arc<LogStore>, mut rx: mpsc::Receiver<String>, stats: Arc<ListenerStats>) {
    let mut last_flush = tokio::time::Instant::now();
    loop {
        let mut batch = Vec::new();
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            let _ = store.flush();
            return;
        }
        // A short pause lets a burst gather into one append.
        if batch.len() < BATCH {
            tokio::time::sleep(Duration::from_millis(20)).await;
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(l) => batch.push(l),
                    Err(_) => break,
                }
            }
        }
        let store2 = store.clone();
        let result =
            tokio::task::spawn_blocking(move || store2.ingest_lines(batch.iter().map(String::as_str), Utc::now()))
                .await;
        match result {
            Ok(Ok(s)) => {
                stats.stored.fetch_add(s.stored, Ordering::Relaxed);
                stats.malformed.fetch_add(s.malformed, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                tracing::error!("syslog lines not stored: {e}");
                stats.failed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::error!("syslog writer: {e}"),
        }
        if last_flush.elapsed() > Duration::from_secs(5) {
            if let Err(e) = store.flush() {
                tracing::warn!("log rollups not written: {e}");
            }
            last_flush = tokio::time::Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8]) -> Vec<Frame> {
        let mut buf = input.to_vec();
        let mut out = Vec::new();
        loop {
            match next_frame(&mut buf, false) {
                Ok(Frame::NeedMore) => break,
                Ok(f) => out.push(f),
                Err(()) => panic!("error"),
            }
        }
        out
    }

    #[test]
    fn octet_counting_and_newline_framing() {
        let line = |s: &str| Frame::Line(s.to_string());
        assert_eq!(frames(b"5 hello3 abc"), vec![line("hello"), line("abc")]);
        assert_eq!(frames(b"<134>a\n\n5,,,1,em0\r\n"), vec![line("<134>a"), Frame::Skip, line("5,,,1,em0")]);
        assert_eq!(frames(b"10 hel"), vec![], "waits for the rest of the frame");
        assert_eq!(frames(b"12"), vec![], "a length may still be arriving");
        let mut huge = format!("{} ", MAX_FRAME + 1).into_bytes();
        huge.extend_from_slice(b"x");
        assert!(next_frame(&mut huge, false).is_err());
        let mut tail = b"<134>no newline".to_vec();
        assert_eq!(next_frame(&mut tail, true), Ok(line("<134>no newline")));
    }
}
